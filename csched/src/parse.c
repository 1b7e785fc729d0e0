/*
 * parse.c - bounds-checked parse of one frame: Ethernet (+ one 802.1Q tag) -> IPv4 -> TCP/UDP/ICMP
 * into struct lb_pkt (kernel ip_rcv's header checks + ip_vs_fill_iph_skb).  Every read is preceded
 * by a length check against the frame; nothing is written.  lb/fwd/parse.py is the Python twin.
 *
 * IPv6: the fixed header followed directly by TCP or UDP is handled; a fragment header is dropped
 * (LB_R_FRAGMENT); ICMPv6 too (icmp.c passes all but errors); any other extension header goes to
 * the slow path.
 *
 * What is not for the fast path is passed (ARP, other ethertypes and IP protocols) and what
 * is broken is dropped with its reason.  IPv4 options are honoured (the L4 header is found with the
 * IHL) and forwarded untouched.  Fragments are dropped (LB_R_FRAGMENT): the balancer keeps no
 * reassembly state, and non-first fragments carry no ports to find their connection by.  L4
 * checksums are not verified (IPVS does not either unless an application helper mangles the
 * payload); rewrites update them incrementally, so a wrong one stays wrong.
 */
#include "lb_pkt.h"

static bool drop(struct lb_pkt *p, uint8_t reason)
{
	lb_pkt_verdict(p, LB_VERDICT_DROP, reason);
	return false;
}

static bool pass(struct lb_pkt *p, uint8_t reason)
{
	lb_pkt_verdict(p, LB_VERDICT_PASS, reason);
	return false;
}

static bool parse_l4(struct lb_pkt *p, const uint8_t *l4, uint32_t l4len)
{
	switch (p->proto) {
	case LB_IPPROTO_TCP: {
		if (l4len < 20)
			return drop(p, LB_R_PARSE_SHORT);
		uint32_t doff = (uint32_t)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > l4len)
			return drop(p, LB_R_PARSE_SHORT);
		memcpy(&p->key.sport, l4, 2);
		memcpy(&p->key.dport, l4 + 2, 2);
		p->tcp_flags = l4[13];
		return true;
	}
	case LB_IPPROTO_UDP:
		if (l4len < 8)
			return drop(p, LB_R_PARSE_SHORT);
		memcpy(&p->key.sport, l4, 2);
		memcpy(&p->key.dport, l4 + 2, 2);
		return true;
	case LB_IPPROTO_ICMP:
	case LB_IPPROTO_ICMPV6:
		if (l4len < 8)
			return drop(p, LB_R_PARSE_SHORT);
		return true;
	default:
		return pass(p, LB_R_NO_SERVICE);
	}
}

/* step 3b (IPv6): the fixed header; no header checksum in IPv6 */
static bool parse_ip6(struct lb_pkt *p, uint32_t off)
{
	const uint8_t *d = p->data;
	if (p->len < off + LB_IP6_HLEN)
		return drop(p, LB_R_PARSE_SHORT);
	const uint8_t *ip = d + off;
	if ((ip[0] >> 4) != 6)
		return drop(p, LB_R_PARSE_IP_VERSION);
	uint32_t plen = lb_get16(ip + 4);
	if (off + LB_IP6_HLEN + plen > p->len)
		return drop(p, LB_R_PARSE_TOTLEN);
	uint8_t nh = ip[6];
	if (nh == LB_IPPROTO_FRAGMENT)
		return drop(p, LB_R_FRAGMENT);
	if (nh != LB_IPPROTO_TCP && nh != LB_IPPROTO_UDP && nh != LB_IPPROTO_ICMPV6)
		return pass(p, LB_R_SLOW_PATH);
	p->l3_off = (uint16_t)off;
	p->l4_off = (uint16_t)(off + LB_IP6_HLEN);
	p->ip_len = (uint16_t)(LB_IP6_HLEN + plen);
	p->proto = nh;
	p->key.af = LB_AF_INET6;
	p->key.proto = nh;
	memcpy(p->key.saddr.b, ip + 8, 16);
	memcpy(p->key.daddr.b, ip + 24, 16);
	return parse_l4(p, ip + LB_IP6_HLEN, plen);
}

bool lb_parse(struct lb_pkt *p)
{
	const uint8_t *d = p->data;
	uint32_t len = p->len;

	memset(&p->key, 0, sizeof(p->key));
	p->tcp_flags = 0;
	p->proto = 0;
	p->icmp_err = false;
	p->out_port = 0;

	/* step 3a: Ethernet, one optional 802.1Q tag */
	if (len < LB_ETH_HLEN)
		return drop(p, LB_R_PARSE_SHORT);
	uint16_t type = lb_get16(d + 12);
	uint32_t off = LB_ETH_HLEN;
	if (type == LB_ETH_P_8021Q) {
		if (len < LB_ETH_HLEN + LB_VLAN_HLEN)
			return drop(p, LB_R_PARSE_SHORT);
		type = lb_get16(d + 16);
		off += LB_VLAN_HLEN;
	}
	if (type == LB_ETH_P_ARP)
		return pass(p, LB_R_SLOW_PATH);
	if (type == LB_ETH_P_IPV6)
		return parse_ip6(p, off);
	if (type != LB_ETH_P_IP)
		return pass(p, LB_R_PARSE_L2);

	/* step 3b: IPv4 header (ip_rcv_core's checks) */
	if (len < off + 20)
		return drop(p, LB_R_PARSE_SHORT);
	const uint8_t *ip = d + off;
	if ((ip[0] >> 4) != 4)
		return drop(p, LB_R_PARSE_IP_VERSION);
	uint32_t ihl = (uint32_t)(ip[0] & 0x0F) * 4;
	if (ihl < 20)
		return drop(p, LB_R_PARSE_IHL);
	if (off + ihl > len)
		return drop(p, LB_R_PARSE_SHORT);
	uint32_t totlen = lb_get16(ip + 2);
	if (totlen < ihl || off + totlen > len)
		return drop(p, LB_R_PARSE_TOTLEN);
	if (lb_csum_fold(lb_csum_add(0, ip, ihl)) != 0)
		return drop(p, LB_R_PARSE_CSUM);
	if (lb_get16(ip + 6) & (LB_IP_MF | LB_IP_OFFMASK))
		return drop(p, LB_R_FRAGMENT);

	p->l3_off = (uint16_t)off;
	p->l4_off = (uint16_t)(off + ihl);
	p->ip_len = (uint16_t)totlen;
	p->proto = ip[9];
	p->key.af = LB_AF_INET;
	p->key.proto = ip[9];
	memcpy(&p->key.saddr.ip, ip + 12, 4);
	memcpy(&p->key.daddr.ip, ip + 16, 4);

	/* step 3c: the transport header */
	return parse_l4(p, ip + ihl, totlen - ihl);
}
