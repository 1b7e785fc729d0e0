"""Write the fuzz_batch seed corpus from tests/packets.py: one file per named input packet (one frame), plus a
few multi-frame files that build a NAT connection and then send its reply and ICMP errors.

Run from the repository root: `.venv/bin/python csched/fuzz/make_corpus.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import packets as P  # noqa: E402, N812 - the test packet table

OUT = ROOT / "csched" / "fuzz" / "corpus" / "fuzz_batch"
FROM_RS = {"nat_reply_in", "nat_icmp_rs_in"}


def record(frame: bytes, port: int) -> bytes:
    return bytes((port,)) + len(frame).to_bytes(2, "big") + frame


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    names = sorted(n for n in dir(P) if n.endswith("_in"))
    for name in names:
        frame = bytes(getattr(P, name))
        (OUT / name).write_bytes(b"\0" + record(frame, 1 if name in FROM_RS else 0))
    flows = [(P.nat_syn_in, 0), (P.nat_reply_in, 1), (P.nat_data_in, 0), (P.nat_icmp_rs_in, 1),
             (P.nat_icmp_cl_in, 0), (P.udp_in, 0), (P.dr_syn_in, 0), (P.tun_syn_in, 0)]
    (OUT / "multi_nat_flow").write_bytes(b"\0" + b"".join(record(bytes(f), p) for f, p in flows))
    (OUT / "multi_small_slots").write_bytes(b"\1" + b"".join(record(bytes(f), p) for f, p in flows[:3]))
    print(f"{len(names) + 2} seeds in {OUT}")


if __name__ == "__main__":
    main()
