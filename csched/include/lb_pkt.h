/*
 * lb_pkt.h - one frame as the packet path sees it after parsing (the kernel's skb + ip_vs_iphdr):
 * where its headers are, its flow key, and the verdict being built.  Internal, never in the cdef.
 * parse.c fills it; icmp.c, xmit*.c and process.c read it and set the verdict.
 */
#ifndef LB_PKT_H
#define LB_PKT_H
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "lb_api_pkt.h"
#include "lb_conn.h"
#include "lb_reason.h"

#define LB_ETH_HLEN 14
#define LB_VLAN_HLEN 4
#define LB_ETH_P_IP 0x0800
#define LB_ETH_P_ARP 0x0806
#define LB_ETH_P_8021Q 0x8100
#define LB_ETH_P_IPV6 0x86DD
#define LB_IPPROTO_ICMP 1
#define LB_IPPROTO_IPIP 4
#define LB_IPPROTO_TCP 6
#define LB_IPPROTO_UDP 17
#define LB_IPPROTO_FRAGMENT 44
#define LB_IPPROTO_ICMPV6 58
#define LB_IP6_HLEN 40
#define LB_ICMP6_DEST_UNREACH 1
#define LB_ICMP6_PKT_TOOBIG 2
#define LB_ICMP6_TIME_EXCEED 3
#define LB_ICMP6_PORT_UNREACH 4
/* icmp6_send's limit: the whole error datagram fits in the IPv6 minimum MTU. */
#define LB_ICMP6_ERR_MAX 1280
#define LB_IP_DF 0x4000
#define LB_IP_MF 0x2000
#define LB_IP_OFFMASK 0x1FFF
#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_ICMP_ECHOREPLY 0
#define LB_ICMP_DEST_UNREACH 3
#define LB_ICMP_SOURCE_QUENCH 4
#define LB_ICMP_ECHO 8
#define LB_ICMP_TIME_EXCEEDED 11
#define LB_ICMP_PORT_UNREACH 3
#define LB_ICMP_FRAG_NEEDED 4
#define LB_ICMP_EXC_TTL 0
/* icmp_send's limit: the whole error datagram fits in 576 bytes (RFC 1812 4.3.2.3). */
#define LB_ICMP_ERR_MAX 576
#define LB_IP_DEFAULT_TTL 64

struct lb_pkt {
	uint8_t *data;		/* the frame */
	uint32_t len;		/* frame length; rewritten frames end at the IP total length */
	uint32_t room;		/* how far the frame may grow in place (the batch stride) */
	uint16_t l3_off;	/* Ethernet header (+ one 802.1Q tag) length */
	uint16_t l4_off;	/* l3_off + IHL * 4 */
	uint16_t ip_len;	/* IP total length */
	uint8_t proto;		/* IP protocol */
	uint8_t tcp_flags;	/* TCP flag byte (0 for others) */
	uint8_t in_port;
	uint8_t out_port;	/* out: with LB_VERDICT_TX */
	uint8_t verdict;	/* out */
	uint8_t reason;		/* out */
	bool icmp_err;		/* an ICMP error being forwarded (no ICMP error is ever sent about it) */
	struct lb_flow_key key;	/* addresses and ports as found in the packet (network order) */
};

static inline void lb_pkt_verdict(struct lb_pkt *p, uint8_t verdict, uint8_t reason)
{
	p->verdict = verdict;
	p->reason = reason;
}

static inline uint16_t lb_get16(const uint8_t *b) { return (uint16_t)(((uint16_t)b[0] << 8) | b[1]); }
static inline void lb_put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline uint8_t *lb_pkt_ip(const struct lb_pkt *p) { return p->data + p->l3_off; }
static inline uint8_t *lb_pkt_l4(const struct lb_pkt *p) { return p->data + p->l4_off; }

/* parse.c: Ethernet (+ one 802.1Q tag) -> IPv4 -> TCP/UDP/ICMP, every read bounds-checked.
 * Returns true when the packet is an IPv4 TCP/UDP/ICMP packet for the rest of the path to look at;
 * false with p->verdict / p->reason set otherwise. */
bool lb_parse(struct lb_pkt *p);

/* csum.c: RFC 1071 sums and RFC 1624 incremental updates (kernel net/checksum.h). */
uint32_t lb_csum_add(uint32_t sum, const uint8_t *b, uint32_t n);	/* 16-bit big-endian words */
void lb_ip4_send_check(uint8_t *iph);		/* recompute the header checksum (kernel ip_send_check) */

/* ~fold(sum) (inline: every rewrite calls it) */
static inline uint16_t lb_csum_fold(uint32_t sum)
{
	sum = (sum & 0xFFFFu) + (sum >> 16);
	sum = (sum & 0xFFFFu) + (sum >> 16);
	return (uint16_t)~sum;
}

/* HC' = ~(~HC + ~m + m') over n 16-bit words of old and new value (RFC 1624 eqn. 3). */
static inline uint16_t lb_csum_replace(uint16_t check, const uint8_t *old, const uint8_t *new_, uint32_t nwords)
{
	uint32_t sum = (uint16_t)~check;
	for (uint32_t i = 0; i < nwords; i++) {
		sum += (uint16_t)~lb_get16(old + 2 * i);
		sum += lb_get16(new_ + 2 * i);
	}
	return lb_csum_fold(sum);
}

/* icmp.c */
/* Turn p into an ICMP error about itself (icmp_send): type/code/info, source saddr (network
 * order), back out of the port it came in on to the MAC it came from.  Verdict TX. */
void lb_icmp4_send(struct lb_pkt *p, uint8_t type, uint8_t code, uint32_t info, uint32_t saddr,
		   uint8_t reason);
/* The IPv6 counterpart (icmp6_send): ICMPv6 type/code/info from saddr (16 bytes), at most 1280 bytes,
 * hop limit 64, traffic class 0. */
void lb_icmp6_send(struct lb_pkt *p, uint8_t type, uint8_t code, uint32_t info, const uint8_t *saddr,
		   uint8_t reason);
/* ICMPv6: errors (types 1-4) quoting TCP/UDP of a tracked connection right behind the quoted fixed
 * header are forwarded like IPv4 ones (ip_vs_in_icmp_v6 / ip_vs_out_icmp_v6); the rest is passed. */
void lb_icmp6_process(struct lb_core *core, struct lb_pkt *p, uint64_t now);
/* An ICMP packet: errors quoting a tracked connection are rewritten and forwarded
 * (ip_vs_in_icmp / ip_vs_out_icmp), everything else is passed. */
void lb_icmp4_process(struct lb_core *core, struct lb_pkt *p, uint64_t now);

/* process.c: per-direction counters (kernel ip_vs_in_stats / ip_vs_out_stats / ip_vs_conn_stats) */
void lb_stats_in(struct lb_conn *cp, uint32_t bytes);
void lb_stats_out(struct lb_conn *cp, uint32_t bytes);

#endif
