/*
 * sched_dh.c - destination hashing (kernel ip_vs_dh.c).  A 256-bucket table maps hash_32 of the
 * packet's destination address to a dest.  Unlike sh, weights play no part in the filling: the
 * dest list is dealt round-robin into the buckets, one bucket per dest per round.  A dest that is
 * not available, has weight <= 0 or is OVERLOADed is refused (no fallback).  The kernel rebuilds
 * on add/delete only (no upd_dest hook), which is enough since the filling ignores weights.
 * Python twin: lb/sched/ref/dh.py.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_core.h"
#include "lb_hash.h"
#include "lb_api_schedtest.h"

#define DH_TAB_BITS 8
#define DH_TAB_SIZE (1u << DH_TAB_BITS)

struct dh_state {
	struct lb_dest *buckets[DH_TAB_SIZE];
};

static inline uint32_t dh_hashkey(uint16_t af, const union lb_addr *addr)
{
	return lb_hash_32(lb_addr_fold(af, addr), DH_TAB_BITS);
}

/* ip_vs_dh_reassign: deal the dests (list order) into the buckets, one each, round and round. */
static void dh_reassign(struct dh_state *s, struct lb_service *svc)
{
	struct lb_list *head = &svc->destinations, *p = head;

	if (lb_list_empty(head)) {
		memset(s->buckets, 0, sizeof(s->buckets));
		return;
	}
	for (uint32_t i = 0; i < DH_TAB_SIZE; i++) {
		if (p == head)
			p = p->next;
		s->buckets[i] = lb_container_of(p, struct lb_dest, n_list);
		p = p->next;
	}
}

static int dh_init_service(struct lb_service *svc)
{
	struct dh_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	svc->sched_data = s;
	dh_reassign(s, svc);
	return 0;
}

static void dh_done_service(struct lb_service *svc)
{
	free(svc->sched_data);
	svc->sched_data = NULL;
}

static int dh_dest_changed(struct lb_service *svc, struct lb_dest *dest)
{
	(void)dest;
	dh_reassign(svc->sched_data, svc);
	return 0;
}

static struct lb_dest *dh_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	(void)ctx;
	const struct dh_state *s = svc->sched_data;
	struct lb_dest *d = s->buckets[dh_hashkey(svc->af, &k->daddr)];

	if (!d || !(d->flags & LB_DEST_F_AVAILABLE) || d->weight <= 0 || (d->flags & LB_DEST_F_OVERLOAD))
		return NULL;
	return d;
}

int lb_sched_dh_table(lb_core *core, const struct lb_svc_cfg *key, int32_t *out, int max)
{
	struct lb_service *svc = lb_schedtest_svc(core, key);
	if (!svc)
		return -ESRCH;
	if (svc->sched != &lb_sched_dh)
		return -EINVAL;
	const struct dh_state *s = svc->sched_data;
	for (int i = 0; i < (int)DH_TAB_SIZE && i < max; i++)
		out[i] = s->buckets[i] ? s->buckets[i]->id : -1;
	return (int)DH_TAB_SIZE;
}

const struct lb_sched_ops lb_sched_dh = {
	.name = "dh",
	.flags_ok = 0,
	.init_service = dh_init_service,
	.done_service = dh_done_service,
	.add_dest = dh_dest_changed,
	.del_dest = dh_dest_changed,
	.schedule = dh_schedule,
};
