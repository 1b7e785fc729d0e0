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
	loh = (int64_t)e[i].activeconns + 1;
	lw = e[i].weight;
	/* Two loops, so that the inner one keeps loh and lw in registers and leaves by a (rarely
	 * taken) branch: a one-loop min makes the compiler carry them through cmovs, ~3x slower. */
	for (;;) {
		for (i++; i < n; i++)
			if (!(e[i].flags & LB_DEST_F_OVERLOAD) &&
			    loh * e[i].weight > ((int64_t)e[i].activeconns + 1) * lw)
				break;
		if (i >= n)
			return svc->scan_dest[least];
		least = i;
		loh = (int64_t)e[i].activeconns + 1;
		lw = e[i].weight;
	}
}

const struct lb_sched_ops lb_sched_sed = {
	.name = "sed",
	.flags_ok = 0,
	.schedule = sed_schedule,
};
