/*
 * sched_twos.c - power of two choices (kernel net/netfilter/ipvs/ip_vs_twos.c, Linux 6.3+).
 * Two dests are drawn at random, each with probability proportional to its weight, among the dests
 * that are not OVERLOADed and have weight > 0; the one with the smaller overhead / weight wins
 * (overhead = (activeconns << 8) + inactconns; choice 2 only wins if strictly better).
 * Drawing: total = sum of the usable weights + 1; r1 and r2 are two draws in [0, total); walking the
 * list, each usable dest's weight is subtracted from both, and choice N is the first dest at which
 * rN <= 0.  The kernel draws with get_random_u32_below(); pyvs draws from the core's seeded PRNG
 * (ctx->rng): r = splitmix64_next(state) % total, 64-bit arithmetic throughout (the kernel's int sums
 * could overflow with huge weights; ours cannot).  The Python twin (lb/sched/ref/twos.py with
 * lb/sched/ref/base.py SchedRng) steps the same generator, so picks are identical for a given seed.
 */
#include "lb_sched.h"

/* splitmix64 (Steele, Lea, Flood 2014): one step of the scheduler PRNG. */
static inline uint64_t twos_random_u64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int64_t twos_overhead(const struct lb_dest_scan *e)
{
	return ((int64_t)e->activeconns << 8) + e->inactconns;
}

static struct lb_dest *twos_schedule(struct lb_service *svc, const struct lb_flow_key *k,
				     struct lb_sched_ctx *ctx)
{
	/* The list walks, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, choice1 = UINT32_MAX, choice2 = UINT32_MAX;
	int64_t weight1 = -1, weight2 = -1, overhead1 = 0, overhead2 = 0;
	uint64_t total = 0, usable = 0;
	(void)k;
	/* Branch-free sum (the compiler vectorises it): an unusable dest adds 0. */
	for (uint32_t i = 0; i < n; i++) {
		bool ok = !(e[i].flags & LB_DEST_F_OVERLOAD) && e[i].weight > 0;
		total += ok ? (uint64_t)(uint32_t)e[i].weight : 0;
		usable += ok;
	}
	if (!usable)
		return NULL;
	total += 1;	/* draws are in [0, sum], both ends included */
	int64_t r1 = (int64_t)(twos_random_u64(ctx->rng) % total);
	int64_t r2 = (int64_t)(twos_random_u64(ctx->rng) % total);
	for (uint32_t i = 0; i < n; i++) {
		if ((e[i].flags & LB_DEST_F_OVERLOAD) || e[i].weight <= 0)
			continue;
		r1 -= e[i].weight;
		r2 -= e[i].weight;
		if (r1 <= 0 && weight1 == -1) {
			choice1 = i;
			weight1 = e[i].weight;
			overhead1 = twos_overhead(&e[i]);
		}
		if (r2 <= 0 && weight2 == -1) {
			choice2 = i;
			weight2 = e[i].weight;
			overhead2 = twos_overhead(&e[i]);
		}
		if (weight1 != -1 && weight2 != -1)
			break;
	}
	if (choice1 == UINT32_MAX)
		return NULL;	/* cannot happen: r1 <= sum, so the last usable dest brings it to <= 0 */
	if (choice2 != UINT32_MAX && weight2 * overhead1 > weight1 * overhead2)
		choice1 = choice2;
	return svc->scan_dest[choice1];
}

const struct lb_sched_ops lb_sched_twos = {
	.name = "twos",
	.flags_ok = 0,
	.schedule = twos_schedule,
};
