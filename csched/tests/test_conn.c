/*
 * test_conn.c - Test that the connection table behaves as the kernel's ip_vs_conn:
 * - a TCP handshake moves NONE -> SYN_RECV -> ESTABLISHED with the kernel timeouts, and the dest's
 *   active/inactive counts follow (bound inactive, active from SYN_RECV, inactive after FIN);
 * - an ESTABLISHED conn is gone at t0 + 901 s and its dest's counts go back to zero;
 * - `--set` changes the ESTABLISHED timeout for the next packet;
 * - a full table refuses new entries and counts them, leaving existing ones alone;
 * - persistence sends a client back to the same dest within the timeout, /24 netmask groups clients,
 *   the template outlives its conns by its own timeout;
 * - a SYN on a TIME_WAIT conn reschedules it (conn_reuse_mode 1);
 * - a deleted dest keeps serving its conns and is freed with the last one.
 */
#include <string.h>
#include "lb_conn.h"
#include "tap.h"

#define S 1000000000ull

static struct lb_svc_cfg svc_cfg(uint16_t proto, uint16_t port, const char *sched, uint32_t flags,
				 uint32_t timeout, uint32_t mask)
{
	struct lb_svc_cfg c;
	memset(&c, 0, sizeof(c));
	c.af = LB_AF_INET;
	c.proto = proto;
	c.addr[0] = 10; c.addr[1] = 0; c.addr[2] = 0; c.addr[3] = 100;
	c.port = port;
	strcpy(c.sched, sched);
	c.flags = flags;
	c.timeout = timeout;
	c.netmask = mask;
	return c;
}

static struct lb_dest_cfg dest_cfg(uint8_t last, uint32_t fwd, int32_t weight)
{
	struct lb_dest_cfg d;
	memset(&d, 0, sizeof(d));
	d.af = LB_AF_INET;
	d.port = 8080;
	d.addr[0] = 10; d.addr[1] = 0; d.addr[2] = 1; d.addr[3] = last;
	d.fwd = fwd;
	d.weight = weight;
	return d;
}

static struct lb_flow flow(uint16_t proto, uint8_t c3, uint8_t c4, uint16_t sport, uint16_t dport)
{
	struct lb_flow f;
	memset(&f, 0, sizeof(f));
	f.af = LB_AF_INET;
	f.proto = proto;
	f.saddr[0] = 10; f.saddr[1] = 0; f.saddr[2] = c3; f.saddr[3] = c4;
	f.daddr[0] = 10; f.daddr[1] = 0; f.daddr[2] = 0; f.daddr[3] = 100;
	f.sport = sport;
	f.dport = dport;
	return f;
}

static struct lb_core *mk(uint32_t conn_max)
{
	struct lb_core_cfg cfg = { .conn_max = conn_max, .svc_max = 8, .dest_max = 16, .hash_seed = 7, .rng_seed = 1 };
	return lb_core_new(&cfg);
}

static int one(struct lb_core *c, struct lb_flow f, uint8_t flags, uint64_t now)
{
	int32_t id = -2;
	lb_conn_batch_schedule(c, &f, 1, &id, &flags, now);
	return id;
}

static struct lb_conn_info dump1(struct lb_core *c, uint64_t now, size_t *n)
{
	struct lb_conn_info out[8];
	uint64_t cur = 0;
	*n = lb_conn_dump(c, &cur, out, 8, now);
	return out[0];
}

static void test_handshake(void)
{
	struct lb_core *c = mk(64);
	struct lb_svc_cfg s = svc_cfg(LB_PROTO_TCP, 80, "rr", 0, 0, 0xffffffff);
	struct lb_dest_cfg d = dest_cfg(1, LB_FWD_DROUTE, 1);
	CHECK_EQ(lb_svc_add(c, &s), 0);
	CHECK_EQ(lb_dest_add(c, &s, &d), 0);
	struct lb_dest_info di;
	struct lb_flow f = flow(LB_PROTO_TCP, 2, 1, 40000, 80);
	uint64_t t0 = 1000 * S;
	int id = one(c, f, LB_TCPF_SYN, t0);
	CHECK(id >= 0, "scheduled");
	size_t n;
	struct lb_conn_info ci = dump1(c, t0, &n);
	CHECK_EQ(n, 1);
	CHECK(!strcmp(lb_conn_state_name(6, ci.state), "SYN_RECV"), "state %s", lb_conn_state_name(6, ci.state));
	CHECK_EQ(ci.expires_ms, 60000);
	CHECK_EQ(ci.dport, 8080);
	CHECK(ci.flags & LB_CONNF_NOOUTPUT, "DR conn has no output");
	lb_dest_info_by_id(c, id, &di);
	CHECK_EQ(di.activeconns, 1);
	CHECK_EQ(di.inactconns, 0);
	CHECK_EQ(one(c, f, LB_TCPF_ACK, t0 + S), id);
	ci = dump1(c, t0 + S, &n);
	CHECK(!strcmp(lb_conn_state_name(6, ci.state), "ESTABLISHED"), "state %s", lb_conn_state_name(6, ci.state));
	CHECK_EQ(ci.expires_ms, 900000);
	/* --set 100 0 0: the next packet takes it */
	CHECK_EQ(lb_timeout_set(c, 100, 0, 0), 0);
	CHECK_EQ(one(c, f, LB_TCPF_ACK | LB_TCPF_PSH, t0 + 2 * S), id);
	ci = dump1(c, t0 + 2 * S, &n);
	CHECK_EQ(ci.expires_ms, 100000);
	CHECK_EQ(lb_timeout_set(c, 900, 0, 0), 0);
	CHECK_EQ(one(c, f, LB_TCPF_ACK, t0 + 3 * S), id);
	/* expiry at t0 + 3 + 900 s */
	lb_conn_expire_now(c, t0 + 902 * S, UINT32_MAX);
	dump1(c, t0 + 902 * S, &n);
	CHECK_EQ(n, 1);
	lb_conn_expire_now(c, t0 + 903 * S, UINT32_MAX);
	dump1(c, t0 + 903 * S, &n);
	CHECK_EQ(n, 0);
	lb_dest_info_by_id(c, id, &di);
	CHECK_EQ(di.activeconns, 0);
	CHECK_EQ(di.inactconns, 0);
	/* FIN in input-only: ESTABLISHED -> FIN_WAIT, inactive */
	CHECK_EQ(one(c, f, LB_TCPF_SYN, t0 + 1000 * S), id);
	CHECK_EQ(one(c, f, LB_TCPF_ACK, t0 + 1000 * S), id);
	CHECK_EQ(one(c, f, LB_TCPF_FIN | LB_TCPF_ACK, t0 + 1001 * S), id);
	ci = dump1(c, t0 + 1001 * S, &n);
	CHECK(!strcmp(lb_conn_state_name(6, ci.state), "FIN_WAIT"), "state %s", lb_conn_state_name(6, ci.state));
	CHECK_EQ(ci.expires_ms, 120000);
	lb_dest_info_by_id(c, id, &di);
	CHECK_EQ(di.activeconns, 0);
	CHECK_EQ(di.inactconns, 1);
	/* a non-SYN for no conn is not scheduled */
	CHECK_EQ(one(c, flow(LB_PROTO_TCP, 2, 9, 1, 80), LB_TCPF_ACK, t0 + 1001 * S), -1);
	lb_core_free(c);
}

static void test_full(void)
{
	struct lb_core *c = mk(4);
	struct lb_svc_cfg s = svc_cfg(LB_PROTO_UDP, 53, "rr", 0, 0, 0xffffffff);
	struct lb_dest_cfg d = dest_cfg(1, LB_FWD_MASQ, 1);
	lb_svc_add(c, &s);
	lb_dest_add(c, &s, &d);
	for (int i = 0; i < 4; i++)
		CHECK(one(c, flow(LB_PROTO_UDP, 3, (uint8_t)i, 1000, 53), 0, S) >= 0, "fits %d", i);
	CHECK_EQ(one(c, flow(LB_PROTO_UDP, 3, 9, 1000, 53), 0, S), -1);
	struct lb_conn_stats st;
	lb_conn_get_stats(c, &st);
	CHECK_EQ(st.entries, 4);
	CHECK_EQ(st.refused, 1);
	CHECK(one(c, flow(LB_PROTO_UDP, 3, 0, 1000, 53), 0, 2 * S) >= 0, "existing still served");
	size_t n;
	struct lb_conn_info ci = dump1(c, 2 * S, &n);
	CHECK(!strcmp(lb_conn_state_name(17, ci.state), "UDP"), "udp state name");
	struct lb_dest_info di;
	lb_dest_info_by_id(c, 0, &di);
	CHECK_EQ(di.inactconns, 4);	/* UDP conns stay inactive */
	lb_core_free(c);
}

static void test_persist(void)
{
	struct lb_core *c = mk(64);
	struct lb_svc_cfg s = svc_cfg(LB_PROTO_TCP, 80, "rr", LB_SVC_F_PERSISTENT, 300, 0xffffff00);
	struct lb_dest_cfg a = dest_cfg(1, LB_FWD_MASQ, 1), b = dest_cfg(2, LB_FWD_MASQ, 1);
	lb_svc_add(c, &s);
	lb_dest_add(c, &s, &a);
	lb_dest_add(c, &s, &b);
	int first = one(c, flow(LB_PROTO_TCP, 5, 1, 1000, 80), LB_TCPF_SYN, S);
	/* same /24, other host and port: same dest (rr alone would alternate) */
	CHECK_EQ(one(c, flow(LB_PROTO_TCP, 5, 77, 2000, 80), LB_TCPF_SYN, 2 * S), first);
	CHECK_EQ(one(c, flow(LB_PROTO_TCP, 5, 1, 3000, 80), LB_TCPF_SYN, 3 * S), first);
	int other = one(c, flow(LB_PROTO_TCP, 6, 1, 1000, 80), LB_TCPF_SYN, 3 * S);
	CHECK(other != first && other >= 0, "other /24 goes on with rr");
	struct lb_dest_info di;
	lb_dest_info_by_id(c, first, &di);
	CHECK_EQ(di.persistconns, 1);
	CHECK_EQ(di.activeconns, 3);
	/* conns in SYN_RECV expire at 3 + 60 s; the template at 3 + 300 s */
	lb_conn_expire_now(c, 200 * S, UINT32_MAX);
	struct lb_conn_stats st;
	lb_conn_get_stats(c, &st);
	CHECK_EQ(st.entries, 2);
	CHECK_EQ(st.templates, 2);
	CHECK_EQ(one(c, flow(LB_PROTO_TCP, 5, 8, 1000, 80), LB_TCPF_SYN, 300 * S), first);
	/* template refreshed at 300 s: still there at 590 s (its conn gone at 360 s) */
	lb_conn_expire_now(c, 590 * S, UINT32_MAX);
	lb_conn_get_stats(c, &st);
	CHECK_EQ(st.templates, 1);
	lb_conn_expire_now(c, 601 * S, UINT32_MAX);
	lb_conn_get_stats(c, &st);
	CHECK_EQ(st.entries, 0);
	lb_dest_info_by_id(c, first, &di);
	CHECK_EQ(di.persistconns, 0);
	lb_core_free(c);
}

static void test_reuse_and_trash(void)
{
	struct lb_core *c = mk(64);
	struct lb_svc_cfg s = svc_cfg(LB_PROTO_TCP, 80, "rr", 0, 0, 0xffffffff);
	struct lb_dest_cfg a = dest_cfg(1, LB_FWD_MASQ, 1), b = dest_cfg(2, LB_FWD_MASQ, 1);
	lb_svc_add(c, &s);
	lb_dest_add(c, &s, &a);
	lb_dest_add(c, &s, &b);
	struct lb_flow f = flow(LB_PROTO_TCP, 7, 1, 5555, 80);
	int d1 = one(c, f, LB_TCPF_SYN, S);
	one(c, f, LB_TCPF_ACK, S);
	int32_t rid;
	uint8_t fl = LB_TCPF_FIN | LB_TCPF_ACK;
	CHECK_EQ(lb_conn_batch_reply(c, &f, 1, &rid, &fl, 2 * S), 1);	/* ES -> FIN_WAIT (output) */
	fl = LB_TCPF_FIN | LB_TCPF_ACK;
	one(c, f, fl, 3 * S);	/* FW + fin (input) -> TIME_WAIT */
	size_t n;
	struct lb_conn_info ci = dump1(c, 3 * S, &n);
	CHECK(!strcmp(lb_conn_state_name(6, ci.state), "TIME_WAIT"), "state %s", lb_conn_state_name(6, ci.state));
	int d2 = one(c, f, LB_TCPF_SYN, 4 * S);
	CHECK(d2 >= 0 && d2 != d1, "rescheduled by rr: %d then %d", d1, d2);
	struct lb_conn_stats st;
	lb_conn_get_stats(c, &st);
	CHECK_EQ(st.entries, 1);
	/* delete the dest that carries the conn: it keeps serving */
	struct lb_dest_cfg del = d2 == 0 ? a : b;
	struct lb_dest_info di;
	lb_dest_info_by_id(c, d2, &di);
	del = di.cfg;
	CHECK_EQ(lb_dest_del(c, &s, &del), 0);
	CHECK_EQ(one(c, f, LB_TCPF_ACK, 5 * S), d2);
	CHECK_EQ(lb_dest_info_by_id(c, d2, &di), 0);
	lb_conn_expire_now(c, 2000 * S, UINT32_MAX);
	CHECK(lb_dest_info_by_id(c, d2, &di) != 0, "trashed dest freed with its last conn");
	lb_core_free(c);
}

int main(void)
{
	test_handshake();
	test_full();
	test_persist();
	test_reuse_and_trash();
	return DONE();
}
