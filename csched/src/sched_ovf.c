/*
 * sched_ovf.c - overflow-connection (kernel net/netfilter/ipvs/ip_vs_ovf.c, Linux 6.x).
 * Like fo, the highest-weight dest wins (first in list on ties), but a dest is only eligible while
 * its active connections do not exceed its weight (activeconns > weight skips it), so the weight is
 * a connection budget and traffic overflows to the next dest.  OVERLOADed and weight-0 dests are
 * skipped.
 * Twin: lb/sched/ref/ovf.py.
 */
#include "lb_sched.h"

static inline bool ovf_usable(const struct lb_dest_scan *e)
{
	int32_t w = e->weight;
	return !((e->flags & LB_DEST_F_OVERLOAD) || (int64_t)e->activeconns > w || w == 0);
}

static struct lb_dest *ovf_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	/* The list walk, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, h = UINT32_MAX;
	int32_t hw = 0;
	(void)k;
	(void)ctx;
	/* The first usable dest, then two loops, so that the inner one keeps hw in a register and
	 * leaves by a (rarely taken) branch: a one-loop max makes the compiler carry it through cmovs. */
	uint32_t i = 0;
	for (; i < n; i++)
		if (ovf_usable(&e[i]))
			break;
	if (i == n)
		return NULL;
	h = i;
	hw = e[i].weight;
	for (;;) {
		for (i++; i < n; i++)
			if (e[i].weight > hw && ovf_usable(&e[i]))
				break;
		if (i >= n)
			return svc->scan_dest[h];
		h = i;
		hw = e[i].weight;
	}
}

const struct lb_sched_ops lb_sched_ovf = {
	.name = "ovf",
	.flags_ok = 0,
	.schedule = ovf_schedule,
};
