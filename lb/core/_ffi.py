"""The one import of the compiled extension, with an ABI check (cryptography's binding.py habit).

`lb._csched` is built from csched/ by cffi at install time. If the .so on disk was built from other headers
than the Python code expects (a stale build after `git pull`), fail at import with a clear message instead
of corrupting memory later.
"""

from __future__ import annotations

from lb._csched import ffi, lib

#: Must equal LB_ABI_VERSION in csched/include/lb_api.h.
ABI_VERSION = 2

_SIZES = {0: "struct lb_svc_cfg", 1: "struct lb_dest_cfg", 2: "struct lb_svc_info", 3: "struct lb_dest_info",
          4: "struct lb_flow", 5: "struct lb_core_cfg", 6: "struct lb_conn_info", 7: "struct lb_conn_stats",
          8: "struct lb_trace_rec", 9: "struct lb_pump_cfg", 10: "struct lb_pump_port_stats",
          11: "struct lb_batch"}


def _check() -> None:
    got = lib.lb_abi_version()
    if got != ABI_VERSION:
        raise ImportError(f"lb._csched has ABI version {got}, this lb package expects {ABI_VERSION}: "
                          "rebuild with `pip install -e .`")
    for which, ctype in _SIZES.items():
        if lib.lb_sizeof(which) != ffi.sizeof(ctype):
            raise ImportError(f"{ctype} is {lib.lb_sizeof(which)} bytes in C but {ffi.sizeof(ctype)} in the "
                              "cdef: rebuild with `pip install -e .`")


_check()

__all__ = ["ffi", "lib"]
