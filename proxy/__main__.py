"""`python -m proxy` (serve) and `python -m proxy smoke`."""

from proxy.cli import main

raise SystemExit(main())
