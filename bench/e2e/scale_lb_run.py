"""`lb run` with a core sized for the scaling sweep: more services and dests than `lb run`'s defaults.

    python bench/e2e/scale_lb_run.py SVC_MAX DEST_MAX [lb run arguments...]

`lb run` builds its core with lb.core.core.Core's default svc_max (256) and dest_max (4096) and has no
option to change them yet, so 10 000 services fail with ENOMEM ("Memory allocation problem").  Until it
has `--svc-max/--dest-max`, this wrapper makes lb.core.core.Core default to the given sizes for this one
process (lb/run.py imports Core when the worker starts, so it picks up the sized class) and then runs the
ordinary `lb run` entry point with the remaining arguments.  Nothing else changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import lb.core.core as core_mod  # noqa: E402
from lb.cli.main import main as lb_main  # noqa: E402


def sized_core(svc_max: int, dest_max: int) -> type[core_mod.Core]:
    """A Core whose default svc_max/dest_max are the given sizes (explicit arguments still win)."""
    base = core_mod.Core

    class SizedCore(base):  # type: ignore[valid-type, misc]
        def __init__(self, conn_max: int = 65536, svc_max_: int = svc_max, dest_max_: int = dest_max,
                     hash_seed: int = 0, rng_seed: int = 1, **kw: int) -> None:
            super().__init__(conn_max=conn_max, svc_max=kw.get("svc_max", svc_max_),
                             dest_max=kw.get("dest_max", dest_max_), hash_seed=hash_seed, rng_seed=rng_seed)

    SizedCore.__name__ = SizedCore.__qualname__ = "Core"
    return SizedCore


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    core_mod.Core = sized_core(int(argv[0]), int(argv[1]))  # type: ignore[misc]
    return lb_main(["run", *argv[2:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
