"""Packet engines in Python.  `lb.engine.python.PythonEngine` is the whole data path written to be read: the
twin of csched/src/process.c on top of lb/fwd (rewriters), lb/conn/ref.py (connection table) and
lb/sched/ref (schedulers).  It takes the same frames and gives the same verdicts and bytes as the C core's
`lb_process_batch` (tests/unit/test_fwd_parity.py holds it to that)."""
