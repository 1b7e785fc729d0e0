/*
 * Test that the trace ring records what the packet path decided for new connections:
 * - disarmed, nothing is recorded (and lb_trace_read returns nothing);
 * - armed for N, exactly the next N new connections passing the filter (client address, virtual
 *   address/port) are recorded; packets of known connections and other clients are not;
 * - a record holds the flow, the service's scheduler, its dests' loads before the pick, the pick, the
 *   state change and the rewrite (NAT: daddr/dport/checksums, DR: MACs only, TUN: encapsulation, no
 *   dest: ICMP error);
 * - the wlc pick in every record is the one its own snapshot makes checkable by hand;
 * - the ring wraps: only the last LB_TRACE_RING records stay readable, in order.
 */
#include <stdlib.h>
#include "tap.h"
#include "pkt_fixture.h"

#define FX_RIP2 0x0A01000Cu
#define OTHER_CIP 0x0A000003u

static uint8_t slab[8 * 2048];
static uint16_t lens[8];
static uint8_t inp[8], outp[8], verd[8], reas[8];

/* one TCP frame from client cip:sport to VIP:dport through the core; returns its verdict */
static int send_one(lb_core *core, uint32_t cip, uint16_t sport, uint16_t dport, uint8_t flags, uint64_t now)
{
	struct lb_batch b = { slab, 2048, 1, lens, inp, outp, verd, reas };
	lens[0] = (uint16_t)fx_frame(slab, fx_lb0_mac, fx_client_mac, cip, FX_VIP, 6, sport, dport, flags, 64, 0);
	inp[0] = 0;
	lb_process_batch(core, &b, now);
	return verd[0];
}

static struct lb_trace_rec recs[LB_TRACE_RING];

static void test_off(void)
{
	lb_core *core = fx_core_new(1500);
	CHECK_EQ(lb_trace_remaining(core), 0);
	send_one(core, FX_CIP, 1000, 80, 0x02, 1000);
	CHECK_EQ(lb_trace_read(core, 0, recs, LB_TRACE_RING), 0);
	/* arming for 0 is off too */
	CHECK_EQ(lb_trace_arm(core, 0, LB_AF_INET, NULL, NULL, 0), 0);
	send_one(core, FX_CIP, 1001, 80, 0x02, 2000);
	CHECK_EQ(lb_trace_read(core, 0, recs, LB_TRACE_RING), 0);
	CHECK_EQ(lb_trace_read(core, 0, NULL, 1), -22);
	CHECK_EQ(lb_trace_arm(core, 1, 99, (const uint8_t *)"\0\0\0\0", NULL, 0), -22);
	lb_core_free(core);
}

static void test_filters_and_fields(void)
{
	lb_core *core = fx_core_new(1500);
	uint8_t cip[16] = { 0 }, vip[16] = { 0 };
	fx_put32(cip, FX_CIP);
	fx_put32(vip, FX_VIP);
	int64_t base = lb_trace_arm(core, 5, LB_AF_INET, cip, NULL, 0);
	CHECK_EQ(base, 0);
	CHECK_EQ(lb_trace_remaining(core), 5);
	send_one(core, OTHER_CIP, 2000, 80, 0x02, 1000);	/* other client: not traced */
	CHECK_EQ(lb_trace_read(core, 0, recs, LB_TRACE_RING), 0);
	CHECK_EQ(send_one(core, FX_CIP, 2000, 80, 0x02, 2000), LB_VERDICT_TX);	/* NAT */
	send_one(core, FX_CIP, 2000, 80, 0x10, 3000);	/* ACK of the same conn: not a new one */
	CHECK_EQ(lb_trace_remaining(core), 4);
	int n = lb_trace_read(core, 0, recs, LB_TRACE_RING);
	CHECK_EQ(n, 1);
	struct lb_trace_rec *r = &recs[0];
	CHECK_EQ(r->seq, 1);
	CHECK_EQ(r->now_ns, 2000);
	CHECK_EQ(r->proto, 6);
	CHECK_EQ(r->tcp_flags, 0x02);
	CHECK_EQ(fx_get32(r->saddr), FX_CIP);
	CHECK_EQ(fx_get32(r->daddr), FX_VIP);
	CHECK_EQ(r->sport, 2000);
	CHECK_EQ(r->dport, 80);
	CHECK(strcmp(r->sched, "rr") == 0, "sched %s", r->sched);
	CHECK_EQ(r->num_dests, 1);
	CHECK_EQ(r->n_snap, 1);
	CHECK_EQ(fx_get32(r->dests[0].addr), FX_RIP1);
	CHECK_EQ(r->dests[0].port, 8080);
	CHECK_EQ(r->dests[0].weight, 1);
	CHECK_EQ(r->dests[0].activeconns + r->dests[0].inactconns, 1);	/* the other client's conn */
	CHECK_EQ(r->dest_id, r->dests[0].id);
	CHECK_EQ(r->fwd, LB_FWD_MASQ);
	CHECK_EQ(r->state_before, 0);		/* NONE */
	CHECK_EQ(r->state_after, 3);		/* SYN_RECV */
	CHECK_EQ(fx_get32(r->conn_daddr), FX_RIP1);
	CHECK_EQ(r->conn_dport, 8080);
	CHECK_EQ(r->verdict, LB_VERDICT_TX);
	CHECK_EQ(r->out_port, 1);
	CHECK_EQ(fx_get32(r->out_daddr), FX_RIP1);
	CHECK(memcmp(r->eth_dst, fx_rs1_mac, 6) == 0, "eth dst");
	CHECK(memcmp(r->eth_src, fx_lb1_mac, 6) == 0, "eth src");
	uint32_t want = LB_TRACE_CH_ETH_DST | LB_TRACE_CH_ETH_SRC | LB_TRACE_CH_IP_DADDR | LB_TRACE_CH_IP_TTL |
			LB_TRACE_CH_IP_CSUM | LB_TRACE_CH_DPORT | LB_TRACE_CH_L4_CSUM;
	CHECK_EQ(r->changed, want);

	/* vaddr + vport filter: only :81 (DR) */
	base = lb_trace_arm(core, 3, LB_AF_INET, NULL, vip, 81);
	CHECK_EQ(base, 1);
	send_one(core, FX_CIP, 2001, 80, 0x02, 4000);
	CHECK_EQ(lb_trace_read(core, 1, recs, LB_TRACE_RING), 0);
	send_one(core, FX_CIP, 2002, 81, 0x02, 5000);
	CHECK_EQ(lb_trace_read(core, 1, recs, LB_TRACE_RING), 1);
	CHECK_EQ(recs[0].fwd, LB_FWD_DROUTE);
	CHECK(recs[0].changed & LB_TRACE_CH_ETH_DST, "DR changes the MAC");
	CHECK(!(recs[0].changed & (LB_TRACE_CH_IP_DADDR | LB_TRACE_CH_DPORT | LB_TRACE_CH_ENCAP)),
	      "DR leaves IP and ports: %x", recs[0].changed);
	CHECK_EQ(fx_get32(recs[0].out_daddr), FX_VIP);

	/* any: TUN on :82 and no dest on :90 */
	lb_trace_arm(core, 2, 0, NULL, NULL, 0);
	send_one(core, FX_CIP, 2003, 82, 0x02, 6000);
	send_one(core, FX_CIP, 2004, 90, 0x02, 7000);
	send_one(core, FX_CIP, 2005, 80, 0x02, 8000);	/* armed count used up */
	CHECK_EQ(lb_trace_remaining(core), 0);
	n = lb_trace_read(core, 2, recs, LB_TRACE_RING);
	CHECK_EQ(n, 2);
	CHECK_EQ(recs[0].fwd, LB_FWD_TUNNEL);
	CHECK(recs[0].changed & LB_TRACE_CH_ENCAP, "TUN encapsulates: %x", recs[0].changed);
	CHECK(!(recs[0].changed & (LB_TRACE_CH_IP_DADDR | LB_TRACE_CH_DPORT)), "inner packet kept: %x",
	      recs[0].changed);
	CHECK_EQ(fx_get32(recs[0].out_daddr), FX_RIP1);
	CHECK_EQ(recs[0].len_out, recs[0].len_in + 20);
	CHECK_EQ(recs[1].dest_id, -1);
	CHECK_EQ(recs[1].num_dests, 0);
	CHECK_EQ(recs[1].verdict, LB_VERDICT_TX);
	CHECK(recs[1].changed & LB_TRACE_CH_ICMP, "no dest: ICMP port unreachable");
	CHECK_EQ(lb_trace_read(core, 4, recs, LB_TRACE_RING), 0);
	/* zeroing the counters keeps the ring */
	lb_pkt_counters_zero(core);
	CHECK_EQ(lb_trace_read(core, 0, recs, LB_TRACE_RING), 4);
	lb_core_free(core);
}

static int add_dest_w(lb_core *core, const struct lb_svc_cfg *s, uint32_t addr, int32_t w)
{
	struct lb_dest_cfg d;
	memset(&d, 0, sizeof(d));
	d.af = LB_AF_INET;
	d.port = 100;
	fx_put32(d.addr, addr);
	d.fwd = LB_FWD_MASQ;
	d.weight = w;
	int rc = lb_dest_add(core, s, &d);
	struct lb_dest_info info[4];
	int n = lb_dest_list(core, s, info, 4);
	for (int i = 0; i < n && i < 4; i++)
		if (fx_get32(info[i].cfg.addr) == addr)
			lb_dest_set_nexthop(core, info[i].id, 1, fx_rs1_mac);
	return rc;
}

/* wlc over the snapshot, as ip_vs_wlc.c: first available dest with weight > 0, then the one whose
 * overhead * other weight is strictly smaller */
static int wlc_pick(const struct lb_trace_rec *r)
{
	int best = -1;
	for (uint32_t i = 0; i < r->n_snap; i++) {
		const struct lb_trace_dest *d = &r->dests[i];
		if (d->weight <= 0 || (d->flags & LB_DEST_F_OVERLOAD))
			continue;
		if (best < 0) {
			best = (int)i;
			continue;
		}
		const struct lb_trace_dest *b = &r->dests[best];
		uint64_t doh = ((uint64_t)d->activeconns << 8) + d->inactconns;
		uint64_t boh = ((uint64_t)b->activeconns << 8) + b->inactconns;
		if (boh * (uint64_t)d->weight > doh * (uint64_t)b->weight)
			best = (int)i;
	}
	return best < 0 ? -1 : r->dests[best].id;
}

static void test_wlc_checkable(void)
{
	lb_core *core = fx_core_new(1500);
	struct lb_svc_cfg s;
	fx_add_svc(core, LB_PROTO_TCP, 100, &s);
	strcpy(s.sched, "wlc");
	CHECK_EQ(lb_svc_edit(core, &s), 0);
	CHECK_EQ(add_dest_w(core, &s, FX_RIP1, 1), 0);
	CHECK_EQ(add_dest_w(core, &s, FX_RIP2, 3), 0);
	lb_trace_arm(core, 8, 0, NULL, NULL, 100);
	for (uint16_t i = 0; i < 8; i++)
		send_one(core, FX_CIP, (uint16_t)(3000 + i), 100, 0x02, 1000 + i);
	int n = lb_trace_read(core, 0, recs, LB_TRACE_RING);
	CHECK_EQ(n, 8);
	int picked_rip1 = 0;
	for (int i = 0; i < n; i++) {
		CHECK(strcmp(recs[i].sched, "wlc") == 0, "sched");
		CHECK_EQ(recs[i].n_snap, 2);
		CHECK_EQ(fx_get32(recs[i].dests[0].addr), FX_RIP2);	/* newest first */
		CHECK_EQ(recs[i].dest_id, wlc_pick(&recs[i]));
		picked_rip1 += fx_get32(recs[i].conn_daddr) == FX_RIP1;
		if (i + 1 < n) {	/* the next snapshot shows the pick's new connection */
			for (uint32_t j = 0; j < 2; j++) {
				const struct lb_trace_dest *a = &recs[i].dests[j], *b = &recs[i + 1].dests[j];
				uint32_t grew = (b->activeconns + b->inactconns) - (a->activeconns + a->inactconns);
				CHECK_EQ(grew, a->id == recs[i].dest_id ? 1 : 0);
			}
		}
	}
	CHECK_EQ(picked_rip1, 2);	/* weights 1 : 3 over 8 conns */
	lb_core_free(core);
}

static void test_wraparound(void)
{
	lb_core *core = fx_core_new(1500);
	lb_trace_arm(core, 1000, 0, NULL, NULL, 0);
	for (uint16_t i = 0; i < 150; i++)
		send_one(core, FX_CIP, (uint16_t)(10000 + i), 80, 0x02, 1000 + i);
	CHECK_EQ(lb_trace_remaining(core), 850);
	int n = lb_trace_read(core, 0, recs, LB_TRACE_RING);
	CHECK_EQ(n, LB_TRACE_RING);
	for (int i = 0; i < n; i++) {
		CHECK_EQ(recs[i].seq, 150 - LB_TRACE_RING + 1 + i);
		CHECK_EQ(recs[i].sport, 10000 + recs[i].seq - 1);
	}
	CHECK_EQ(lb_trace_read(core, 140, recs, LB_TRACE_RING), 10);
	CHECK_EQ(recs[0].seq, 141);
	CHECK_EQ(lb_trace_read(core, 0, recs, 5), 5);
	CHECK_EQ(recs[4].seq, 150 - LB_TRACE_RING + 5);
	CHECK_EQ(lb_trace_read(core, 150, recs, LB_TRACE_RING), 0);
	/* disarm */
	lb_trace_arm(core, 0, 0, NULL, NULL, 0);
	send_one(core, FX_CIP, 9, 80, 0x02, 5000);
	CHECK_EQ(lb_trace_read(core, 150, recs, LB_TRACE_RING), 0);
	lb_core_free(core);
}

int main(void)
{
	test_off();
	test_filters_and_fields();
	test_wlc_checkable();
	test_wraparound();
	return DONE();
}
