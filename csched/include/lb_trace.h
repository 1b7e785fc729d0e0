/*
 * lb_trace.h - the trace ring behind lb_trace_arm/lb_trace_read (lb_api_pkt.h), as process.c and
 * trace.c share it.  Internal, never in the cdef.  The kernel has no such ring: its nearest relatives are
 * the IP_VS_DBG_BUF lines ip_vs_core.c prints per scheduled connection; here the records are kept for
 * the control plane (`lb trace`) instead of a log, and only for connections someone asked about.
 */
#ifndef LB_TRACE_H
#define LB_TRACE_H
#include "lb_pkt.h"

struct lb_trace {
	uint32_t left;			/* new connections still to trace; 0 = off */
	uint16_t af;			/* of the filter addresses */
	bool has_saddr, has_vaddr;
	union lb_addr saddr;		/* client filter */
	union lb_addr vaddr;		/* virtual address filter */
	uint16_t vport_net;		/* virtual port filter, network order; 0 = any */
	uint64_t seq;			/* sequence number of the last record written */
	struct lb_trace_rec ring[LB_TRACE_RING];
};

/* process.c: the core's trace state (allocated with the packet-path state), or NULL without memory. */
struct lb_trace *lb_pkt_trace(struct lb_core *core);

/* trace.c */
/* Does a new-connection packet pass the filter? (call only when t->left != 0) */
bool lb_trace_match(const struct lb_trace *t, const struct lb_pkt *p);
/* Take the next ring slot for p (one of t->left), fill in the flow, the service and its dests as the
 * scheduler is about to see them. */
struct lb_trace_rec *lb_trace_begin(struct lb_trace *t, const struct lb_pkt *p, const struct lb_service *svc,
				    uint64_t now);
/* The connection the packet created (before its first packet went through the state machine). */
void lb_trace_conn(struct lb_trace_rec *r, const struct lb_conn *cp, bool template_hit);
/* The verdict and what the transmitter changed: `before` holds the first blen bytes of the frame as it
 * arrived (IP header at l3_off, L4 at l4_off, protocol proto). */
void lb_trace_end(struct lb_trace_rec *r, const struct lb_pkt *p, const uint8_t *before, uint32_t blen,
		  uint16_t l3_off, uint16_t l4_off, uint8_t proto);

/* schedule.c: lb_conn_schedule that also says whether a persistence template chose the dest. */
struct lb_conn *lb_conn_schedule_traced(struct lb_core *core, struct lb_service *svc,
					const struct lb_flow_key *k, uint64_t now, int *reason, bool *template_hit);

#endif
