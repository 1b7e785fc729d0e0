/*
 * xmit_tun.c - IP tunneling (ipvsadm -i): the whole IPv4 packet (TTL already decremented) is put
 * behind a new IPv4 header, protocol 4 (IPIP), as ip_vs_tunnel_xmit + ip_vs_prepare_tunneled_skb do:
 *   source = the balancer's address on the egress port, destination = the real server,
 *   DF copied from the inner header (sysctl pmtu_disc=1, the default), TOS = the inner DS field with
 *   ECN encapsulated (INET_ECN_encapsulate: CE becomes ECT(0)), TTL = the inner TTL, checksum fresh.
 *   The IP ID: 0 with DF (ip_select_ident); without DF the kernel draws one at random, we copy the
 *   inner ID so that the result is reproducible.
 * The MTU check uses the egress MTU minus 20: too big with DF -> ICMP fragmentation needed quoting
 * MTU - 20 to the client.  The inner packet moves 20 bytes up inside the batch slot (the stride is
 * the headroom); if it does not fit the packet is dropped (LB_R_MTU).  IPv6 conns: passed to the
 * slow path (IPv6-in-IPv6 needs a port IPv6 address).  lb/fwd/tun.py is the twin.
 */
#include "lb_xmit.h"

#define LB_IPIP_HLEN 20

static uint8_t ecn_encapsulate(uint8_t ds)
{
	uint8_t ecn = ds & 3;
	return (uint8_t)((ds & ~3u) | (ecn == 3 ? 2 : ecn));
}

static void tunnel_xmit(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	/* IPv6 services would need IPv6-in-IPv6 from an IPv6 port address, which ports do not have */
	if (p->key.af == LB_AF_INET6) {
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
		return;
	}
	if (!lb_xmit_nexthop(core, p, cp->dest))
		return;
	uint32_t src = lb_xmit_icmp_src(core, p, true);
	int port = cp->dest->nh_port;
	uint32_t mtu = core->ports[port].mtu;
	if (!lb_xmit_ttl(p, src))
		return;
	if (mtu < 68 + LB_IPIP_HLEN) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_MTU);
		return;
	}
	if (!lb_xmit_mtu(p, mtu - LB_IPIP_HLEN, src))
		return;
	if ((uint32_t)p->l3_off + p->ip_len + LB_IPIP_HLEN > p->room) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_MTU);
		return;
	}
	uint8_t *ip = lb_pkt_ip(p);
	memmove(ip + LB_IPIP_HLEN, ip, p->ip_len);
	const uint8_t *in = ip + LB_IPIP_HLEN;
	uint16_t df = lb_get16(in + 6) & LB_IP_DF;
	ip[0] = 0x45;
	ip[1] = ecn_encapsulate(in[1]);
	lb_put16(ip + 2, (uint16_t)(p->ip_len + LB_IPIP_HLEN));
	if (df)
		lb_put16(ip + 4, 0);
	else
		memcpy(ip + 4, in + 4, 2);
	lb_put16(ip + 6, df);
	ip[8] = in[8];
	ip[9] = LB_IPPROTO_IPIP;
	memcpy(ip + 12, &core->ports[port].ip, 4);
	memcpy(ip + 16, &cp->daddr.ip, 4);
	lb_ip4_send_check(ip);
	p->ip_len = (uint16_t)(p->ip_len + LB_IPIP_HLEN);
	p->l4_off = (uint16_t)(p->l3_off + LB_IPIP_HLEN);
	lb_xmit_l2(core, p, port, cp->dest->nh_mac);
}

const struct lb_xmit_ops lb_xmit_tunnel = {
	.name = "tunnel", .ipvsadm_flag = 'i', .fwd = LB_FWD_TUNNEL,
	.xmit = tunnel_xmit, .xmit_reply = NULL,
};
