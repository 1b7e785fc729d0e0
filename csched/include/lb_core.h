/*
 * lb_core.h - struct lb_core (opaque to Python) and the internal functions the C files share.
 * One lb_core is one worker's whole state: services, destinations, connection table, ports,
 * timeouts, counters.  Single-threaded: the control plane changes it between batches.
 */
#ifndef LB_CORE_H
#define LB_CORE_H
#include "lb_types.h"
#include "lb_sched.h"

#define LB_SVC_HASH_BITS 8
#define LB_SVC_HASH_SIZE (1u << LB_SVC_HASH_BITS)
#define LB_MAX_PORTS 8

struct lb_conn_table;	/* conn.c */

/* One network port of the balancer (an AF_PACKET interface or a TAP device). */
struct lb_port {
	bool used;
	uint8_t mac[6];
	uint32_t ip;		/* the balancer's IPv4 address on this link (network order), 0 = none */
	uint32_t mtu;
};

struct lb_core {
	struct lb_core_cfg cfg;
	struct lb_service *svcs;		/* pool of cfg.svc_max */
	struct lb_service *svc_tab[LB_SVC_HASH_SIZE];	/* by proto/addr/port */
	struct lb_service *fwm_tab[LB_SVC_HASH_SIZE];	/* by fwmark */
	uint32_t num_svcs;
	struct lb_dest *dests;			/* pool of cfg.dest_max */
	uint32_t num_dests;			/* dest slots in use (on a service list or in the trash) */
	uint32_t num_linked;			/* of those, on a service list; the rest are the trash */
	uint32_t svc_hint, dest_hint;		/* where the search for a free pool slot starts */
	struct lb_conn_table *conns;
	uint64_t rng;				/* scheduler PRNG state */
	struct lb_port ports[LB_MAX_PORTS];
	/* Protocol timeouts in seconds (ipvsadm --set tcp tcpfin udp); applied to new state changes. */
	uint32_t timeout_tcp, timeout_tcpfin, timeout_udp;
	void *ext;				/* per-subsystem state (process.c) */
};

/* service.c */
struct lb_service *lb_svc_find(struct lb_core *core, uint16_t af, uint8_t proto, const union lb_addr *addr,
			       uint16_t port_net);
struct lb_service *lb_svc_find_fwmark(struct lb_core *core, uint16_t af, uint32_t fwmark);
/* Connection accounting on a destination, as ip_vs_bind_dest/ip_vs_unbind_dest and the protocol
 * state machines do it, including the OVERLOAD flag and its hysteresis. event: LB_EV_*. */
void lb_dest_account(struct lb_dest *dest, int event);
/* Drop one connection reference; frees a trashed dest when the last one goes. */
void lb_dest_put(struct lb_core *core, struct lb_dest *dest);
void lb_dest_hold(struct lb_dest *dest);
/* Copy between the API's lb_svc_cfg/lb_dest_cfg and internal fields. */
void lb_addr_from_cfg(union lb_addr *a, const uint8_t src[16], uint16_t af);
/* estimator.c: (re)start a block at its current counters; the rates it reports now. */
void lb_est_start(struct lb_est *e, const struct lb_stats *s);
void lb_est_read(const struct lb_est *e, struct lb_rates *out);

#endif
