"""Print the gateway's alerts as a Prometheus rules file, for a Prometheus without the
operator or for `promtool`: `python -m components.print_rules NAMESPACE [--kill-switch]`.

The same rule groups the program puts in its PrometheusRule (components.alert_rules).
"""

import argparse
import sys

from components.alert_rules import rules_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the gateway's alerts as a rules file.")
    parser.add_argument("namespace", help="the gateway's namespace (config `namespace`)")
    parser.add_argument("--kill-switch", action="store_true", help="include the kill-switch alert")
    args = parser.parse_args(argv)
    sys.stdout.write(rules_file(args.namespace, kill_switch=args.kill_switch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
