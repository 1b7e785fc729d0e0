/*
 * sched_wlc.c - weighted least-connection (kernel net/netfilter/ipvs/ip_vs_wlc.c, Linux 6.x).
 * Load of a dest = overhead / weight with overhead = (activeconns << 8) + inactconns, compared
 * without division: dest beats least when loh * dest->weight > doh * least->weight.  The first
 * dest that is not OVERLOADed and has weight > 0 starts as 'least'; later dests are only skipped
 * when OVERLOADed (a weight-0 dest can never win the strict '>' then).  Ties keep the earlier dest.
 * Twin: lb/sched/ref/wlc.py.
 */
#include "lb_sched.h"

static int64_t wlc_overhead(const struct lb_dest_scan *e)
{
	return ((int64_t)e->activeconns << 8) + e->inactconns;
}

static struct lb_dest *wlc_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	/* The list walk, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, i = 0, least;
	int64_t loh, lw;
	(void)k;
	(void)ctx;
	for (; i < n; i++)
		if (!(e[i].flags & LB_DEST_F_OVERLOAD) && e[i].weight > 0)
			break;
	if (i == n)
		return NULL;
	least = i;
	loh = wlc_overhead(&e[i]);
	lw = e[i].weight;
	/* Two loops, so that the inner one keeps loh and lw in registers and leaves by a (rarely
	 * taken) branch: a one-loop min makes the compiler carry them through cmovs, ~3x slower. */
	for (;;) {
		for (i++; i < n; i++)
			if (!(e[i].flags & LB_DEST_F_OVERLOAD) && loh * e[i].weight > wlc_overhead(&e[i]) * lw)
				break;
		if (i >= n)
			return svc->scan_dest[least];
		least = i;
		loh = wlc_overhead(&e[i]);
		lw = e[i].weight;
	}
}

const struct lb_sched_ops lb_sched_wlc = {
	.name = "wlc",
	.flags_ok = 0,
	.schedule = wlc_schedule,
};
