"""Test that `lb demo` tells the whole NAT, DR and TUN story in under a minute and leaves nothing behind.

For each mode: 30 requests, none failed, all three servers serve (rr: 10 each), a rewrite screen; for DR
and TUN no reply frame on the balancer's link.  Afterwards no namespace of the demo's lab exists, it has
no state directory, and no process still runs with the demo lab's files on its command line.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from lb.lab import balancer as bal
from lb.lab.netns import list_netns
from lb.lab.state import LabState, lab_dir, leftover_re

pytestmark = [pytest.mark.netns, pytest.mark.root,
              pytest.mark.skipif(not bal.lb_run_available(), reason="`lb run` is not in this tree")]


def _cmdlines_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(f"{entry}: {cmd}")
    return found


def test_demo_runs_under_a_minute_and_cleans_up() -> None:
    name = f"dm{os.getpid() % 100000:05d}"
    t0 = time.monotonic()
    r = subprocess.run([*bal.lb_command(), "demo", "--name", name], capture_output=True, text=True,
                       timeout=90, check=False)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 60, f"lb demo took {took:.1f}s"
    out = r.stdout
    for mode in ("NAT", "DR", "TUN"):
        assert f"=== {mode} ===" in out
    assert len(re.findall(r"30 requests from \S+ to \S+: 0 failed", out)) == 3, out
    for server in ("real1", "real2", "real3"):
        assert len(re.findall(rf"^  {server}\s+10  #{{10}}$", out, re.M)) == 3, out
    assert out.count("seen on the balancer's link: 0") == 2, out
    assert [ns for ns in list_netns() if leftover_re(name).match(ns)] == []
    assert LabState.load(name) is None and not lab_dir(name).exists()
    assert _cmdlines_mentioning(f"{lab_dir(name)}/") == []
    assert _cmdlines_mentioning(f"netns exec {name}-") == []
