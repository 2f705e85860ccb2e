"""Entry point in a framework venv: ``python tests/frameworks/run.py MODULE SCENARIO`` prints one JSON
record (see _harness.py). Scenario modules are the other files in this folder, one per framework."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import main

if __name__ == "__main__":
    module = importlib.import_module(f"fw_{sys.argv[1]}")
    main(module.SCENARIOS, sys.argv[2])
