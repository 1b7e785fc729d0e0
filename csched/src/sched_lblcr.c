/*
 * sched_lblcr.c - locality-based least-connection with replication (kernel ip_vs_lblcr.c).  Like
 * lblc, but a destination address maps to a *set* of dests.  A packet goes to the set's weighted
 * least-connection member; when that member is missing or overloaded (lblc's rule), the service's
 * weighted least-connection dest is added to the set and used.  A set of more than one dest that
 * has not changed for lblcr_expiration (24 h) sheds its most loaded member on the next lookup.
 * Table aging (60 s timer, full sweep every 30th run, overflow sweep above 16384 entries) and the
 * time model (ns instead of jiffies, timer firings replayed from schedule()/tick()) are lblc's;
 * see sched_lblc.c.  Python twin: lb/sched/ref/lblcr.py.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_core.h"
#include "lb_hash.h"
#include "lb_api_schedtest.h"

#define NS_PER_S 1000000000ULL
#define LBLCR_CHECK_EXPIRE_INTERVAL (60 * NS_PER_S)
#define LBLCR_ENTRY_TIMEOUT (6 * 60 * NS_PER_S)
#define LBLCR_DEFAULT_EXPIRATION (24 * 60 * 60 * NS_PER_S)	/* sysctl lblcr_expiration */
#define LBLCR_COUNT_FOR_FULL_EXPIRATION 30
#define LBLCR_TAB_BITS 10
#define LBLCR_TAB_SIZE (1u << LBLCR_TAB_BITS)
#define LBLCR_TAB_MASK (LBLCR_TAB_SIZE - 1)
#define LBLCR_MAX_SIZE ((int32_t)LBLCR_TAB_SIZE * 16)
#define LBLCR_MAX_CATCHUP 10080u
#define LBLCR_HARD_MAX (1u << 20)

struct lblcr_elem {
	struct lblcr_elem *next;	/* newest first (list_add) */
	struct lb_dest *dest;		/* held */
};

struct lblcr_entry {
	struct lblcr_entry *next;
	union lb_addr addr;
	struct lblcr_elem *set;
	int32_t set_size;
	uint64_t set_lastmod;
	uint64_t lastuse;
};

struct lblcr_table {
	struct lblcr_entry *bucket[LBLCR_TAB_SIZE];
	int32_t entries;
	uint32_t live;
	int32_t rover;
	int32_t counter;
	bool timer_armed;
	uint64_t next_check;
};

static inline uint32_t lblcr_hashkey(uint16_t af, const union lb_addr *addr)
{
	return lb_hash_32(lb_addr_fold(af, addr), LBLCR_TAB_BITS);
}

/* ---- dest sets ---- */

/* ip_vs_dest_set_insert: add at the front (unless already there when check), stamp lastmod. */
static void set_insert(struct lblcr_entry *en, struct lb_dest *dest, bool check, uint64_t now)
{
	if (check)
		for (struct lblcr_elem *e = en->set; e; e = e->next)
			if (e->dest == dest)
				return;
	struct lblcr_elem *e = malloc(sizeof(*e));
	if (!e)
		return;
	lb_dest_hold(dest);
	e->dest = dest;
	e->next = en->set;
	en->set = e;
	en->set_size++;
	en->set_lastmod = now;
}

static void set_erase(struct lb_service *svc, struct lblcr_entry *en, struct lb_dest *dest, uint64_t now)
{
	for (struct lblcr_elem **pp = &en->set; *pp; pp = &(*pp)->next) {
		if ((*pp)->dest == dest) {
			struct lblcr_elem *e = *pp;
			en->set_size--;
			en->set_lastmod = now;
			*pp = e->next;
			lb_dest_put(svc->core, e->dest);
			free(e);
			break;
		}
	}
}

static void set_eraseall(struct lb_service *svc, struct lblcr_entry *en)
{
	while (en->set) {
		struct lblcr_elem *e = en->set;
		en->set = e->next;
		lb_dest_put(svc->core, e->dest);
		free(e);
	}
}

/* ip_vs_dest_set_min: weighted least-connection member; the first candidate must be available and
 * have weight > 0, later ones must be available; OVERLOADed members are skipped. */
static struct lb_dest *set_min(struct lblcr_entry *en)
{
	struct lb_dest *least = NULL;
	int64_t loh = 0;
	for (struct lblcr_elem *e = en->set; e; e = e->next) {
		struct lb_dest *d = e->dest;
		if (d->flags & LB_DEST_F_OVERLOAD)
			continue;
		if (!least) {
			if (d->weight > 0 && (d->flags & LB_DEST_F_AVAILABLE)) {
				least = d;
				loh = lb_dest_overhead(d);
			}
			continue;
		}
		int64_t doh = lb_dest_overhead(d);
		if (loh * d->weight > doh * least->weight && (d->flags & LB_DEST_F_AVAILABLE)) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

/* ip_vs_dest_set_max: weighted most-connection member among those with weight > 0. */
static struct lb_dest *set_max(struct lblcr_entry *en)
{
	struct lb_dest *most = NULL;
	int64_t moh = 0;
	for (struct lblcr_elem *e = en->set; e; e = e->next) {
		struct lb_dest *d = e->dest;
		if (!most) {
			if (d->weight > 0) {
				most = d;
				moh = lb_dest_overhead(d);
			}
			continue;
		}
		int64_t doh = lb_dest_overhead(d);
		if (moh * d->weight < doh * most->weight && d->weight > 0) {
			most = d;
			moh = doh;
		}
	}
	return most;
}

/* ---- the table ---- */

static struct lblcr_entry *lblcr_get(struct lblcr_table *t, uint16_t af, const union lb_addr *addr)
{
	for (struct lblcr_entry *en = t->bucket[lblcr_hashkey(af, addr)]; en; en = en->next)
		if (lb_addr_eq(af, &en->addr, addr))
			return en;
	return NULL;
}

static void lblcr_free(struct lb_service *svc, struct lblcr_table *t, struct lblcr_entry **pp)
{
	struct lblcr_entry *en = *pp;
	*pp = en->next;
	t->live--;
	set_eraseall(svc, en);
	free(en);
}

/* ip_vs_lblcr_new: a new entry whose set is {dest}, or dest added to the existing entry's set. */
static void lblcr_new(struct lb_service *svc, struct lblcr_table *t, const union lb_addr *daddr,
		      struct lb_dest *dest, uint64_t now)
{
	struct lblcr_entry *en = lblcr_get(t, svc->af, daddr);
	if (en) {
		set_insert(en, dest, true, now);
		return;
	}
	if (t->live >= LBLCR_HARD_MAX)
		return;
	en = calloc(1, sizeof(*en));
	if (!en)
		return;
	en->addr = *daddr;
	en->lastuse = now;
	set_insert(en, dest, false, now);
	uint32_t h = lblcr_hashkey(svc->af, daddr);
	en->next = t->bucket[h];
	t->bucket[h] = en;
	t->entries++;
	t->live++;
}

static void lblcr_sweep(struct lb_service *svc, struct lblcr_table *t, uint64_t now, uint64_t age, int32_t *goal)
{
	int32_t j = t->rover;
	for (uint32_t i = 0; i < LBLCR_TAB_SIZE; i++) {
		j = (j + 1) & LBLCR_TAB_MASK;
		struct lblcr_entry **pp = &t->bucket[j];
		while (*pp) {
			if (now < (*pp)->lastuse + age) {
				pp = &(*pp)->next;
				continue;
			}
			lblcr_free(svc, t, pp);
			t->entries--;
			if (goal)
				(*goal)--;
		}
		if (goal && *goal <= 0)
			break;
	}
	t->rover = j;
}

static void lblcr_check_expire(struct lb_service *svc, struct lblcr_table *t, uint64_t now)
{
	if (t->counter % LBLCR_COUNT_FOR_FULL_EXPIRATION == 0) {
		lblcr_sweep(svc, t, now, LBLCR_DEFAULT_EXPIRATION, NULL);
		t->counter = 1;
		return;
	}
	if (t->entries <= LBLCR_MAX_SIZE) {
		t->counter++;
		return;
	}
	int32_t goal = (t->entries - LBLCR_MAX_SIZE) * 4 / 3;
	if (goal > LBLCR_MAX_SIZE / 2)
		goal = LBLCR_MAX_SIZE / 2;
	lblcr_sweep(svc, t, now, LBLCR_ENTRY_TIMEOUT, &goal);
}

static void lblcr_run_timers(struct lb_service *svc, struct lblcr_table *t, uint64_t now)
{
	if (!t->timer_armed) {
		t->timer_armed = true;
		t->next_check = now + LBLCR_CHECK_EXPIRE_INTERVAL;
		return;
	}
	if (now < t->next_check)
		return;
	uint64_t due = (now - t->next_check) / LBLCR_CHECK_EXPIRE_INTERVAL + 1;
	if (due > LBLCR_MAX_CATCHUP)
		t->next_check += (due - LBLCR_MAX_CATCHUP) * LBLCR_CHECK_EXPIRE_INTERVAL;
	while (t->next_check <= now) {
		lblcr_check_expire(svc, t, t->next_check);
		t->next_check += LBLCR_CHECK_EXPIRE_INTERVAL;
	}
}

static int lblcr_init_service(struct lb_service *svc)
{
	struct lblcr_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->counter = 1;
	svc->sched_data = t;
	return 0;
}

static void lblcr_done_service(struct lb_service *svc)
{
	struct lblcr_table *t = svc->sched_data;
	if (!t)
		return;
	for (uint32_t i = 0; i < LBLCR_TAB_SIZE; i++)
		while (t->bucket[i])
			lblcr_free(svc, t, &t->bucket[i]);
	free(t);
	svc->sched_data = NULL;
}

static void lblcr_tick(struct lb_service *svc, uint64_t now)
{
	lblcr_run_timers(svc, svc->sched_data, now);
}

/* __ip_vs_lblcr_schedule: the same weighted least-connection pick as lblc's. */
static struct lb_dest *lblcr_least(struct lb_service *svc)
{
	struct lb_dest *d, *least = NULL;
	int64_t loh = 0;
	lb_for_each_dest(d, svc) {
		if (d->flags & LB_DEST_F_OVERLOAD)
			continue;
		if (!least) {
			if (d->weight > 0) {
				least = d;
				loh = lb_dest_overhead(d);
			}
			continue;
		}
		int64_t doh = lb_dest_overhead(d);
		if (loh * d->weight > doh * least->weight) {
			least = d;
			loh = doh;
		}
	}
	return least;
}

static bool lblcr_overloaded(const struct lb_dest *dest, struct lb_service *svc)
{
	struct lb_dest *d;
	if ((int64_t)dest->activeconns > dest->weight) {
		lb_for_each_dest(d, svc) {
			if ((int64_t)d->activeconns * 2 < d->weight)
				return true;
		}
	}
	return false;
}

static struct lb_dest *lblcr_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lblcr_table *t = svc->sched_data;
	uint64_t now = ctx->now;
	lblcr_run_timers(svc, t, now);

	struct lblcr_entry *en = lblcr_get(t, svc->af, &k->daddr);
	if (en) {
		en->lastuse = now;
		struct lb_dest *d = set_min(en);
		/* More than one dest and the set unchanged for the expiration: drop the most loaded. */
		if (en->set_size > 1 && now > en->set_lastmod + LBLCR_DEFAULT_EXPIRATION) {
			struct lb_dest *m = set_max(en);
			if (m)
				set_erase(svc, en, m, now);
		}
		if (d && !lblcr_overloaded(d, svc))
			return d;
		d = lblcr_least(svc);
		if (!d)
			return NULL;
		set_insert(en, d, true, now);
		return d;
	}
	struct lb_dest *d = lblcr_least(svc);
	if (!d)
		return NULL;
	lblcr_new(svc, t, &k->daddr, d, now);
	return d;
}

/* ---- test hooks, called from sched_lblc.c's lb_sched_locality_* ---- */

int lb_schedtest_lblcr_entries(struct lb_service *svc);
int lb_schedtest_lblcr_lookup(struct lb_service *svc, const union lb_addr *a, int32_t *out, int max,
			      uint64_t *lastuse, uint64_t *lastmod);

int lb_schedtest_lblcr_entries(struct lb_service *svc)
{
	return ((struct lblcr_table *)svc->sched_data)->entries;
}

int lb_schedtest_lblcr_lookup(struct lb_service *svc, const union lb_addr *a, int32_t *out, int max,
			      uint64_t *lastuse, uint64_t *lastmod)
{
	struct lblcr_entry *en = lblcr_get(svc->sched_data, svc->af, a);
	if (!en)
		return 0;
	int n = 0;
	for (struct lblcr_elem *e = en->set; e; e = e->next, n++)
		if (n < max)
			out[n] = e->dest->id;
	if (lastuse)
		*lastuse = en->lastuse;
	if (lastmod)
		*lastmod = en->set_lastmod;
	return n;
}

const struct lb_sched_ops lb_sched_lblcr = {
	.name = "lblcr",
	.flags_ok = 0,
	.init_service = lblcr_init_service,
	.done_service = lblcr_done_service,
	.schedule = lblcr_schedule,
	.tick = lblcr_tick,
};
