/*
 * lb_types.h - internal types of the C core (never in the cffi cdef): addresses, the flow key a
 * packet is looked up and scheduled by, services and destinations.  Kernel counterparts:
 * include/net/ip_vs.h (struct ip_vs_service, struct ip_vs_dest, struct ip_vs_iphdr).
 */
#ifndef LB_TYPES_H
#define LB_TYPES_H
#include <stdbool.h>
#include <stdint.h>
#include "lb_api.h"
#include "lb_list.h"

/* The kernel's union nf_inet_addr: IPv4 in ip (network order), IPv6 in ip6/b. */
union lb_addr {
	uint32_t ip;
	uint32_t ip6[4];
	uint8_t b[16];
};

static inline bool lb_addr_eq(uint16_t af, const union lb_addr *a, const union lb_addr *b)
{
	if (af == LB_AF_INET)
		return a->ip == b->ip;
	return a->ip6[0] == b->ip6[0] && a->ip6[1] == b->ip6[1] && a->ip6[2] == b->ip6[2] &&
	       a->ip6[3] == b->ip6[3];
}

/* What a scheduler and the connection table see of a packet: the kernel's ip_vs_iphdr plus ports.
 * Addresses and ports in network byte order. */
struct lb_flow_key {
	uint16_t af;
	uint8_t proto;
	uint8_t pad;
	uint32_t fwmark;
	union lb_addr saddr;
	union lb_addr daddr;
	uint16_t sport;
	uint16_t dport;
};

struct lb_service;
struct lb_sched_ops;

/* The rate estimator of one stats block (kernel ip_vs_est.c): the counters at the previous 2-second
 * step and the smoothed, scaled averages (conns/inpkts/outpkts << 10, bytes << 5, as the kernel keeps
 * them).  estimator.c steps every live block on lb_est_tick. */
struct lb_est {
	uint64_t last[5];
	int64_t avg[5];
};

/* A real server.  Lives in the core's dest pool; linked on its service's list while it is part of
 * the service, and kept (off the list, "in the trash" as the kernel says) while connections still
 * reference it.  The fields a scheduler's list walk reads come first, so that they share the first
 * cache line with the list links. */
struct lb_dest {
	struct lb_list n_list;		/* on svc->destinations, newest first */
	uint32_t flags;			/* LB_DEST_F_AVAILABLE | LB_DEST_F_OVERLOAD */
	int32_t weight;
	uint32_t activeconns;
	uint32_t inactconns;
	int32_t last_weight;		/* the kernel's last_weight (mh/sh keep quiesced dests in tables) */
	uint32_t persistconns;
	struct lb_service *svc;
	int32_t id;			/* index in the core's dest pool */
	uint32_t scan_idx;		/* position in svc->scan while linked (== position in the list) */
	union lb_addr addr;		/* network order */
	uint16_t af;
	uint16_t port;			/* network order */
	uint32_t conn_flags;		/* LB_FWD_* forwarding method */
	uint32_t u_threshold;
	uint32_t l_threshold;
	uint32_t refcnt;		/* connections bound to it */
	bool in_use;			/* pool slot taken */
	bool linked;			/* on its service's list (false: trash) */
	/* Next hop, filled by the control plane (lb_dest_set_nexthop): egress port and MAC. */
	int32_t nh_port;		/* -1: unresolved */
	uint8_t nh_mac[6];
	void *sched_data;		/* per-dest scheduler state, if a scheduler wants it */
	struct lb_stats stats;
	struct lb_est est;
};

/* What the list-scanning schedulers (lc wlc sed nq fo ovf twos) read of a dest, copied into one
 * compact array per service in list order: svc->scan[i] mirrors the i-th dest of svc->destinations
 * (the newest first), svc->scan_dest[i] is that dest.  service.c keeps it equal to the dests'
 * own fields on every add/delete/edit and on every accounting change (lb_dest_account), so a
 * scheduler may read either; scanning 16-byte entries in a row instead of following list pointers
 * through ~200-byte dests is what makes a 1000-dest walk cheap.  Same order, same values: the
 * picks cannot differ from a list walk. */
struct lb_dest_scan {
	uint32_t flags;
	int32_t weight;
	uint32_t activeconns;
	uint32_t inactconns;
};

/* A virtual service. */
struct lb_service {
	struct lb_service *hnext;	/* service hash chain */
	struct lb_list destinations;
	uint32_t num_dests;		/* linked dests: the list's length and svc->scan's */
	uint32_t scan_cap;		/* room in scan / scan_dest */
	struct lb_dest_scan *scan;	/* see struct lb_dest_scan */
	struct lb_dest **scan_dest;
	uint16_t af;
	uint16_t proto;
	union lb_addr addr;		/* network order */
	uint16_t port;			/* network order */
	uint32_t fwmark;
	uint32_t flags;			/* LB_SVC_F_* */
	uint32_t timeout_s;		/* persistence timeout */
	uint32_t netmask;		/* v4: host-order mask; v6: prefix length */
	const struct lb_sched_ops *sched;
	void *sched_data;
	struct lb_core *core;
	int32_t id;
	bool in_use;
	uint32_t ndests_ref;		/* dest slots (listed or trashed) whose ->svc is this */
	struct lb_stats stats;
	struct lb_est est;
};

static inline uint32_t lb_dest_totalconns(const struct lb_dest *d) { return d->activeconns + d->inactconns; }

#define lb_for_each_dest(d, svc) \
	for ((d) = lb_container_of((svc)->destinations.next, struct lb_dest, n_list); \
	     &(d)->n_list != &(svc)->destinations; \
	     (d) = lb_container_of((d)->n_list.next, struct lb_dest, n_list))

#endif
