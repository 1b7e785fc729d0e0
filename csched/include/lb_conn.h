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
#include "lb_api_conn.h"

struct lb_conn_table;

/* Connection flags: the kernel's IP_VS_CONN_F_* values (include/uapi/linux/ip_vs.h), so dumps show
 * the same bits.  The forwarding method is kept apart in lb_conn.fwd. */
#define LB_CONN_F_HASHED 0x0040		/* on the hash chains (ONE_PACKET conns are not) */
#define LB_CONN_F_NOOUTPUT 0x0080	/* DR/TUN: the balancer never sees the replies */
#define LB_CONN_F_INACTIVE 0x0100	/* counted as inactive on its dest */
#define LB_CONN_F_TEMPLATE 0x1000	/* persistence template */
#define LB_CONN_F_ONE_PACKET 0x2000	/* UDP one-packet scheduling (-o): dropped after its packet */
#define LB_CONN_F_USED 0x80000000u	/* pool slot taken (ours, never dumped) */

/* TCP states: the kernel's IP_VS_TCP_S_* (proto_tcp.c); UDP has the one state LB_UDP_S_NORMAL. */
enum {
	LB_TCP_S_NONE, LB_TCP_S_ESTABLISHED, LB_TCP_S_SYN_SENT, LB_TCP_S_SYN_RECV, LB_TCP_S_FIN_WAIT,
	LB_TCP_S_TIME_WAIT, LB_TCP_S_CLOSE, LB_TCP_S_CLOSE_WAIT, LB_TCP_S_LAST_ACK, LB_TCP_S_LISTEN,
	LB_TCP_S_SYNACK, LB_TCP_S_LAST
};
#define LB_UDP_S_NORMAL 0
#define LB_CONN_NONE UINT32_MAX		/* "no entry" in index fields */

/* One connection (or persistence template), 136 bytes.  The packet path reads the addresses, fwd,
 * dest and cl_*, and adds to the counters; everything else belongs to conn.c / proto_*.c.  Links are
 * 32-bit pool indices, not pointers, so that 10 M entries fit in 1.3 GiB.  Everything an inbound
 * lookup reads (identity, hnext, expires, dest) is in the first 64 bytes, so a hit touches at most
 * two cache lines of the entry (one when the entry starts on a line). */
struct lb_conn {
	/* identity (network byte order), as the kernel's ip_vs_conn: c = client, v = virtual, d = dest.
	 * A template has caddr = the client's masked network, cport 0, vport 0 for port-zero/FTP
	 * services; a fwmark template has proto 0 and vaddr = the mark. */
	uint16_t af;
	uint8_t proto;
	uint8_t state;			/* LB_TCP_S_* / LB_UDP_S_* (proto_*.c) */
	uint32_t flags;			/* LB_CONN_F_* */
	union lb_addr caddr, vaddr;
	uint16_t cport, vport;
	uint32_t hnext;			/* hash chain (index; LB_CONN_NONE = end) */
	uint64_t expires;		/* ns; last packet + timeout (the kernel re-arms at each put) */
	struct lb_dest *dest;		/* holds a reference (lb_dest_hold) until the entry goes */
	union lb_addr daddr;
	uint16_t dport;
	uint16_t fwd;			/* LB_FWD_* chosen at creation from the dest (ip_vs_bind_xmit) */
	uint32_t control;		/* pool index of the template this conn hangs on, or LB_CONN_NONE */
	uint32_t n_control;		/* conns hanging on this template */
	uint32_t timeout_s;		/* current state's timeout (templates: the service's -p) */
	/* where the client side is: the port the first packet came in on and the MAC it came from
	 * (NAT replies and ICMP errors go back there) */
	uint8_t cl_port;
	uint8_t cl_mac[6];
	uint8_t old_state;		/* for callers that report transitions (trace) */
	uint32_t wheel_next, wheel_prev;	/* timer wheel slot list (conn.c) */
	/* counters (ipvsadm -Lnc shows none; dumps and trace may) */
	uint32_t pkts_in, pkts_out;
	uint64_t bytes_in, bytes_out;
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

/* Done with cp for this packet: a ONE_PACKET conn is expired right here (kernel ip_vs_conn_put with
 * IP_VS_CONN_F_ONE_PACKET); others are left to their timer.  Call after xmit. */
void lb_conn_put(struct lb_core *core, struct lb_conn *cp);

/* proto_tcp.c / proto_udp.c: the per-protocol state machines lb_conn_state dispatches to.  They set
 * cp->state, cp->timeout_s and move the dest's active/inactive counts; conn.c sets the expiry. */
void lb_tcp_state_transition(struct lb_core *core, struct lb_conn *cp, int dir, uint8_t tcp_flags);
void lb_udp_state_transition(struct lb_core *core, struct lb_conn *cp);
uint32_t lb_tcp_timeout(const struct lb_core *core, int state);
const char *lb_tcp_state_name(int state);
bool lb_tcp_state_active(int state);

/* conn.c internals shared with schedule.c */
struct lb_conn *lb_conn_new(struct lb_core *core, uint16_t af, uint8_t proto, const union lb_addr *caddr,
			    uint16_t cport, const union lb_addr *vaddr, uint16_t vport, struct lb_dest *dest,
			    uint16_t dport, uint32_t flags, uint64_t now);
struct lb_conn *lb_conn_template_get(struct lb_core *core, uint16_t af, uint8_t proto,
				     const union lb_addr *snet, const union lb_addr *vaddr, uint16_t vport,
				     uint64_t now);
void lb_conn_set_expires(struct lb_core *core, struct lb_conn *cp, uint64_t expires);
void lb_conn_rehash(struct lb_core *core, struct lb_conn *cp, uint16_t cport, uint16_t vport, uint16_t dport);
uint32_t lb_conn_index(const struct lb_core *core, const struct lb_conn *cp);
struct lb_conn *lb_conn_at(struct lb_core *core, uint32_t idx);
void lb_conn_count_refused(struct lb_core *core);

#endif
