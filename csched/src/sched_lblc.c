/*
 * sched_lblc.c - locality-based least-connection (kernel ip_vs_lblc.c).  A per-service cache maps
 * a packet's destination address to the dest last chosen for it.  A cached dest is kept while it
 * is available, has weight > 0 and is not "overloaded" in lblc's sense (more active connections
 * than its weight while some dest has fewer than half its weight); otherwise the weighted
 * least-connection dest is chosen and cached.
 *
 * Aging, as the kernel's per-service timer does it every 60 s (CHECK_EXPIRE_INTERVAL): every 30th
 * run (or the first run after the overflow collector ran) a full sweep drops entries unused for
 * lblc_expiration (24 h); when the table holds more than 16 * 1024 entries, a partial sweep from
 * the rover drops entries unused for 6 min until (entries - 16384) * 4/3 are gone (at most 8192).
 *
 * Time: the kernel counts jiffies; here every time is the `now` (ns, monotonic) passed in, and
 * "HZ" is 1e9.  The C core has no timers: the first time the table sees a time (a schedule() or a
 * tick()) it arms the 60 s timer from there, and every later schedule()/tick() first runs the
 * timer firings that are due, each with its own firing time as "now", so the table is what the
 * kernel's would be at that moment.  At most LBLC_MAX_CATCHUP firings are replayed (the oldest are
 * dropped after a gap of more than a week).  Python twin: lb/sched/ref/lblc.py.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_core.h"
#include "lb_hash.h"
#include "lb_api_schedtest.h"

#define NS_PER_S 1000000000ULL
#define LBLC_CHECK_EXPIRE_INTERVAL (60 * NS_PER_S)
#define LBLC_ENTRY_TIMEOUT (6 * 60 * NS_PER_S)
#define LBLC_DEFAULT_EXPIRATION (24 * 60 * 60 * NS_PER_S)	/* sysctl lblc_expiration */
#define LBLC_COUNT_FOR_FULL_EXPIRATION 30
#define LBLC_TAB_BITS 10
#define LBLC_TAB_SIZE (1u << LBLC_TAB_BITS)
#define LBLC_TAB_MASK (LBLC_TAB_SIZE - 1)
#define LBLC_MAX_SIZE ((int32_t)LBLC_TAB_SIZE * 16)
#define LBLC_MAX_CATCHUP 10080u			/* one week of 60 s firings */
#define LBLC_HARD_MAX (1u << 20)		/* more live entries: "allocation fails", no entry */

struct lblc_entry {
	struct lblc_entry *next;	/* bucket chain, newest first */
	union lb_addr addr;		/* destination address */
	struct lb_dest *dest;		/* held (lb_dest_hold) while cached */
	uint64_t lastuse;
};

struct lblc_table {
	struct lblc_entry *bucket[LBLC_TAB_SIZE];
	int32_t entries;	/* the kernel's counter (also counts replaced entries, see lblc_new) */
	uint32_t live;		/* entries really allocated */
	int32_t rover;
	int32_t counter;
	bool timer_armed;
	uint64_t next_check;
};

static inline uint32_t lblc_hashkey(uint16_t af, const union lb_addr *addr)
{
	return lb_hash_32(lb_addr_fold(af, addr), LBLC_TAB_BITS);
}

static struct lblc_entry *lblc_get(struct lblc_table *t, uint16_t af, const union lb_addr *addr)
{
	for (struct lblc_entry *en = t->bucket[lblc_hashkey(af, addr)]; en; en = en->next)
		if (lb_addr_eq(af, &en->addr, addr))
			return en;
	return NULL;
}

/* Unlink *pp and release its dest (ip_vs_lblc_del).  The caller adjusts t->entries. */
static void lblc_del(struct lb_service *svc, struct lblc_table *t, struct lblc_entry **pp)
{
	struct lblc_entry *en = *pp;
	*pp = en->next;
	t->live--;
	lb_dest_put(svc->core, en->dest);
	free(en);
}

/* ip_vs_lblc_new: cache dest for daddr.  Replacing an entry unlinks the old one without lowering
 * the counter and then counts the new one: the kernel's counter creeps up on every replacement,
 * and that is what its overflow collector looks at. */
static void lblc_new(struct lb_service *svc, struct lblc_table *t, const union lb_addr *daddr,
		     struct lb_dest *dest, uint64_t now)
{
	uint32_t h = lblc_hashkey(svc->af, daddr);
	for (struct lblc_entry **pp = &t->bucket[h]; *pp; pp = &(*pp)->next) {
		if (lb_addr_eq(svc->af, &(*pp)->addr, daddr)) {
			if ((*pp)->dest == dest)
				return;
			lblc_del(svc, t, pp);
			break;
		}
	}
	if (t->live >= LBLC_HARD_MAX)
		return;
	struct lblc_entry *en = malloc(sizeof(*en));
	if (!en)
		return;
	en->addr = *daddr;
	en->lastuse = now;
	lb_dest_hold(dest);
	en->dest = dest;
	en->next = t->bucket[h];
	t->bucket[h] = en;
	t->entries++;
	t->live++;
}

/* Drop, bucket by bucket from the one after the rover, the entries not used since now - age;
 * stop after a bucket once *goal (if given) reaches 0.  Returns with the rover moved. */
static void lblc_sweep(struct lb_service *svc, struct lblc_table *t, uint64_t now, uint64_t age, int32_t *goal)
{
	int32_t j = t->rover;
	for (uint32_t i = 0; i < LBLC_TAB_SIZE; i++) {
		j = (j + 1) & LBLC_TAB_MASK;
		struct lblc_entry **pp = &t->bucket[j];
		while (*pp) {
			if (now < (*pp)->lastuse + age) {	/* time_before(now, lastuse + age) */
				pp = &(*pp)->next;
				continue;
			}
			lblc_del(svc, t, pp);
			t->entries--;
			if (goal)
				(*goal)--;
		}
		if (goal && *goal <= 0)
			break;
	}
	t->rover = j;
}

/* ip_vs_lblc_check_expire, one timer firing at time now. */
static void lblc_check_expire(struct lb_service *svc, struct lblc_table *t, uint64_t now)
{
	if (t->counter % LBLC_COUNT_FOR_FULL_EXPIRATION == 0) {
		lblc_sweep(svc, t, now, LBLC_DEFAULT_EXPIRATION, NULL);
		t->counter = 1;
		return;
	}
	if (t->entries <= LBLC_MAX_SIZE) {
		t->counter++;
		return;
	}
	int32_t goal = (t->entries - LBLC_MAX_SIZE) * 4 / 3;
	if (goal > LBLC_MAX_SIZE / 2)
		goal = LBLC_MAX_SIZE / 2;
	lblc_sweep(svc, t, now, LBLC_ENTRY_TIMEOUT, &goal);
}

/* Arm the timer on the first time seen; replay the firings due by now. */
static void lblc_run_timers(struct lb_service *svc, struct lblc_table *t, uint64_t now)
{
	if (!t->timer_armed) {
		t->timer_armed = true;
		t->next_check = now + LBLC_CHECK_EXPIRE_INTERVAL;
		return;
	}
	if (now < t->next_check)
		return;
	uint64_t due = (now - t->next_check) / LBLC_CHECK_EXPIRE_INTERVAL + 1;
	if (due > LBLC_MAX_CATCHUP)
		t->next_check += (due - LBLC_MAX_CATCHUP) * LBLC_CHECK_EXPIRE_INTERVAL;
	while (t->next_check <= now) {
		lblc_check_expire(svc, t, t->next_check);
		t->next_check += LBLC_CHECK_EXPIRE_INTERVAL;
	}
}

static int lblc_init_service(struct lb_service *svc)
{
	struct lblc_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->counter = 1;
	svc->sched_data = t;
	return 0;
}

static void lblc_done_service(struct lb_service *svc)
{
	struct lblc_table *t = svc->sched_data;
	if (!t)
		return;
	for (uint32_t i = 0; i < LBLC_TAB_SIZE; i++)
		while (t->bucket[i])
			lblc_del(svc, t, &t->bucket[i]);
	free(t);
	svc->sched_data = NULL;
}

static void lblc_tick(struct lb_service *svc, uint64_t now)
{
	lblc_run_timers(svc, svc->sched_data, now);
}

/* __ip_vs_lblc_schedule: weighted least connections over the service's dests (OVERLOAD skipped;
 * the first candidate must have weight > 0; ties keep the earlier dest). */
static struct lb_dest *lblc_least(struct lb_service *svc)
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

/* lblc's is_overloaded: more active connections than its weight, while some dest of the service
 * has fewer than half its weight. */
static bool lblc_overloaded(const struct lb_dest *dest, struct lb_service *svc)
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

static struct lb_dest *lblc_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	struct lblc_table *t = svc->sched_data;
	lblc_run_timers(svc, t, ctx->now);

	struct lblc_entry *en = lblc_get(t, svc->af, &k->daddr);
	if (en) {
		en->lastuse = ctx->now;
		struct lb_dest *d = en->dest;
		if ((d->flags & LB_DEST_F_AVAILABLE) && d->weight > 0 && !lblc_overloaded(d, svc))
			return d;
	}
	struct lb_dest *d = lblc_least(svc);
	if (!d)
		return NULL;
	lblc_new(svc, t, &k->daddr, d, ctx->now);
	return d;
}

/* ---- test hooks (lb_api_schedtest.h), shared with sched_lblcr.c ---- */

int lb_schedtest_lblcr_entries(struct lb_service *svc);
int lb_schedtest_lblcr_lookup(struct lb_service *svc, const union lb_addr *a, int32_t *out, int max,
			      uint64_t *lastuse, uint64_t *lastmod);

int lb_sched_locality_entries(lb_core *core, const struct lb_svc_cfg *key)
{
	struct lb_service *svc = lb_schedtest_svc(core, key);
	if (!svc)
		return -ESRCH;
	if (svc->sched == &lb_sched_lblcr)
		return lb_schedtest_lblcr_entries(svc);
	if (svc->sched != &lb_sched_lblc)
		return -EINVAL;
	return ((struct lblc_table *)svc->sched_data)->entries;
}

int lb_sched_locality_lookup(lb_core *core, const struct lb_svc_cfg *key, const uint8_t *daddr, int32_t *out,
			     int max, uint64_t *lastuse, uint64_t *lastmod)
{
	struct lb_service *svc = lb_schedtest_svc(core, key);
	union lb_addr a;
	if (!svc)
		return -ESRCH;
	lb_addr_from_cfg(&a, daddr, svc->af);
	if (svc->sched == &lb_sched_lblcr)
		return lb_schedtest_lblcr_lookup(svc, &a, out, max, lastuse, lastmod);
	if (svc->sched != &lb_sched_lblc)
		return -EINVAL;
	struct lblc_entry *en = lblc_get(svc->sched_data, svc->af, &a);
	if (lastmod)
		*lastmod = 0;
	if (!en)
		return 0;
	if (max > 0)
		out[0] = en->dest->id;
	if (lastuse)
		*lastuse = en->lastuse;
	return 1;
}

const struct lb_sched_ops lb_sched_lblc = {
	.name = "lblc",
	.flags_ok = 0,
	.init_service = lblc_init_service,
	.done_service = lblc_done_service,
	.schedule = lblc_schedule,
	.tick = lblc_tick,
};
