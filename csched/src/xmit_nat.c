/*
 * xmit_nat.c - NAT (masquerading, ipvsadm -m): requests get VIP:vport -> RIP:rport (DNAT), replies
 * RIP:rport -> VIP:vport (SNAT), with RFC 1624 incremental TCP/UDP checksum updates over the
 * pseudo-header address and the port (kernel ip_vs_nat_xmit + tcp/udp_dnat_handler, handle_response
 * + tcp/udp_snat_handler); a UDP checksum of 0 (none) stays 0, a computed 0 is sent as 0xFFFF.  The
 * IPv4 header checksum is updated the same way (the kernel recomputes it; the result is the same for
 * any header whose checksum was right, which parse.c made sure of).
 * Requests are checked as IPVS does (TTL, then MTU); replies as the kernel's ip_forward does (TTL
 * check, MTU check, then the decrement).  lb/fwd/nat.py is the Python twin.
 */
#include "lb_xmit.h"

/* Rewrite the destination (dst=true) or source address and port of a TCP/UDP packet. */
void lb_nat_rewrite(struct lb_pkt *p, bool dst, const union lb_addr *addr, uint16_t port_net)
{
	uint8_t *ip = lb_pkt_ip(p), *l4 = lb_pkt_l4(p);
	uint32_t aoff = dst ? 16 : 12, poff = dst ? 2 : 0;
	uint8_t old[6], new_[6];
	memcpy(old, ip + aoff, 4);
	memcpy(old + 4, l4 + poff, 2);
	memcpy(new_, &addr->ip, 4);
	memcpy(new_ + 4, &port_net, 2);
	if (p->proto == LB_IPPROTO_TCP) {
		lb_put16(l4 + 16, lb_csum_replace(lb_get16(l4 + 16), old, new_, 3));
	} else if (p->proto == LB_IPPROTO_UDP) {
		uint16_t check = lb_get16(l4 + 6);
		if (check) {
			check = lb_csum_replace(check, old, new_, 3);
			lb_put16(l4 + 6, check ? check : 0xFFFF);
		}
	}
	memcpy(l4 + poff, &port_net, 2);
	memcpy(ip + aoff, &addr->ip, 4);
	lb_put16(ip + 10, lb_csum_replace(lb_get16(ip + 10), old, new_, 2));
}

void lb_nat6_rewrite(struct lb_pkt *p, bool dst, const union lb_addr *addr, uint16_t port_net)
{
	uint8_t *ip = lb_pkt_ip(p), *l4 = lb_pkt_l4(p);
	uint32_t aoff = dst ? 24 : 8, poff = dst ? 2 : 0;
	uint8_t old[18], new_[18];
	memcpy(old, ip + aoff, 16);
	memcpy(old + 16, l4 + poff, 2);
	memcpy(new_, addr->b, 16);
	memcpy(new_ + 16, &port_net, 2);
	if (p->proto == LB_IPPROTO_TCP) {
		lb_put16(l4 + 16, lb_csum_replace(lb_get16(l4 + 16), old, new_, 9));
	} else if (p->proto == LB_IPPROTO_UDP) {
		uint16_t check = lb_get16(l4 + 6);
		if (check) {
			check = lb_csum_replace(check, old, new_, 9);
			lb_put16(l4 + 6, check ? check : 0xFFFF);
		}
	}
	memcpy(l4 + poff, &port_net, 2);
	memcpy(ip + aoff, addr->b, 16);
}

/* IPv6 (ip_vs_nat_xmit_v6): hop limit instead of TTL, "packet too big" instead of fragmenting.  The
 * balancer has no IPv6 address of its own on a port, so errors about replies are not sent (drop). */
static void masq6_xmit(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	if (!lb_xmit_nexthop(core, p, cp->dest))
		return;
	uint8_t vip[16];
	memcpy(vip, p->key.daddr.b, 16);
	int port = cp->dest->nh_port;
	if (!lb_xmit_hop6(p, vip) || !lb_xmit_mtu6(p, core->ports[port].mtu, vip))
		return;
	lb_nat6_rewrite(p, true, &cp->daddr, cp->dport);
	lb_xmit_l2(core, p, port, cp->dest->nh_mac);
}

static void masq6_xmit_reply(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	int port = cp->cl_port < LB_MAX_PORTS ? cp->cl_port : 0;
	if (!lb_xmit_hop6(p, NULL) || !lb_xmit_mtu6(p, core->ports[port].mtu, NULL))
		return;
	lb_nat6_rewrite(p, false, &cp->vaddr, cp->vport);
	lb_xmit_l2(core, p, port, cp->cl_mac);
}

static void masq_xmit(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	if (p->key.af == LB_AF_INET6) {
		masq6_xmit(core, p, cp);
		return;
	}
	if (!lb_xmit_nexthop(core, p, cp->dest))
		return;
	uint32_t src = lb_xmit_icmp_src(core, p, true);
	int port = cp->dest->nh_port;
	if (!lb_xmit_ttl(p, src) || !lb_xmit_mtu(p, core->ports[port].mtu, src))
		return;
	lb_nat_rewrite(p, true, &cp->daddr, cp->dport);
	lb_xmit_l2(core, p, port, cp->dest->nh_mac);
}

static void masq_xmit_reply(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp)
{
	if (p->key.af == LB_AF_INET6) {
		masq6_xmit_reply(core, p, cp);
		return;
	}
	uint32_t src = lb_xmit_icmp_src(core, p, false);
	int port = cp->cl_port < LB_MAX_PORTS ? cp->cl_port : 0;
	uint8_t *ip = lb_pkt_ip(p);
	if (ip[8] <= 1) {
		lb_icmp4_send(p, LB_ICMP_TIME_EXCEEDED, LB_ICMP_EXC_TTL, 0, src, LB_R_TTL);
		return;
	}
	if (!lb_xmit_mtu(p, core->ports[port].mtu, src))
		return;
	lb_ip4_ttl_dec(ip);
	lb_nat_rewrite(p, false, &cp->vaddr, cp->vport);
	lb_xmit_l2(core, p, port, cp->cl_mac);
}

const struct lb_xmit_ops lb_xmit_masq = {
	.name = "masq", .ipvsadm_flag = 'm', .fwd = LB_FWD_MASQ,
	.xmit = masq_xmit, .xmit_reply = masq_xmit_reply,
};
