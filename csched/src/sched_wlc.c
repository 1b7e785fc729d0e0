/*
 * sched_wlc.c - weighted least-connection (kernel net/netfilter/ipvs/ip_vs_wlc.c, Linux 6.x).
 * Load of a dest = overhead / weight with overhead = (activeconns << 8) + inactconns, compared
 * without division: dest beats least when loh * dest->weight > doh * least->weight.  The first
 * dest that is not OVERLOADed and has weight > 0 starts as 'least'; later dests are only skipped
 * when OVERLOADed (a weight-0 dest can never win the strict '>' then).  Ties keep the earlier dest.
 * Twin: lb/sched/ref/wlc.py.
 */
#include "lb_sched.h"

static int64_t wlc_overhead(const struct lb_dest *d)
{
	return ((int64_t)d->activeconns << 8) + d->inactconns;
}

static struct lb_dest *wlc_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lb_dest *d, *least = NULL;
	int64_t loh = 0;
	(void)k;
	(void)ctx;
	lb_for_each_dest(d, svc) {
		if (!least) {
			if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > 0) {
				least = d;
				loh = wlc_overhead(d);
			}
			continue;
		}
		if (d->flags & LB_DEST_F_OVERLOAD)
			continue;
		int64_t doh = wlc_overhead(d);
		if (loh * d->weight > doh * least->weight) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

const struct lb_sched_ops lb_sched_wlc = {
	.name = "wlc",
	.flags_ok = 0,
	.schedule = wlc_schedule,
};
