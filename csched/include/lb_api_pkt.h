/*
 * lb_api_pkt.h - the packet batch API (cffi surface, cdef-clean like lb_api.h): the batch the data
 * plane hands to the core, the verdicts, and the per-reason counters.  process.c implements it.
 * Kernel counterparts: the netfilter verdicts of ip_vs_in/ip_vs_out (NF_DROP / NF_STOLEN after a
 * transmitter sent the packet / NF_ACCEPT for packets that are not IPVS's business).
 */
#ifndef LB_API_PKT_H
#define LB_API_PKT_H
#include <stdint.h>
#include "lb_api.h"

/* Verdicts. */
#define LB_VERDICT_DROP 0	/* dropped; reason says why (counted) */
#define LB_VERDICT_TX 1	/* rewritten in place; send on out_port */
#define LB_VERDICT_PASS 2	/* not ours (no service, ARP, ICMP echo to a VIP, ...): the slow path / kernel */

/* Room a frame may need beyond its length: IPIP adds 20 bytes, an ICMP error built in place quotes up
 * to 548 bytes of the packet behind 28 bytes of new headers.  A stride of 2048 covers every case for
 * 1500-byte links; with a smaller stride the quote is shortened (never below 28 + 8 bytes) and an
 * IPIP packet that does not fit is dropped with LB_R_MTU. */
#define LB_BATCH_STRIDE_MIN 128
#define LB_BATCH_STRIDE_DEFAULT 2048

/* One batch: frames laid out in a slab at slab + i * stride (stride leaves headroom for growth:
 * IPIP adds 20 bytes, an ICMP error built in place may need up to 576), plus parallel arrays. */
struct lb_batch {
	uint8_t *slab;
	uint32_t stride;
	uint32_t n;
	uint16_t *len;		/* in: frame length; out: length after the rewrite */
	uint8_t *in_port;	/* in: the port index the frame arrived on */
	uint8_t *out_port;	/* out: where to send it (verdict TX) */
	uint8_t *verdict;	/* out: LB_VERDICT_* */
	uint8_t *reason;	/* out: enum lb_reason (lb_reason.h) */
};

/* Run every frame of the batch through parse -> conn lookup -> schedule -> rewrite, in place.
 * Returns the number of frames with verdict TX, or -EINVAL for a malformed batch (stride below
 * LB_BATCH_STRIDE_MIN or above 65535, NULL arrays).  Allocates nothing. */
int lb_process_batch(lb_core *core, struct lb_batch *b, uint64_t now_ns);

/* Forwarding methods the packet path implements (lb_xmit.h's LB_FWD_LIST, in that order): their
 * names ("masq", "droute", "tunnel"), LB_FWD_* values and ipvsadm flag letters ('m', 'g', 'i'). */
int lb_fwd_count(void);
const char *lb_fwd_name(int i);
int lb_fwd_value(int i);
int lb_fwd_flag(int i);

/* Reasons (lb_reason.h's LB_REASON_LIST): how many, their names ("NO_SERVICE") and texts. */
int lb_reason_max(void);
const char *lb_reason_name(int i);
const char *lb_reason_text(int i);
/* Packets that got each reason since the core was made (or zeroed), whatever the verdict. */
uint64_t lb_reason_count(lb_core *core, int i);
/* Packets per verdict (LB_VERDICT_*). */
uint64_t lb_verdict_count(lb_core *core, int verdict);
void lb_pkt_counters_zero(lb_core *core);
/* Allocate the per-core packet-path state (counters); lb_process_batch calls it on first use, the
 * control plane may call it earlier so that no allocation ever happens on the packet path.  0 or
 * -ENOMEM. */
int lb_pkt_init(lb_core *core);

/* ---- the trace ring (trace.c): what the data plane decided for chosen new connections ----
 * Armed from the control plane for the next `count` new connections (packets that found a service and
 * would create a connection), optionally only those from one client address and/or to one virtual
 * address/port.  Each such packet leaves one record in a fixed ring of LB_TRACE_RING entries: the flow,
 * the service, the dests of the service in list order with the numbers the scheduler is about to compare
 * (snapshot taken before it runs), the pick, the connection's state before/after the packet, the
 * forwarding method and which header fields the rewrite changed.  Disarmed (count 0) nothing is
 * recorded and the packet path pays one predictable branch per new connection. */
#define LB_TRACE_RING 64
#define LB_TRACE_DESTS_MAX 16

/* Which fields the transmitter changed (struct lb_trace_rec.changed). */
#define LB_TRACE_CH_ETH_DST 0x0001
#define LB_TRACE_CH_ETH_SRC 0x0002
#define LB_TRACE_CH_IP_SADDR 0x0004
#define LB_TRACE_CH_IP_DADDR 0x0008
#define LB_TRACE_CH_IP_TTL 0x0010
#define LB_TRACE_CH_IP_CSUM 0x0020
#define LB_TRACE_CH_SPORT 0x0040
#define LB_TRACE_CH_DPORT 0x0080
#define LB_TRACE_CH_L4_CSUM 0x0100
#define LB_TRACE_CH_ENCAP 0x0200	/* an outer IPv4 header (IPIP) was added */
#define LB_TRACE_CH_ICMP 0x0400		/* the packet was turned into an ICMP error to its sender */

/* One dest of the service as the scheduler found it (before it ran), in list order. */
struct lb_trace_dest {
	int32_t id;
	int32_t weight;
	uint32_t activeconns;
	uint32_t inactconns;
	uint32_t flags;		/* LB_DEST_F_* */
	uint16_t af;
	uint16_t port;		/* host order */
	uint8_t addr[16];
};

struct lb_trace_rec {
	uint64_t seq;		/* 1, 2, ... over the core's life; a reader asks for records after one */
	uint64_t now_ns;
	/* the packet as it arrived */
	uint16_t af;
	uint8_t proto;
	uint8_t tcp_flags;
	uint8_t saddr[16];
	uint8_t daddr[16];
	uint16_t sport;		/* host order */
	uint16_t dport;
	uint8_t in_port;
	uint8_t template_hit;	/* persistence: an existing template chose the dest, the scheduler did not run */
	uint16_t len_in;
	/* the service it matched */
	int32_t svc_id;
	char sched[16];
	uint32_t svc_flags;
	uint32_t num_dests;	/* dests on the service's list (the snapshot holds the first LB_TRACE_DESTS_MAX) */
	uint32_t n_snap;
	struct lb_trace_dest dests[16];
	/* the decision */
	int32_t dest_id;	/* -1: none (no dest available, table full, ...) */
	uint16_t fwd;		/* LB_FWD_* of the new connection */
	uint8_t state_before;	/* the connection's protocol state before / after this packet */
	uint8_t state_after;
	uint8_t conn_daddr[16];	/* where the connection goes (RIP) and its port (host order) */
	uint16_t conn_dport;
	uint16_t len_out;
	/* the result */
	uint8_t verdict;	/* LB_VERDICT_* */
	uint8_t reason;		/* enum lb_reason */
	uint8_t out_port;
	uint8_t pad;
	uint32_t changed;	/* LB_TRACE_CH_* */
	uint8_t eth_dst[6];	/* the frame's Ethernet addresses as it leaves (verdict TX) */
	uint8_t eth_src[6];
	uint8_t out_daddr[16];	/* its (outer) IP destination as it leaves */
};

/* Arm for the next `count` new connections (0 disarms) from client `saddr` (NULL: any) to virtual address
 * `vaddr` (NULL: any) and port `vport` (host order, 0: any); addresses are 16 bytes, IPv4 in the first
 * 4, of family af (ignored when both are NULL).  Returns the sequence number of the last record written
 * so far (read after it to get only what this arming records), or -ENOMEM / -EINVAL. */
int64_t lb_trace_arm(lb_core *core, uint32_t count, uint16_t af, const uint8_t *saddr, const uint8_t *vaddr,
		     uint16_t vport);
/* New connections still to be traced (0: off). */
uint32_t lb_trace_remaining(lb_core *core);
/* Copy the records with seq > after still in the ring, oldest first, up to max; returns how many. */
int lb_trace_read(lb_core *core, uint64_t after, struct lb_trace_rec *out, int max);

#endif
