/*
 * service.c - virtual services and their destinations (kernel ip_vs_ctl.c, the parts that are not
 * netlink): add/edit/delete with the kernel's checks and error codes, the destination list kept
 * newest-first, scheduler hooks called where the kernel calls them, destinations kept "in the
 * trash" while connections still use them, and connection accounting with the OVERLOAD flag
 * (ip_vs_conn.c ip_vs_bind_dest/ip_vs_unbind_dest).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_core.h"

/* ---- the per-service scan array (struct lb_dest_scan): the list's order and the dests' values ---- */

static void scan_sync(struct lb_dest *d)
{
	if (!d->linked)
		return;
	struct lb_dest_scan *e = &d->svc->scan[d->scan_idx];
	e->flags = d->flags;
	e->weight = d->weight;
	e->activeconns = d->activeconns;
	e->inactconns = d->inactconns;
}

/* Room for one more linked dest; called before anything changes so that a failure changes nothing. */
static int scan_reserve(struct lb_service *s)
{
	if (s->num_dests < s->scan_cap)
		return 0;
	uint32_t cap = s->scan_cap ? s->scan_cap * 2 : 8;
	struct lb_dest_scan *scan = realloc(s->scan, cap * sizeof(*scan));
	if (!scan)
		return -ENOMEM;
	s->scan = scan;
	struct lb_dest **dp = realloc(s->scan_dest, cap * sizeof(*dp));
	if (!dp)
		return -ENOMEM;
	s->scan_dest = dp;
	s->scan_cap = cap;
	return 0;
}

/* d was just put at the head of the list: entry 0, the others move up one. */
static void scan_insert_front(struct lb_service *s, struct lb_dest *d)
{
	uint32_t n = s->num_dests;	/* not counting d yet */
	memmove(&s->scan[1], &s->scan[0], n * sizeof(s->scan[0]));
	memmove(&s->scan_dest[1], &s->scan_dest[0], n * sizeof(s->scan_dest[0]));
	for (uint32_t i = 1; i <= n; i++)
		s->scan_dest[i]->scan_idx = i;
	s->scan_dest[0] = d;
	d->scan_idx = 0;
}

/* d is leaving the list: the entries after it move down one. */
static void scan_remove(struct lb_service *s, struct lb_dest *d)
{
	uint32_t i = d->scan_idx, n = s->num_dests;	/* still counting d */
	memmove(&s->scan[i], &s->scan[i + 1], (n - i - 1) * sizeof(s->scan[0]));
	memmove(&s->scan_dest[i], &s->scan_dest[i + 1], (n - i - 1) * sizeof(s->scan_dest[0]));
	for (uint32_t j = i; j + 1 < n; j++)
		s->scan_dest[j]->scan_idx = j;
}

static void scan_free(struct lb_service *s)
{
	free(s->scan);
	free(s->scan_dest);
	s->scan = NULL;
	s->scan_dest = NULL;
	s->scan_cap = 0;
}

void lb_addr_from_cfg(union lb_addr *a, const uint8_t src[16], uint16_t af)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->b, src, af == LB_AF_INET ? 4 : 16);
}

static inline uint16_t to_net16(uint16_t v) { return (uint16_t)((v >> 8) | (v << 8)); }

static uint32_t svc_hash(uint16_t af, uint8_t proto, const union lb_addr *a, uint16_t port_net)
{
	uint32_t h = a->ip;
	if (af == LB_AF_INET6)
		h ^= a->ip6[1] ^ a->ip6[2] ^ a->ip6[3];
	h ^= ((uint32_t)proto << 16) ^ port_net;
	h *= 0x9E3779B1u;
	return h >> (32 - LB_SVC_HASH_BITS);
}

static uint32_t fwm_hash(uint32_t fwmark) { return (fwmark * 0x9E3779B1u) >> (32 - LB_SVC_HASH_BITS); }

static struct lb_service *svc_find_exact(struct lb_core *core, uint16_t af, uint8_t proto,
					 const union lb_addr *addr, uint16_t port_net)
{
	for (struct lb_service *s = core->svc_tab[svc_hash(af, proto, addr, port_net)]; s; s = s->hnext)
		if (s->af == af && s->proto == proto && s->port == port_net && s->fwmark == 0 &&
		    lb_addr_eq(af, &s->addr, addr))
			return s;
	return NULL;
}

/* The packet path: the service for (proto, vaddr, vport), else a port-zero service on that
 * address (persistent "all ports" services), as ip_vs_service_find does. */
struct lb_service *lb_svc_find(struct lb_core *core, uint16_t af, uint8_t proto, const union lb_addr *addr,
			       uint16_t port_net)
{
	struct lb_service *s = svc_find_exact(core, af, proto, addr, port_net);
	if (!s && port_net != 0)
		s = svc_find_exact(core, af, proto, addr, 0);
	return s;
}

struct lb_service *lb_svc_find_fwmark(struct lb_core *core, uint16_t af, uint32_t fwmark)
{
	for (struct lb_service *s = core->fwm_tab[fwm_hash(fwmark)]; s; s = s->hnext)
		if (s->fwmark == fwmark && s->af == af)
			return s;
	return NULL;
}

static struct lb_service *svc_from_key(struct lb_core *core, const struct lb_svc_cfg *k)
{
	union lb_addr a;
	if (!k || (k->af != LB_AF_INET && k->af != LB_AF_INET6))
		return NULL;
	if (k->fwmark)
		return lb_svc_find_fwmark(core, k->af, k->fwmark);
	lb_addr_from_cfg(&a, k->addr, k->af);
	return svc_find_exact(core, k->af, (uint8_t)k->proto, &a, to_net16(k->port));
}

static struct lb_service **svc_bucket(struct lb_core *core, const struct lb_service *s)
{
	if (s->fwmark)
		return &core->fwm_tab[fwm_hash(s->fwmark)];
	return &core->svc_tab[svc_hash(s->af, (uint8_t)s->proto, &s->addr, s->port)];
}

static void svc_unhash(struct lb_core *core, struct lb_service *s)
{
	for (struct lb_service **pp = svc_bucket(core, s); *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	s->hnext = NULL;
	s->flags &= ~(uint32_t)LB_SVC_F_HASHED;
}

static int svc_cfg_check(const struct lb_svc_cfg *c)
{
	if (c->af != LB_AF_INET && c->af != LB_AF_INET6)
		return -EAFNOSUPPORT;
	if (!c->fwmark && c->proto != LB_PROTO_TCP && c->proto != LB_PROTO_UDP && c->proto != LB_PROTO_SCTP)
		return -EPROTONOSUPPORT;
	if (c->af == LB_AF_INET6 && (c->flags & LB_SVC_F_PERSISTENT) && (c->netmask < 1 || c->netmask > 128))
		return -EINVAL;
	if (memchr(c->sched, 0, LB_SCHED_NAME_MAX) == NULL)
		return -EINVAL;
	return 0;
}

static void svc_apply_cfg(struct lb_service *s, const struct lb_svc_cfg *c)
{
	/* Only the user-settable flags; HASHED is ours. */
	s->flags = (s->flags & LB_SVC_F_HASHED) | (c->flags & ~(uint32_t)LB_SVC_F_HASHED);
	s->timeout_s = c->timeout;
	s->netmask = c->netmask;
}

static bool svc_referenced(struct lb_core *core, const struct lb_service *s);

int lb_svc_add(lb_core *core, const struct lb_svc_cfg *cfg)
{
	int rc = svc_cfg_check(cfg);
	if (rc)
		return rc;
	const struct lb_sched_ops *sched = lb_sched_lookup(cfg->sched);
	if (!sched)
		return -ENOENT;
	if (svc_from_key(core, cfg))
		return -EEXIST;
	/* A deleted service whose trashed dests still carry connections keeps its slot until the last
	 * one goes (the kernel's svc refcount): reusing it would let a new service revive those dests. */
	struct lb_service *s = NULL;
	/* the lowest usable slot (as PyCore picks), searched from the lowest that may be free */
	for (uint32_t i = core->svc_hint; i < core->cfg.svc_max; i++)
		if (!core->svcs[i].in_use && !svc_referenced(core, &core->svcs[i])) {
			s = &core->svcs[i];
			core->svc_hint = i + 1;
			break;
		}
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->id = (int32_t)(s - core->svcs);
	s->core = core;
	s->af = cfg->af;
	s->proto = cfg->fwmark ? LB_PROTO_TCP : cfg->proto;
	s->fwmark = cfg->fwmark;
	if (!cfg->fwmark) {
		lb_addr_from_cfg(&s->addr, cfg->addr, cfg->af);
		s->port = to_net16(cfg->port);
	}
	lb_list_init(&s->destinations);
	svc_apply_cfg(s, cfg);
	s->sched = sched;
	if (sched->init_service) {
		rc = sched->init_service(s);
		if (rc)
			return rc;	/* nothing was linked yet: the slot stays free */
	}
	s->in_use = true;
	struct lb_service **b = svc_bucket(core, s);
	s->hnext = *b;
	*b = s;
	s->flags |= LB_SVC_F_HASHED;
	core->num_svcs++;
	return 0;
}

int lb_svc_edit(lb_core *core, const struct lb_svc_cfg *cfg)
{
	int rc = svc_cfg_check(cfg);
	if (rc)
		return rc;
	const struct lb_sched_ops *sched = lb_sched_lookup(cfg->sched);
	if (!sched)
		return -ENOENT;
	struct lb_service *s = svc_from_key(core, cfg);
	if (!s)
		return -ESRCH;
	if (sched != s->sched) {
		/* Bind the new scheduler first: if it fails, the old one stays as it was. */
		void *old_data = s->sched_data;
		const struct lb_sched_ops *old = s->sched;
		s->sched_data = NULL;
		s->sched = sched;
		if (sched->init_service && (rc = sched->init_service(s)) != 0) {
			s->sched = old;
			s->sched_data = old_data;
			return rc;
		}
		void *new_data = s->sched_data;
		s->sched = old;
		s->sched_data = old_data;
		if (old->done_service)
			old->done_service(s);
		s->sched = sched;
		s->sched_data = new_data;
	}
	svc_apply_cfg(s, cfg);
	return 0;
}

static bool svc_referenced(struct lb_core *core, const struct lb_service *s);

/* A service slot becomes reusable: clear it, and let the free-slot search start no higher. */
static void svc_release(struct lb_core *core, struct lb_service *s)
{
	uint32_t idx = (uint32_t)(s - core->svcs);
	memset(s, 0, sizeof(*s));
	if (idx < core->svc_hint)
		core->svc_hint = idx;
}

static void dest_free(struct lb_core *core, struct lb_dest *d)
{
	struct lb_service *s = d->svc;
	d->in_use = false;
	d->svc = NULL;
	if (s)
		s->ndests_ref--;
	core->num_dests--;
	if ((uint32_t)d->id < core->dest_hint)
		core->dest_hint = (uint32_t)d->id;
	/* A deleted service lingers while its trashed dests carry connections; free it with the last. */
	if (s && !s->in_use && !svc_referenced(core, s))
		svc_release(core, s);
}

/* Unlink from the service list (kernel __ip_vs_unlink_dest + __ip_vs_del_dest): not available any
 * more; kept while connections reference it. */
static void dest_unlink(struct lb_core *core, struct lb_service *s, struct lb_dest *d, bool call_sched)
{
	scan_remove(s, d);
	lb_list_del(&d->n_list);
	d->linked = false;
	core->num_linked--;
	s->num_dests--;
	d->flags &= ~(uint32_t)LB_DEST_F_AVAILABLE;
	if (call_sched && s->sched->del_dest)
		s->sched->del_dest(s, d);
	if (d->refcnt == 0)
		dest_free(core, d);
}

static bool svc_referenced(struct lb_core *core, const struct lb_service *s)
{
	(void)core;
	return s->ndests_ref > 0;
}

static void svc_destroy(struct lb_core *core, struct lb_service *s)
{
	svc_unhash(core, s);
	/* Like __ip_vs_del_service: unbind the scheduler, then move every dest to the trash.  The
	 * service stays in_use during the unlinks so that dest_free does not release it under us. */
	if (s->sched->done_service)
		s->sched->done_service(s);
	s->sched_data = NULL;
	while (!lb_list_empty(&s->destinations)) {
		struct lb_dest *d = lb_container_of(s->destinations.next, struct lb_dest, n_list);
		dest_unlink(core, s, d, false);
	}
	scan_free(s);
	s->in_use = false;
	core->num_svcs--;
	if (!svc_referenced(core, s))
		svc_release(core, s);
}

int lb_svc_del(lb_core *core, const struct lb_svc_cfg *key)
{
	struct lb_service *s = svc_from_key(core, key);
	if (!s)
		return -ESRCH;
	svc_destroy(core, s);
	return 0;
}

int lb_svc_flush(lb_core *core)
{
	for (uint32_t i = 0; i < core->cfg.svc_max; i++)
		if (core->svcs[i].in_use)
			svc_destroy(core, &core->svcs[i]);
	return 0;
}

int lb_svc_zero(lb_core *core, const struct lb_svc_cfg *key)
{
	struct lb_dest *d;
	if (key) {
		struct lb_service *s = svc_from_key(core, key);
		if (!s)
			return -ESRCH;
		memset(&s->stats, 0, sizeof(s->stats));
		lb_est_start(&s->est, &s->stats);
		lb_for_each_dest(d, s) {
			memset(&d->stats, 0, sizeof(d->stats));
			lb_est_start(&d->est, &d->stats);
		}
		return 0;
	}
	for (uint32_t i = 0; i < core->cfg.svc_max; i++)
		if (core->svcs[i].in_use) {
			memset(&core->svcs[i].stats, 0, sizeof(core->svcs[i].stats));
			lb_est_start(&core->svcs[i].est, &core->svcs[i].stats);
		}
	for (uint32_t i = 0; i < core->cfg.dest_max; i++)
		if (core->dests[i].in_use) {
			memset(&core->dests[i].stats, 0, sizeof(core->dests[i].stats));
			lb_est_start(&core->dests[i].est, &core->dests[i].stats);
		}
	return 0;
}

static void svc_to_cfg(const struct lb_service *s, struct lb_svc_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->af = s->af;
	c->proto = s->proto;
	memcpy(c->addr, s->addr.b, 16);
	c->port = to_net16(s->port);
	c->fwmark = s->fwmark;
	strncpy(c->sched, s->sched->name, LB_SCHED_NAME_MAX - 1);
	c->flags = s->flags;
	c->timeout = s->timeout_s;
	c->netmask = s->netmask;
}

static void svc_to_info(const struct lb_service *s, struct lb_svc_info *o)
{
	svc_to_cfg(s, &o->cfg);
	o->num_dests = s->num_dests;
	o->id = s->id;
	o->stats = s->stats;
	lb_est_read(&s->est, &o->rates);
}

int lb_svc_list(lb_core *core, struct lb_svc_info *out, int max)
{
	int n = 0;
	for (uint32_t i = 0; i < core->cfg.svc_max; i++)
		if (core->svcs[i].in_use) {
			if (n < max)
				svc_to_info(&core->svcs[i], &out[n]);
			n++;
		}
	return n;
}

int lb_svc_get(lb_core *core, const struct lb_svc_cfg *key, struct lb_svc_info *out)
{
	struct lb_service *s = svc_from_key(core, key);
	if (!s)
		return -ESRCH;
	svc_to_info(s, out);
	return 0;
}

/* ---- destinations ---- */

static struct lb_dest *dest_find(struct lb_service *s, const union lb_addr *a, uint16_t af, uint16_t port_net)
{
	struct lb_dest *d;
	lb_for_each_dest(d, s)
		if (d->af == af && d->port == port_net && lb_addr_eq(af, &d->addr, a))
			return d;
	return NULL;
}

static struct lb_dest *dest_find_trash(struct lb_core *core, struct lb_service *s, const union lb_addr *a,
				       uint16_t af, uint16_t port_net)
{
	if (core->num_dests == core->num_linked)
		return NULL;	/* the trash is empty: no walk over the pool */
	for (uint32_t i = 0; i < core->cfg.dest_max; i++) {
		struct lb_dest *d = &core->dests[i];
		/* kernel ip_vs_trash_get_dest: same real server, and a service with the same identity
		 * (protocol + fwmark, or protocol + VIP:port) - not necessarily the same service object:
		 * after `ipvsadm -C` and a reload, the new service takes its old dests and their conns back */
		const struct lb_service *o = d->svc;
		if (d->in_use && !d->linked && o && d->af == af && d->port == port_net &&
		    lb_addr_eq(af, &d->addr, a) && o->proto == s->proto && o->fwmark == s->fwmark &&
		    (s->fwmark || (o->af == s->af && lb_addr_eq(s->af, &o->addr, &s->addr) && o->port == s->port)))
			return d;
	}
	return NULL;
}

static int dest_cfg_check(const struct lb_dest_cfg *c)
{
	if (c->af != LB_AF_INET && c->af != LB_AF_INET6)
		return -EAFNOSUPPORT;
	if (c->weight < 0)
		return -ERANGE;
	if (c->l_threshold > c->u_threshold)
		return -ERANGE;
	if (c->fwd != LB_FWD_MASQ && c->fwd != LB_FWD_TUNNEL && c->fwd != LB_FWD_DROUTE)
		return -EINVAL;
	return 0;
}

/* kernel __ip_vs_update_dest: weight, forwarding, thresholds; the OVERLOAD flag is cleared when the
 * upper threshold is removed or raised; then the scheduler hook. */
static void dest_update(struct lb_service *s, struct lb_dest *d, const struct lb_dest_cfg *c, bool add)
{
	/* last_weight remembers the weight a dest had before it was quiesced (mh keeps its slots) */
	if (add || c->weight != 0)
		d->last_weight = c->weight;
	d->weight = c->weight;
	d->conn_flags = c->fwd;
	d->flags |= LB_DEST_F_AVAILABLE;
	if (c->u_threshold == 0 || c->u_threshold > d->u_threshold)
		d->flags &= ~(uint32_t)LB_DEST_F_OVERLOAD;
	d->u_threshold = c->u_threshold;
	d->l_threshold = c->l_threshold;
	if (add) {
		scan_insert_front(s, d);	/* room was reserved by the caller */
		lb_list_add(&d->n_list, &s->destinations);
		d->linked = true;
		s->core->num_linked++;
		s->num_dests++;
		lb_est_start(&d->est, &d->stats);	/* a new or revived block starts here */
		scan_sync(d);
		if (s->sched->add_dest)
			s->sched->add_dest(s, d);
	} else {
		scan_sync(d);
		if (s->sched->upd_dest)
			s->sched->upd_dest(s, d);
	}
}

int lb_dest_add(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *c)
{
	struct lb_service *s = svc_from_key(core, svc);
	if (!s)
		return -ESRCH;
	int rc = dest_cfg_check(c);
	if (rc)
		return rc;
	union lb_addr a;
	lb_addr_from_cfg(&a, c->addr, c->af);
	uint16_t port = to_net16(c->port);
	if (dest_find(s, &a, c->af, port))
		return -EEXIST;
	rc = scan_reserve(s);
	if (rc)
		return rc;
	struct lb_dest *d = dest_find_trash(core, s, &a, c->af, port);
	if (!d) {
		for (uint32_t i = core->dest_hint; i < core->cfg.dest_max; i++)	/* lowest free id */
			if (!core->dests[i].in_use) {
				d = &core->dests[i];
				core->dest_hint = i + 1;
				break;
			}
		if (!d)
			return -ENOMEM;
		memset(d, 0, sizeof(*d));
		d->id = (int32_t)(d - core->dests);
		d->in_use = true;
		d->svc = s;
		s->ndests_ref++;
		d->af = c->af;
		d->addr = a;
		d->port = port;
		d->nh_port = -1;
		lb_list_init(&d->n_list);
		core->num_dests++;
	} else if (d->svc != s) {
		/* revived into a new service object (__ip_vs_update_dest: stats zeroed, bound to the new
		 * service; the old, deleted one is released when nothing references it any more) */
		struct lb_service *old = d->svc;
		memset(&d->stats, 0, sizeof(d->stats));
		d->svc = s;
		old->ndests_ref--;
		s->ndests_ref++;
		if (!old->in_use && !svc_referenced(core, old))
			svc_release(core, old);
	}
	dest_update(s, d, c, true);
	return 0;
}

/* The service named by svc and its dest named by c (address family, address, port): 0, -ESRCH (no such
 * service), -EAFNOSUPPORT or -ENOENT (no such dest).  *sp is set whenever the service exists. */
static int dest_lookup(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *c,
		       struct lb_service **sp, struct lb_dest **dp)
{
	struct lb_service *s = svc_from_key(core, svc);
	*sp = s;
	if (!s)
		return -ESRCH;
	if (c->af != LB_AF_INET && c->af != LB_AF_INET6)
		return -EAFNOSUPPORT;
	union lb_addr a;
	lb_addr_from_cfg(&a, c->addr, c->af);
	*dp = dest_find(s, &a, c->af, to_net16(c->port));
	return *dp ? 0 : -ENOENT;
}

int lb_dest_id(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *c)
{
	struct lb_service *s;
	struct lb_dest *d;
	int rc = dest_lookup(core, svc, c, &s, &d);
	return rc ? rc : d->id;
}

int lb_dest_edit(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *c)
{
	struct lb_service *s = svc_from_key(core, svc);
	if (!s)
		return -ESRCH;
	int rc = dest_cfg_check(c);	/* the whole new config is checked before the dest is looked up */
	if (rc)
		return rc;
	struct lb_dest *d;
	rc = dest_lookup(core, svc, c, &s, &d);
	if (rc)
		return rc;
	dest_update(s, d, c, false);
	return 0;
}

int lb_dest_del(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_dest_cfg *c)
{
	struct lb_service *s;
	struct lb_dest *d;
	int rc = dest_lookup(core, svc, c, &s, &d);
	if (rc)
		return rc;
	dest_unlink(core, s, d, true);
	return 0;
}

static void dest_to_info(const struct lb_dest *d, struct lb_dest_info *o)
{
	memset(o, 0, sizeof(*o));
	o->cfg.af = d->af;
	o->cfg.port = to_net16(d->port);
	memcpy(o->cfg.addr, d->addr.b, 16);
	o->cfg.fwd = d->conn_flags;
	o->cfg.weight = d->weight;
	o->cfg.u_threshold = d->u_threshold;
	o->cfg.l_threshold = d->l_threshold;
	o->id = d->id;
	o->flags = d->flags;
	o->activeconns = d->activeconns;
	o->inactconns = d->inactconns;
	o->persistconns = d->persistconns;
	o->last_weight = d->last_weight;
	o->stats = d->stats;
	lb_est_read(&d->est, &o->rates);
}

int lb_dest_list(lb_core *core, const struct lb_svc_cfg *svc, struct lb_dest_info *out, int max)
{
	struct lb_service *s = svc_from_key(core, svc);
	if (!s)
		return -ESRCH;
	int n = 0;
	struct lb_dest *d;
	lb_for_each_dest(d, s) {
		if (n < max)
			dest_to_info(d, &out[n]);
		n++;
	}
	return n;
}

static struct lb_dest *dest_by_id(struct lb_core *core, int32_t id)
{
	if (id < 0 || (uint32_t)id >= core->cfg.dest_max || !core->dests[id].in_use)
		return NULL;
	return &core->dests[id];
}

int lb_dest_info_by_id(lb_core *core, int32_t id, struct lb_dest_info *out)
{
	struct lb_dest *d = dest_by_id(core, id);
	if (!d)
		return -ENOENT;
	dest_to_info(d, out);
	return 0;
}

int lb_dest_set_nexthop(lb_core *core, int32_t dest_id, int port, const uint8_t *mac6)
{
	struct lb_dest *d = dest_by_id(core, dest_id);
	if (!d)
		return -ENOENT;
	if (port < -1 || port >= LB_MAX_PORTS)
		return -EINVAL;
	d->nh_port = port;
	if (mac6)
		memcpy(d->nh_mac, mac6, 6);
	return 0;
}

/* ---- connection accounting (kernel ip_vs_bind_dest / ip_vs_unbind_dest) ---- */

static void overload_after_unbind(struct lb_dest *d)
{
	if (d->l_threshold != 0) {
		if (lb_dest_totalconns(d) < d->l_threshold)
			d->flags &= ~(uint32_t)LB_DEST_F_OVERLOAD;
	} else if (d->u_threshold != 0) {
		if ((uint64_t)lb_dest_totalconns(d) * 4 < (uint64_t)d->u_threshold * 3)
			d->flags &= ~(uint32_t)LB_DEST_F_OVERLOAD;
	} else {
		d->flags &= ~(uint32_t)LB_DEST_F_OVERLOAD;
	}
}

static void overload_after_bind(struct lb_dest *d)
{
	if (d->u_threshold != 0 && lb_dest_totalconns(d) >= d->u_threshold)
		d->flags |= LB_DEST_F_OVERLOAD;
}

void lb_dest_account(struct lb_dest *d, int event)
{
	switch (event) {
	case LB_EV_BIND_ACTIVE:
		d->activeconns++;
		overload_after_bind(d);
		break;
	case LB_EV_BIND_INACTIVE:
		d->inactconns++;
		overload_after_bind(d);
		break;
	case LB_EV_BIND_TEMPLATE:
		d->persistconns++;
		overload_after_bind(d);
		break;
	case LB_EV_TO_INACTIVE:	/* protocol state left ESTABLISHED: no threshold check, as the kernel */
		d->activeconns--;
		d->inactconns++;
		break;
	case LB_EV_TO_ACTIVE:
		d->inactconns--;
		d->activeconns++;
		break;
	case LB_EV_UNBIND_ACTIVE:
		d->activeconns--;
		overload_after_unbind(d);
		break;
	case LB_EV_UNBIND_INACTIVE:
		d->inactconns--;
		overload_after_unbind(d);
		break;
	case LB_EV_UNBIND_TEMPLATE:
		d->persistconns--;
		overload_after_unbind(d);
		break;
	default:
		break;
	}
	scan_sync(d);
}

void lb_dest_hold(struct lb_dest *d) { d->refcnt++; }

void lb_dest_put(struct lb_core *core, struct lb_dest *d)
{
	if (d->refcnt > 0)
		d->refcnt--;
	if (d->refcnt == 0 && !d->linked && d->in_use)
		dest_free(core, d);
}

int lb_dest_conn_event(lb_core *core, int32_t dest_id, int event)
{
	struct lb_dest *d = dest_by_id(core, dest_id);
	if (!d)
		return -ENOENT;
	if (event < LB_EV_BIND_ACTIVE || event > LB_EV_UNBIND_TEMPLATE)
		return -EINVAL;
	/* Refuse to go below zero: the caller's bookkeeping is wrong, nothing changes. */
	if (((event == LB_EV_TO_INACTIVE || event == LB_EV_UNBIND_ACTIVE) && d->activeconns == 0) ||
	    ((event == LB_EV_TO_ACTIVE || event == LB_EV_UNBIND_INACTIVE) && d->inactconns == 0) ||
	    (event == LB_EV_UNBIND_TEMPLATE && d->persistconns == 0))
		return -EINVAL;
	lb_dest_account(d, event);
	return 0;
}

/* ---- the scheduler alone, for lb simulate, tests and benchmarks ---- */

/* An lb_flow's address into a key's: IPv4 in the first word, the rest zero (as lb_addr_from_cfg). */
static inline void flow_addr(union lb_addr *a, const uint8_t src[16], uint16_t af)
{
	if (af == LB_AF_INET) {
		memcpy(&a->ip, src, 4);
		a->ip6[1] = a->ip6[2] = a->ip6[3] = 0;
	} else {
		memcpy(a->b, src, 16);
	}
}

int lb_sched_batch(lb_core *core, const struct lb_svc_cfg *svc, const struct lb_flow *flows, uint32_t n,
		   int32_t *out, uint64_t now_ns)
{
	struct lb_service *s = svc_from_key(core, svc);
	if (!s)
		return -ESRCH;
	struct lb_sched_ctx ctx = { .now = now_ns, .rng = &core->rng };
	struct lb_dest *(*schedule)(struct lb_service *, const struct lb_flow_key *, struct lb_sched_ctx *) =
		s->sched->schedule;
	/* Every field of the key is written for each flow (pad and fwmark stay 0); the upper words of
	 * an IPv4 key's addresses are zeroed again only after a non-IPv4 flow wrote them. */
	struct lb_flow_key k = { 0 };
	bool upper_written = false;
	for (uint32_t i = 0; i < n; i++) {
		const struct lb_flow *f = &flows[i];
		k.af = f->af;
		k.proto = (uint8_t)f->proto;
		if (f->af == LB_AF_INET && !upper_written) {
			memcpy(&k.saddr.ip, f->saddr, 4);
			memcpy(&k.daddr.ip, f->daddr, 4);
		} else {
			flow_addr(&k.saddr, f->saddr, f->af);
			flow_addr(&k.daddr, f->daddr, f->af);
			upper_written = f->af != LB_AF_INET;
		}
		k.sport = to_net16(f->sport);
		k.dport = to_net16(f->dport);
		struct lb_dest *d = schedule(s, &k, &ctx);
		out[i] = d ? d->id : -1;
	}
	return (int)n;
}
