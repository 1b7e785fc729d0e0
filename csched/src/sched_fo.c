/*
 * sched_fo.c - weighted failover (kernel net/netfilter/ipvs/ip_vs_fo.c, Linux 6.x).
 * Every new connection goes to the non-OVERLOADed dest with the highest weight (weight 0 never
 * qualifies); strict '>' so among equal weights the first in the list (the newest) wins.
 * Twin: lb/sched/ref/fo.py.
 */
#include "lb_sched.h"

static struct lb_dest *fo_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	/* The list walk, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, h = UINT32_MAX;
	int32_t hw = 0;
	(void)k;
	(void)ctx;
	/* Two loops, so that the inner one keeps hw in a register and leaves by a (rarely taken)
	 * branch: a one-loop max makes the compiler carry it through cmovs, ~3x slower. */
	for (uint32_t i = 0;; i++) {
		for (; i < n; i++)
			if (!(e[i].flags & LB_DEST_F_OVERLOAD) && e[i].weight > hw)
				break;
		if (i >= n)
			return h == UINT32_MAX ? NULL : svc->scan_dest[h];
		h = i;
		hw = e[i].weight;
	}
}

const struct lb_sched_ops lb_sched_fo = {
	.name = "fo",
	.flags_ok = 0,
	.schedule = fo_schedule,
};
