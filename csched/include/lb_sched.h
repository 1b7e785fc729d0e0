/*
 * lb_sched.h - the scheduler ops struct and the one list of schedulers.  Kernel counterpart:
 * struct ip_vs_scheduler + register_ip_vs_scheduler (ip_vs_sched.c); here the registry is a table
 * built at compile time from LB_SCHED_LIST, so adding a scheduler is one file plus one word below.
 */
#ifndef LB_SCHED_H
#define LB_SCHED_H
#include "lb_types.h"

/* What schedule() gets besides the service and the flow: the time (the C core reads no clock) and
 * the scheduler PRNG state (the C core reads no RNG; seeded from lb_core_cfg.rng_seed). */
struct lb_sched_ctx {
	uint64_t now;		/* ns, monotonic, passed in by the caller */
	uint64_t *rng;		/* PRNG state, owned by the core */
};

struct lb_sched_ops {
	const char *name;
	uint32_t flags_ok;	/* LB_SVC_F_SCHED* bits the scheduler understands (-b) */
	/* Hooks, called as ip_vs_ctl.c calls the kernel's: init when bound to a service (the service's
	 * dests may already exist: a scheduler edit via -E), done when unbound, add_dest after the dest
	 * was linked at the head, del_dest after it was unlinked, upd_dest after its weight/thresholds
	 * changed.  Any may be NULL.  Return 0 or -errno. */
	int (*init_service)(struct lb_service *svc);
	void (*done_service)(struct lb_service *svc);
	int (*add_dest)(struct lb_service *svc, struct lb_dest *dest);
	int (*del_dest)(struct lb_service *svc, struct lb_dest *dest);
	int (*upd_dest)(struct lb_service *svc, struct lb_dest *dest);
	/* Pick a destination for a new connection, or NULL (no destination available). */
	struct lb_dest *(*schedule)(struct lb_service *svc, const struct lb_flow_key *k,
				    struct lb_sched_ctx *ctx);
	/* Timer work (lblc/lblcr aging); may be NULL. */
	void (*tick)(struct lb_service *svc, uint64_t now);
};

#define LB_SCHED_LIST(X) \
	X(rr) X(wrr) X(lc) X(wlc) X(sh) X(dh) X(sed) X(nq) X(lblc) X(lblcr) X(fo) X(ovf) X(mh) X(twos)

#define LB_SCHED_DECLARE(n) extern const struct lb_sched_ops lb_sched_##n;
LB_SCHED_LIST(LB_SCHED_DECLARE)
#undef LB_SCHED_DECLARE

const struct lb_sched_ops *lb_sched_lookup(const char *name);

#endif
