/*
 * sched_sh.c - source hashing (kernel ip_vs_sh.c).  A 256-bucket table maps hash(client address
 * [+ client port with sh-port]) to a dest.  The table is refilled on every dest add/delete/edit:
 * walking the dest list in order, each dest takes `weight` consecutive buckets (a weight-0 dest
 * still takes one; schedule() then refuses it), round and round until all 256 are set.
 * sh-fallback: when the hashed dest is unavailable (weight <= 0 or OVERLOAD), walk on through the
 * table (the kernel's offset formula, kept as is) until an available one turns up.
 * Python twin: lb/sched/ref/sh.py.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_core.h"
#include "lb_hash.h"
#include "lb_api_schedtest.h"

#define SH_TAB_BITS 8
#define SH_TAB_SIZE (1u << SH_TAB_BITS)
#define SH_TAB_MASK (SH_TAB_SIZE - 1)

struct sh_state {
	struct lb_dest *buckets[SH_TAB_SIZE];
};

/* ip_vs_sh_hashkey: (offset + hash_32(ntohs(port) + ntohl(addr_fold), 8)) & 255. */
static inline uint32_t sh_hashkey(uint16_t af, const union lb_addr *addr, uint16_t port_net, uint32_t offset)
{
	return (offset + lb_hash_32(lb_ntohs(port_net) + lb_addr_fold(af, addr), SH_TAB_BITS)) & SH_TAB_MASK;
}

static inline bool sh_unavailable(const struct lb_dest *d)
{
	return d->weight <= 0 || (d->flags & LB_DEST_F_OVERLOAD);
}

/* ip_vs_sh_reassign: fill the buckets in list order, `weight` turns per dest (at least one). */
static void sh_reassign(struct sh_state *s, struct lb_service *svc)
{
	struct lb_list *head = &svc->destinations, *p = head;
	int32_t d_count = 0;

	if (lb_list_empty(head)) {
		memset(s->buckets, 0, sizeof(s->buckets));
		return;
	}
	for (uint32_t i = 0; i < SH_TAB_SIZE; i++) {
		if (p == head)
			p = p->next;
		struct lb_dest *d = lb_container_of(p, struct lb_dest, n_list);
		s->buckets[i] = d;
		if (++d_count >= d->weight) {
			p = p->next;
			d_count = 0;
		}
	}
}

static int sh_init_service(struct lb_service *svc)
{
	struct sh_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	svc->sched_data = s;
	sh_reassign(s, svc);
	return 0;
}

static void sh_done_service(struct lb_service *svc)
{
	free(svc->sched_data);
	svc->sched_data = NULL;
}

static int sh_dest_changed(struct lb_service *svc, struct lb_dest *dest)
{
	(void)dest;
	sh_reassign(svc->sched_data, svc);
	return 0;
}

static struct lb_dest *sh_get(struct lb_service *svc, struct sh_state *s, const union lb_addr *addr,
			      uint16_t port_net)
{
	struct lb_dest *d = s->buckets[sh_hashkey(svc->af, addr, port_net, 0)];
	return (!d || sh_unavailable(d)) ? NULL : d;
}

/* ip_vs_sh_get_fallback: from the original bucket ihash, try roffset = (i + ihash) % 256 for
 * i = 0..255, each fed back into the hash as its offset, which makes the probe sequence
 * (i + 2 * ihash) & 255.  An empty bucket stops the walk. */
static struct lb_dest *sh_get_fallback(struct lb_service *svc, struct sh_state *s, const union lb_addr *addr,
				       uint16_t port_net)
{
	uint32_t ihash = sh_hashkey(svc->af, addr, port_net, 0);
	struct lb_dest *d = s->buckets[ihash];

	if (!d)
		return NULL;
	if (!sh_unavailable(d))
		return d;
	for (uint32_t offset = 0; offset < SH_TAB_SIZE; offset++) {
		uint32_t roffset = (offset + ihash) % SH_TAB_SIZE;
		d = s->buckets[sh_hashkey(svc->af, addr, port_net, roffset)];
		if (!d)
			break;
		if (!sh_unavailable(d))
			return d;
	}
	return NULL;
}

static struct lb_dest *sh_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	(void)ctx;
	uint16_t port = 0;
	if ((svc->flags & LB_SVC_F_SCHED_SH_PORT) && lb_proto_has_ports(k->proto))
		port = k->sport;
	if (svc->flags & LB_SVC_F_SCHED_SH_FALLBACK)
		return sh_get_fallback(svc, svc->sched_data, &k->saddr, port);
	return sh_get(svc, svc->sched_data, &k->saddr, port);
}

int lb_sched_sh_table(lb_core *core, const struct lb_svc_cfg *key, int32_t *out, int max)
{
	struct lb_service *svc = lb_schedtest_svc(core, key);
	if (!svc)
		return -ESRCH;
	if (svc->sched != &lb_sched_sh)
		return -EINVAL;
	const struct sh_state *s = svc->sched_data;
	for (int i = 0; i < (int)SH_TAB_SIZE && i < max; i++)
		out[i] = s->buckets[i] ? s->buckets[i]->id : -1;
	return (int)SH_TAB_SIZE;
}

const struct lb_sched_ops lb_sched_sh = {
	.name = "sh",
	.flags_ok = LB_SVC_F_SCHED_SH_FALLBACK | LB_SVC_F_SCHED_SH_PORT,
	.init_service = sh_init_service,
	.done_service = sh_done_service,
	.add_dest = sh_dest_changed,
	.del_dest = sh_dest_changed,
	.upd_dest = sh_dest_changed,
	.schedule = sh_schedule,
};
