/*
 * lb_api_conn.h - the cffi surface of the connection table (conn.c, schedule.c, proto_*.c):
 * the dump behind `ipvsadm -Lnc`, `ipvsadm --set tcp tcpfin udp`, counters, and batch calls that
 * drive the table without packets (lb simulate -p, tests, benchmarks).  cdef-clean: see lb_api.h.
 * Kernel counterparts: /proc/net/ip_vs_conn (ip_vs_conn.c), ip_vs_set_timeout (ip_vs_ctl.c).
 */
#ifndef LB_API_CONN_H
#define LB_API_CONN_H
#include <stdint.h>
#include <stddef.h>
#include "lb_api.h"

/* Bits of lb_conn_info.flags: the kernel's IP_VS_CONN_F_* (a subset). */
#define LB_CONNF_HASHED 64
#define LB_CONNF_NOOUTPUT 128
#define LB_CONNF_INACTIVE 256
#define LB_CONNF_TEMPLATE 4096
#define LB_CONNF_ONE_PACKET 8192

/* TCP header flag bits, as the TCP header carries them (what tcp_flags arrays hold). */
#define LB_TCPF_FIN 1
#define LB_TCPF_SYN 2
#define LB_TCPF_RST 4
#define LB_TCPF_PSH 8
#define LB_TCPF_ACK 16

/* One entry as `ipvsadm -Lnc` shows it.  Addresses network order (IPv4 in the first 4 bytes), ports
 * host order.  A template has the client's masked network in caddr and cport 0. */
struct lb_conn_info {
	uint16_t af;
	uint8_t proto;		/* 0 for a fwmark template (the kernel's IPPROTO_IP) */
	uint8_t state;
	uint32_t flags;		/* LB_CONNF_* */
	uint8_t caddr[16];
	uint8_t vaddr[16];
	uint8_t daddr[16];
	uint16_t cport;
	uint16_t vport;
	uint16_t dport;
	uint16_t fwd;		/* LB_FWD_* */
	uint64_t expires_ms;	/* remaining lifetime at the dump's now */
	int32_t dest_id;	/* -1: none */
	uint32_t n_control;	/* conns hanging on this template */
	uint32_t timeout_s;	/* the entry's current timeout */
	uint32_t index;		/* pool index (stable while the entry lives) */
	uint32_t control;	/* pool index of its template, or 4294967295 */
	uint32_t pkts_in;
	uint32_t pkts_out;
	uint32_t pad;
	uint64_t bytes_in;
	uint64_t bytes_out;
};

struct lb_conn_stats {
	uint64_t entries;	/* live entries, templates included */
	uint64_t templates;
	uint64_t refused;	/* new entries refused because the table was full */
	uint64_t created;
	uint64_t expired;
	uint64_t capacity;	/* cfg.conn_max */
	uint64_t entry_size;	/* sizeof(struct lb_conn) */
	uint64_t buckets;
	uint64_t bytes;		/* everything the table allocated at creation */
};

/* Dump up to max entries starting at *cursor (0 to begin); advances *cursor.  Entries whose time
 * has passed at now_ns are skipped (a template still controlling conns is shown, with 0 left).
 * Returns the number written; 0 when the walk is over. */
size_t lb_conn_dump(lb_core *core, uint64_t *cursor, struct lb_conn_info *out, size_t max, uint64_t now_ns);

/* ipvsadm --set tcp tcpfin udp: seconds, 0 = leave unchanged; used from the next state change or
 * packet of each connection on.  -EINVAL above the kernel's INT_MAX/HZ (HZ = 250). */
int lb_timeout_set(lb_core *core, uint32_t tcp, uint32_t tcpfin, uint32_t udp);
void lb_timeout_get(lb_core *core, uint32_t *tcp, uint32_t *tcpfin, uint32_t *udp);

/* The kernel's state names (/proc/net/ip_vs_conn): "ESTABLISHED", "SYN_RECV", "UDP", ... */
const char *lb_conn_state_name(int proto, int state);
/* Timeout in seconds the TCP state machine gives state (with the current --set values). */
uint32_t lb_conn_tcp_timeout(lb_core *core, int state);

void lb_conn_get_stats(lb_core *core, struct lb_conn_stats *out);

/* For each flow, as its packet would: look the conn up (inbound); a TCP SYN on a TIME_WAIT/CLOSE
 * conn is rescheduled (conn_reuse_mode 1); on a miss, a TCP packet without SYN (or with RST) is not
 * scheduled; otherwise schedule on the service found for daddr:dport (persistence, scheduler,
 * create); then run the state machine with tcp_flags[i] (NULL: every TCP flow is a SYN).
 * dest_ids_out[i] = the conn's dest id, or -1.  Expires what is due at now first.  Returns the
 * number of conns created. */
int lb_conn_batch_schedule(lb_core *core, const struct lb_flow *flows, uint32_t n, int32_t *dest_ids_out,
			   const uint8_t *tcp_flags, uint64_t now_ns);
/* Inbound lookup only, no state change: dest id of each flow's conn, -1 if none (or expired).
 * Returns the number of hits. */
int lb_conn_batch_lookup(lb_core *core, const struct lb_flow *flows, uint32_t n, int32_t *dest_ids_out,
			 uint64_t now_ns);
/* A reply (server -> client) for each flow as given client->VIP: looks the conn up by its reply
 * tuple (dest addr:port -> client) and runs the output state machine with tcp_flags[i].
 * dest_ids_out[i] = dest id or -1.  Returns the number of hits. */
int lb_conn_batch_reply(lb_core *core, const struct lb_flow *flows, uint32_t n, int32_t *dest_ids_out,
			const uint8_t *tcp_flags, uint64_t now_ns);

uint32_t lb_conn_expire_now(lb_core *core, uint64_t now_ns, uint32_t budget);
void lb_conn_flush(lb_core *core);

#endif
