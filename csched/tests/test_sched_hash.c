/*
 * test_sched_hash.c - Test that the hashing schedulers (sh, dh, mh, lblc, lblcr) build the kernel's
 * tables and make the kernel's picks, on small cases worked out by hand from net/netfilter/ipvs:
 *  - hash_32 and hsiphash give the kernel's numbers (hsiphash: lib siphash test vector);
 *  - sh fills 256 buckets weight-proportionally in list order, sh-port and sh-fallback change picks;
 *  - dh deals dests round-robin whatever their weights;
 *  - mh has 4093 slots shared by turns, keeps a quiesced dest's slots, mh-fallback walks on;
 *  - lblc/lblcr cache, replace, and expire entries with the time passed in.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "lb_core.h"
#include "lb_hash.h"
#include "lb_api_schedtest.h"

#define S (1000000000ULL)

static lb_core *new_core(void)
{
	struct lb_core_cfg cfg = { .conn_max = 1024, .svc_max = 8, .dest_max = 64, .hash_seed = 1, .rng_seed = 1 };
	return lb_core_new(&cfg);
}

static struct lb_svc_cfg svc_cfg(const char *sched, uint32_t flags)
{
	struct lb_svc_cfg c;
	memset(&c, 0, sizeof(c));
	c.af = LB_AF_INET;
	c.proto = LB_PROTO_TCP;
	inet_pton(AF_INET, "10.0.0.100", c.addr);
	c.port = 80;
	strncpy(c.sched, sched, LB_SCHED_NAME_MAX - 1);
	c.flags = flags;
	return c;
}

static struct lb_dest_cfg dest_cfg(const char *ip, int32_t weight, uint32_t u)
{
	struct lb_dest_cfg d;
	memset(&d, 0, sizeof(d));
	d.af = LB_AF_INET;
	d.port = 80;
	inet_pton(AF_INET, ip, d.addr);
	d.fwd = LB_FWD_DROUTE;
	d.weight = weight;
	d.u_threshold = u;
	return d;
}

/* One scheduling decision for client saddr:sport -> daddr, at time now. */
static int32_t pick(lb_core *core, const struct lb_svc_cfg *svc, const char *saddr, uint16_t sport,
		    const char *daddr, uint64_t now)
{
	struct lb_flow f;
	int32_t out = -2;
	memset(&f, 0, sizeof(f));
	f.af = LB_AF_INET;
	f.proto = LB_PROTO_TCP;
	inet_pton(AF_INET, saddr, f.saddr);
	inet_pton(AF_INET, daddr, f.daddr);
	f.sport = sport;
	f.dport = 80;
	if (lb_sched_batch(core, svc, &f, 1, &out, now) != 1)
		return -3;
	return out;
}

static void test_hashes(void)
{
	/* 0x0a000005 * 0x61C88647 = 0xAE2DEBE3 (mod 2^32) -> top 8 bits 0xAE = 174 */
	CHECK_EQ(lb_hash_32(0x0a000005u, 8), 174);
	CHECK_EQ(lb_hash_hash32(0x0a000005u, 8), 174);
	/* 10.0.0.6: 0x0a000006 * 0x61C88647 = 0x10_...: top byte 16 */
	CHECK_EQ(lb_hash_32(0x0a000006u, 8), 16);
	/* lib/siphash test vector (64-bit hosts): key 00..0f, message bytes 00 01 02 03 -> 0x88d38328 */
	CHECK_EQ(lb_hsiphash_u32(0x03020100u, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL), 0x88d38328u);
	CHECK_EQ(lb_hash_hsiphash32(0x03020100u, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL), 0x88d38328u);
	/* the IPv6 fold is the XOR of the four host-order words */
	union lb_addr a6;
	inet_pton(AF_INET6, "2001:db8::1:2", a6.b);
	CHECK_EQ(lb_addr_fold(LB_AF_INET6, &a6), 0x20010db8u ^ 0u ^ 0u ^ 0x00010002u);
}

static void test_sh(void)
{
	lb_core *core = new_core();
	struct lb_svc_cfg svc = svc_cfg("sh", 0);
	int32_t tab[LB_SH_TAB_SIZE];
	CHECK_EQ(lb_svc_add(core, &svc), 0);
	struct lb_dest_cfg a = dest_cfg("10.0.0.1", 2, 0), b = dest_cfg("10.0.0.2", 1, 0);
	CHECK_EQ(lb_dest_add(core, &svc, &a), 0);	/* id 0 */
	CHECK_EQ(lb_dest_add(core, &svc, &b), 0);	/* id 1; list is B, A */
	CHECK_EQ(lb_sched_sh_table(core, &svc, tab, LB_SH_TAB_SIZE), 256);
	/* B takes 1 bucket, A 2, round and round: B A A B A A ... bucket 255 = B (255 % 3 == 0). */
	int nb = 0, bad = 0;
	for (int i = 0; i < 256; i++) {
		nb += tab[i] == 1;
		bad += tab[i] != (i % 3 == 0 ? 1 : 0);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(nb, 86);
	/* 10.0.0.5 hashes to 174 (174 % 3 == 0: B); 10.0.0.6 to 16 (A); the same client twice, same dest */
	CHECK_EQ(pick(core, &svc, "10.0.0.5", 1234, "10.0.0.100", 0), 1);
	CHECK_EQ(pick(core, &svc, "10.0.0.5", 4321, "10.0.0.100", 0), 1);
	CHECK_EQ(pick(core, &svc, "10.0.0.6", 1234, "10.0.0.100", 0), 0);

	/* sh-port: hash_32(1234 + 0x0a000005, 8) = 7 (A); with port 1235 it is 105 (B: 105 % 3 == 0) */
	svc.flags = LB_SVC_F_SCHED_SH_PORT;
	CHECK_EQ(lb_svc_edit(core, &svc), 0);
	CHECK_EQ(pick(core, &svc, "10.0.0.5", 1234, "10.0.0.100", 0), 0);
	CHECK_EQ(lb_hash_32(1235 + 0x0a000005u, 8) % 3, 0);
	CHECK_EQ(pick(core, &svc, "10.0.0.5", 1235, "10.0.0.100", 0), 1);

	/* B quiesced (weight 0): the fill is unchanged (a weight-0 dest still takes one bucket per
	 * round), B's clients get nothing... */
	svc.flags = 0;
	CHECK_EQ(lb_svc_edit(core, &svc), 0);
	b.weight = 0;
	CHECK_EQ(lb_dest_edit(core, &svc, &b), 0);
	CHECK_EQ(lb_sched_sh_table(core, &svc, tab, LB_SH_TAB_SIZE), 256);
	CHECK_EQ(tab[0], 1);
	CHECK_EQ(tab[174], 1);
	CHECK_EQ(pick(core, &svc, "10.0.0.5", 1, "10.0.0.100", 0), -1);
	/* ...unless sh-fallback: probe (0 + 2*174) & 255 = 92 -> A */
	svc.flags = LB_SVC_F_SCHED_SH_FALLBACK;
	CHECK_EQ(lb_svc_edit(core, &svc), 0);
	CHECK_EQ(pick(core, &svc, "10.0.0.5", 1, "10.0.0.100", 0), 0);

	/* OVERLOAD is unavailable too: A with u_threshold 1 and one active connection */
	b.weight = 1;
	CHECK_EQ(lb_dest_edit(core, &svc, &b), 0);
	a.u_threshold = 1;
	CHECK_EQ(lb_dest_edit(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_conn_event(core, 0, LB_EV_BIND_ACTIVE), 0);
	/* 10.0.0.6 -> bucket 16 (A, overloaded) -> probe (0 + 32) & 255 = 32 (32 % 3 = 2: A) -> 33 (B) */
	CHECK_EQ(pick(core, &svc, "10.0.0.6", 1, "10.0.0.100", 0), 1);
	svc.flags = 0;
	CHECK_EQ(lb_svc_edit(core, &svc), 0);
	CHECK_EQ(pick(core, &svc, "10.0.0.6", 1, "10.0.0.100", 0), -1);

	/* deleting every dest empties the table */
	CHECK_EQ(lb_dest_del(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_del(core, &svc, &b), 0);
	lb_sched_sh_table(core, &svc, tab, LB_SH_TAB_SIZE);
	CHECK_EQ(tab[0], -1);
	CHECK_EQ(pick(core, &svc, "10.0.0.6", 1, "10.0.0.100", 0), -1);
	lb_core_free(core);
}

static void test_dh(void)
{
	lb_core *core = new_core();
	struct lb_svc_cfg svc = svc_cfg("dh", 0);
	int32_t tab[LB_DH_TAB_SIZE];
	CHECK_EQ(lb_svc_add(core, &svc), 0);
	struct lb_dest_cfg a = dest_cfg("10.0.0.1", 5, 0), b = dest_cfg("10.0.0.2", 1, 0);
	CHECK_EQ(lb_dest_add(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_add(core, &svc, &b), 0);
	CHECK_EQ(lb_sched_dh_table(core, &svc, tab, LB_DH_TAB_SIZE), 256);
	/* weights ignored: list B, A dealt alternately, B in even buckets */
	int bad = 0;
	for (int i = 0; i < 256; i++)
		bad += tab[i] != (i % 2 == 0 ? 1 : 0);
	CHECK_EQ(bad, 0);
	/* hashed on the destination address: 10.0.0.5 -> 174 (B), 10.0.0.10 -> 151 (A) */
	CHECK_EQ(pick(core, &svc, "10.9.9.9", 1, "10.0.0.5", 0), 1);
	CHECK_EQ(pick(core, &svc, "10.8.8.8", 2, "10.0.0.5", 0), 1);
	CHECK_EQ(pick(core, &svc, "10.9.9.9", 1, "10.0.0.10", 0), 0);
	b.weight = 0;
	CHECK_EQ(lb_dest_edit(core, &svc, &b), 0);
	CHECK_EQ(pick(core, &svc, "10.9.9.9", 1, "10.0.0.5", 0), -1);
	lb_core_free(core);
}

static uint32_t mh_offset(const char *ip, uint16_t port, uint64_t key, uint32_t mod)
{
	uint8_t b[4];
	inet_pton(AF_INET, ip, b);
	return lb_hsiphash_u32(lb_be32(b) + port, key, key) % mod;
}

static void test_mh(void)
{
	static int32_t tab[LB_MH_TAB_SIZE], tab2[LB_MH_TAB_SIZE];
	const uint64_t k1 = 2654435761ULL;
	lb_core *core = new_core();
	struct lb_svc_cfg svc = svc_cfg("mh", 0);
	CHECK_EQ(lb_svc_add(core, &svc), 0);
	CHECK_EQ(lb_sched_mh_table(core, &svc, tab, LB_MH_TAB_SIZE), 4093);
	CHECK_EQ(tab[0], -1);
	struct lb_dest_cfg a = dest_cfg("10.0.0.1", 2, 0), b = dest_cfg("10.0.0.2", 1, 0);
	CHECK_EQ(lb_dest_add(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_add(core, &svc, &b), 0);
	lb_sched_mh_table(core, &svc, tab, LB_MH_TAB_SIZE);
	/* list B (1 turn), A (2 turns): 3 slots a round, 4093 = 3 * 1364 + 1, B claims the last one */
	int na = 0, nb = 0;
	for (int i = 0; i < 4093; i++) {
		na += tab[i] == 0;
		nb += tab[i] == 1;
	}
	CHECK_EQ(nb, 1365);
	CHECK_EQ(na, 2728);
	/* B claims first, at its offset hsiphash(ntohl(10.0.0.2) + 80, key1) % 4093 */
	uint32_t ob = mh_offset("10.0.0.2", 80, k1, 4093), oa = mh_offset("10.0.0.1", 80, k1, 4093);
	CHECK_EQ(tab[ob], 1);
	if (oa != ob)
		CHECK_EQ(tab[oa], 0);
	/* a client goes to the dest of slot hsiphash(ntohl(saddr), key1) % 4093 */
	const char *clients[] = { "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6" };
	int agree = 0, to_a = -1;
	for (int i = 0; i < 6; i++) {
		int32_t got = pick(core, &svc, clients[i], 999, "10.0.0.100", 0);
		agree += got == tab[mh_offset(clients[i], 0, k1, 4093)];
		if (got == 0 && to_a < 0)
			to_a = i;
	}
	CHECK_EQ(agree, 6);
	CHECK(to_a >= 0, "no client of the six maps to A");

	/* quiesce A: last_weight stays 2, the table does not move, A's clients get nothing */
	a.weight = 0;
	CHECK_EQ(lb_dest_edit(core, &svc, &a), 0);
	lb_sched_mh_table(core, &svc, tab2, LB_MH_TAB_SIZE);
	CHECK_EQ(memcmp(tab, tab2, sizeof(tab)), 0);
	struct lb_dest_info di;
	CHECK_EQ(lb_dest_info_by_id(core, 0, &di), 0);
	CHECK_EQ(di.last_weight, 2);
	if (to_a >= 0) {
		CHECK_EQ(pick(core, &svc, clients[to_a], 1, "10.0.0.100", 0), -1);
		svc.flags = LB_SVC_F_SCHED_MH_FALLBACK;
		CHECK_EQ(lb_svc_edit(core, &svc), 0);
		CHECK_EQ(pick(core, &svc, clients[to_a], 1, "10.0.0.100", 0), 1);
	}

	/* large weights are shifted: 1000 and 1 -> gcd 1, fls(1000) = 10, so rshift = 10 - 6 = 4;
	 * turns: A 1000 >> 4 = 62, B 1 >> 4 = 0 -> at least 1 since last_weight != 0 */
	a.weight = 1000;
	CHECK_EQ(lb_dest_edit(core, &svc, &a), 0);
	lb_sched_mh_table(core, &svc, tab, LB_MH_TAB_SIZE);
	na = nb = 0;
	for (int i = 0; i < 4093; i++) {
		na += tab[i] == 0;
		nb += tab[i] == 1;
	}
	/* B (1 turn) then A (62 turns): 63 a round; 4093 = 64 * 63 + 61: after 64 rounds B has 64 and
	 * A 3968; in the 65th round B claims 1 more (65) and A the last 60 (4028) */
	CHECK_EQ(nb, 65);
	CHECK_EQ(na, 4028);
	lb_core_free(core);
}

static void test_lblc(void)
{
	lb_core *core = new_core();
	struct lb_svc_cfg svc = svc_cfg("lblc", 0);
	int32_t ids[4];
	uint64_t lastuse = 0;
	CHECK_EQ(lb_svc_add(core, &svc), 0);
	struct lb_dest_cfg a = dest_cfg("10.0.0.1", 1, 0), b = dest_cfg("10.0.0.2", 1, 0);
	CHECK_EQ(lb_dest_add(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_add(core, &svc, &b), 0);
	uint8_t x[16] = { 10, 0, 0, 5 };
	/* least connections over list B, A with equal load: B (ties keep the first) */
	CHECK_EQ(pick(core, &svc, "10.9.0.1", 1, "10.0.0.5", 0), 1);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, NULL), 1);
	CHECK_EQ(ids[0], 1);
	/* A gets busier than B, yet 10.0.0.5 stays on B (cached), lastuse moves */
	CHECK_EQ(lb_dest_conn_event(core, 1, LB_EV_BIND_INACTIVE), 0);
	CHECK_EQ(pick(core, &svc, "10.9.0.2", 1, "10.0.0.5", 10 * S), 1);
	lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, NULL);
	CHECK_EQ(lastuse, 10 * S);
	/* B over its weight in active conns (2 > 1) while A has 0*2 < 1: overloaded in lblc's sense,
	 * re-pick the least loaded (A) and replace the entry; the kernel's counter counts it again */
	CHECK_EQ(lb_dest_conn_event(core, 1, LB_EV_BIND_ACTIVE), 0);
	CHECK_EQ(lb_dest_conn_event(core, 1, LB_EV_BIND_ACTIVE), 0);
	CHECK_EQ(pick(core, &svc, "10.9.0.3", 1, "10.0.0.5", 20 * S), 0);
	lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, NULL);
	CHECK_EQ(ids[0], 0);
	CHECK_EQ(lb_sched_locality_entries(core, &svc), 2);
	/* expiry: the timer was armed at t=0; full sweeps at 30, 60, ... minutes; the entry (last
	 * used at 20 s) dies at the first full sweep at or after 20 s + 24 h: 1470 * 60 s = 88200 s */
	lb_core_tick(core, 88199 * S);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, NULL), 1);
	lb_core_tick(core, 88200 * S);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, NULL), 0);
	CHECK_EQ(lb_sched_locality_entries(core, &svc), 1);
	/* a deleted cached dest is not used (not available); the entry holds it in the trash */
	CHECK_EQ(pick(core, &svc, "10.9.0.3", 1, "10.0.0.5", 88300 * S), 0);
	CHECK_EQ(lb_dest_del(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_info_by_id(core, 0, &(struct lb_dest_info){ 0 }), 0);
	CHECK_EQ(pick(core, &svc, "10.9.0.3", 1, "10.0.0.5", 88400 * S), 1);
	CHECK_EQ(lb_dest_info_by_id(core, 0, &(struct lb_dest_info){ 0 }), -2);	/* -ENOENT: freed */
	lb_core_free(core);
}

static void test_lblcr(void)
{
	lb_core *core = new_core();
	struct lb_svc_cfg svc = svc_cfg("lblcr", 0);
	int32_t ids[4];
	uint64_t lastuse = 0, lastmod = 0;
	CHECK_EQ(lb_svc_add(core, &svc), 0);
	struct lb_dest_cfg a = dest_cfg("10.0.0.1", 1, 0), b = dest_cfg("10.0.0.2", 1, 0);
	CHECK_EQ(lb_dest_add(core, &svc, &a), 0);
	CHECK_EQ(lb_dest_add(core, &svc, &b), 0);
	uint8_t x[16] = { 10, 0, 0, 5 };
	CHECK_EQ(pick(core, &svc, "10.9.0.1", 1, "10.0.0.5", 0), 1);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, &lastmod), 1);
	/* B overloaded (2 active > weight 1, A idle): A joins the set, set = {A, B}, lastmod = 5 s */
	CHECK_EQ(lb_dest_conn_event(core, 1, LB_EV_BIND_ACTIVE), 0);
	CHECK_EQ(lb_dest_conn_event(core, 1, LB_EV_BIND_ACTIVE), 0);
	CHECK_EQ(pick(core, &svc, "10.9.0.2", 1, "10.0.0.5", 5 * S), 0);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, &lastmod), 2);
	CHECK_EQ(ids[0], 0);
	CHECK_EQ(ids[1], 1);
	CHECK_EQ(lastmod, 5 * S);
	/* used every 6 hours, the entry lives; once the set is unchanged for more than 24 h, the most
	 * loaded member (B: 512 > 0) is dropped on a lookup, and the least loaded (A) serves */
	for (uint64_t t = 6 * 3600; t <= 24 * 3600; t += 6 * 3600)
		CHECK_EQ(pick(core, &svc, "10.9.0.3", 1, "10.0.0.5", t * S), 0);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, &lastmod), 2);
	CHECK_EQ(pick(core, &svc, "10.9.0.3", 1, "10.0.0.5", (24 * 3600 + 5) * S), 0);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, &lastmod), 2);	/* not yet: equal */
	CHECK_EQ(pick(core, &svc, "10.9.0.3", 1, "10.0.0.5", (24 * 3600 + 5) * S + 1), 0);
	CHECK_EQ(lb_sched_locality_lookup(core, &svc, x, ids, 4, &lastuse, &lastmod), 1);
	CHECK_EQ(ids[0], 0);
	CHECK_EQ(lastmod, (24 * 3600 + 5) * S + 1);
	CHECK_EQ(lb_sched_locality_entries(core, &svc), 1);
	lb_core_free(core);
}

int main(void)
{
	test_hashes();
	test_sh();
	test_dh();
	test_mh();
	test_lblc();
	test_lblcr();
	return DONE();
}
