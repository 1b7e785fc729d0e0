/*
 * pkt_fixture.h - a core configured like tests/packets.py (shared by tests/test_pkt.c and
 * fuzz/fuzz_batch.c) and small frame builders with full checksums.
 *   client 10.0.0.2 -- port 0 (10.0.0.1, VIP 10.0.0.100) -- port 1 (10.1.0.1) -- rs1 10.1.0.11
 *   TCP :80 -> rs1:8080 masq, UDP :53 -> rs1:53 masq, TCP :81 -> rs1:81 droute, TCP :82 -> rs1:82 tunnel,
 *   TCP :90 no destination.
 */
#ifndef PKT_FIXTURE_H
#define PKT_FIXTURE_H
#include <stdint.h>
#include <string.h>
#include "lb_api.h"
#include "lb_api_pkt.h"

#define FX_CIP 0x0A000002u
#define FX_LB0 0x0A000001u
#define FX_VIP 0x0A000064u
#define FX_LB1 0x0A010001u
#define FX_RIP1 0x0A01000Bu

static const uint8_t fx_client_mac[6] = { 2, 0, 0, 0, 0, 2 };
static const uint8_t fx_lb0_mac[6] = { 2, 0, 0, 0, 1, 0 };
static const uint8_t fx_lb1_mac[6] = { 2, 0, 0, 0, 1, 1 };
static const uint8_t fx_rs1_mac[6] = { 2, 0, 0, 0, 2, 0x11 };

static inline void fx_put32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24); b[1] = (uint8_t)(v >> 16); b[2] = (uint8_t)(v >> 8); b[3] = (uint8_t)v;
}

static inline uint32_t fx_get32(const uint8_t *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static inline uint16_t fx_get16(const uint8_t *b) { return (uint16_t)((b[0] << 8) | b[1]); }

static inline uint32_t fx_sum(uint32_t s, const uint8_t *b, uint32_t n)
{
	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)((b[i] << 8) | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

static inline uint16_t fx_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xFFFF) + (s >> 16);
	return (uint16_t)~s;
}

/* 0 when the L4 checksum (TCP/UDP with the pseudo-header, or ICMP) of the IPv4 packet at ip verifies. */
static inline uint16_t fx_l4_check(const uint8_t *ip)
{
	uint32_t ihl = (uint32_t)(ip[0] & 15) * 4, len = fx_get16(ip + 2) - ihl;
	uint32_t s = 0;
	if (ip[9] != 1) {
		s = fx_sum(s, ip + 12, 8);
		s += ip[9];
		s += len;
	}
	return fx_fold(fx_sum(s, ip + ihl, len));
}

/* Ethernet + IPv4 + TCP (proto 6) or UDP (17), checksums complete.  Returns the frame length. */
static inline uint32_t fx_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint32_t saddr, uint32_t daddr,
				uint8_t proto, uint16_t sport, uint16_t dport, uint8_t flags, uint8_t ttl, uint16_t paylen)
{
	uint32_t l4len = proto == 6 ? 20 : 8;
	memset(f, 0, 14 + 20 + l4len + paylen);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14, *l4 = ip + 20;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + l4len + paylen) >> 8);
	ip[3] = (uint8_t)(20 + l4len + paylen);
	ip[5] = 1;
	ip[6] = 0x40;
	ip[8] = ttl;
	ip[9] = proto;
	fx_put32(ip + 12, saddr);
	fx_put32(ip + 16, daddr);
	uint16_t c = fx_fold(fx_sum(0, ip, 20));
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	l4[0] = (uint8_t)(sport >> 8); l4[1] = (uint8_t)sport;
	l4[2] = (uint8_t)(dport >> 8); l4[3] = (uint8_t)dport;
	for (uint16_t i = 0; i < paylen; i++)
		l4[l4len + i] = (uint8_t)i;
	if (proto == 6) {
		l4[12] = 0x50;
		l4[13] = flags;
		l4[14] = 0xFF;
		c = fx_l4_check(ip);
		l4[16] = (uint8_t)(c >> 8);
		l4[17] = (uint8_t)c;
	} else {
		l4[4] = (uint8_t)((8 + paylen) >> 8);
		l4[5] = (uint8_t)(8 + paylen);
		c = fx_l4_check(ip);
		l4[6] = (uint8_t)(c >> 8);
		l4[7] = (uint8_t)c;
	}
	return 14 + 20 + l4len + paylen;
}

static inline int fx_add_svc(lb_core *core, uint16_t proto, uint16_t port, struct lb_svc_cfg *out)
{
	struct lb_svc_cfg s;
	memset(&s, 0, sizeof(s));
	s.af = LB_AF_INET;
	s.proto = proto;
	fx_put32(s.addr, FX_VIP);
	s.port = port;
	strcpy(s.sched, "rr");
	s.netmask = 0xFFFFFFFFu;
	*out = s;
	return lb_svc_add(core, &s);
}

static inline int fx_add_dest(lb_core *core, const struct lb_svc_cfg *s, uint32_t addr, uint16_t port, uint32_t fwd)
{
	struct lb_dest_cfg d;
	memset(&d, 0, sizeof(d));
	d.af = LB_AF_INET;
	d.port = port;
	fx_put32(d.addr, addr);
	d.fwd = fwd;
	d.weight = 1;
	int rc = lb_dest_add(core, s, &d);
	if (rc)
		return rc;
	struct lb_dest_info info[4];
	int n = lb_dest_list(core, s, info, 4);
	for (int i = 0; i < n && i < 4; i++)
		if (info[i].cfg.port == port && fx_get32(info[i].cfg.addr) == addr)
			return lb_dest_set_nexthop(core, info[i].id, 1, fx_rs1_mac);
	return -1;
}

static inline lb_core *fx_core_new(uint32_t mtu)
{
	struct lb_core_cfg cfg = { .conn_max = 1024, .svc_max = 16, .dest_max = 16, .hash_seed = 7, .rng_seed = 1 };
	lb_core *core = lb_core_new(&cfg);
	if (!core)
		return NULL;
	uint8_t ip[4];
	fx_put32(ip, FX_LB0);
	lb_port_set(core, 0, fx_lb0_mac, ip, mtu);
	fx_put32(ip, FX_LB1);
	lb_port_set(core, 1, fx_lb1_mac, ip, mtu);
	struct lb_svc_cfg s;
	fx_add_svc(core, LB_PROTO_TCP, 80, &s);
	fx_add_dest(core, &s, FX_RIP1, 8080, LB_FWD_MASQ);
	fx_add_svc(core, LB_PROTO_UDP, 53, &s);
	fx_add_dest(core, &s, FX_RIP1, 53, LB_FWD_MASQ);
	fx_add_svc(core, LB_PROTO_TCP, 81, &s);
	fx_add_dest(core, &s, FX_RIP1, 81, LB_FWD_DROUTE);
	fx_add_svc(core, LB_PROTO_TCP, 82, &s);
	fx_add_dest(core, &s, FX_RIP1, 82, LB_FWD_TUNNEL);
	fx_add_svc(core, LB_PROTO_TCP, 90, &s);
	lb_pkt_init(core);
	return core;
}

#endif
