/*
 * test_sched_scan.c - the per-service scan array (struct lb_dest_scan, lb_types.h) that lc wlc sed nq
 * fo ovf twos walk instead of the dest list: after every operation of a long pseudo-random sequence
 * (dest add/edit/delete with weights 0..5 and -x/-y thresholds, connection events that move the
 * OVERLOAD flag, scheduler switches, service delete and re-add), the array holds exactly the list's
 * dests in the list's order with the dests' own flags, weight and counts, and every scheduler's pick
 * equals the pick of a plain list walk written the way the kernel writes it (the code these
 * schedulers had before the array; twos compared on the same PRNG state).  Under ASan/UBSan.
 */
#include <string.h>
#include "lb_api.h"
#include "lb_core.h"
#include "tap.h"

/* ---- reference list walks (kernel ip_vs_{lc,wlc,sed,nq,fo,ovf,twos}.c shapes) ---- */

static struct lb_dest *ref_lc(struct lb_service *svc)
{
	struct lb_dest *d, *least = NULL;
	uint64_t loh = 0;
	lb_for_each_dest(d, svc) {
		if ((d->flags & LB_DEST_F_OVERLOAD) || d->weight == 0)
			continue;
		uint64_t doh = ((uint64_t)d->activeconns << 8) + d->inactconns;
		if (!least || doh < loh) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

static struct lb_dest *ref_wlc_sed(struct lb_service *svc, bool sed)
{
	struct lb_dest *d, *least = NULL;
	int64_t loh = 0;
	lb_for_each_dest(d, svc) {
		int64_t doh = sed ? (int64_t)d->activeconns + 1 : ((int64_t)d->activeconns << 8) + d->inactconns;
		if (!least) {
			if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > 0) {
				least = d;
				loh = doh;
			}
			continue;
		}
		if (d->flags & LB_DEST_F_OVERLOAD)
			continue;
		if (loh * d->weight > doh * least->weight) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

static struct lb_dest *ref_nq(struct lb_service *svc)
{
	struct lb_dest *d, *least = NULL;
	int64_t loh = 0;
	lb_for_each_dest(d, svc) {
		if ((d->flags & LB_DEST_F_OVERLOAD) || d->weight == 0)
			continue;
		int64_t doh = (int64_t)d->activeconns + 1;
		if (d->activeconns == 0)
			return d;
		if (!least || loh * d->weight > doh * least->weight) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

static struct lb_dest *ref_fo(struct lb_service *svc)
{
	struct lb_dest *d, *h = NULL;
	int32_t hw = 0;
	lb_for_each_dest(d, svc)
		if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > hw) {
			h = d;
			hw = d->weight;
		}
	return h;
}

static struct lb_dest *ref_ovf(struct lb_service *svc)
{
	struct lb_dest *d, *h = NULL;
	int32_t hw = 0;
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

static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static struct lb_dest *ref_twos(struct lb_service *svc, uint64_t *rng)
{
	struct lb_dest *d, *c1 = NULL, *c2 = NULL;
	int64_t w1 = -1, w2 = -1, o1 = 0, o2 = 0;
	uint64_t total = 0;
	lb_for_each_dest(d, svc)
		if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > 0) {
			total += (uint64_t)d->weight;
			c1 = d;
		}
	if (!c1)
		return NULL;
	total += 1;
	int64_t r1 = (int64_t)(splitmix(rng) % total), r2 = (int64_t)(splitmix(rng) % total);
	lb_for_each_dest(d, svc) {
		if ((d->flags & LB_DEST_F_OVERLOAD) || d->weight <= 0)
			continue;
		r1 -= d->weight;
		r2 -= d->weight;
		if (r1 <= 0 && w1 == -1) {
			c1 = d;
			w1 = d->weight;
			o1 = ((int64_t)d->activeconns << 8) + d->inactconns;
		}
		if (r2 <= 0 && w2 == -1) {
			c2 = d;
			w2 = d->weight;
			o2 = ((int64_t)d->activeconns << 8) + d->inactconns;
		}
		if (w1 != -1 && w2 != -1)
			break;
	}
	if (c2 && w2 * o1 > w1 * o2)
		c1 = c2;
	return c1;
}

/* ---- helpers ---- */

static const char *const SCHEDS[] = { "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "rr" };
#define NSCHEDS (sizeof(SCHEDS) / sizeof(SCHEDS[0]))

static uint64_t prng = 42;
static uint32_t rnd(uint32_t n) { return (uint32_t)(splitmix(&prng) % n); }

static struct lb_svc_cfg svc_cfg(int port, const char *sched)
{
	struct lb_svc_cfg c;
	memset(&c, 0, sizeof(c));
	c.af = LB_AF_INET;
	c.proto = LB_PROTO_TCP;
	c.addr[0] = 10, c.addr[1] = 255, c.addr[3] = 1;
	c.port = (uint16_t)port;
	strncpy(c.sched, sched, LB_SCHED_NAME_MAX - 1);
	return c;
}

static struct lb_dest_cfg dest_cfg(int host)
{
	struct lb_dest_cfg d;
	memset(&d, 0, sizeof(d));
	d.af = LB_AF_INET;
	d.addr[0] = 10, d.addr[2] = 1, d.addr[3] = (uint8_t)host;
	d.port = 80;
	d.fwd = LB_FWD_DROUTE;
	d.weight = (int)rnd(6);
	if (rnd(3) == 0) {
		d.u_threshold = 1 + rnd(4);
		d.l_threshold = rnd(d.u_threshold + 1);
	}
	return d;
}

static int scan_mismatches(struct lb_service *s)
{
	int bad = 0;
	uint32_t i = 0;
	struct lb_dest *d;
	lb_for_each_dest(d, s) {
		if (i >= s->num_dests || s->scan_dest[i] != d || d->scan_idx != i || !d->linked ||
		    s->scan[i].flags != d->flags || s->scan[i].weight != d->weight ||
		    s->scan[i].activeconns != d->activeconns || s->scan[i].inactconns != d->inactconns)
			bad++;
		i++;
	}
	return bad + (i != s->num_dests);
}

static struct lb_dest *ref_pick(struct lb_service *s, uint64_t *rng)
{
	const char *n = s->sched->name;
	if (!strcmp(n, "lc"))
		return ref_lc(s);
	if (!strcmp(n, "wlc"))
		return ref_wlc_sed(s, false);
	if (!strcmp(n, "sed"))
		return ref_wlc_sed(s, true);
	if (!strcmp(n, "nq"))
		return ref_nq(s);
	if (!strcmp(n, "fo"))
		return ref_fo(s);
	if (!strcmp(n, "ovf"))
		return ref_ovf(s);
	return ref_twos(s, rng);
}

/* One service per scheduler kind in turn; random operations; check after each. */
static void run_sequence(int steps)
{
	struct lb_core_cfg cc = { .conn_max = 64, .svc_max = 4, .dest_max = 64, .rng_seed = 7 };
	lb_core *core = lb_core_new(&cc);
	int port = 80;
	struct lb_svc_cfg sc = svc_cfg(port, "lc");
	CHECK_EQ(lb_svc_add(core, &sc), 0);
	int bad_scan = 0, bad_pick = 0, picks = 0;
	for (int step = 0; step < steps; step++) {
		uint32_t op = rnd(100);
		if (op < 30) {
			struct lb_dest_cfg d = dest_cfg(1 + (int)rnd(40));
			(void)lb_dest_add(core, &sc, &d);
		} else if (op < 40) {
			struct lb_dest_cfg d = dest_cfg(1 + (int)rnd(40));
			(void)lb_dest_edit(core, &sc, &d);
		} else if (op < 50) {
			struct lb_dest_cfg d = dest_cfg(1 + (int)rnd(40));
			(void)lb_dest_del(core, &sc, &d);
		} else if (op < 85) {
			/* a connection event on any pool dest (trashed ones too) */
			int32_t id = (int32_t)rnd(cc.dest_max);
			int ev = LB_EV_BIND_ACTIVE + (int)rnd(LB_EV_UNBIND_TEMPLATE - LB_EV_BIND_ACTIVE + 1);
			(void)lb_dest_conn_event(core, id, ev);
		} else if (op < 95) {
			struct lb_svc_cfg e = svc_cfg(port, SCHEDS[rnd(NSCHEDS)]);
			if (lb_svc_edit(core, &e) == 0)
				sc = e;
		} else if (op < 97) {
			CHECK_EQ(lb_svc_del(core, &sc), 0);
			port++;
			sc = svc_cfg(port, SCHEDS[rnd(NSCHEDS)]);
			CHECK_EQ(lb_svc_add(core, &sc), 0);
		}
		for (uint32_t i = 0; i < cc.svc_max; i++) {
			struct lb_service *s = &core->svcs[i];
			if (!s->in_use)
				continue;
			bad_scan += scan_mismatches(s);
			if (!strcmp(s->sched->name, "rr"))
				continue;
			uint64_t rng_before = core->rng;
			struct lb_flow_key k;
			memset(&k, 0, sizeof(k));
			struct lb_sched_ctx ctx = { .now = 0, .rng = &core->rng };
			struct lb_dest *got = s->sched->schedule(s, &k, &ctx);
			uint64_t rng_ref = rng_before;
			struct lb_dest *want = ref_pick(s, &rng_ref);
			picks++;
			if (got != want || rng_ref != core->rng) {
				bad_pick++;
				fprintf(stderr, "step %d %s: got %d want %d\n", step, s->sched->name,
					got ? got->id : -1, want ? want->id : -1);
			}
		}
	}
	CHECK_EQ(bad_scan, 0);
	CHECK_EQ(bad_pick, 0);
	CHECK(picks > steps / 2, "only %d picks compared", picks);
	lb_core_free(core);
}

int main(void)
{
	for (int seed = 1; seed <= 8; seed++) {
		prng = (uint64_t)seed;
		run_sequence(3000);
	}
	return DONE();
}
