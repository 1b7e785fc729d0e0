/*
 * sched_fo.c - weighted failover (kernel net/netfilter/ipvs/ip_vs_fo.c, Linux 6.x).
 * Every new connection goes to the non-OVERLOADed dest with the highest weight (weight 0 never
 * qualifies); strict '>' so among equal weights the first in the list (the newest) wins.
 * Twin: lb/sched/ref/fo.py.
 */
#include "lb_sched.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The first i >= from whose dest beats hw (not OVERLOADed, weight > hw), or n. */
static inline uint32_t fo_next(const struct lb_dest_scan *e, uint32_t from, uint32_t n, int32_t hw)
{
	uint32_t i = from;
#ifdef __SSE2__
	/* Four 16-byte entries at a time: transpose their flags and weights into two vectors, compare
	 * all four, and stop at the first that beats hw (lowest set bit: list order is kept). */
	const __m128i vhw = _mm_set1_epi32(hw), vovl = _mm_set1_epi32(LB_DEST_F_OVERLOAD);
	for (; i + 4 <= n; i += 4) {
		__m128i a = _mm_loadu_si128((const __m128i *)&e[i]);
		__m128i b = _mm_loadu_si128((const __m128i *)&e[i + 1]);
		__m128i c = _mm_loadu_si128((const __m128i *)&e[i + 2]);
		__m128i d = _mm_loadu_si128((const __m128i *)&e[i + 3]);
		__m128i ab = _mm_unpacklo_epi32(a, b);	/* f0 f1 w0 w1 */
		__m128i cd = _mm_unpacklo_epi32(c, d);	/* f2 f3 w2 w3 */
		__m128i fl = _mm_unpacklo_epi64(ab, cd);
		__m128i w = _mm_unpackhi_epi64(ab, cd);
		__m128i ok = _mm_andnot_si128(_mm_cmpeq_epi32(_mm_and_si128(fl, vovl), vovl), _mm_cmpgt_epi32(w, vhw));
		int m = _mm_movemask_ps(_mm_castsi128_ps(ok));
		if (m)
			return i + (uint32_t)__builtin_ctz((unsigned)m);
	}
#endif
	for (; i < n; i++)
		if (!(e[i].flags & LB_DEST_F_OVERLOAD) && e[i].weight > hw)
			break;
	return i;
}

static struct lb_dest *fo_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	/* The list walk, over the service's scan array (same order, same values: lb_types.h). */
	const struct lb_dest_scan *e = svc->scan;
	uint32_t n = svc->num_dests, h = UINT32_MAX;
	int32_t hw = 0;
	(void)k;
	(void)ctx;
	/* Two loops, so that the inner one keeps hw in a register and leaves by a (rarely taken)
	 * branch: a one-loop max makes the compiler carry it through cmovs, ~3x slower. */
	for (uint32_t i = 0;; i++) {
		i = fo_next(e, i, n, hw);
		if (i >= n)
			return h == UINT32_MAX ? NULL : svc->scan_dest[h];
		h = i;
		hw = e[i].weight;
	}
}

const struct lb_sched_ops lb_sched_fo = {
	.name = "fo",
	.flags_ok = 0,
	.schedule = fo_schedule,
};
