/*
 * sched_ovf.c - overflow-connection (kernel net/netfilter/ipvs/ip_vs_ovf.c, Linux 6.x).
 * Like fo, the highest-weight dest wins (first in list on ties), but a dest is only eligible while
 * its active connections do not exceed its weight (activeconns > weight skips it), so the weight is
 * a connection budget and traffic overflows to the next dest.  OVERLOADed and weight-0 dests are
 * skipped.
 * Twin: lb/sched/ref/ovf.py.
 */
#include "lb_sched.h"

static struct lb_dest *ovf_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lb_dest *d, *h = NULL;
	int32_t hw = 0;
	(void)k;
	(void)ctx;
	lb_for_each_dest(d, svc) {
		int32_t w = d->weight;
		if ((d->flags & LB_DEST_F_OVERLOAD) || (int64_t)d->activeconns > w || w == 0)
			continue;
		if (!h || w > hw) {
			h = d;
			hw = w;
		}
	}
	return h;
}

const struct lb_sched_ops lb_sched_ovf = {
	.name = "ovf",
	.flags_ok = 0,
	.schedule = ovf_schedule,
};
