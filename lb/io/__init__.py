"""Packet I/O: the balancer's ports (AF_PACKET rings, TAP devices), the run loop and its slow path.

`port.Port` is what both backends look like to the loop; `loop.Dataplane` drives the C pump
(csched/src/pump.c) and `loop.PyDataplane` is the readable pure-Python loop (`--engine python`).
"""
