"""The Python scheduler twins, one module per scheduler, each the readable twin of csched/src/sched_<name>.c.

`SCHEDULERS` maps a scheduler name to its `RefScheduler` class, in the order of the C registry
(lb_sched.h LB_SCHED_LIST).  A twin module that does not exist yet is skipped; any other import error
is raised, so a broken twin is never silently missing.
"""

from __future__ import annotations

import errno
import importlib

from lb import model
from lb.errors import IpvsError, Op
from lb.sched.ref.base import (
    RefDest,
    RefFlow,
    RefScheduler,
    RefService,
    SchedRng,
    hash_32,
)

#: Every scheduler name of the C registry (csched/include/lb_sched.h LB_SCHED_LIST), in that order.
SCHED_NAMES: tuple[str, ...] = (
    "rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "lblc", "lblcr", "fo", "ovf", "mh", "twos",
)


def _load() -> dict[str, type[RefScheduler]]:
    found: dict[str, type[RefScheduler]] = {}
    for name in SCHED_NAMES:
        module_name = f"{__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        classes = [obj for obj in vars(module).values()
                   if isinstance(obj, type) and issubclass(obj, RefScheduler) and obj is not RefScheduler
                   and obj.name == name]
        if len(classes) != 1:
            raise ImportError(f"{module_name} must define exactly one RefScheduler subclass named {name!r}")
        found[name] = classes[0]
    return found


#: name -> twin class, for every twin that exists.
SCHEDULERS: dict[str, type[RefScheduler]] = _load()


def get(name: str) -> RefScheduler:
    """A fresh twin scheduler instance by name (KeyError when there is none)."""
    return SCHEDULERS[name]()


def service_from_model(svc: model.Service) -> RefService:
    """A twin service for a model.Service (IpvsError ENOENT, as `ipvsadm -A`, for an unknown scheduler)."""
    sched_cls = SCHEDULERS.get(svc.sched)
    if sched_cls is None:
        raise IpvsError(Op.ADD_SERVICE, errno.ENOENT, svc.sched)
    return RefService(sched_cls(), svc.flags, svc.key, svc.timeout, svc.netmask)


__all__ = ["SCHEDULERS", "SCHED_NAMES", "RefDest", "RefFlow", "RefScheduler", "RefService", "SchedRng", "get",
           "hash_32", "service_from_model"]
