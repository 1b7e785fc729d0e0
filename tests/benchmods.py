"""Import bench/ scripts (not a package) as modules for the unit tests: one loader instead of one per file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def load(name: str, path: Path) -> ModuleType:
    """Execute the script at `path` as module `name` (registered in sys.modules, so dataclasses resolve);
    its own directory goes on sys.path first, so its sibling imports (run.py, report_scale.py) work."""
    here = str(path.parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
