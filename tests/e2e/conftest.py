"""Test that every lab an e2e test builds is torn down completely (fixtures shared by tests/e2e).

- `make_lab(mode, ...)` builds a lab with a name unique to this test run and returns the `Lab`;
- after the test, the lab is torn down (even when the test failed) and the fixture asserts that no namespace
  of that lab is left in `ip netns list`, that no process it recorded is still running, and that no process
  at all (recorded or not: children, workers, strays) still lives in one of the lab's network namespaces.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from lb.lab.lab import Lab, LabSpec, down
from lb.lab.netns import clock_ticks_now, list_netns, netns_inode, proc_alive, procs_in_netns
from lb.lab.state import leftover_re

_seq = itertools.count()


def lab_name() -> str:
    """Short (IFNAMSIZ-friendly), unique per process and per call: two runs can share the machine."""
    return f"e{os.getpid() % 10000:04d}{next(_seq) % 100:02d}"


MakeLab = Callable[..., Lab]


@pytest.fixture
def make_lab() -> Iterator[MakeLab]:
    made: list[tuple[Lab, dict[int, str]]] = []

    def _make(mode: str, **kw: object) -> Lab:
        lab = Lab.up(LabSpec(mode=mode, name=lab_name(), **kw))  # type: ignore[arg-type]
        inodes = {ino: ns for ns in lab.state.namespaces if (ino := netns_inode(ns)) is not None}
        made.append((lab, inodes))
        return lab

    yield _make
    for lab, inodes in made:
        pids = [(p.pid, p.start) for p in lab.state.procs]
        t_down = clock_ticks_now()
        lab.down()
        down(lab.spec.name)          # idempotent: a second down finds nothing and does nothing
        left = [ns for ns in list_netns() if leftover_re(lab.spec.name).match(ns)]
        assert left == [], f"namespaces left behind: {left}"
        alive = [pid for pid, start in pids if proc_alive(pid, start)]
        assert alive == [], f"processes left behind: {alive}"
        strays = procs_in_netns(inodes, started_before=t_down)
        assert strays == [], f"processes still in the lab's namespaces: {strays}"
