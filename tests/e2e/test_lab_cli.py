"""Test that `lb lab up|status|exec|lbadm|down` work as separate commands and `down` removes everything.

`up` keeps the lab after the command exits (state in /run/pyvs/labs/<name>/); `status` lists it; `exec`
runs a command in the client namespace (a request through the VIP); `lbadm` lists the balancer's service
(or, under `--engine python`, says there is no control socket); `down` -- from another process -- leaves no
namespace of the lab, none of its recorded processes and no process in its namespaces; a second `down`
does nothing.  Run with `--io tap` and with `--engine python`.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from lb.lab import balancer as bal
from lb.lab.netns import clock_ticks_now, list_netns, netns_inode, proc_alive, procs_in_netns
from lb.lab.state import LabState, leftover_re

pytestmark = [pytest.mark.netns, pytest.mark.root,
              pytest.mark.skipif(not bal.lb_run_available(), reason="`lb run` is not in this tree")]


def lb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*bal.lb_command(), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.parametrize(("name", "mode", "extra"), [("c", "nat", ["--io", "tap"]),
                                                     ("p", "dr", ["--engine", "python"])])
def test_up_use_down_from_the_command_line(name: str, mode: str, extra: list[str]) -> None:
    lab = f"cli{name}{os.getpid() % 10000:04d}"
    procs: list[tuple[int, int | None]] = []
    inodes: dict[int, str] = {}
    try:
        r = lb("lab", "up", "--mode", mode, "--servers", "2", "--name", lab, *extra)
        assert r.returncode == 0, r.stderr
        assert "VIP 10.10.0.100" in r.stdout
        st = LabState.load(lab)
        assert st is not None and st.namespaces and st.procs
        procs = [(p.pid, p.start) for p in st.procs]
        inodes = {ino: ns for ns in st.namespaces if (ino := netns_inode(ns)) is not None}

        r = lb("lab", "status", "--name", lab)
        assert r.returncode == 0 and f"lab {lab}: {mode.upper()}" in r.stdout, r.stdout
        assert f"namespaces {len(st.namespaces)}/{len(st.namespaces)} up" in r.stdout, r.stdout

        fetch = "import urllib.request as u; print(u.urlopen('http://10.10.0.100/', None, 3).read().decode())"
        r = lb("lab", "exec", "--name", lab, "client", "--", "python3", "-c", fetch, timeout=30)
        assert r.returncode == 0 and r.stdout.strip() in ("real1", "real2"), (r.stdout, r.stderr)

        r = lb("lab", "lbadm", "--name", lab, "--", "-L", "-n", timeout=30)
        # both engines serve the control socket (the python one through lb.engine.control.PyCore)
        assert r.returncode == 0 and "TCP  10.10.0.100:80 rr" in r.stdout, (r.stdout, r.stderr)
    finally:
        t_down = clock_ticks_now()
        r = lb("lab", "down", "--name", lab, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [ns for ns in list_netns() if leftover_re(lab).match(ns)] == []
    assert [pid for pid, start in procs if proc_alive(pid, start)] == []
    assert procs_in_netns(inodes, started_before=t_down) == []
    r = lb("lab", "down", "--name", lab, timeout=60)
    assert r.returncode == 0 and r.stdout == "", r.stdout
    assert LabState.load(lab) is None
