/* The IPVS rate estimator (kernel net/netfilter/ipvs/ip_vs_est.c), for `lbadm -L --rate` and metrics.
 *
 * Every 2 seconds each live stats block takes one step: for each of the five counters the delta since
 * the previous step is scaled (packets and connections by 2^9, i.e. per second with 10 fraction bits
 * over a 2 s window; bytes by 2^4, 5 fraction bits) and the average moves a quarter of the way towards
 * it (an exponentially weighted average with weight 1/4).  Reading unscales with rounding.  The Python
 * twin is lb/estimator.py (same arithmetic); the C core steps only when the control plane calls
 * lb_est_tick, because it reads no clock.  All of it is O(services + dests) per tick, off the packet path. */
#include <string.h>
#include "lb_core.h"

/* (scale shift on a 2 s delta, unscale shift, rounding addend) per counter: conns, inpkts, outpkts,
 * inbytes, outbytes. */
static const struct { uint8_t shift, unshift; uint16_t addend; } est_fields[5] = {
	{ 9, 10, 0x1FF }, { 9, 10, 0x1FF }, { 9, 10, 0x1FF }, { 4, 5, 0xF }, { 4, 5, 0xF },
};

static void stats_values(const struct lb_stats *s, uint64_t v[5])
{
	v[0] = s->conns;
	v[1] = s->inpkts;
	v[2] = s->outpkts;
	v[3] = s->inbytes;
	v[4] = s->outbytes;
}

void lb_est_start(struct lb_est *e, const struct lb_stats *s)
{
	stats_values(s, e->last);
	memset(e->avg, 0, sizeof(e->avg));
}

static void est_step(struct lb_est *e, const struct lb_stats *s)
{
	uint64_t now[5];
	stats_values(s, now);
	for (int i = 0; i < 5; i++) {
		/* wrap-around arithmetic in u64, then read as signed, as the kernel's s64 rate */
		int64_t rate = (int64_t)((now[i] - e->last[i]) << est_fields[i].shift);
		int64_t diff = (int64_t)((uint64_t)rate - (uint64_t)e->avg[i]);
		e->avg[i] = (int64_t)((uint64_t)e->avg[i] + (uint64_t)(diff >> 2));
		e->last[i] = now[i];
	}
}

void lb_est_read(const struct lb_est *e, struct lb_rates *out)
{
	uint64_t v[5];
	for (int i = 0; i < 5; i++) {
		int64_t r = (int64_t)((uint64_t)e->avg[i] + est_fields[i].addend) >> est_fields[i].unshift;
		v[i] = r > 0 ? (uint64_t)r : 0;
	}
	out->cps = v[0];
	out->inpps = v[1];
	out->outpps = v[2];
	out->inbps = v[3];
	out->outbps = v[4];
}

void lb_est_tick(lb_core *core)
{
	for (uint32_t i = 0; i < core->cfg.svc_max; i++) {
		struct lb_service *s = &core->svcs[i];
		if (!s->in_use)
			continue;
		est_step(&s->est, &s->stats);
		struct lb_dest *d;
		lb_for_each_dest(d, s)
			est_step(&d->est, &d->stats);
	}
}
