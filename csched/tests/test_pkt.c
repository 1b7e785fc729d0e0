/*
 * test_pkt.c - Test that the packet path (parse, NAT/DR/TUN transmitters, ICMP, lb_process_batch) does
 * what IPVS does, checked on the bytes, under ASan/UBSan:
 * - NAT SYN: DNAT to 10.1.0.11:8080, TTL - 1, IP and TCP checksums still verify, MACs for port 1;
 * - NAT reply: SNAT back to VIP:80, out port 0 to the client's MAC; counters 1 conn, 1 in, 1 out;
 * - DR: only MACs and TTL change; TUN: IPIP header from port 1's address, inner intact;
 * - TTL 1 -> ICMP time exceeded from the VIP; no destination -> ICMP port unreachable;
 * - bad checksum, fragment, short frames of every length, ARP, unknown service -> their reasons;
 * - every truncation and every single-bit flip of valid frames: no crash, checksums of TX frames verify.
 */
#include <stdlib.h>
#include "tap.h"
#include "pkt_fixture.h"
#include "lb_reason.h"

#define STRIDE 2048
static uint8_t slab[64 * STRIDE];
static uint16_t lens[64];
static uint8_t in_port[64], out_port[64], verdict[64], reason[64];

static struct lb_batch one(const uint8_t *frame, uint32_t len, uint8_t port)
{
	memcpy(slab, frame, len);
	lens[0] = (uint16_t)len;
	in_port[0] = port;
	struct lb_batch b = { slab, STRIDE, 1, lens, in_port, out_port, verdict, reason };
	return b;
}

static int run(lb_core *core, const uint8_t *frame, uint32_t len, uint8_t port)
{
	struct lb_batch b = one(frame, len, port);
	lb_process_batch(core, &b, 1000);
	return verdict[0];
}

static void check_tx_csums(const char *what)
{
	const uint8_t *ip = slab + 14;
	if (slab[12] == 0x81)
		ip += 4;
	CHECK(fx_fold(fx_sum(0, ip, (uint32_t)(ip[0] & 15) * 4)) == 0, "%s: IP checksum", what);
	if (ip[9] == 4)
		ip += 20;
	if (ip[9] == 6 || ip[9] == 1 || (ip[9] == 17 && fx_get16(ip + 20 + 6) != 0))
		CHECK(fx_l4_check(ip) == 0, "%s: L4 checksum", what);
}

static void test_nat(lb_core *core)
{
	uint8_t f[256];
	uint32_t n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40000, 80, 0x02, 64, 0);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_TX);
	CHECK_EQ(reason[0], LB_R_OK);
	CHECK_EQ(out_port[0], 1);
	CHECK_EQ(lens[0], n);
	CHECK(memcmp(slab, fx_rs1_mac, 6) == 0 && memcmp(slab + 6, fx_lb1_mac, 6) == 0, "nat MACs");
	CHECK_EQ(fx_get32(slab + 14 + 16), FX_RIP1);
	CHECK_EQ(fx_get16(slab + 34 + 2), 8080);
	CHECK_EQ(slab[14 + 8], 63);
	check_tx_csums("nat syn");

	n = fx_frame(f, fx_lb1_mac, fx_rs1_mac, FX_RIP1, FX_CIP, 6, 8080, 40000, 0x12, 64, 10);
	CHECK_EQ(run(core, f, n, 1), LB_VERDICT_TX);
	CHECK_EQ(out_port[0], 0);
	CHECK(memcmp(slab, fx_client_mac, 6) == 0 && memcmp(slab + 6, fx_lb0_mac, 6) == 0, "reply MACs");
	CHECK_EQ(fx_get32(slab + 14 + 12), FX_VIP);
	CHECK_EQ(fx_get16(slab + 34), 80);
	check_tx_csums("nat reply");

	struct lb_svc_cfg key;
	memset(&key, 0, sizeof(key));
	key.af = LB_AF_INET;
	key.proto = LB_PROTO_TCP;
	fx_put32(key.addr, FX_VIP);
	key.port = 80;
	struct lb_svc_info info;
	CHECK_EQ(lb_svc_get(core, &key, &info), 0);
	CHECK_EQ(info.stats.conns, 1);
	CHECK_EQ(info.stats.inpkts, 1);
	CHECK_EQ(info.stats.outpkts, 1);
	CHECK_EQ(info.stats.outbytes, n - 14);

	/* UDP with no checksum keeps none */
	n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 17, 40000, 53, 0, 64, 4);
	f[34 + 6] = f[34 + 7] = 0;
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_TX);
	CHECK_EQ(fx_get16(slab + 34 + 6), 0);
	check_tx_csums("udp");
}

static void test_dr_tun(lb_core *core)
{
	uint8_t f[256], orig[256];
	uint32_t n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40001, 81, 0x02, 64, 0);
	memcpy(orig, f, n);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_TX);
	CHECK(memcmp(slab, fx_rs1_mac, 6) == 0, "dr dst MAC");
	CHECK_EQ(slab[14 + 8], 63);
	CHECK(memcmp(slab + 14 + 12, orig + 14 + 12, n - 26) == 0, "dr keeps addresses and L4");
	check_tx_csums("dr");

	n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40001, 82, 0x02, 64, 0);
	memcpy(orig, f, n);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_TX);
	CHECK_EQ(lens[0], n + 20);
	CHECK_EQ(slab[14 + 9], 4);
	CHECK_EQ(fx_get32(slab + 14 + 12), FX_LB1);
	CHECK_EQ(fx_get32(slab + 14 + 16), FX_RIP1);
	CHECK_EQ(fx_get16(slab + 14 + 2), n - 14 + 20);
	CHECK_EQ(fx_get16(slab + 14 + 6), 0x4000);
	CHECK_EQ(slab[14 + 8], 63);
	CHECK_EQ(slab[34 + 8], 63);
	CHECK(memcmp(slab + 34 + 12, orig + 14 + 12, n - 26) == 0, "tun inner addresses and L4");
	check_tx_csums("tun");
}

static void test_icmp_errors(lb_core *core)
{
	uint8_t f[256];
	uint32_t n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40002, 80, 0x02, 1, 0);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_TX);
	CHECK_EQ(reason[0], LB_R_TTL);
	CHECK_EQ(out_port[0], 0);
	CHECK(memcmp(slab, fx_client_mac, 6) == 0, "icmp back to the client");
	CHECK_EQ(slab[14 + 9], 1);
	CHECK_EQ(fx_get32(slab + 14 + 12), FX_VIP);
	CHECK_EQ(fx_get32(slab + 14 + 16), FX_CIP);
	CHECK_EQ(slab[34], 11);
	CHECK(memcmp(slab + 42, f + 14, n - 14) == 0, "quotes the packet");
	CHECK_EQ(lens[0], 14 + 28 + n - 14);
	check_tx_csums("time exceeded");

	n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40002, 90, 0x02, 64, 0);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_TX);
	CHECK_EQ(reason[0], LB_R_NO_DEST);
	CHECK(slab[34] == 3 && slab[35] == 3, "port unreachable");
	check_tx_csums("port unreachable");
}

static void test_bad_input(lb_core *core)
{
	uint8_t f[256];
	uint32_t n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40003, 80, 0x02, 64, 0);
	f[14 + 10] ^= 1;
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_DROP);
	CHECK_EQ(reason[0], LB_R_PARSE_CSUM);

	n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40003, 80, 0x10, 64, 0);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_DROP);
	CHECK_EQ(reason[0], LB_R_NOT_SYN);

	n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 6, 40003, 9999, 0x02, 64, 0);
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_PASS);
	CHECK_EQ(reason[0], LB_R_NO_SERVICE);

	f[12] = 0x08;
	f[13] = 0x06;
	CHECK_EQ(run(core, f, 42, 0), LB_VERDICT_PASS);
	CHECK_EQ(reason[0], LB_R_SLOW_PATH);

	n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, 17, 40003, 53, 0, 64, 16);
	for (uint32_t len = 0; len < n; len++) {
		CHECK_EQ(run(core, f, len, 0), LB_VERDICT_DROP);
	}
	f[14 + 6] |= 0x20;	/* MF */
	f[14 + 10] = f[14 + 11] = 0;
	uint16_t c = fx_fold(fx_sum(0, f + 14, 20));
	f[14 + 10] = (uint8_t)(c >> 8);
	f[14 + 11] = (uint8_t)c;
	CHECK_EQ(run(core, f, n, 0), LB_VERDICT_DROP);
	CHECK_EQ(reason[0], LB_R_FRAGMENT);
	CHECK(lb_reason_count(core, LB_R_FRAGMENT) == 1, "fragment counted");
}

/* every single-bit flip in the headers of frames for each mode: no crash, TX frames stay consistent */
static void test_bit_flips(lb_core *core)
{
	static const uint16_t ports[] = { 80, 53, 81, 82, 90 };
	uint8_t f[256], g[256];
	int tx = 0;
	for (unsigned p = 0; p < sizeof(ports) / sizeof(ports[0]); p++) {
		uint8_t proto = ports[p] == 53 ? 17 : 6;
		uint32_t n = fx_frame(f, fx_lb0_mac, fx_client_mac, FX_CIP, FX_VIP, proto, 41000, ports[p], 0x02, 64, 8);
		for (uint32_t bit = 0; bit < 8 * 62; bit++) {
			memcpy(g, f, n);
			g[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			if (run(core, g, n, 0) == LB_VERDICT_TX) {
				tx++;
				CHECK(lens[0] <= STRIDE, "length in slot");
			}
		}
	}
	CHECK(tx > 0, "some flipped frames still forwarded");
}

int main(void)
{
	lb_core *core = fx_core_new(1500);
	CHECK(core != NULL, "core");
	if (!core)
		return DONE();
	test_nat(core);
	test_dr_tun(core);
	test_icmp_errors(core);
	test_bad_input(core);
	test_bit_flips(core);
	CHECK_EQ(lb_reason_max(), LB_R__COUNT);
	CHECK(strcmp(lb_reason_name(LB_R_NOT_SYN), "NOT_SYN") == 0, "reason names");
	struct lb_batch bad = { slab, 64, 1, lens, in_port, out_port, verdict, reason };
	CHECK(lb_process_batch(core, &bad, 0) < 0, "stride below the minimum refused");
	lb_core_free(core);
	return DONE();
}
