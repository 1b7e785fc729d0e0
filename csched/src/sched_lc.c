/*
 * sched_lc.c - least-connection (kernel net/netfilter/ipvs/ip_vs_lc.c, Linux 6.x).
 * Picks the dest with the smallest overhead (activeconns << 8) + inactconns, skipping OVERLOADed
 * dests and weight 0 (quiesced); the weight plays no other part.  Strict '<': on a tie the dest met
 * first in the list (the newest) wins.
 * Twin: lb/sched/ref/lc.py.
 */
#include "lb_sched.h"

static struct lb_dest *lc_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lb_dest *d, *least = NULL;
	uint64_t loh = 0;
	(void)k;
	(void)ctx;
	lb_for_each_dest(d, svc) {
		if ((d->flags & LB_DEST_F_OVERLOAD) || d->weight == 0)
			continue;
		uint64_t doh = ((uint64_t)d->activeconns << 8) + d->inactconns;
		if (!least || doh < loh) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

const struct lb_sched_ops lb_sched_lc = {
	.name = "lc",
	.flags_ok = 0,
	.schedule = lc_schedule,
};
