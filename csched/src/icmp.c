/*
 * icmp.c - ICMP on the packet path (kernel ip_vs_core.c ip_vs_in_icmp / ip_vs_out_icmp /
 * ip_vs_nat_icmp, net/ipv4/icmp.c icmp_send).  lb/fwd/icmp.py is the Python twin.
 *
 * Errors the balancer sends (time exceeded, port unreachable for a service without destinations,
 * fragmentation needed) are built in place over the offending frame: Ethernet addresses swapped,
 * a fresh IPv4 header (TTL 64, ID 0, no DF, TOS = the old TOS bits | 0xC0 as icmp_send sets them),
 * 8 bytes of ICMP and as much of the offending IP packet as fits in 576 bytes; out of the port the
 * frame came in on.  Never about an ICMP error, nor to a multicast/broadcast/zero source.
 *
 * Errors received (destination unreachable, source quench, time exceeded) that quote a packet of a
 * tracked connection are forwarded: from the client side by the connection's forwarding method
 * (NAT: outer destination, quoted source and source port rewritten to the real server's), from the
 * real server side of a NAT connection back to the client (outer source, quoted destination and
 * destination port rewritten to VIP:vport).  As in ip_vs_nat_icmp the outer and quoted IP header
 * checksums and the ICMP checksum are recomputed, the quoted TCP/UDP checksum is left as it was.
 * The ICMP checksum is verified once the connection is found (bad: dropped).  Errors from a real
 * server about our IPIP packets are turned into errors to the client (icmp_ipip).  Anything else ICMP
 * (echo, errors about unknown packets) is passed to the slow path.
 */
#include "lb_xmit.h"

#define LB_ICMP_HLEN 8
#define LB_ICMP_QUOTE_MAX (LB_ICMP_ERR_MAX - 20 - LB_ICMP_HLEN)

void lb_icmp4_send(struct lb_pkt *p, uint8_t type, uint8_t code, uint32_t info, uint32_t saddr,
		   uint8_t reason)
{
	uint8_t *d = p->data, *ip = lb_pkt_ip(p);
	if (p->icmp_err) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, reason);
		return;
	}
	uint32_t osrc;
	memcpy(&osrc, ip + 12, 4);
	uint8_t first = ip[12];
	if (osrc == 0 || osrc == 0xFFFFFFFFu || (first & 0xF0) == 0xE0) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, reason);
		return;
	}
	uint32_t quote = p->ip_len;
	if (quote > LB_ICMP_QUOTE_MAX)
		quote = LB_ICMP_QUOTE_MAX;
	uint32_t avail = p->room - p->l3_off - 20 - LB_ICMP_HLEN;
	if (quote > avail)
		quote = avail;
	uint8_t tos = (uint8_t)((ip[1] & 0x1E) | 0xC0);
	memmove(ip + 20 + LB_ICMP_HLEN, ip, quote);

	uint8_t mac[6];
	memcpy(mac, d, 6);
	memcpy(d, d + 6, 6);
	memcpy(d + 6, mac, 6);

	uint16_t totlen = (uint16_t)(20 + LB_ICMP_HLEN + quote);
	ip[0] = 0x45;
	ip[1] = tos;
	lb_put16(ip + 2, totlen);
	lb_put16(ip + 4, 0);
	lb_put16(ip + 6, 0);
	ip[8] = LB_IP_DEFAULT_TTL;
	ip[9] = LB_IPPROTO_ICMP;
	memcpy(ip + 12, &saddr, 4);
	memcpy(ip + 16, &osrc, 4);
	lb_ip4_send_check(ip);

	uint8_t *ic = ip + 20;
	ic[0] = type;
	ic[1] = code;
	lb_put16(ic + 2, 0);
	lb_put16(ic + 4, (uint16_t)(info >> 16));
	lb_put16(ic + 6, (uint16_t)info);
	lb_put16(ic + 2, lb_csum_fold(lb_csum_add(0, ic, LB_ICMP_HLEN + quote)));

	p->ip_len = totlen;
	p->l4_off = (uint16_t)(p->l3_off + 20);
	p->len = (uint32_t)p->l3_off + totlen;
	p->out_port = p->in_port;
	lb_pkt_verdict(p, LB_VERDICT_TX, reason);
}

#define LB_ICMP6_QUOTE_MAX (LB_ICMP6_ERR_MAX - LB_IP6_HLEN - LB_ICMP_HLEN)

void lb_icmp6_send(struct lb_pkt *p, uint8_t type, uint8_t code, uint32_t info, const uint8_t *saddr,
		   uint8_t reason)
{
	uint8_t *d = p->data, *ip = lb_pkt_ip(p);
	uint8_t osrc[16], src[16];
	memcpy(osrc, ip + 8, 16);
	memcpy(src, saddr, 16);
	static const uint8_t zero[16];
	if (p->icmp_err || osrc[0] == 0xFF || memcmp(osrc, zero, 16) == 0) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, reason);
		return;
	}
	uint32_t quote = p->ip_len;
	if (quote > LB_ICMP6_QUOTE_MAX)
		quote = LB_ICMP6_QUOTE_MAX;
	uint32_t avail = p->room - p->l3_off - LB_IP6_HLEN - LB_ICMP_HLEN;
	if (quote > avail)
		quote = avail;
	memmove(ip + LB_IP6_HLEN + LB_ICMP_HLEN, ip, quote);

	uint8_t mac[6];
	memcpy(mac, d, 6);
	memcpy(d, d + 6, 6);
	memcpy(d + 6, mac, 6);

	uint16_t plen = (uint16_t)(LB_ICMP_HLEN + quote);
	memset(ip, 0, 8);
	ip[0] = 0x60;
	lb_put16(ip + 4, plen);
	ip[6] = LB_IPPROTO_ICMPV6;
	ip[7] = LB_IP_DEFAULT_TTL;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, osrc, 16);

	uint8_t *ic = ip + LB_IP6_HLEN;
	ic[0] = type;
	ic[1] = code;
	lb_put16(ic + 2, 0);
	lb_put16(ic + 4, (uint16_t)(info >> 16));
	lb_put16(ic + 6, (uint16_t)info);
	uint32_t sum = lb_csum_add(0, ip + 8, 32);
	sum += plen;
	sum += LB_IPPROTO_ICMPV6;
	lb_put16(ic + 2, lb_csum_fold(lb_csum_add(sum, ic, plen)));

	p->ip_len = (uint16_t)(LB_IP6_HLEN + plen);
	p->l4_off = (uint16_t)(p->l3_off + LB_IP6_HLEN);
	p->len = (uint32_t)p->l3_off + p->ip_len;
	p->out_port = p->in_port;
	lb_pkt_verdict(p, LB_VERDICT_TX, reason);
}

/* ip_vs_nat_icmp: in = client side (to the real server), else real server side (to the client). */
static void icmp_nat_rewrite(struct lb_pkt *p, uint8_t *q, uint32_t qihl, const struct lb_conn *cp, bool in)
{
	uint8_t *ip = lb_pkt_ip(p), *ic = lb_pkt_l4(p);
	if (in) {
		memcpy(ip + 16, &cp->daddr.ip, 4);
		memcpy(q + 12, &cp->daddr.ip, 4);
		memcpy(q + qihl, &cp->dport, 2);
	} else {
		memcpy(ip + 12, &cp->vaddr.ip, 4);
		memcpy(q + 16, &cp->vaddr.ip, 4);
		memcpy(q + qihl + 2, &cp->vport, 2);
	}
	lb_ip4_send_check(ip);
	lb_ip4_send_check(q);
	uint32_t iclen = p->ip_len - (uint32_t)(p->l4_off - p->l3_off);
	lb_put16(ic + 2, 0);
	lb_put16(ic + 2, lb_csum_fold(lb_csum_add(0, ic, iclen)));
}

static void icmp_nat_in(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp, uint8_t *q, uint32_t qihl)
{
	if (!lb_xmit_nexthop(core, p, cp->dest))
		return;
	int port = cp->dest->nh_port;
	if (!lb_xmit_ttl(p, 0) || !lb_xmit_mtu(p, core->ports[port].mtu, 0))
		return;
	icmp_nat_rewrite(p, q, qihl, cp, true);
	lb_xmit_l2(core, p, port, cp->dest->nh_mac);
}

static void icmp_nat_out(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp, uint8_t *q, uint32_t qihl)
{
	int port = cp->cl_port < LB_MAX_PORTS ? cp->cl_port : 0;
	uint8_t *ip = lb_pkt_ip(p);
	if (ip[8] <= 1) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_TTL);
		return;
	}
	if (!lb_xmit_mtu(p, core->ports[port].mtu, 0))
		return;
	ip[8]--;
	icmp_nat_rewrite(p, q, qihl, cp, false);
	lb_xmit_l2(core, p, port, cp->cl_mac);
}

/* An error from a real server about one of our IPIP packets (ip_vs_in_icmp, "errors for IPIP
 * packets"): it quotes our outer header and, behind it, the client's request.  That request finds the
 * conn as it is (not swapped); the error is re-sent to the client about its own request, from the VIP:
 * "fragmentation needed" with the path MTU minus the 20 bytes of IPIP (when the client set DF; else
 * dropped), other errors as they are.  Only errors sent to the balancer's own address count. */
static void icmp_ipip(struct lb_core *core, struct lb_pkt *p, uint8_t *q, uint32_t qihl, uint32_t qlen,
		      uint64_t now)
{
	uint8_t *ip = lb_pkt_ip(p), *ic = lb_pkt_l4(p);
	if (memcmp(ip + 16, &core->ports[p->in_port].ip, 4) != 0 || core->ports[p->in_port].ip == 0)
		return;
	uint8_t *in = q + qihl;
	uint32_t inlen = qlen - qihl;
	if (inlen < 20 || (in[0] >> 4) != 4)
		return;
	uint32_t inihl = (uint32_t)(in[0] & 0x0F) * 4;
	if (inihl < 20 || inihl + 4 > inlen || (in[9] != LB_IPPROTO_TCP && in[9] != LB_IPPROTO_UDP))
		return;
	struct lb_flow_key k;
	memset(&k, 0, sizeof(k));
	k.af = LB_AF_INET;
	k.proto = in[9];
	memcpy(&k.saddr.ip, in + 12, 4);
	memcpy(&k.daddr.ip, in + 16, 4);
	memcpy(&k.sport, in + inihl, 2);
	memcpy(&k.dport, in + inihl + 2, 2);
	struct lb_conn *cp = lb_conn_lookup_in(core, &k, now);
	if (!cp)
		return;
	uint32_t iclen = p->ip_len - (uint32_t)(p->l4_off - p->l3_off);
	if (lb_csum_fold(lb_csum_add(0, ic, iclen)) != 0) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_PARSE_CSUM);
		return;
	}
	uint8_t type = ic[0], code = ic[1];
	uint32_t info = ((uint32_t)lb_get16(ic + 4) << 16) | lb_get16(ic + 6);
	if (type == LB_ICMP_DEST_UNREACH && code == LB_ICMP_FRAG_NEEDED) {
		uint32_t mtu = lb_get16(ic + 6);
		if (!(lb_get16(in + 6) & LB_IP_DF)) {
			lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_MTU);	/* the client does not do PMTUD */
			return;
		}
		if (cp->dest && cp->dest->nh_port >= 0 && cp->dest->nh_port < LB_MAX_PORTS &&
		    core->ports[cp->dest->nh_port].mtu < mtu)
			mtu = core->ports[cp->dest->nh_port].mtu;
		if (mtu > 68 + 20)
			mtu -= 20;
		info = mtu;
	}
	uint32_t vip;
	memcpy(&vip, in + 16, 4);
	lb_stats_out(cp, inlen);
	/* the client's request becomes the packet the new error is about */
	memmove(ip, in, inlen);
	p->ip_len = (uint16_t)inlen;
	int port = cp->cl_port < LB_MAX_PORTS ? cp->cl_port : 0;
	lb_icmp4_send(p, type, code, info, vip, LB_R_OK);
	if (p->verdict == LB_VERDICT_TX) {
		memcpy(p->data, cp->cl_mac, 6);
		memcpy(p->data + 6, core->ports[port].mac, 6);
		p->out_port = (uint8_t)port;
	}
}

void lb_icmp4_process(struct lb_core *core, struct lb_pkt *p, uint64_t now)
{
	uint8_t *ic = lb_pkt_l4(p);
	uint32_t iclen = p->ip_len - (uint32_t)(p->l4_off - p->l3_off);
	uint8_t type = ic[0];

	if (type != LB_ICMP_DEST_UNREACH && type != LB_ICMP_SOURCE_QUENCH && type != LB_ICMP_TIME_EXCEEDED) {
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
		return;
	}
	/* the quoted IP header and the first 4 bytes (ports) behind it */
	lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_ICMP_UNTRACKED);
	if (iclen < LB_ICMP_HLEN + 20)
		return;
	uint8_t *q = ic + LB_ICMP_HLEN;
	uint32_t qlen = iclen - LB_ICMP_HLEN;
	if ((q[0] >> 4) != 4)
		return;
	uint32_t qihl = (uint32_t)(q[0] & 0x0F) * 4;
	if (qihl < 20 || qihl + 4 > qlen)
		return;
	if (lb_get16(q + 6) & LB_IP_OFFMASK)
		return;
	if (q[9] == LB_IPPROTO_IPIP) {
		icmp_ipip(core, p, q, qihl, qlen, now);
		return;
	}
	if (q[9] != LB_IPPROTO_TCP && q[9] != LB_IPPROTO_UDP)
		return;

	/* The quoted packet went the other way: swap it into the direction of this error. */
	struct lb_flow_key k;
	memset(&k, 0, sizeof(k));
	k.af = LB_AF_INET;
	k.proto = q[9];
	memcpy(&k.saddr.ip, q + 16, 4);
	memcpy(&k.daddr.ip, q + 12, 4);
	memcpy(&k.sport, q + qihl + 2, 2);
	memcpy(&k.dport, q + qihl, 2);

	bool in = true;
	struct lb_conn *cp = lb_conn_lookup_in(core, &k, now);
	if (!cp) {
		cp = lb_conn_lookup_out(core, &k, now);
		if (!cp || cp->fwd != LB_FWD_MASQ)
			return;
		in = false;
	}
	if (lb_csum_fold(lb_csum_add(0, ic, iclen)) != 0) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_PARSE_CSUM);
		return;
	}
	p->icmp_err = true;
	if (!in) {
		lb_stats_out(cp, p->ip_len);
		icmp_nat_out(core, p, cp, q, qihl);
		return;
	}
	lb_stats_in(cp, p->ip_len);
	if (cp->fwd == LB_FWD_MASQ) {
		icmp_nat_in(core, p, cp, q, qihl);
		return;
	}
	const struct lb_xmit_ops *ops = cp->fwd < LB_FWD_SLOTS ? lb_xmit_table[cp->fwd] : NULL;
	if (!ops) {
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
		return;
	}
	ops->xmit(core, p, cp);
}

/* ---- IPv6 ---- */

static uint16_t icmp6_csum(const uint8_t *ip, const uint8_t *ic, uint32_t iclen)
{
	uint32_t sum = lb_csum_add(0, ip + 8, 32);
	sum += iclen;
	sum += LB_IPPROTO_ICMPV6;
	return lb_csum_fold(lb_csum_add(sum, ic, iclen));
}

/* ip_vs_nat_icmp_v6: in = client side (to the real server), else real server side (to the client) */
static void icmp6_nat_rewrite(struct lb_pkt *p, uint8_t *q, const struct lb_conn *cp, bool in)
{
	uint8_t *ip = lb_pkt_ip(p), *ic = lb_pkt_l4(p);
	if (in) {
		memcpy(ip + 24, cp->daddr.b, 16);
		memcpy(q + 8, cp->daddr.b, 16);
		memcpy(q + LB_IP6_HLEN, &cp->dport, 2);
	} else {
		memcpy(ip + 8, cp->vaddr.b, 16);
		memcpy(q + 24, cp->vaddr.b, 16);
		memcpy(q + LB_IP6_HLEN + 2, &cp->vport, 2);
	}
	uint32_t iclen = p->ip_len - LB_IP6_HLEN;
	lb_put16(ic + 2, 0);
	lb_put16(ic + 2, icmp6_csum(ip, ic, iclen));
}

void lb_icmp6_process(struct lb_core *core, struct lb_pkt *p, uint64_t now)
{
	uint8_t *ip = lb_pkt_ip(p), *ic = lb_pkt_l4(p);
	uint32_t iclen = p->ip_len - LB_IP6_HLEN;
	uint8_t type = ic[0];
	if (type < LB_ICMP6_DEST_UNREACH || type > 4) {	/* informational (NDP, echo): the slow path */
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
		return;
	}
	lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_ICMP_UNTRACKED);
	if (iclen < LB_ICMP_HLEN + LB_IP6_HLEN + 4)
		return;
	uint8_t *q = ic + LB_ICMP_HLEN;
	if ((q[0] >> 4) != 6 || (q[6] != LB_IPPROTO_TCP && q[6] != LB_IPPROTO_UDP))
		return;
	struct lb_flow_key k;
	memset(&k, 0, sizeof(k));
	k.af = LB_AF_INET6;
	k.proto = q[6];
	memcpy(k.saddr.b, q + 24, 16);
	memcpy(k.daddr.b, q + 8, 16);
	memcpy(&k.sport, q + LB_IP6_HLEN + 2, 2);
	memcpy(&k.dport, q + LB_IP6_HLEN, 2);
	bool in = true;
	struct lb_conn *cp = lb_conn_lookup_in(core, &k, now);
	if (!cp) {
		cp = lb_conn_lookup_out(core, &k, now);
		if (!cp || cp->fwd != LB_FWD_MASQ)
			return;
		in = false;
	}
	if (icmp6_csum(ip, ic, iclen) != 0) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_PARSE_CSUM);
		return;
	}
	p->icmp_err = true;
	if (!in) {
		lb_stats_out(cp, p->ip_len);
		int port = cp->cl_port < LB_MAX_PORTS ? cp->cl_port : 0;
		if (!lb_xmit_hop6(p, NULL) || !lb_xmit_mtu6(p, core->ports[port].mtu, NULL))
			return;
		icmp6_nat_rewrite(p, q, cp, false);
		lb_xmit_l2(core, p, port, cp->cl_mac);
		return;
	}
	lb_stats_in(cp, p->ip_len);
	if (cp->fwd == LB_FWD_MASQ) {
		if (!lb_xmit_nexthop(core, p, cp->dest))
			return;
		int port = cp->dest->nh_port;
		if (!lb_xmit_hop6(p, NULL) || !lb_xmit_mtu6(p, core->ports[port].mtu, NULL))
			return;
		icmp6_nat_rewrite(p, q, cp, true);
		lb_xmit_l2(core, p, port, cp->dest->nh_mac);
		return;
	}
	const struct lb_xmit_ops *ops = cp->fwd < LB_FWD_SLOTS ? lb_xmit_table[cp->fwd] : NULL;
	if (!ops) {
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
		return;
	}
	ops->xmit(core, p, cp);
}
