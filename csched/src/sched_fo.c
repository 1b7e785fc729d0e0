/*
 * sched_fo.c - weighted failover (kernel net/netfilter/ipvs/ip_vs_fo.c, Linux 6.x).
 * Every new connection goes to the non-OVERLOADed dest with the highest weight (weight 0 never
 * qualifies); strict '>' so among equal weights the first in the list (the newest) wins.
 * Twin: lb/sched/ref/fo.py.
 */
#include "lb_sched.h"

static struct lb_dest *fo_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lb_dest *d, *hweight = NULL;
	int32_t hw = 0;
	(void)k;
	(void)ctx;
	lb_for_each_dest(d, svc)
		if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > hw) {
			hweight = d;
			hw = d->weight;
		}
	return hweight;
}

const struct lb_sched_ops lb_sched_fo = {
	.name = "fo",
	.flags_ok = 0,
	.schedule = fo_schedule,
};
