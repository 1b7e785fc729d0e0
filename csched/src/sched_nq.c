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
	/* The list walk, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, least = UINT32_MAX;
	int64_t loh = 0, lw = 0;
	(void)k;
	(void)ctx;
	for (uint32_t i = 0; i < n; i++) {
		if ((e[i].flags & LB_DEST_F_OVERLOAD) || e[i].weight == 0)
			continue;
		if (e[i].activeconns == 0)
			return svc->scan_dest[i];	/* idle: no need to look further */
		int64_t doh = (int64_t)e[i].activeconns + 1;
		if (least == UINT32_MAX || loh * e[i].weight > doh * lw) {
			least = i;
			loh = doh;
			lw = e[i].weight;
		}
	}
	return least == UINT32_MAX ? NULL : svc->scan_dest[least];
}

const struct lb_sched_ops lb_sched_nq = {
	.name = "nq",
	.flags_ok = 0,
	.schedule = nq_schedule,
};
