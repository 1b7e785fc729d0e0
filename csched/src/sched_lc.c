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
	/* The list walk, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, i = 0, least;
	uint64_t loh;
	(void)k;
	(void)ctx;
	for (; i < n; i++)
		if (!(e[i].flags & LB_DEST_F_OVERLOAD) && e[i].weight != 0)
			break;
	if (i == n)
		return NULL;
	least = i;
	loh = ((uint64_t)e[i].activeconns << 8) + e[i].inactconns;
	/* Two loops, so that the inner one keeps loh in a register and leaves by a (rarely taken)
	 * branch: a one-loop min makes the compiler carry 'least' through cmovs, ~3x slower. */
	for (;;) {
		for (i++; i < n; i++)
			if (!(e[i].flags & LB_DEST_F_OVERLOAD) && e[i].weight != 0 &&
			    ((uint64_t)e[i].activeconns << 8) + e[i].inactconns < loh)
				break;
		if (i >= n)
			return svc->scan_dest[least];
		least = i;
		loh = ((uint64_t)e[i].activeconns << 8) + e[i].inactconns;
	}
}

const struct lb_sched_ops lb_sched_lc = {
	.name = "lc",
	.flags_ok = 0,
	.schedule = lc_schedule,
};
