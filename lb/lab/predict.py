"""What the balancer must pick next: the lab's rules replayed on the Python scheduler twins (lb.sched.ref).

A lab's balancer has already scheduled some connections when a test starts (the readiness probe of
`lb lab up`, and any probe attempt that timed out while the lab was still settling).  rr and wrr keep a
position that those picks moved, so "the next K picks" is only known after replaying them:

1. `twin_from_rules(rules, key)` builds a `RefService` from the same ipvsadm-save text the balancer was
   started with: same scheduler, same dests, same weights, added in the same order;
2. `dest_conns(listing, key)` reads how many connections each dest got so far
   (`lbadm -L -n --stats --json`);
3. `Predictor.catch_up(counts)` replays that many picks on the twin and checks that the twin hands out the
   very same per-dest counts (for rr/wrr the counts alone fix the twin's position, so this is a real check);
4. `Predictor.next(k)` is then the exact sequence of dests the next K new connections must get.

For the hashing schedulers (sh, mh) the pick depends only on the flow, so `Predictor.pick_for(client)` is the
dest the twin gives a connection from that client address.
Nothing here runs a command; lb.lab.lab feeds it the text it reads from the balancer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lb import model
from lb.config import parse_rules
from lb.sched.ref import RefFlow, RefService, SchedRng, service_from_model

#: Schedulers whose pick sequence does not depend on the flows or on connection counts.
SEQUENCE_SCHEDS = ("rr", "wrr")
#: Schedulers whose pick depends only on the flow (no per-service flags in the lab: the client address).
HASH_SCHEDS = ("sh", "mh")


class PredictError(AssertionError):
    """The twin cannot reproduce what the balancer did (the replay does not match the observed counts)."""


def twin_from_rules(rules: str, key: model.ServiceKey) -> RefService:
    """The twin of service `key` as the rules text configures it (dests in the order the text adds them)."""
    svc: RefService | None = None
    for ch in parse_rules(rules):
        if ch.key != key:
            continue
        if ch.kind == "add_service" and ch.service is not None:
            svc = service_from_model(ch.service)
        elif ch.kind == "add_dest" and ch.dest is not None:
            if svc is None:
                raise ValueError(f"rules add a dest to {key} before adding the service")
            svc.add_dest(ch.dest)
        else:
            raise ValueError(f"rules hold a {ch.kind} for {key}: only -A and -a can be replayed")
    if svc is None:
        raise ValueError(f"rules have no service {key}")
    return svc


def dest_label(addr: str, port: int) -> str:
    return f"{model.parse_addr(addr)}:{port}"


def dest_conns(listing: Mapping[str, Any], key: model.ServiceKey) -> dict[str, int]:
    """{"RIP:PORT": connections so far} for service `key` in `lbadm -L -n --stats --json` output."""
    proto = key.proto.ipvsadm_name
    for s in listing.get("services", []):
        if s.get("protocol") == proto and s.get("port") == key.port and \
                model.parse_addr(str(s.get("address"))) == key.addr:
            return {dest_label(str(d["address"]), int(d["port"])): int(d["stats"]["conns"])
                    for d in s.get("dests", [])}
    raise KeyError(f"service {key} not in the balancer's listing")


@dataclass
class Predictor:
    """A twin service that follows the balancer pick for pick."""

    svc: RefService
    key: model.ServiceKey
    rng: SchedRng = field(default_factory=SchedRng)
    picks: int = 0
    _port: int = 40000

    def _flow(self, client: str = "10.255.255.254", sport: int | None = None) -> RefFlow:
        if sport is None:
            self._port = self._port + 1 if self._port < 65000 else 1024
            sport = self._port
        return RefFlow(model.parse_addr(client), sport, self.key.addr, self.key.port, self.key.proto)

    def _one(self, flow: RefFlow) -> str:
        d = self.svc.schedule(flow, 0, self.rng)
        if d is None:
            raise PredictError(f"the twin has no dest for {flow}")
        self.picks += 1
        return dest_label(str(d.addr), d.port)

    def catch_up(self, counts: Mapping[str, int]) -> None:
        """Replay the picks the balancer already made (rr/wrr) and check the twin made the same ones."""
        if self.svc.scheduler.name not in SEQUENCE_SCHEDS:
            raise ValueError(f"{self.svc.scheduler.name}: only rr/wrr picks can be replayed from counts")
        total = sum(counts.values())
        made = Counter(self._one(self._flow()) for _ in range(total))
        want = Counter({k: v for k, v in counts.items() if v})
        if made != want:
            raise PredictError(f"after {total} picks the twin gave {dict(made)}, the balancer {dict(want)}")

    def next(self, k: int) -> list[str]:
        """The next `k` picks (dest labels) of a flow-independent scheduler."""
        return [self._one(self._flow()) for _ in range(k)]

    def pick_for(self, client: str, sport: int = 0) -> str:
        """The twin's pick for a connection from `client` (hashing schedulers ignore the port by default)."""
        return self._one(self._flow(client, sport))


def predictor(rules: str, key: model.ServiceKey) -> Predictor:
    return Predictor(twin_from_rules(rules, key), key)


def tcp_key(vip: str, port: int) -> model.ServiceKey:
    return model.ServiceKey(model.Proto.TCP, model.parse_addr(vip), port)


def check_sequence(got: Sequence[str], want: Sequence[str]) -> None:
    """Raise PredictError naming the first difference between the balancer's and the twin's sequence."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            raise PredictError(f"pick {i}: balancer chose {g}, twin {w}\n  balancer {list(got)}\n"
                               f"  twin     {list(want)}")
    if len(got) != len(want):
        raise PredictError(f"{len(got)} picks observed, {len(want)} predicted")


__all__ = ["HASH_SCHEDS", "SEQUENCE_SCHEDS", "PredictError", "Predictor", "check_sequence", "dest_conns",
           "dest_label", "predictor", "tcp_key", "twin_from_rules"]
