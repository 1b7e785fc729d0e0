/*
 * lb_xmit.h - the forwarding methods as a small ops table (kernel ip_vs_xmit.c's transmitters,
 * bound per connection by ip_vs_bind_xmit): one file per method, listed once in LB_FWD_LIST.
 * xmit handles client -> server packets (and ICMP errors about them); xmit_reply server -> client
 * packets (NAT only: the balancer never sees DR/TUN replies).
 */
#ifndef LB_XMIT_H
#define LB_XMIT_H
#include "lb_pkt.h"

struct lb_xmit_ops {
	const char *name;	/* "masq", "droute", "tunnel" */
	char ipvsadm_flag;	/* 'm', 'g', 'i' */
	uint16_t fwd;		/* LB_FWD_* */
	void (*xmit)(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp);
	void (*xmit_reply)(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp);	/* may be NULL */
};

/* X(name, LB_FWD_ value, ipvsadm flag) */
#define LB_FWD_LIST(X) X(masq, LB_FWD_MASQ, 'm') X(droute, LB_FWD_DROUTE, 'g') X(tunnel, LB_FWD_TUNNEL, 'i')

#define LB_XMIT_DECLARE(n, v, f) extern const struct lb_xmit_ops lb_xmit_##n;
LB_FWD_LIST(LB_XMIT_DECLARE)
#undef LB_XMIT_DECLARE

#define LB_FWD_SLOTS 5	/* LB_FWD_MASQ .. LB_FWD_BYPASS */
/* Indexed by conn->fwd; NULL for methods the packet path does not implement (local, bypass). */
extern const struct lb_xmit_ops *const lb_xmit_table[LB_FWD_SLOTS];

/* xmit.c: the steps every transmitter shares (kernel __ip_vs_get_out_rt / decrement_ttl /
 * ensure_mtu_is_adequate).  Each returns false after setting p's verdict. */
/* The dest's next hop, or PASS/NO_ROUTE when it is not resolved yet. */
bool lb_xmit_nexthop(struct lb_core *core, struct lb_pkt *p, const struct lb_dest *dest);
/* TTL <= 1: ICMP time exceeded (from icmp_src) to the sender; else decrement it, fix the checksum. */
bool lb_xmit_ttl(struct lb_pkt *p, uint32_t icmp_src);
/* DF and longer than mtu: ICMP fragmentation needed (mtu) to the sender; longer without DF: drop. */
bool lb_xmit_mtu(struct lb_pkt *p, uint32_t mtu, uint32_t icmp_src);
/* IPv6: hop limit <= 1 -> ICMPv6 time exceeded from icmp_src (NULL: no address to send from -> drop);
 * else decrement (no header checksum in IPv6). */
bool lb_xmit_hop6(struct lb_pkt *p, const uint8_t *icmp_src);
/* IPv6 never fragments on the way: longer than mtu -> ICMPv6 packet too big (mtu), or drop without
 * an address to send it from. */
bool lb_xmit_mtu6(struct lb_pkt *p, uint32_t mtu, const uint8_t *icmp_src);
/* Ethernet addresses for the next hop; ends the frame at the IP total length; verdict TX. */
void lb_xmit_l2(struct lb_core *core, struct lb_pkt *p, int port, const uint8_t *dst_mac);
/* xmit_nat.c: rewrite the destination (dst) or source address:port of a TCP/UDP packet, fixing the
 * L4 checksum incrementally and the IP header checksum. */
void lb_nat_rewrite(struct lb_pkt *p, bool dst, const union lb_addr *addr, uint16_t port_net);
void lb_nat6_rewrite(struct lb_pkt *p, bool dst, const union lb_addr *addr, uint16_t port_net);
/* TTL - 1 with the header checksum updated incrementally (kernel ip_decrease_ttl; RFC 1624). */
static inline void lb_ip4_ttl_dec(uint8_t *ip)
{
	uint8_t old[2] = { ip[8], ip[9] };
	ip[8]--;
	lb_put16(ip + 10, lb_csum_replace(lb_get16(ip + 10), old, ip + 8, 1));
}
/* The ICMP source the balancer uses for errors about packet p: the address the packet was sent to
 * when that is one of ours (a virtual service), else our address on the port it came in on. */
uint32_t lb_xmit_icmp_src(const struct lb_core *core, const struct lb_pkt *p, bool to_vip);

#endif
