/*
 * lb_conn.h - the connection table as the rest of the C core uses it (contract between conn.c /
 * proto_*.c / schedule.c and the packet path).  Kernel counterparts: ip_vs_conn.c (hash, templates,
 * expiry), ip_vs_core.c (ip_vs_schedule, persistence in ip_vs_sched_persist), ip_vs_proto_tcp.c and
 * ip_vs_proto_udp.c (state machines and timeouts).
 *
 * struct lb_conn is defined by conn.c's owner below; the packet path only uses the fields listed in
 * the comment of struct lb_conn and the functions declared here.
 */
#ifndef LB_CONN_H
#define LB_CONN_H
#include "lb_core.h"

struct lb_conn_table;

/* Connection flags (a subset of the kernel's IP_VS_CONN_F_*). */
#define LB_CONN_F_TEMPLATE 0x1000	/* persistence template */
#define LB_CONN_F_INACTIVE 0x0020	/* counted as inactive on its dest */
#define LB_CONN_F_NOOUTPUT 0x0004	/* DR/TUN: the balancer never sees the replies */
#define LB_CONN_F_ONE_PACKET 0x2000

/* One connection (or persistence template).  The packet path reads the addresses, fwd, dest and
 * cl_*, and adds to the counters; everything else belongs to conn.c / proto_*.c. */
struct lb_conn {
	/* identity (network byte order), as the kernel's ip_vs_conn: c = client, v = virtual, d = dest */
	uint16_t af;
	uint8_t proto;
	uint8_t state;			/* LB_TCP_S_* / LB_UDP_S_* (proto_*.c) */
	uint32_t flags;			/* LB_CONN_F_* */
	union lb_addr caddr, vaddr, daddr;
	uint16_t cport, vport, dport;
	uint16_t fwd;			/* LB_FWD_* chosen at creation from the dest (ip_vs_bind_xmit) */
	uint32_t fwmark;
	struct lb_dest *dest;		/* NULL only for a conn whose dest vanished */
	struct lb_conn *control;	/* persistence template this conn hangs on, or NULL */
	uint32_t n_control;		/* conns hanging on this template */
	uint32_t timeout_s;		/* current state's timeout */
	uint64_t expires;		/* ns; now + timeout */
	/* where the client side is: the port the first packet came in on and the MAC it came from
	 * (NAT replies and ICMP errors go back there) */
	uint8_t cl_port;
	uint8_t cl_mac[6];
	uint8_t old_state;		/* for callers that report transitions (trace) */
	/* counters (ipvsadm -Lnc shows none; dumps and trace may) */
	uint64_t pkts_in, pkts_out, bytes_in, bytes_out;
	/* table bookkeeping, owned by conn.c */
	uint32_t hnext_in, hnext_out;	/* hash chains (indices; UINT32_MAX = end) */
	uint32_t wheel_next, wheel_prev;	/* timer wheel slot list */
	uint32_t hash_in, hash_out;
};

/* Create / destroy a table of capacity max (connections + templates), hash keyed with seed.
 * Returns NULL on allocation failure.  Memory is allocated here once; never on the hot path. */
struct lb_conn_table *lb_conn_table_new(uint32_t max, uint64_t seed);
void lb_conn_table_free(struct lb_core *core, struct lb_conn_table *t);

/* Inbound lookup: a packet from a client (k->saddr:sport) to a virtual service (k->daddr:dport).
 * Also expires the entry it finds if it is past its time (then returns NULL). */
struct lb_conn *lb_conn_lookup_in(struct lb_core *core, const struct lb_flow_key *k, uint64_t now);
/* Outbound lookup (NAT replies): from a real server (k->saddr:sport = RIP:rport) to the client. */
struct lb_conn *lb_conn_lookup_out(struct lb_core *core, const struct lb_flow_key *k, uint64_t now);

/* A new connection for a packet that missed: persistence templates, then svc's scheduler, then
 * insert (both tuples), bind to the dest (active/inactive accounting), set fwd from the dest.
 * On failure returns NULL with *reason = LB_R_NO_DEST or LB_R_CONN_FULL. */
struct lb_conn *lb_conn_schedule(struct lb_core *core, struct lb_service *svc, const struct lb_flow_key *k,
				 uint64_t now, int *reason);

/* Protocol state machine, one call per packet of a tracked connection.  dir: 0 = client->server
 * (input), 1 = server->client (output, NAT only).  tcp_flags: the TCP header's flag byte (0 for UDP).
 * Updates state, timeout/expiry, the dest's active/inactive counts. */
void lb_conn_state(struct lb_core *core, struct lb_conn *cp, int dir, uint8_t tcp_flags, uint64_t now);

/* Expire up to budget entries whose time has come (amortised O(1): timer wheel); returns the number
 * expired.  Called by the packet path at the start of each batch and by lb_core_tick. */
uint32_t lb_conn_expire(struct lb_core *core, uint64_t now, uint32_t budget);

/* Drop every entry (lb_core_free, lb_svc_flush with conns). */
void lb_conn_flush(struct lb_core *core);

#endif
