/*
 * test_sched_basic.c - the list-walking schedulers (rr wrr lc wlc sed nq fo ovf twos) through the public
 * API, under ASan/UBSan: kernel pick sequences for dests added A, B, C; rr's cursor across a delete; wrr's
 * reset on every dest change; scheduler state allocated and freed across -E -s switches, service
 * deletes and core teardown (leaks show up here); twos reproducible for a given rng_seed.
 */
#include <errno.h>
#include <string.h>
#include "lb_api.h"
#include "tap.h"

static struct lb_svc_cfg svc(const char *sched)
{
	struct lb_svc_cfg c;
	memset(&c, 0, sizeof(c));
	c.af = LB_AF_INET;
	c.proto = LB_PROTO_TCP;
	c.addr[0] = 10, c.addr[1] = 255, c.addr[3] = 1;
	c.port = 80;
	strncpy(c.sched, sched, LB_SCHED_NAME_MAX - 1);
	return c;
}

static struct lb_dest_cfg dest(int last_octet, int weight, uint32_t u, uint32_t l)
{
	struct lb_dest_cfg d;
	memset(&d, 0, sizeof(d));
	d.af = LB_AF_INET;
	d.addr[0] = 10, d.addr[3] = (uint8_t)last_octet;
	d.port = 80;
	d.fwd = LB_FWD_DROUTE;
	d.weight = weight;
	d.u_threshold = u;
	d.l_threshold = l;
	return d;
}

static lb_core *core_new(uint64_t seed)
{
	struct lb_core_cfg cfg = { .conn_max = 64, .svc_max = 8, .dest_max = 16, .rng_seed = seed };
	return lb_core_new(&cfg);
}

/* n picks as a string of letters: dest 10.0.0.1 = 'A', .2 = 'B', ...; '-' for none. */
static void picks(lb_core *core, const struct lb_svc_cfg *s, int n, char *out)
{
	struct lb_flow f[32];
	int32_t ids[32];
	memset(f, 0, sizeof(f));
	for (int i = 0; i < n; i++) {
		f[i].af = LB_AF_INET;
		f[i].proto = LB_PROTO_TCP;
		f[i].saddr[0] = 10, f[i].saddr[1] = 1, f[i].saddr[3] = (uint8_t)i;
		memcpy(f[i].daddr, s->addr, 16);
		f[i].sport = (uint16_t)(1024 + i);
		f[i].dport = 80;
	}
	CHECK_EQ(lb_sched_batch(core, s, f, (uint32_t)n, ids, 0), n);
	for (int i = 0; i < n; i++) {
		struct lb_dest_info info;
		if (ids[i] < 0 || lb_dest_info_by_id(core, ids[i], &info) != 0)
			out[i] = '-';
		else
			out[i] = (char)('A' + info.cfg.addr[3] - 1);
	}
	out[n] = 0;
}

#define CHECK_PICKS(core, s, n, want)                                                \
	do {                                                                         \
		char got_[40];                                                       \
		picks(core, s, n, got_);                                             \
		CHECK(strcmp(got_, want) == 0, "%s: got %s want %s", (s)->sched, got_, want); \
	} while (0)

static void test_rr(void)
{
	lb_core *c = core_new(1);
	struct lb_svc_cfg s = svc("rr");
	CHECK_EQ(lb_svc_add(c, &s), 0);
	CHECK_PICKS(c, &s, 2, "--");
	for (int i = 1; i <= 3; i++) {
		struct lb_dest_cfg d = dest(i, 1, 0, 0);
		CHECK_EQ(lb_dest_add(c, &s, &d), 0);
	}
	CHECK_PICKS(c, &s, 6, "CBACBA");
	CHECK_PICKS(c, &s, 2, "CB");
	struct lb_dest_cfg b = dest(2, 1, 0, 0);
	CHECK_EQ(lb_dest_del(c, &s, &b), 0);	/* cursor on B moves back to C */
	CHECK_PICKS(c, &s, 2, "AC");
	lb_core_free(c);
}

static void test_wrr(void)
{
	lb_core *c = core_new(1);
	struct lb_svc_cfg s = svc("wrr");
	CHECK_EQ(lb_svc_add(c, &s), 0);
	int w[] = { 4, 3, 2 };
	for (int i = 0; i < 3; i++) {
		struct lb_dest_cfg d = dest(i + 1, w[i], 0, 0);
		CHECK_EQ(lb_dest_add(c, &s, &d), 0);
	}
	CHECK_PICKS(c, &s, 18, "CBAABACBACBAABACBA");
	/* Switch to rr and back (-E -s): wrr is bound to the existing list at once, cw = mw = 4. */
	struct lb_svc_cfg r = svc("rr");
	CHECK_EQ(lb_svc_edit(c, &r), 0);
	CHECK_EQ(lb_svc_edit(c, &s), 0);
	CHECK_PICKS(c, &s, 9, "ABACBACBA");
	CHECK_EQ(lb_svc_del(c, &s), 0);
	lb_core_free(c);
}

static void test_least(void)
{
	lb_core *c = core_new(1);
	const char *names[] = { "lc", "wlc", "sed", "nq", "fo", "ovf" };
	/* Weights A=1, B=3 (list B, A), no connections: */
	const char *want[] = { "B", "B", "B", "B", "B", "B" };
	for (int i = 0; i < 6; i++) {
		struct lb_svc_cfg s = svc(names[i]);
		s.port = (uint16_t)(80 + i);
		CHECK_EQ(lb_svc_add(c, &s), 0);
		struct lb_dest_cfg a = dest(1, 1, 0, 0), b = dest(2, 3, 0, 0);
		CHECK_EQ(lb_dest_add(c, &s, &a), 0);
		CHECK_EQ(lb_dest_add(c, &s, &b), 0);
		CHECK_PICKS(c, &s, 1, want[i]);
		/* Give B three active connections: 3*256 vs 0 (lc/wlc -> A); sed (3+1)/3 vs 1/1 -> A;
		 * nq: A idle -> A; fo: B still heaviest; ovf: 3 active > weight 3? no -> B. */
		struct lb_dest_info info[2];
		CHECK_EQ(lb_dest_list(c, &s, info, 2), 2);
		for (int k = 0; k < 3; k++)
			CHECK_EQ(lb_dest_conn_event(c, info[0].id, LB_EV_BIND_ACTIVE), 0);
		const char *after[] = { "A", "A", "A", "A", "B", "B" };
		CHECK_PICKS(c, &s, 1, after[i]);
		CHECK_EQ(lb_dest_conn_event(c, info[0].id, LB_EV_BIND_ACTIVE), 0);	/* ovf: 4 > 3 -> A */
		if (i == 5)
			CHECK_PICKS(c, &s, 1, "A");
	}
	CHECK_EQ(lb_svc_flush(c), 0);
	lb_core_free(c);
}

static void test_twos_reproducible(void)
{
	char first[40], second[40];
	for (int round = 0; round < 2; round++) {
		lb_core *c = core_new(42);
		struct lb_svc_cfg s = svc("twos");
		CHECK_EQ(lb_svc_add(c, &s), 0);
		for (int i = 1; i <= 4; i++) {
			struct lb_dest_cfg d = dest(i, i, 0, 0);
			CHECK_EQ(lb_dest_add(c, &s, &d), 0);
		}
		picks(c, &s, 30, round ? second : first);
		lb_core_free(c);
	}
	CHECK(strcmp(first, second) == 0, "twos with the same seed: %s vs %s", first, second);
	CHECK(strchr(first, '-') == NULL, "twos picked none: %s", first);
	/* All weights 0: nothing to pick */
	lb_core *c = core_new(42);
	struct lb_svc_cfg s = svc("twos");
	CHECK_EQ(lb_svc_add(c, &s), 0);
	struct lb_dest_cfg d = dest(1, 0, 0, 0);
	CHECK_EQ(lb_dest_add(c, &s, &d), 0);
	CHECK_PICKS(c, &s, 2, "--");
	lb_core_free(c);
}

int main(void)
{
	test_rr();
	test_wrr();
	test_least();
	test_twos_reproducible();
	return DONE();
}
