"""Why the scheduler picked that real server, with the numbers it compared (for the ladder's scheduler step).

The pick itself always comes from the engine (C core or Python twin); this module only states the rule of
each IPVS scheduler (net/netfilter/ipvs/ip_vs_<name>.c) and, for the connection-counting ones, the numbers
the rule compares, in the order the kernel walks the list (newest dest first).  If the rule's winner and
the engine's pick ever disagree, the text says so instead of hiding it.
"""

from __future__ import annotations

from fractions import Fraction

from lb.teach.engine import DestLoad

_RULES: dict[str, str] = {
    "rr": "round robin: the next usable real server in list order after the one picked last time "
          "(weight 0 and overloaded servers are skipped)",
    "wrr": "weighted round robin: walks the list with a current weight that steps down from the largest "
           "weight by the weights' gcd; a server is taken when its weight >= the current weight",
    "lc": "least connection: smallest overhead = active * 256 + inactive (first in list order wins a tie)",
    "wlc": "weighted least connection: smallest overhead / weight, overhead = active * 256 + inactive "
           "(compared as overhead_a * weight_b > overhead_b * weight_a, so the first in list order wins "
           "a tie)",
    "sed": "shortest expected delay: smallest (active + 1) / weight",
    "nq": "never queue: the first server with no active connection, else the smallest (active + 1) / weight",
    "sh": "source hashing: the client address hashed (hash_32) into a 256-bucket table filled in proportion "
          "to the weights, so one client always lands on the same server",
    "dh": "destination hashing: the destination address hashed into a 256-bucket table",
    "mh": "Maglev hashing: the client address looked up in a Maglev permutation table, so one client always "
          "lands on the same server and few move when servers change",
    "lblc": "locality-based least connection: the destination's last server unless it is overloaded, "
            "else wlc",
    "lblcr": "locality-based least connection with replication: a server set per destination, wlc within it",
    "fo": "weighted failover: the usable server with the highest weight",
    "ovf": "overflow: the highest-weight server until its active connections reach its weight",
    "twos": "power of two choices: two random servers (seeded RNG), the one with the lower overhead / weight",
}


def _usable(d: DestLoad) -> bool:
    return d.weight > 0 and not d.overloaded


def _score(sched: str, d: DestLoad) -> Fraction | None:
    if sched == "lc":
        return Fraction((d.activeconns << 8) + d.inactconns)
    if sched == "wlc":
        return Fraction((d.activeconns << 8) + d.inactconns, d.weight)
    if sched in ("sed", "nq"):
        return Fraction(d.activeconns + 1, d.weight)
    return None


def _formula(sched: str, d: DestLoad) -> str:
    if sched == "lc":
        return f"{d.activeconns}*256+{d.inactconns} = {(d.activeconns << 8) + d.inactconns}"
    if sched == "wlc":
        oh = (d.activeconns << 8) + d.inactconns
        return f"({d.activeconns}*256+{d.inactconns})/{d.weight} = {float(Fraction(oh, d.weight)):g}"
    return f"({d.activeconns}+1)/{d.weight} = {float(Fraction(d.activeconns + 1, d.weight)):g}"


def rule_winner(sched: str, loads: list[DestLoad]) -> int | None:
    """Index (list order) the counting rule selects, or None when the rule is not a pure comparison."""
    usable = [(i, d) for i, d in enumerate(loads) if _usable(d)]
    if not usable:
        return None
    if sched == "nq":
        for i, d in usable:
            if d.activeconns == 0:
                return i
    if _score(sched, usable[0][1]) is None:
        return None
    best_i, best = usable[0]
    for i, d in usable[1:]:
        s, b = _score(sched, d), _score(sched, best)
        assert s is not None and b is not None
        if s < b:
            best_i, best = i, d
    return best_i


def explain_pick(sched: str, loads: list[DestLoad], picked: str | None, names: dict[str, str],
                 flow: tuple[str, int, str, int]) -> str:
    """Multi-line prose: the rule, the numbers per dest (list order), the pick (`picked`: the chosen dest's
    address as the engine's output frame shows it)."""
    label = [names.get(d.addr, d.addr) for d in loads]
    by_addr = {d.addr: i for i, d in enumerate(loads)}
    lines = [_RULES.get(sched, f"scheduler {sched}")]
    for i, d in enumerate(loads):
        state = "" if _usable(d) else (" (skipped: weight 0)" if d.weight <= 0 else " (skipped: overloaded)")
        nums = f", {_formula(sched, d)}" if _score(sched, d) is not None and _usable(d) else ""
        lines.append(f"{label[i]} {d.addr}:{d.port}: weight {d.weight}, active {d.activeconns}, "
                     f"inactive {d.inactconns}{nums}{state}")
    if picked is None:
        lines.append("no real server could be picked")
        return "\n".join(lines)
    pick_name = names.get(picked, picked)
    pick_idx = by_addr.get(picked)
    winner = rule_winner(sched, loads)
    if sched in ("sh", "mh"):
        lines.append(f"client {flow[0]} hashes to {pick_name}")
    elif sched == "dh":
        lines.append(f"destination {flow[2]} hashes to {pick_name}")
    if winner is None or pick_idx is None:
        lines.append(f"picked {pick_name}")
    elif winner == pick_idx:
        lines.append(f"picked {pick_name}: the rule's winner")
    else:
        lines.append(f"picked {pick_name} (the rule above would give {label[winner]}: engine and rule "
                     f"disagree)")
    return "\n".join(lines)
