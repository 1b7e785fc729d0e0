/*
 * xmit_dr.c - direct routing (ipvsadm -g): the IP packet goes to the real server unchanged except
 * for the TTL decrement every IPVS mode does since Linux 5.3 (ip_vs_dr_xmit -> __ip_vs_get_out_rt
 * -> decrement_ttl); only the Ethernet addresses change: destination = the real server's (next hop)
 * MAC, source = the egress port's.  Replies go straight from the real server to the client.
 * lb/fwd/dr.py is the Python twin.
 */
#include "lb_xmit.h"

/* IPv6 (ip_vs_dr_xmit_v6): hop limit - 1, "packet too big" from the VIP when the link is too small. */
static void droute6_xmit(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	if (!lb_xmit_nexthop(core, p, cp->dest))
		return;
	uint8_t vip[16];
	memcpy(vip, p->key.daddr.b, 16);
	int port = cp->dest->nh_port;
	if (!lb_xmit_hop6(p, vip) || !lb_xmit_mtu6(p, core->ports[port].mtu, vip))
		return;
	lb_xmit_l2(core, p, port, cp->dest->nh_mac);
}

static void droute_xmit(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	if (p->key.af == LB_AF_INET6) {
		droute6_xmit(core, p, cp);
		return;
	}
	if (!lb_xmit_nexthop(core, p, cp->dest))
		return;
	uint32_t src = lb_xmit_icmp_src(core, p, true);
	int port = cp->dest->nh_port;
	if (!lb_xmit_ttl(p, src) || !lb_xmit_mtu(p, core->ports[port].mtu, src))
		return;
	lb_xmit_l2(core, p, port, cp->dest->nh_mac);
}

const struct lb_xmit_ops lb_xmit_droute = {
	.name = "droute", .ipvsadm_flag = 'g', .fwd = LB_FWD_DROUTE,
	.xmit = droute_xmit, .xmit_reply = NULL,
};
