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

#endif
