/*
 * sched_nq.c - never queue (kernel net/netfilter/ipvs/ip_vs_nq.c, Linux 6.x).
 * Skips OVERLOADed and weight-0 dests; the first one with no active connection is taken at once
 * (idle servers never make a connection wait); otherwise sed's rule: smallest (activeconns + 1) /
 * weight, compared as products, ties keep the earlier dest.
 * Twin: lb/sched/ref/nq.py.
 */
#include "lb_sched.h"

static struct lb_dest *nq_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lb_dest *d, *least = NULL;
	int64_t loh = 0;
	(void)k;
	(void)ctx;
	lb_for_each_dest(d, svc) {
		if ((d->flags & LB_DEST_F_OVERLOAD) || d->weight == 0)
			continue;
		int64_t doh = (int64_t)d->activeconns + 1;
		if (d->activeconns == 0)
			return d;	/* idle: no need to look further */
		if (!least || loh * d->weight > doh * least->weight) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

const struct lb_sched_ops lb_sched_nq = {
	.name = "nq",
	.flags_ok = 0,
	.schedule = nq_schedule,
};
