"""The component package's entry point: the Pulumi engine runs `python package/ …` to
serve LlmGateway (token llm-gateway:index:LlmGateway) to programs in any language.

The package lives in a subfolder because the repository root is the Python program; the
root goes on sys.path so `components/` and `proxy/` import as they do for the program.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host

from package.component import LlmGateway

NAME = "llm-gateway"
VERSION = "0.1.0"

if __name__ == "__main__":
    component_provider_host(components=[LlmGateway], name=NAME, version=VERSION)
