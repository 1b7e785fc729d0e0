/*
 * xmit.c - the forwarding-method registry (built from LB_FWD_LIST, as ip_vs_bind_xmit picks a
 * transmitter once per connection) and the steps all transmitters share: next hop, TTL, MTU and
 * the Ethernet header (kernel ip_vs_xmit.c __ip_vs_get_out_rt, decrement_ttl,
 * ensure_mtu_is_adequate).  Linux >= 5.3 decrements the TTL in every mode, checking it before the
 * MTU, so a "fragmentation needed" quotes the already-decremented packet; we do the same.  The TTL
 * and address changes update the header checksum incrementally (RFC 1624), as ip_decrease_ttl does.
 */
#include "lb_xmit.h"

#define LB_XMIT_SLOT(n, v, f) [v] = &lb_xmit_##n,
const struct lb_xmit_ops *const lb_xmit_table[LB_FWD_SLOTS] = { LB_FWD_LIST(LB_XMIT_SLOT) };
#undef LB_XMIT_SLOT

#define LB_XMIT_ENTRY(n, v, f) &lb_xmit_##n,
static const struct lb_xmit_ops *const fwd_list[] = { LB_FWD_LIST(LB_XMIT_ENTRY) };
#undef LB_XMIT_ENTRY
#define FWD_N ((int)(sizeof(fwd_list) / sizeof(fwd_list[0])))

int lb_fwd_count(void) { return FWD_N; }
const char *lb_fwd_name(int i) { return i >= 0 && i < FWD_N ? fwd_list[i]->name : NULL; }
int lb_fwd_value(int i) { return i >= 0 && i < FWD_N ? fwd_list[i]->fwd : -1; }
int lb_fwd_flag(int i) { return i >= 0 && i < FWD_N ? fwd_list[i]->ipvsadm_flag : -1; }

bool lb_xmit_nexthop(struct lb_core *core, struct lb_pkt *p, const struct lb_dest *dest)
{
	(void)core;
	if (!dest || dest->nh_port < 0 || dest->nh_port >= LB_MAX_PORTS) {
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_NO_ROUTE);
		return false;
	}
	return true;
}

bool lb_xmit_ttl(struct lb_pkt *p, uint32_t icmp_src)
{
	uint8_t *ip = lb_pkt_ip(p);
	if (ip[8] <= 1) {
		/* decrement_ttl: "Tell the sender its packet died..." */
		lb_icmp4_send(p, LB_ICMP_TIME_EXCEEDED, LB_ICMP_EXC_TTL, 0, icmp_src, LB_R_TTL);
		return false;
	}
	lb_ip4_ttl_dec(ip);
	return true;
}

bool lb_xmit_mtu(struct lb_pkt *p, uint32_t mtu, uint32_t icmp_src)
{
	if (p->ip_len <= mtu)
		return true;
	/* ensure_mtu_is_adequate: DF set -> tell the sender (never about an ICMP error).  Without DF
	 * the kernel would fragment; the balancer does not, and drops. */
	if ((lb_get16(lb_pkt_ip(p) + 6) & LB_IP_DF) && !p->icmp_err)
		lb_icmp4_send(p, LB_ICMP_DEST_UNREACH, LB_ICMP_FRAG_NEEDED, mtu, icmp_src, LB_R_MTU);
	else
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_MTU);
	return false;
}

bool lb_xmit_hop6(struct lb_pkt *p, const uint8_t *icmp_src)
{
	uint8_t *ip = lb_pkt_ip(p);
	if (ip[7] <= 1) {
		if (icmp_src)
			lb_icmp6_send(p, LB_ICMP6_TIME_EXCEED, 0, 0, icmp_src, LB_R_TTL);
		else
			lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_TTL);
		return false;
	}
	ip[7]--;
	return true;
}

bool lb_xmit_mtu6(struct lb_pkt *p, uint32_t mtu, const uint8_t *icmp_src)
{
	if (p->ip_len <= mtu)
		return true;
	if (icmp_src && !p->icmp_err)
		lb_icmp6_send(p, LB_ICMP6_PKT_TOOBIG, 0, mtu, icmp_src, LB_R_MTU);
	else
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_MTU);
	return false;
}

void lb_xmit_l2(struct lb_core *core, struct lb_pkt *p, int port, const uint8_t *dst_mac)
{
	memcpy(p->data, dst_mac, 6);
	memcpy(p->data + 6, core->ports[port].mac, 6);
	p->len = (uint32_t)p->l3_off + p->ip_len;
	p->out_port = (uint8_t)port;
	lb_pkt_verdict(p, LB_VERDICT_TX, LB_R_OK);
}

uint32_t lb_xmit_icmp_src(const struct lb_core *core, const struct lb_pkt *p, bool to_vip)
{
	/* icmp_send: a packet to a local address (the VIP) is answered from that address; otherwise
	 * from the balancer's address on the interface back to the sender. */
	if (to_vip)
		return p->key.daddr.ip;
	return core->ports[p->in_port].ip;
}
