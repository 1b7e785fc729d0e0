/*
 * sched_rr.c - round-robin (kernel net/netfilter/ipvs/ip_vs_rr.c, Linux 6.x).
 * The cursor is a position in the service's dest list (the head when nothing was picked yet); each
 * pick walks on from it and takes the first dest that is not OVERLOADed and has weight > 0, wrapping
 * round once, with the cursor's own dest checked last.  The kernel moves a cursor that sits on a
 * deleted dest back to that dest's predecessor (list_del_rcu leaves ->next intact, so it reads
 * p->next->prev); our lb_list_del clears the links, so we remember the cursor's predecessor instead.
 * Twin: lb/sched/ref/rr.py.
 */
#include <errno.h>
#include <stdlib.h>
#include "lb_sched.h"

struct rr_data {
	struct lb_list *cl;	/* the last pick's list node, or the list head */
	struct lb_list *prev;	/* cl's predecessor (only meaningful when cl is not the head) */
};

static void rr_remember_prev(struct lb_service *svc, struct rr_data *rd)
{
	rd->prev = rd->cl == &svc->destinations ? &svc->destinations : rd->cl->prev;
}

static int rr_init_service(struct lb_service *svc)
{
	struct rr_data *rd = malloc(sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->cl = &svc->destinations;
	rd->prev = &svc->destinations;
	svc->sched_data = rd;
	return 0;
}

static void rr_done_service(struct lb_service *svc)
{
	free(svc->sched_data);
	svc->sched_data = NULL;
}

static int rr_add_dest(struct lb_service *svc, struct lb_dest *dest)
{
	(void)dest;
	rr_remember_prev(svc, svc->sched_data);	/* a new head entry may be cl's predecessor now */
	return 0;
}

static int rr_del_dest(struct lb_service *svc, struct lb_dest *dest)
{
	struct rr_data *rd = svc->sched_data;
	if (rd->cl == &dest->n_list)
		rd->cl = rd->prev;	/* kernel: sched_data = p->next->prev */
	rr_remember_prev(svc, rd);
	return 0;
}

static struct lb_dest *rr_schedule(struct lb_service *svc, const struct lb_flow_key *k,
				   struct lb_sched_ctx *ctx)
{
	struct rr_data *rd = svc->sched_data;
	struct lb_list *head = &svc->destinations;
	struct lb_list *last = rd->cl;
	struct lb_list *p = rd->cl;
	(void)k;
	(void)ctx;
	/* Pass 1 walks from after the cursor to the end; pass 2 (only if the cursor was not the head)
	 * from the start up to and including the cursor's dest. */
	for (int pass = 0; pass < 2; pass++) {
		for (p = p->next; p != head; p = p->next) {
			struct lb_dest *d = lb_container_of(p, struct lb_dest, n_list);
			if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight > 0) {
				rd->cl = p;
				rd->prev = p->prev;
				return d;
			}
			if (p == last)
				return NULL;
		}
		if (last == head)
			break;
	}
	return NULL;
}

const struct lb_sched_ops lb_sched_rr = {
	.name = "rr",
	.flags_ok = 0,
	.init_service = rr_init_service,
	.done_service = rr_done_service,
	.add_dest = rr_add_dest,
	.del_dest = rr_del_dest,
	.schedule = rr_schedule,
};
