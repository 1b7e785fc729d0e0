/*
 * sched_wrr.c - weighted round-robin (kernel net/netfilter/ipvs/ip_vs_wrr.c, Linux 6.x).
 * State (the kernel's struct ip_vs_wrr_mark): cl = last pick or the list head, cw = the weight a dest
 * needs in the current pass, mw = max weight - (gcd - 1), di = gcd of the positive weights.  Each
 * pass walks the list for dests with weight >= cw (and not OVERLOADed), then lowers cw by di; after
 * cw reaches 0 it starts again from mw.  Every add/del/edit of a dest recomputes di and mw, puts cl
 * back at the head and fixes cw up (ip_vs_wrr_dest_changed), so the pick sequence depends on the
 * order in which dests were added, not only on the final set.
 * Twin: lb/sched/ref/wrr.py.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include "lb_sched.h"

struct wrr_mark {
	struct lb_list *cl;	/* current dest's list node, or the list head */
	int cw;			/* current weight */
	int mw;			/* maximum weight - (di - 1) */
	int di;			/* decreasing interval: gcd of the positive weights */
};

static int wrr_gcd(int a, int b)
{
	while (b) {
		int t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static int wrr_gcd_weight(struct lb_service *svc)
{
	struct lb_dest *d;
	int g = 0;
	lb_for_each_dest(d, svc)
		if (d->weight > 0)
			g = g > 0 ? wrr_gcd(d->weight, g) : d->weight;
	return g ? g : 1;
}

static int wrr_max_weight(struct lb_service *svc)
{
	struct lb_dest *d;
	int w = 0;
	lb_for_each_dest(d, svc)
		if (d->weight > w)
			w = d->weight;
	return w;
}

static int wrr_init_service(struct lb_service *svc)
{
	struct wrr_mark *m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cl = &svc->destinations;
	m->di = wrr_gcd_weight(svc);
	m->mw = wrr_max_weight(svc) - (m->di - 1);
	m->cw = m->mw;
	svc->sched_data = m;
	return 0;
}

static void wrr_done_service(struct lb_service *svc)
{
	free(svc->sched_data);
	svc->sched_data = NULL;
}

static int wrr_dest_changed(struct lb_service *svc, struct lb_dest *dest)
{
	struct wrr_mark *m = svc->sched_data;
	(void)dest;
	m->cl = &svc->destinations;
	m->di = wrr_gcd_weight(svc);
	m->mw = wrr_max_weight(svc) - (m->di - 1);
	if (m->cw > m->mw || !m->cw)
		m->cw = m->mw;
	else if (m->di > 1)
		m->cw = (m->cw / m->di) * m->di + 1;
	return 0;
}

static struct lb_dest *wrr_schedule(struct lb_service *svc, const struct lb_flow_key *k,
				    struct lb_sched_ctx *ctx)
{
	struct wrr_mark *m = svc->sched_data;
	struct lb_list *head = &svc->destinations;
	struct lb_list *p = m->cl, *last = m->cl, *stop = NULL;
	bool last_pass = false, restarted = false;
	(void)k;
	(void)ctx;
	if (m->mw == 0)
		return NULL;	/* no dest with a positive weight */
	for (;;) {
		for (p = p->next; p != head; p = p->next) {
			struct lb_dest *d = lb_container_of(p, struct lb_dest, n_list);
			if (!(d->flags & LB_DEST_F_OVERLOAD) && d->weight >= m->cw) {
				m->cl = p;
				return d;
			}
			if (p == stop) {
				m->cl = p;
				return NULL;	/* all overloaded */
			}
		}
		/* p is the head again */
		m->cw -= m->di;
		if (m->cw <= 0) {
			m->cw = m->mw;
			/* A full last pass (w >= 1) was done, or the walk started at the head: give up. */
			if (last_pass || last == head) {
				m->cl = head;
				return NULL;
			}
			restarted = true;
		}
		last_pass = m->cw <= m->di;
		/* The first w >= 1 walk only saw the dests after 'last': check the rest up to 'last'. */
		if (last_pass && restarted && last != head)
			stop = last;
	}
}

const struct lb_sched_ops lb_sched_wrr = {
	.name = "wrr",
	.flags_ok = 0,
	.init_service = wrr_init_service,
	.done_service = wrr_done_service,
	.add_dest = wrr_dest_changed,
	.del_dest = wrr_dest_changed,
	.upd_dest = wrr_dest_changed,
	.schedule = wrr_schedule,
};
