/*
 * schedule.c - a new connection for a packet that missed the table (kernel ip_vs_core.c
 * ip_vs_schedule and ip_vs_sched_persist): never for a client port 20 (active FTP data); for a
 * persistent service, find or make the template <proto, client & netmask, 0, vaddr, vport|0> and
 * reuse its dest while that dest is still available (the template is otherwise invalidated by
 * moving it to ports 65535, as ip_vs_check_template does); else ask the scheduler.  Creates the
 * conn (dest port, or the packet's port when the dest has none), links it to its template and
 * counts it in the service's and dest's stats.
 */
#include <string.h>
#include "lb_conn.h"
#include "lb_reason.h"
#include "lb_trace.h"

#define NS_PER_S 1000000000ull
#define FTPPORT_NET 0x1500	/* htons(21) */
#define FTPDATA_NET 0x1400	/* htons(20) */

static inline uint32_t to_net32(uint32_t v) { return __builtin_bswap32(v); }

/* ip_vs_conn_stats */
static void conn_stats(struct lb_conn *cp, struct lb_service *svc)
{
	if (cp->dest)
		cp->dest->stats.conns++;
	svc->stats.conns++;
}

/* ip_vs_check_template with expire_quiescent_template = 0 (the default): usable while its dest is
 * available; otherwise make it unfindable (ports 0xffff) and let it run out its time. */
static bool template_ok(struct lb_core *core, struct lb_conn *ct)
{
	if (ct->dest && (ct->dest->flags & LB_DEST_F_AVAILABLE))
		return true;
	if (ct->vport != 0xffff)
		lb_conn_rehash(core, ct, 0, 0xffff, 0xffff);
	return false;
}

/* The template is used: its timer restarts (ip_vs_conn_put). */
static void template_put(struct lb_core *core, struct lb_conn *ct, uint64_t now)
{
	lb_conn_set_expires(core, ct, now + (uint64_t)ct->timeout_s * NS_PER_S);
}

static void masked_net(union lb_addr *snet, const struct lb_service *svc, const union lb_addr *src)
{
	memset(snet, 0, sizeof(*snet));
	if (svc->af == LB_AF_INET) {
		snet->ip = src->ip & to_net32(svc->netmask);
		return;
	}
	uint32_t plen = svc->netmask > 128 ? 128 : svc->netmask;
	for (uint32_t i = 0; i < 16; i++) {
		uint32_t bits = plen > i * 8 ? plen - i * 8 : 0;
		uint8_t m = bits >= 8 ? 0xff : (uint8_t)(0xff00u >> bits);
		snet->b[i] = src->b[i] & m;
	}
}

static struct lb_conn *sched_persist(struct lb_core *core, struct lb_service *svc, const struct lb_flow_key *k,
				     uint64_t now, int *reason, bool *template_hit)
{
	union lb_addr snet, fwm;
	masked_net(&snet, svc, &k->saddr);
	uint8_t proto = k->proto;
	const union lb_addr *vaddr = &k->daddr;
	uint16_t vport = 0;
	if (k->dport == svc->port) {
		if (svc->port != FTPPORT_NET)
			vport = k->dport;
	} else if (svc->fwmark) {
		memset(&fwm, 0, sizeof(fwm));
		fwm.ip = to_net32(svc->fwmark);
		proto = 0;
		vaddr = &fwm;
	}
	struct lb_dest *dest;
	struct lb_conn *ct = lb_conn_template_get(core, svc->af, proto, &snet, vaddr, vport, now);
	if (!ct || !template_ok(core, ct)) {
		struct lb_sched_ctx ctx = { .now = now, .rng = &core->rng };
		dest = svc->sched->schedule(svc, k, &ctx);
		if (!dest) {
			*reason = LB_R_NO_DEST;
			return NULL;
		}
		uint16_t tdport = (k->dport == svc->port && svc->port != FTPPORT_NET) ? dest->port : 0;
		ct = lb_conn_new(core, svc->af, proto, &snet, 0, vaddr, vport, dest, tdport, LB_CONN_F_TEMPLATE,
				 now);
		if (!ct) {
			*reason = LB_R_CONN_FULL;
			return NULL;
		}
		ct->timeout_s = svc->timeout_s;
		ct->expires = now + (uint64_t)svc->timeout_s * NS_PER_S;
	} else {
		dest = ct->dest;
		*template_hit = true;
	}
	uint16_t dport = k->dport;
	if (dport == svc->port && dest->port)
		dport = dest->port;
	uint32_t flags = ((svc->flags & LB_SVC_F_ONEPACKET) && k->proto == LB_PROTO_UDP) ? LB_CONN_F_ONE_PACKET : 0;
	struct lb_conn *cp = lb_conn_new(core, svc->af, k->proto, &k->saddr, k->sport, &k->daddr, k->dport, dest,
					 dport, flags, now);
	if (!cp) {
		template_put(core, ct, now);
		*reason = LB_R_CONN_FULL;
		return NULL;
	}
	cp->control = lb_conn_index(core, ct);
	ct->n_control++;
	template_put(core, ct, now);
	conn_stats(cp, svc);
	return cp;
}

/* template_hit: set when an existing persistence template chose the dest (the trace ring reports it) */
static inline struct lb_conn *conn_schedule(struct lb_core *core, struct lb_service *svc,
					    const struct lb_flow_key *k, uint64_t now, int *reason, bool *template_hit)
{
	*reason = LB_R_OK;
	if (k->sport == FTPDATA_NET) {
		*reason = LB_R_NO_SERVICE;	/* "Not scheduling FTPDATA": left alone */
		return NULL;
	}
	if (svc->flags & LB_SVC_F_PERSISTENT)
		return sched_persist(core, svc, k, now, reason, template_hit);
	if (!svc->fwmark && k->dport != svc->port) {
		*reason = LB_R_NO_DEST;	/* port zero only works with persistence */
		return NULL;
	}
	struct lb_sched_ctx ctx = { .now = now, .rng = &core->rng };
	struct lb_dest *dest = svc->sched->schedule(svc, k, &ctx);
	if (!dest) {
		*reason = LB_R_NO_DEST;
		return NULL;
	}
	uint32_t flags = ((svc->flags & LB_SVC_F_ONEPACKET) && k->proto == LB_PROTO_UDP) ? LB_CONN_F_ONE_PACKET : 0;
	struct lb_conn *cp = lb_conn_new(core, svc->af, k->proto, &k->saddr, k->sport, &k->daddr, k->dport, dest,
					 dest->port ? dest->port : k->dport, flags, now);
	if (!cp) {
		*reason = LB_R_CONN_FULL;
		return NULL;
	}
	conn_stats(cp, svc);
	return cp;
}

struct lb_conn *lb_conn_schedule(struct lb_core *core, struct lb_service *svc, const struct lb_flow_key *k,
				 uint64_t now, int *reason)
{
	bool hit = false;
	return conn_schedule(core, svc, k, now, reason, &hit);
}

struct lb_conn *lb_conn_schedule_traced(struct lb_core *core, struct lb_service *svc,
					const struct lb_flow_key *k, uint64_t now, int *reason, bool *template_hit)
{
	*template_hit = false;
	return conn_schedule(core, svc, k, now, reason, template_hit);
}
