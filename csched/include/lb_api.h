/*
 * lb_api.h - the cffi surface of the pyvs C core (lead-owned part).
 *
 * Everything Python may call lives in lb_api*.h; csched/build_csched.py feeds these files, with the
 * preprocessor lines stripped, to cffi's cdef, so they must stay cdef-clean: no #if blocks inside,
 * no macros other than plain integer #defines, no inline functions.  Struct layout rules: fixed-size
 * fields only, host byte order for ports and integers, network byte order for addresses (16 bytes,
 * IPv4 in the first 4 like the kernel's union nf_inet_addr).
 *
 * Errors: 0 or -errno with IPVS's meanings (ESRCH no such service, ENOENT no such dest or scheduler,
 * EEXIST already exists, EINVAL bad argument, ENOSPC table full, EBUSY).
 * Kernel counterparts: include/uapi/linux/ip_vs.h, net/netfilter/ipvs/ip_vs_ctl.c.
 */
#ifndef LB_API_H
#define LB_API_H
#include <stdint.h>
#include <stddef.h>

#define LB_ABI_VERSION 2

typedef struct lb_core lb_core;

/* Address families and protocols use the Linux values. */
#define LB_AF_INET 2
#define LB_AF_INET6 10
#define LB_PROTO_TCP 6
#define LB_PROTO_UDP 17
#define LB_PROTO_SCTP 132

/* Forwarding methods: the kernel's IP_VS_CONN_F_FWD_MASK values. */
#define LB_FWD_MASQ 0
#define LB_FWD_LOCALNODE 1
#define LB_FWD_TUNNEL 2
#define LB_FWD_DROUTE 3
#define LB_FWD_BYPASS 4

/* Service flags: the kernel's IP_VS_SVC_F_* bits. */
#define LB_SVC_F_PERSISTENT 0x0001
#define LB_SVC_F_HASHED 0x0002
#define LB_SVC_F_ONEPACKET 0x0004
#define LB_SVC_F_SCHED1 0x0008
#define LB_SVC_F_SCHED2 0x0010
#define LB_SVC_F_SCHED3 0x0020
#define LB_SVC_F_SCHED_SH_FALLBACK 0x0008
#define LB_SVC_F_SCHED_SH_PORT 0x0010
#define LB_SVC_F_SCHED_MH_FALLBACK 0x0008
#define LB_SVC_F_SCHED_MH_PORT 0x0010

/* Destination flags: the kernel's IP_VS_DEST_F_* bits. */
#define LB_DEST_F_AVAILABLE 0x0001
#define LB_DEST_F_OVERLOAD 0x0002

#define LB_SCHED_NAME_MAX 16

struct lb_core_cfg {
	uint32_t conn_max;	/* connection table capacity (conns + templates); fixed for the core's life */
	uint32_t svc_max;	/* number of virtual services */
	uint32_t dest_max;	/* number of destinations over all services (incl. ones kept for live conns) */
	uint32_t reserved;
	uint64_t hash_seed;	/* seed of the connection hash; the C core has no RNG of its own */
	uint64_t rng_seed;	/* seed of the schedulers' PRNG (twos) */
};

/* A virtual service: -t/-u ADDR:PORT (fwmark == 0) or -f MARK (then addr/port are zero). */
struct lb_svc_cfg {
	uint16_t af;
	uint16_t proto;
	uint8_t addr[16];
	uint16_t port;
	uint16_t pad;
	uint32_t fwmark;
	char sched[LB_SCHED_NAME_MAX];
	uint32_t flags;		/* LB_SVC_F_* */
	uint32_t timeout;	/* persistence timeout, seconds (used when LB_SVC_F_PERSISTENT) */
	uint32_t netmask;	/* persistence granularity: IPv4 mask in host order, IPv6 prefix length */
};

/* A real server of a service. */
struct lb_dest_cfg {
	uint16_t af;
	uint16_t port;
	uint8_t addr[16];
	uint32_t fwd;		/* LB_FWD_* */
	int32_t weight;
	uint32_t u_threshold;	/* 0 = no upper connection limit */
	uint32_t l_threshold;	/* 0 = none */
};

struct lb_stats {
	uint64_t conns;
	uint64_t inpkts;
	uint64_t outpkts;
	uint64_t inbytes;
	uint64_t outbytes;
};

/* Estimated rates per second (ipvsadm --rate): the kernel estimator's averages, unscaled. */
struct lb_rates {
	uint64_t cps;
	uint64_t inpps;
	uint64_t outpps;
	uint64_t inbps;
	uint64_t outbps;
};

struct lb_svc_info {
	struct lb_svc_cfg cfg;
	uint32_t num_dests;
	int32_t id;
	struct lb_stats stats;
	struct lb_rates rates;
};

struct lb_dest_info {
	struct lb_dest_cfg cfg;
	int32_t id;		/* stable while the dest exists; what lb_sched_batch returns */
	uint32_t flags;		/* LB_DEST_F_* */
	uint32_t activeconns;
	uint32_t inactconns;
	uint32_t persistconns;
	int32_t last_weight;
	struct lb_stats stats;
	struct lb_rates rates;
};

/* A flow as a scheduler sees a new connection: host-order ports, network-order addresses. */
struct lb_flow {
	uint16_t af;
	uint16_t proto;
	uint8_t saddr[16];
	uint8_t daddr[16];
	uint16_t sport;
	uint16_t dport;
};

/* Connection accounting events on a destination (kernel ip_vs_bind_dest / ip_vs_unbind_dest and the
 * active<->inactive moves of the protocol state machines).  Used by the conn table, and by
 * `lb simulate` and tests to put a destination into a given load without packets. */
#define LB_EV_BIND_ACTIVE 0
#define LB_EV_BIND_INACTIVE 1
#define LB_EV_BIND_TEMPLATE 2
#define LB_EV_TO_INACTIVE 3
#define LB_EV_TO_ACTIVE 4
#define LB_EV_UNBIND_ACTIVE 5
#define LB_EV_UNBIND_INACTIVE 6
#define LB_EV_UNBIND_TEMPLATE 7

lb_core *lb_core_new(const struct lb_core_cfg *cfg);
void lb_core_free(lb_core *core);
uint32_t lb_abi_version(void);
/* sizeof a cffi-visible struct, for the import-time check: 0 lb_svc_cfg, 1 lb_dest_cfg, 2 lb_svc_info,
 * 3 lb_dest_info, 4 lb_flow, 5 lb_core_cfg, 6 lb_conn_info, 7 lb_conn_stats, 8 lb_trace_rec,
 * 9 lb_pump_cfg, 10 lb_pump_port_stats, 11 lb_batch; 0 for anything else. */
size_t lb_sizeof(int which);

/* Scheduler registry (built from LB_SCHED_LIST). */
int lb_sched_count(void);
const char *lb_sched_name(int i);
uint32_t lb_sched_flags_ok(int i);	/* which LB_SVC_F_SCHED* flags the scheduler accepts */

/* Services.  The key fields of cfg (af, proto, addr, port, fwmark) name the service. */
int lb_svc_add(lb_core *core, const struct lb_svc_cfg *cfg);
int lb_svc_edit(lb_core *core, const struct lb_svc_cfg *cfg);
int lb_svc_del(lb_core *core, const struct lb_svc_cfg *key);
int lb_svc_flush(lb_core *core);
int lb_svc_zero(lb_core *core, const struct lb_svc_cfg *key);	/* key NULL: all services */
int lb_svc_list(lb_core *core, struct lb_svc_info *out, int max);	/* returns count (may be > max) */
int lb_svc_get(lb_core *core, const struct lb_svc_cfg *key, struct lb_svc_info *out);

/* One 2-second step of the rate estimator over every service and live dest (ip_vs_est.c's timer; the
 * core reads no clock, the control plane calls it every 2 s).  A block starts at its counters of the
 * moment it was added (or revived); zeroing resets it (ip_vs_zero_estimator). */
void lb_est_tick(lb_core *core);

/* Destinations of one service; list order is the kernel's (newest first). */
int lb_dest_add(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *dest);
int lb_dest_edit(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *dest);
int lb_dest_del(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *dest);
int lb_dest_list(lb_core *core, const struct lb_svc_cfg *svc, struct lb_dest_info *out, int max);
int lb_dest_info_by_id(lb_core *core, int32_t id, struct lb_dest_info *out);
/* The id of a dest of a service (as lb_dest_info.id), or -ESRCH (no service) / -ENOENT (no such dest). */
int lb_dest_id(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *dest);
int lb_dest_conn_event(lb_core *core, int32_t dest_id, int event);

/* Pick a destination for each flow as a new connection on service svc would get (scheduler only:
 * no persistence, no connection is created, no counters move).  out[i] = dest id or -1.
 * Returns n, or -errno. */
int lb_sched_batch(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_flow *flows,
		   uint32_t n, int32_t *out, uint64_t now_ns);

/* Housekeeping that the kernel does from timers (lblc/lblcr table aging): call now and then. */
void lb_core_tick(lb_core *core, uint64_t now_ns);

/* The packet batch API (struct lb_batch, lb_process_batch, verdicts) is in lb_api_pkt.h; the
 * connection table's (dump, timeouts, batch lookups) in lb_api_conn.h. */

/* Ports (links) of the balancer: index 0..7, its MAC, its IPv4 address on that link (outer source
 * of IPIP, source of ICMP errors), the link MTU.  Set by the control plane before traffic. */
int lb_port_set(lb_core *core, int port, const uint8_t *mac6, const uint8_t *ip4, uint32_t mtu);
/* Where a destination is reached: egress port and next-hop MAC (the real server's own MAC on a
 * shared segment; the router's otherwise).  The control plane resolves it (ARP / neighbour table). */
int lb_dest_set_nexthop(lb_core *core, int32_t dest_id, int port, const uint8_t *mac6);

#endif
