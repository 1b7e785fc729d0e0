/*
 * sched_sed.c - shortest expected delay (kernel net/netfilter/ipvs/ip_vs_sed.c, Linux 6.x).
 * wlc's loop with the overhead activeconns + 1 (the new connection counts; inactive ones do not):
 * the dest with the smallest (activeconns + 1) / weight wins, compared as products.  The first
 * usable dest (not OVERLOADed, weight > 0) starts as 'least'; later ones are skipped only when
 * OVERLOADed; ties keep the earlier dest.
 * Twin: lb/sched/ref/sed.py.
 */
#include "lb_sched.h"

static struct lb_dest *sed_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lb_dest *d, *least = NULL;
	int64_t loh = 0;
	(void)k;
	(void)ctx;
	lb_for_each_dest(d, svc) {
		if (!least) {
			if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > 0) {
				least = d;
				loh = (int64_t)d->activeconns + 1;
			}
			continue;
		}
		if (d->flags & LB_DEST_F_OVERLOAD)
			continue;
		int64_t doh = (int64_t)d->activeconns + 1;
		if (loh * d->weight > doh * least->weight) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

const struct lb_sched_ops lb_sched_sed = {
	.name = "sed",
	.flags_ok = 0,
	.schedule = sed_schedule,
};
