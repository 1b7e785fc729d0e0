"""Test that the lab's predictor (lb.lab.predict) replays a balancer's past picks and predicts its next ones.

- the twin is built from ipvsadm-save text: scheduler, dests and weights in the order the text adds them,
  and only the service asked for (the UDP twin of the lab's TCP service is left alone);
- rr and wrr: after replaying the picks behind some per-dest counts, the next picks are exactly those of a
  twin that made the picks itself; counts no replay can produce are refused (PredictError);
- the counts are read from `lbadm -L -n --stats --json` output;
- sh and mh: a client address gets one dest whatever its source port.
"""

from __future__ import annotations

from collections import Counter

import pytest

from lb import model
from lb.lab import predict

VIP = "10.10.0.100"


def rules(sched: str, weights: tuple[int, ...] = (1, 1, 1)) -> str:
    lines = [f"-A -t {VIP}:80 -s {sched}"]
    lines += [f"-a -t {VIP}:80 -r 10.2.0.{11 + i}:80 -m -w {w}" for i, w in enumerate(weights)]
    lines += [f"-A -u {VIP}:9000 -s rr", f"-a -u {VIP}:9000 -r 10.2.0.11:9000 -m -w 1"]
    return "\n".join(lines) + "\n"


KEY = predict.tcp_key(VIP, 80)


def test_twin_has_the_tcp_service_dests_in_kernel_list_order() -> None:
    svc = predict.twin_from_rules(rules("wrr", (3, 2, 1)), KEY)
    assert svc.scheduler.name == "wrr"
    got = [(str(d.addr), d.weight) for d in svc.dests]
    assert got == [("10.2.0.13", 1), ("10.2.0.12", 2), ("10.2.0.11", 3)]
    with pytest.raises(ValueError, match="no service"):
        predict.twin_from_rules(rules("rr"), predict.tcp_key(VIP, 81))


def test_wrr_period_follows_weights() -> None:
    seq = predict.predictor(rules("wrr", (3, 2, 1)), KEY).next(12)
    assert seq[:6] == seq[6:]
    assert Counter(seq[:6]) == Counter({"10.2.0.11:80": 3, "10.2.0.12:80": 2, "10.2.0.13:80": 1})


@pytest.mark.parametrize(("sched", "weights"), [("rr", (1, 1, 1)), ("wrr", (3, 2, 1)), ("wrr", (4, 0, 2))])
@pytest.mark.parametrize("done", [0, 1, 2, 5, 7, 13])
def test_catch_up_then_predict_equals_uninterrupted_twin(sched: str, weights: tuple[int, ...],
                                                         done: int) -> None:
    text = rules(sched, weights)
    balancer = predict.predictor(text, KEY)
    past = Counter(balancer.next(done))
    follower = predict.predictor(text, KEY)
    follower.catch_up(past)
    assert follower.picks == done
    assert follower.next(10) == balancer.next(10)


def test_catch_up_refuses_counts_the_scheduler_cannot_produce() -> None:
    p = predict.predictor(rules("wrr", (3, 2, 1)), KEY)
    with pytest.raises(predict.PredictError, match="twin gave"):
        p.catch_up({"10.2.0.11:80": 2})          # the first wrr pick is 10.2.0.13 (newest dest, cw = 0)
    with pytest.raises(ValueError, match="only rr/wrr"):
        predict.predictor(rules("sh"), KEY).catch_up({})


def test_dest_conns_reads_the_json_listing() -> None:
    listing = {"services": [
        {"protocol": "UDP", "address": VIP, "port": 9000, "dests": [
            {"address": "10.2.0.11", "port": 9000, "stats": {"conns": 9}}]},
        {"protocol": "TCP", "address": VIP, "port": 80, "dests": [
            {"address": "10.2.0.11", "port": 80, "stats": {"conns": 1}},
            {"address": "10.2.0.12", "port": 80, "stats": {"conns": 0}}]},
    ]}
    assert predict.dest_conns(listing, KEY) == {"10.2.0.11:80": 1, "10.2.0.12:80": 0}
    with pytest.raises(KeyError):
        predict.dest_conns(listing, model.ServiceKey(model.Proto.TCP, model.parse_addr(VIP), 443))


def test_check_sequence_names_the_first_difference() -> None:
    predict.check_sequence(["a", "b"], ["a", "b"])
    with pytest.raises(predict.PredictError, match="pick 1"):
        predict.check_sequence(["a", "b"], ["a", "c"])


@pytest.mark.parametrize("sched", ["sh", "mh"])
def test_hashing_pick_depends_on_client_address_only(sched: str) -> None:
    p = predict.predictor(rules(sched), KEY)
    for client in ("10.1.0.2", "10.1.0.50", "10.1.0.51"):
        picks = {p.pick_for(client, port) for port in (1024, 40000, 65535)}
        assert len(picks) == 1, (client, picks)
