/*
 * conn.c - the connection table (kernel ip_vs_conn.c): a fixed pool of entries with one seeded hash
 * on the client side (proto, caddr, cport) like the kernel's single table, so the inbound lookup
 * (client -> VIP) and the NAT reply lookup (RIP -> client) walk the same chain; persistence
 * templates live in the same table.  Expiry is a timer wheel of 2^16 slots of 2^24 ns (~16.8 ms),
 * walked as `now` advances: an entry sits in the slot of a tick at or before its expiry (a refresh
 * that pushes the expiry later leaves it where it is; it is moved when its slot comes round), so
 * a packet's refresh costs nothing and expiry is amortised O(1).  Within one tick conns expire
 * before templates.  A template that still controls conns is re-armed for its timeout instead
 * (ip_vs_conn_expire's expire_later).  Expiring unbinds the dest (active/inactive/persist counts,
 * then lb_dest_put, which frees a dest from the trash with its last conn).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "lb_conn.h"

#define NS_PER_S 1000000000ull
#define WHEEL_SHIFT 24
#define WHEEL_BITS 16
#define WHEEL_SIZE (1u << WHEEL_BITS)
#define WHEEL_MASK (WHEEL_SIZE - 1)
#define WHEEL_HEAD 0x80000000u		/* wheel_prev: the entry is first in slot (low bits) */
#define WHEEL_DETACHED 0xFFFFFFFEu	/* wheel_prev: on a list being walked by expire */

struct lb_conn_table {
	struct lb_conn *pool;
	uint32_t max;
	uint32_t hw;			/* pool[hw..max) never used yet */
	uint32_t free_head;		/* freed entries, linked through hnext */
	uint32_t *buckets;
	uint32_t bmask;
	uint64_t seed;
	uint32_t *slots;
	uint64_t *bitmap;
	uint64_t wheel_tick;		/* every tick before this one has been walked */
	bool wheel_started;
	uint64_t entries, templates, refused, created, expired;
	size_t bytes;
};

static inline uint64_t tick_of(uint64_t ns) { return ns >> WHEEL_SHIFT; }
static inline uint16_t bswap16(uint16_t v) { return (uint16_t)((v >> 8) | (v << 8)); }

struct lb_conn *lb_conn_at(struct lb_core *core, uint32_t idx) { return &core->conns->pool[idx]; }
uint32_t lb_conn_index(const struct lb_core *core, const struct lb_conn *cp)
{
	return (uint32_t)(cp - core->conns->pool);
}
void lb_conn_count_refused(struct lb_core *core) { core->conns->refused++; }

/* ---- creation ---- */

/* The pool and the buckets: anonymous mappings (zero pages, touched only as used, like calloc) with
 * transparent huge pages asked for, since lookups land at random all over them: with 4 KiB pages a
 * table of 10^6 entries (136 MB) misses the TLB on nearly every lookup. */
static void *big_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, bytes, MADV_HUGEPAGE);	/* advice only: without THP it stays 4 KiB pages */
#endif
	return p;
}

static void big_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

static size_t pool_bytes(const struct lb_conn_table *t) { return (size_t)t->max * sizeof(struct lb_conn); }
static size_t bucket_bytes(const struct lb_conn_table *t) { return ((size_t)t->bmask + 1) * sizeof(uint32_t); }

struct lb_conn_table *lb_conn_table_new(uint32_t max, uint64_t seed)
{
	if (max == 0 || max >= WHEEL_HEAD)
		return NULL;
	struct lb_conn_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	/* Buckets: the power of two >= max, halved when that is more than 1.5 x max (load <= 1.33). */
	uint64_t nb = 1;
	while (nb < max)
		nb <<= 1;
	if (nb > 16 && nb * 2 > (uint64_t)max * 3)
		nb >>= 1;
	t->max = max;
	t->seed = seed;
	t->bmask = (uint32_t)(nb - 1);
	t->free_head = LB_CONN_NONE;
	/* Pages of the pool are only touched as entries are first used. */
	t->pool = big_alloc(pool_bytes(t));
	t->buckets = big_alloc(bucket_bytes(t));
	t->slots = malloc(WHEEL_SIZE * sizeof(uint32_t));
	t->bitmap = calloc(WHEEL_SIZE / 64, sizeof(uint64_t));
	if (!t->pool || !t->buckets || !t->slots || !t->bitmap) {
		big_free(t->pool, pool_bytes(t));
		big_free(t->buckets, bucket_bytes(t));
		free(t->slots);
		free(t->bitmap);
		free(t);
		return NULL;
	}
	memset(t->buckets, 0xFF, nb * sizeof(uint32_t));
	memset(t->slots, 0xFF, WHEEL_SIZE * sizeof(uint32_t));
	t->bytes = sizeof(*t) + (size_t)max * sizeof(struct lb_conn) + nb * sizeof(uint32_t) +
		   WHEEL_SIZE * sizeof(uint32_t) + WHEEL_SIZE / 8;
	return t;
}

/* ---- hash: one table keyed on the client side, as the kernel's ---- */

static inline uint32_t conn_hash(const struct lb_conn_table *t, uint16_t af, uint8_t proto,
				 const union lb_addr *a, uint16_t port)
{
	uint64_t h = t->seed ^ ((((uint64_t)proto << 16) | port) * 0x9E3779B97F4A7C15ull);
	if (af == LB_AF_INET) {
		h ^= a->ip;
	} else {
		h ^= a->ip6[0];
		h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
		h ^= a->ip6[1] ^ ((uint64_t)a->ip6[2] << 32);
		h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
		h ^= a->ip6[3];
	}
	h = (h ^ (h >> 33)) * 0xFF51AFD7ED558CCDull;
	h = (h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53ull;
	h ^= h >> 33;
	return (uint32_t)h & t->bmask;
}

static void hash_add(struct lb_conn_table *t, uint32_t idx)
{
	struct lb_conn *c = &t->pool[idx];
	uint32_t b = conn_hash(t, c->af, c->proto, &c->caddr, c->cport);
	c->hnext = t->buckets[b];
	t->buckets[b] = idx;
	c->flags |= LB_CONN_F_HASHED;
}

static void hash_del(struct lb_conn_table *t, uint32_t idx)
{
	struct lb_conn *c = &t->pool[idx];
	if (!(c->flags & LB_CONN_F_HASHED))
		return;
	uint32_t *pp = &t->buckets[conn_hash(t, c->af, c->proto, &c->caddr, c->cport)];
	while (*pp != LB_CONN_NONE) {
		if (*pp == idx) {
			*pp = c->hnext;
			break;
		}
		pp = &t->pool[*pp].hnext;
	}
	c->hnext = LB_CONN_NONE;
	c->flags &= ~(uint32_t)LB_CONN_F_HASHED;
}

void lb_conn_rehash(struct lb_core *core, struct lb_conn *cp, uint16_t cport, uint16_t vport, uint16_t dport)
{
	struct lb_conn_table *t = core->conns;
	uint32_t idx = (uint32_t)(cp - t->pool);
	bool hashed = cp->flags & LB_CONN_F_HASHED;
	hash_del(t, idx);
	cp->cport = cport;
	cp->vport = vport;
	cp->dport = dport;
	if (hashed)
		hash_add(t, idx);
}

/* ---- timer wheel ---- */

static void wheel_add(struct lb_conn_table *t, uint32_t idx)
{
	struct lb_conn *c = &t->pool[idx];
	uint64_t tk = tick_of(c->expires);
	if (tk < t->wheel_tick)
		tk = t->wheel_tick;
	uint32_t s = (uint32_t)(tk & WHEEL_MASK);
	c->wheel_next = t->slots[s];
	c->wheel_prev = WHEEL_HEAD | s;
	if (c->wheel_next != LB_CONN_NONE)
		t->pool[c->wheel_next].wheel_prev = idx;
	t->slots[s] = idx;
	t->bitmap[s >> 6] |= 1ull << (s & 63);
}

static void wheel_del(struct lb_conn_table *t, uint32_t idx)
{
	struct lb_conn *c = &t->pool[idx];
	uint32_t prev = c->wheel_prev, next = c->wheel_next;
	if (prev == WHEEL_DETACHED)
		return;		/* expire() is walking its list; it never looks at c again */
	if (prev & WHEEL_HEAD) {
		uint32_t s = prev & ~WHEEL_HEAD;
		t->slots[s] = next;
		if (next == LB_CONN_NONE)
			t->bitmap[s >> 6] &= ~(1ull << (s & 63));
	} else {
		t->pool[prev].wheel_next = next;
	}
	if (next != LB_CONN_NONE)
		t->pool[next].wheel_prev = prev;
	c->wheel_next = c->wheel_prev = LB_CONN_NONE;
}

static void wheel_start(struct lb_conn_table *t, uint64_t now)
{
	if (!t->wheel_started) {
		t->wheel_started = true;
		t->wheel_tick = tick_of(now);
	}
}

void lb_conn_set_expires(struct lb_core *core, struct lb_conn *cp, uint64_t expires)
{
	struct lb_conn_table *t = core->conns;
	uint64_t old = cp->expires;
	cp->expires = expires;
	/* Later: stays in its (earlier) slot and is moved when that comes round.  Earlier: move now,
	 * unless expire() is walking it (it files it again itself). */
	if (expires < old && cp->wheel_prev != WHEEL_DETACHED) {
		uint32_t idx = (uint32_t)(cp - t->pool);
		wheel_del(t, idx);
		wheel_add(t, idx);
	}
}

/* ---- entries ---- */

static uint32_t entry_alloc(struct lb_conn_table *t)
{
	uint32_t idx;
	if (t->free_head != LB_CONN_NONE) {
		idx = t->free_head;
		t->free_head = t->pool[idx].hnext;
	} else if (t->hw < t->max) {
		idx = t->hw++;
	} else {
		return LB_CONN_NONE;
	}
	return idx;
}

/* The kernel's ip_vs_conn_new + ip_vs_bind_dest: flags from the dest (INACTIVE always, NOOUTPUT
 * unless NAT), a reference on the dest, the count it starts in; hashed unless ONE_PACKET. */
struct lb_conn *lb_conn_new(struct lb_core *core, uint16_t af, uint8_t proto, const union lb_addr *caddr,
			    uint16_t cport, const union lb_addr *vaddr, uint16_t vport, struct lb_dest *dest,
			    uint16_t dport, uint32_t flags, uint64_t now)
{
	struct lb_conn_table *t = core->conns;
	uint32_t idx = entry_alloc(t);
	if (idx == LB_CONN_NONE) {
		t->refused++;
		return NULL;
	}
	struct lb_conn *c = &t->pool[idx];
	memset(c, 0, sizeof(*c));
	c->af = af;
	c->proto = proto;
	c->caddr = *caddr;
	c->vaddr = *vaddr;
	c->cport = cport;
	c->vport = vport;
	c->dport = dport;
	c->control = LB_CONN_NONE;
	c->hnext = LB_CONN_NONE;
	c->flags = flags | LB_CONN_F_USED | LB_CONN_F_INACTIVE;
	if (dest) {
		c->daddr = dest->addr;
		c->fwd = (uint16_t)dest->conn_flags;
		if (dest->conn_flags != LB_FWD_MASQ)
			c->flags |= LB_CONN_F_NOOUTPUT;
		if (proto != LB_PROTO_UDP)
			c->flags &= ~(uint32_t)LB_CONN_F_ONE_PACKET;
		c->dest = dest;
		lb_dest_hold(dest);
		if (c->flags & LB_CONN_F_TEMPLATE)
			lb_dest_account(dest, LB_EV_BIND_TEMPLATE);
		else
			lb_dest_account(dest, LB_EV_BIND_INACTIVE);
	}
	c->state = 0;
	c->timeout_s = 3;	/* until the first state transition (ip_vs_conn_new) */
	c->expires = now + 3 * NS_PER_S;
	if (!(c->flags & LB_CONN_F_ONE_PACKET))
		hash_add(t, idx);
	wheel_start(t, now);
	wheel_add(t, idx);
	t->entries++;
	t->created++;
	if (c->flags & LB_CONN_F_TEMPLATE)
		t->templates++;
	return c;
}

/* Unlink and free (no re-arm): hash, control link, dest binding, wheel. */
static void entry_release(struct lb_core *core, uint32_t idx)
{
	struct lb_conn_table *t = core->conns;
	struct lb_conn *c = &t->pool[idx];
	hash_del(t, idx);
	if (c->control != LB_CONN_NONE) {
		struct lb_conn *ct = &t->pool[c->control];
		if (ct->n_control)
			ct->n_control--;
		c->control = LB_CONN_NONE;
	}
	if (c->dest) {
		struct lb_dest *d = c->dest;
		if (c->flags & LB_CONN_F_TEMPLATE)
			lb_dest_account(d, LB_EV_UNBIND_TEMPLATE);
		else if (c->flags & LB_CONN_F_INACTIVE)
			lb_dest_account(d, LB_EV_UNBIND_INACTIVE);
		else
			lb_dest_account(d, LB_EV_UNBIND_ACTIVE);
		c->dest = NULL;
		lb_dest_put(core, d);
	}
	wheel_del(t, idx);
	if (c->flags & LB_CONN_F_TEMPLATE)
		t->templates--;
	t->entries--;
	c->flags = 0;
	c->hnext = t->free_head;
	t->free_head = idx;
}

/* The kernel's ip_vs_conn_expire: an entry that still controls others is re-armed for another
 * timeout (from the time it was due, as the kernel timer fires on time); otherwise it goes.
 * Returns true if the entry was freed. */
static bool entry_expire(struct lb_core *core, uint32_t idx)
{
	struct lb_conn_table *t = core->conns;
	struct lb_conn *c = &t->pool[idx];
	if (c->n_control) {
		c->expires += (uint64_t)c->timeout_s * NS_PER_S;
		if (c->wheel_prev == WHEEL_DETACHED)
			wheel_add(t, idx);
		return false;
	}
	t->expired++;
	entry_release(core, idx);
	return true;
}

void lb_conn_table_free(struct lb_core *core, struct lb_conn_table *t)
{
	if (!t)
		return;
	struct lb_conn_table *saved = core->conns;
	core->conns = t;
	lb_conn_flush(core);
	core->conns = saved;
	big_free(t->pool, pool_bytes(t));
	big_free(t->buckets, bucket_bytes(t));
	free(t->slots);
	free(t->bitmap);
	free(t);
}

void lb_conn_flush(lb_core *core)
{
	struct lb_conn_table *t = core->conns;
	/* conns first (they drop their templates' control counts), then templates */
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < t->hw; i++) {
			struct lb_conn *c = &t->pool[i];
			if (!(c->flags & LB_CONN_F_USED))
				continue;
			if (pass == 0 && (c->flags & LB_CONN_F_TEMPLATE))
				continue;
			entry_release(core, i);
		}
}

void lb_conn_put(struct lb_core *core, struct lb_conn *cp)
{
	if (cp->flags & LB_CONN_F_ONE_PACKET) {
		struct lb_conn_table *t = core->conns;
		t->expired++;
		entry_release(core, (uint32_t)(cp - t->pool));
	}
}

/* ---- expiry ---- */

/* Next tick >= from whose slot is not empty, or UINT64_MAX if every slot is empty. */
static uint64_t wheel_next_busy(const struct lb_conn_table *t, uint64_t from)
{
	uint32_t s = (uint32_t)(from & WHEEL_MASK);
	for (uint32_t scanned = 0; scanned <= WHEEL_SIZE;) {
		uint32_t w = s >> 6, b = s & 63;
		uint64_t bits = t->bitmap[w] >> b;
		if (bits) {
			uint32_t d = (uint32_t)__builtin_ctzll(bits);
			return from + scanned + d;
		}
		scanned += 64 - b;
		s = (s + 64 - b) & WHEEL_MASK;
	}
	return UINT64_MAX;
}

uint32_t lb_conn_expire(struct lb_core *core, uint64_t now, uint32_t budget)
{
	struct lb_conn_table *t = core->conns;
	uint32_t done = 0;
	if (!t || !t->wheel_started)
		return 0;
	uint64_t now_tick = tick_of(now);
	while (t->wheel_tick <= now_tick) {
		uint64_t busy = wheel_next_busy(t, t->wheel_tick);
		if (busy > now_tick) {
			t->wheel_tick = now_tick;	/* nothing filed up to now */
			break;
		}
		t->wheel_tick = busy;
		uint32_t s = (uint32_t)(busy & WHEEL_MASK);
		uint32_t list = t->slots[s];
		t->slots[s] = LB_CONN_NONE;
		t->bitmap[s >> 6] &= ~(1ull << (s & 63));
		for (uint32_t i = list; i != LB_CONN_NONE; i = t->pool[i].wheel_next)
			t->pool[i].wheel_prev = WHEEL_DETACHED;
		/* pass 0: conns; pass 1: templates (so a template due in the same tick as its last conn
		 * sees that conn gone) */
		uint32_t templates = LB_CONN_NONE;
		for (int pass = 0; pass < 2; pass++) {
			uint32_t i = pass ? templates : list;
			while (i != LB_CONN_NONE) {
				struct lb_conn *c = &t->pool[i];
				uint32_t next = c->wheel_next;
				if (pass == 0 && (c->flags & LB_CONN_F_TEMPLATE)) {
					c->wheel_next = templates;
					templates = i;
				} else if (tick_of(c->expires) <= t->wheel_tick && c->expires <= now && done < budget) {
					/* only in its own tick: a refreshed entry filed early waits for it */
					if (entry_expire(core, i))
						done++;
				} else {
					wheel_add(t, i);	/* later tick, or this one when over budget */
				}
				i = next;
			}
		}
		if (done >= budget)
			return done;
		if (t->wheel_tick == now_tick)
			break;	/* the current tick may get more due entries later */
		t->wheel_tick++;
	}
	return done;
}

uint32_t lb_conn_expire_now(lb_core *core, uint64_t now_ns, uint32_t budget)
{
	return lb_conn_expire(core, now_ns, budget);
}

/* ---- lookups ---- */

/* An entry found past its time is expired on the spot (it may survive: a controlling template). */
static inline bool alive(struct lb_core *core, struct lb_conn *c, uint64_t now)
{
	if (now < c->expires)
		return true;
	return !entry_expire(core, (uint32_t)(c - core->conns->pool));
}

struct lb_conn *lb_conn_lookup_in(struct lb_core *core, const struct lb_flow_key *k, uint64_t now)
{
	struct lb_conn_table *t = core->conns;
	uint32_t i = t->buckets[conn_hash(t, k->af, k->proto, &k->saddr, k->sport)];
	while (i != LB_CONN_NONE) {
		struct lb_conn *c = &t->pool[i];
		i = c->hnext;
		if (c->cport == k->sport && c->vport == k->dport && c->proto == k->proto && c->af == k->af &&
		    !(c->flags & LB_CONN_F_TEMPLATE) && lb_addr_eq(k->af, &c->caddr, &k->saddr) &&
		    lb_addr_eq(k->af, &c->vaddr, &k->daddr) && alive(core, c, now))
			return c;
	}
	return NULL;
}

struct lb_conn *lb_conn_lookup_out(struct lb_core *core, const struct lb_flow_key *k, uint64_t now)
{
	struct lb_conn_table *t = core->conns;
	uint32_t i = t->buckets[conn_hash(t, k->af, k->proto, &k->daddr, k->dport)];
	while (i != LB_CONN_NONE) {
		struct lb_conn *c = &t->pool[i];
		i = c->hnext;
		if (c->cport == k->dport && c->dport == k->sport && c->proto == k->proto && c->af == k->af &&
		    !(c->flags & LB_CONN_F_TEMPLATE) && lb_addr_eq(k->af, &c->caddr, &k->daddr) &&
		    lb_addr_eq(k->af, &c->daddr, &k->saddr) && alive(core, c, now))
			return c;
	}
	return NULL;
}

/* The kernel's ip_vs_ct_in_get: a template <proto, snet, 0, vaddr, vport>. */
struct lb_conn *lb_conn_template_get(struct lb_core *core, uint16_t af, uint8_t proto,
				     const union lb_addr *snet, const union lb_addr *vaddr, uint16_t vport,
				     uint64_t now)
{
	struct lb_conn_table *t = core->conns;
	uint32_t i = t->buckets[conn_hash(t, af, proto, snet, 0)];
	while (i != LB_CONN_NONE) {
		struct lb_conn *c = &t->pool[i];
		i = c->hnext;
		if ((c->flags & LB_CONN_F_TEMPLATE) && c->cport == 0 && c->vport == vport && c->proto == proto &&
		    c->af == af && lb_addr_eq(af, &c->caddr, snet) && lb_addr_eq(af, &c->vaddr, vaddr) &&
		    alive(core, c, now))
			return c;
	}
	return NULL;
}

/* ---- per packet ---- */

void lb_conn_state(struct lb_core *core, struct lb_conn *cp, int dir, uint8_t tcp_flags, uint64_t now)
{
	cp->old_state = cp->state;
	if (cp->proto == LB_PROTO_TCP)
		lb_tcp_state_transition(core, cp, dir, tcp_flags);
	else
		lb_udp_state_transition(core, cp);
	lb_conn_set_expires(core, cp, now + (uint64_t)cp->timeout_s * NS_PER_S);
}

/* ---- the cffi surface ---- */

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

/* Every field written (no memset of the whole key: this runs once per flow of a batch). */
static inline void key_from_flow(struct lb_flow_key *k, const struct lb_flow *f)
{
	k->af = f->af;
	k->proto = (uint8_t)f->proto;
	k->pad = 0;
	k->fwmark = 0;
	flow_addr(&k->saddr, f->saddr, f->af);
	flow_addr(&k->daddr, f->daddr, f->af);
	k->sport = bswap16(f->sport);
	k->dport = bswap16(f->dport);
}

size_t lb_conn_dump(lb_core *core, uint64_t *cursor, struct lb_conn_info *out, size_t max, uint64_t now_ns)
{
	struct lb_conn_table *t = core->conns;
	size_t n = 0;
	uint64_t i = *cursor;
	for (; i < t->hw && n < max; i++) {
		const struct lb_conn *c = &t->pool[i];
		if (!(c->flags & LB_CONN_F_USED))
			continue;
		if (now_ns >= c->expires && !c->n_control)
			continue;
		struct lb_conn_info *o = &out[n++];
		memset(o, 0, sizeof(*o));
		o->af = c->af;
		o->proto = c->proto;
		o->state = c->state;
		o->flags = c->flags & ~LB_CONN_F_USED;
		memcpy(o->caddr, c->caddr.b, 16);
		memcpy(o->vaddr, c->vaddr.b, 16);
		memcpy(o->daddr, c->daddr.b, 16);
		o->cport = bswap16(c->cport);
		o->vport = bswap16(c->vport);
		o->dport = bswap16(c->dport);
		o->fwd = c->fwd;
		o->expires_ms = now_ns >= c->expires ? 0 : (c->expires - now_ns) / 1000000u;
		o->dest_id = c->dest ? c->dest->id : -1;
		o->n_control = c->n_control;
		o->timeout_s = c->timeout_s;
		o->index = (uint32_t)i;
		o->control = c->control;
		o->pkts_in = c->pkts_in;
		o->pkts_out = c->pkts_out;
		o->bytes_in = c->bytes_in;
		o->bytes_out = c->bytes_out;
	}
	*cursor = i;
	return n;
}

/* ip_vs_set_timeout: 0 leaves a value alone; the kernel refuses more than INT_MAX / HZ. */
#define LB_TIMEOUT_MAX (2147483647u / 250u)
int lb_timeout_set(lb_core *core, uint32_t tcp, uint32_t tcpfin, uint32_t udp)
{
	if (tcp > LB_TIMEOUT_MAX || tcpfin > LB_TIMEOUT_MAX || udp > LB_TIMEOUT_MAX)
		return -22;	/* EINVAL */
	if (tcp)
		core->timeout_tcp = tcp;
	if (tcpfin)
		core->timeout_tcpfin = tcpfin;
	if (udp)
		core->timeout_udp = udp;
	return 0;
}

void lb_timeout_get(lb_core *core, uint32_t *tcp, uint32_t *tcpfin, uint32_t *udp)
{
	*tcp = core->timeout_tcp;
	*tcpfin = core->timeout_tcpfin;
	*udp = core->timeout_udp;
}

uint32_t lb_conn_tcp_timeout(lb_core *core, int state) { return lb_tcp_timeout(core, state); }

void lb_conn_get_stats(lb_core *core, struct lb_conn_stats *o)
{
	const struct lb_conn_table *t = core->conns;
	memset(o, 0, sizeof(*o));
	o->entries = t->entries;
	o->templates = t->templates;
	o->refused = t->refused;
	o->created = t->created;
	o->expired = t->expired;
	o->capacity = t->max;
	o->entry_size = sizeof(struct lb_conn);
	o->buckets = (uint64_t)t->bmask + 1;
	o->bytes = t->bytes;
}

/* kernel ip_vs_in_hook: is_new_conn (a SYN) on a conn is_new_conn_expected (not controlled, in
 * TIME_WAIT or CLOSE) with conn_reuse_mode 1: expire it now and schedule afresh. */
static bool reuse_expected(const struct lb_conn *c)
{
	return c->control == LB_CONN_NONE && c->proto == LB_PROTO_TCP &&
	       (c->state == LB_TCP_S_TIME_WAIT || c->state == LB_TCP_S_CLOSE);
}

int lb_conn_batch_schedule(lb_core *core, const struct lb_flow *flows, uint32_t n, int32_t *dest_ids_out,
			   const uint8_t *tcp_flags, uint64_t now_ns)
{
	struct lb_conn_table *t = core->conns;
	int created = 0;
	lb_conn_expire(core, now_ns, UINT32_MAX);
	for (uint32_t i = 0; i < n; i++) {
		struct lb_flow_key k;
		key_from_flow(&k, &flows[i]);
		uint8_t fl = tcp_flags ? tcp_flags[i] : LB_TCPF_SYN;
		bool tcp = k.proto == LB_PROTO_TCP;
		dest_ids_out[i] = -1;
		struct lb_conn *cp = lb_conn_lookup_in(core, &k, now_ns);
		if (cp && tcp && (fl & LB_TCPF_SYN) && reuse_expected(cp)) {
			if (!cp->n_control) {
				t->expired++;
				entry_release(core, (uint32_t)(cp - t->pool));
			}
			cp = NULL;
		}
		if (!cp) {
			if (tcp && ((fl & LB_TCPF_RST) || !(fl & LB_TCPF_SYN)))
				continue;
			struct lb_service *svc = lb_svc_find(core, k.af, k.proto, &k.daddr, k.dport);
			if (!svc)
				continue;
			int reason = 0;
			cp = lb_conn_schedule(core, svc, &k, now_ns, &reason);
			if (!cp)
				continue;
			created++;
		}
		cp->pkts_in++;
		lb_conn_state(core, cp, 0, tcp ? fl : 0, now_ns);
		dest_ids_out[i] = cp->dest ? cp->dest->id : -1;
		lb_conn_put(core, cp);
	}
	return created;
}

int lb_conn_batch_reply(lb_core *core, const struct lb_flow *flows, uint32_t n, int32_t *dest_ids_out,
			const uint8_t *tcp_flags, uint64_t now_ns)
{
	int hits = 0;
	lb_conn_expire(core, now_ns, UINT32_MAX);
	for (uint32_t i = 0; i < n; i++) {
		struct lb_flow_key in, out;
		key_from_flow(&in, &flows[i]);
		dest_ids_out[i] = -1;
		/* find the conn inbound to learn its dest, then look it up as the reply would */
		struct lb_conn *c = lb_conn_lookup_in(core, &in, now_ns);
		if (!c)
			continue;
		memset(&out, 0, sizeof(out));
		out.af = in.af;
		out.proto = in.proto;
		out.saddr = c->daddr;
		out.sport = c->dport;
		out.daddr = in.saddr;
		out.dport = in.sport;
		struct lb_conn *cp = lb_conn_lookup_out(core, &out, now_ns);
		if (!cp)
			continue;
		hits++;
		cp->pkts_out++;
		lb_conn_state(core, cp, 1, in.proto == LB_PROTO_TCP ? (tcp_flags ? tcp_flags[i] : LB_TCPF_ACK) : 0,
			      now_ns);
		dest_ids_out[i] = cp->dest ? cp->dest->id : -1;
	}
	return hits;
}

/* Read-only batched lookup, software-pipelined: hash and prefetch every bucket of a group, then
 * prefetch the first entries, then walk.  This is what keeps 1 M-entry lookups fast. */
/* Software pipeline over the batch, four stages LOOKUP_AHEAD flows apart: flow i+3A is hashed and
 * its bucket prefetched; flow i+2A reads its bucket and prefetches the chain's first entry (the two
 * lines that hold what a lookup reads: struct lb_conn's first 64 bytes); flow i+A reads that
 * entry's hnext and prefetches the second entry (at ~1 entry per bucket a hit is second in its
 * chain about a third of the time); flow i is compared.  Each miss to memory thus has A flows'
 * worth of work to hide behind. */
#define LOOKUP_AHEAD 16
#define LOOKUP_RING 64	/* power of two > 3 * LOOKUP_AHEAD */

static inline void prefetch_entry(const struct lb_conn_table *t, uint32_t idx)
{
	const char *e = (const char *)&t->pool[idx];
	__builtin_prefetch(e);
	__builtin_prefetch(e + 63);
}

int lb_conn_batch_lookup(lb_core *core, const struct lb_flow *flows, uint32_t n, int32_t *dest_ids_out,
			 uint64_t now_ns)
{
	struct lb_conn_table *t = core->conns;
	int hits = 0;
	struct lb_flow_key keys[LOOKUP_RING];
	uint32_t heads[LOOKUP_RING];
	for (uint64_t s = 0; s < (uint64_t)n + 3 * LOOKUP_AHEAD; s++) {
		if (s < n) {
			uint32_t r = (uint32_t)s & (LOOKUP_RING - 1);
			key_from_flow(&keys[r], &flows[s]);
			heads[r] = conn_hash(t, keys[r].af, keys[r].proto, &keys[r].saddr, keys[r].sport);
			__builtin_prefetch(&t->buckets[heads[r]]);
		}
		if (s >= LOOKUP_AHEAD && s - LOOKUP_AHEAD < n) {
			uint32_t r = (uint32_t)(s - LOOKUP_AHEAD) & (LOOKUP_RING - 1);
			heads[r] = t->buckets[heads[r]];
			if (heads[r] != LB_CONN_NONE)
				prefetch_entry(t, heads[r]);
		}
		if (s >= 2 * LOOKUP_AHEAD && s - 2 * LOOKUP_AHEAD < n) {
			uint32_t r = (uint32_t)(s - 2 * LOOKUP_AHEAD) & (LOOKUP_RING - 1);
			if (heads[r] != LB_CONN_NONE) {
				uint32_t next = t->pool[heads[r]].hnext;
				if (next != LB_CONN_NONE)
					prefetch_entry(t, next);
			}
		}
		if (s >= 3 * LOOKUP_AHEAD) {
			uint32_t j = (uint32_t)(s - 3 * LOOKUP_AHEAD);
			const struct lb_flow_key *k = &keys[j & (LOOKUP_RING - 1)];
			int32_t id = -1;
			for (uint32_t i = heads[j & (LOOKUP_RING - 1)]; i != LB_CONN_NONE;) {
				const struct lb_conn *c = &t->pool[i];
				i = c->hnext;
				if (c->cport == k->sport && c->vport == k->dport && c->proto == k->proto &&
				    c->af == k->af && !(c->flags & LB_CONN_F_TEMPLATE) &&
				    lb_addr_eq(k->af, &c->caddr, &k->saddr) &&
				    lb_addr_eq(k->af, &c->vaddr, &k->daddr) && now_ns < c->expires) {
					id = c->dest ? c->dest->id : -1;
					break;
				}
			}
			dest_ids_out[j] = id;
			hits += id >= 0;
		}
	}
	return hits;
}
