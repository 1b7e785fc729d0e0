/*
 * sched_mh.c - Maglev hashing (kernel ip_vs_mh.c; Eisenbud et al., NSDI'16, section 3.4).
 * Every dest gets a preference list over the 4093 slots of a lookup table: start at offset =
 * hsiphash(dest addr+port, key1) % 4093, step by skip = hsiphash(.., key2) % 4092 + 1.  Dests take
 * turns (in list order) claiming their next free preferred slot; a dest with last_weight w claims
 * (w / gcd) >> rshift slots per turn (at least one if w != 0), where rshift keeps the largest
 * weight within IP_VS_MH_TAB_BITS (6) bits.  last_weight, not weight, decides the share, so a dest
 * quiesced with weight 0 keeps its slots and clients keep hashing to it (schedule() refuses it,
 * mh-fallback walks on).  schedule() is one hsiphash of the client address (+ port with mh-port)
 * and a table read.  Python twin: lb/sched/ref/mh.py.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_core.h"
#include "lb_hash.h"
#include "lb_api_schedtest.h"

#define MH_TAB_SIZE LB_MH_TAB_SIZE		/* primes[CONFIG_IP_VS_MH_TAB_INDEX - 8], index 12 */
#define MH_TAB_BITS 6				/* CONFIG_IP_VS_MH_TAB_INDEX / 2 */
#define MH_HASH1_KEY 2654435761ULL		/* generate_hash_secret(): both words of key 1 */
#define MH_HASH2_KEY 2654446892ULL		/* both words of key 2 */

struct mh_dest_setup {
	uint32_t offset;	/* first preferred slot */
	uint32_t skip;		/* step through the preferences */
	uint32_t perm;		/* next preferred slot */
	int32_t turns;		/* slots claimed per round */
};

struct mh_state {
	struct lb_dest *lookup[MH_TAB_SIZE];
	struct mh_dest_setup *setup;	/* scratch for a rebuild, one per dest */
	uint32_t setup_cap;
	int32_t gcd;
	int32_t rshift;
};

/* ip_vs_mh_hashkey: hsiphash of the u32 (offset + ntohs(port) + ntohl(addr_fold)). */
static inline uint32_t mh_hashkey(uint16_t af, const union lb_addr *addr, uint16_t port_net, uint64_t key,
				  uint32_t offset)
{
	uint32_t v = offset + lb_ntohs(port_net) + lb_addr_fold(af, addr);
	return lb_hsiphash_u32(v, key, key);
}

static inline bool mh_unavailable(const struct lb_dest *d)
{
	return d->weight <= 0 || (d->flags & LB_DEST_F_OVERLOAD);
}

static int32_t mh_gcd2(int32_t a, int32_t b)
{
	while (b) {
		int32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* ip_vs_mh_gcd_weight: gcd of the positive last_weights (0 when there are none). */
static int32_t mh_gcd_weight(struct lb_service *svc)
{
	struct lb_dest *d;
	int32_t g = 0;
	lb_for_each_dest(d, svc) {
		if (d->last_weight > 0)
			g = g > 0 ? mh_gcd2(d->last_weight, g) : d->last_weight;
	}
	return g;
}

static int mh_fls(uint32_t x) { return x ? 32 - __builtin_clz(x) : 0; }

/* ip_vs_mh_shift_weight: how far to shift weight/gcd so the largest fits in MH_TAB_BITS bits. */
static int32_t mh_shift_weight(struct lb_service *svc, int32_t gcd)
{
	struct lb_dest *d;
	int32_t weight = 0;
	if (gcd < 1)
		return 0;
	lb_for_each_dest(d, svc) {
		if (d->last_weight > weight)
			weight = d->last_weight;
	}
	int shift = mh_fls((uint32_t)(weight / gcd)) - MH_TAB_BITS;
	return shift >= 0 ? shift : 0;
}

/* ip_vs_mh_permutate: offset, skip and turns of every dest, in list order. */
static void mh_permutate(struct mh_state *s, struct lb_service *svc)
{
	struct lb_dest *d;
	struct mh_dest_setup *ds = s->setup;
	if (s->gcd < 1)
		return;
	lb_for_each_dest(d, svc) {
		ds->offset = mh_hashkey(svc->af, &d->addr, d->port, MH_HASH1_KEY, 0) % MH_TAB_SIZE;
		ds->skip = mh_hashkey(svc->af, &d->addr, d->port, MH_HASH2_KEY, 0) % (MH_TAB_SIZE - 1) + 1;
		ds->perm = ds->offset;
		int32_t lw = d->last_weight;
		int32_t t = (lw / s->gcd) >> s->rshift;
		ds->turns = t ? t : (lw != 0);
		ds++;
	}
}

/* ip_vs_mh_populate: dests take turns claiming their next free preferred slot until all are set. */
static void mh_populate(struct mh_state *s, struct lb_service *svc)
{
	uint64_t taken[(MH_TAB_SIZE + 63) / 64];
	struct lb_list *head = &svc->destinations, *p = head;
	int32_t n = 0, dt_count = 0;

	if (s->gcd < 1) {
		memset(s->lookup, 0, sizeof(s->lookup));
		return;
	}
	memset(taken, 0, sizeof(taken));
	while (n < MH_TAB_SIZE) {
		if (p == head)
			p = p->next;
		struct mh_dest_setup *ds = s->setup;
		while (p != head) {
			if (ds->turns < 1) {	/* a dest whose last_weight is 0 claims nothing */
				p = p->next;
				ds++;
				continue;
			}
			uint32_t c = ds->perm;
			while (taken[c / 64] & (1ULL << (c % 64))) {
				ds->perm += ds->skip;
				if (ds->perm >= MH_TAB_SIZE)
					ds->perm -= MH_TAB_SIZE;
				c = ds->perm;
			}
			taken[c / 64] |= 1ULL << (c % 64);
			s->lookup[c] = lb_container_of(p, struct lb_dest, n_list);
			if (++n == MH_TAB_SIZE)
				return;
			if (++dt_count >= ds->turns) {
				dt_count = 0;
				p = p->next;
				ds++;
			}
		}
	}
}

/* ip_vs_mh_reassign. */
static int mh_reassign(struct mh_state *s, struct lb_service *svc)
{
	if (svc->num_dests > MH_TAB_SIZE)
		return -EINVAL;
	if (svc->num_dests > s->setup_cap) {
		struct mh_dest_setup *n = realloc(s->setup, svc->num_dests * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->setup = n;
		s->setup_cap = svc->num_dests;
	}
	mh_permutate(s, svc);
	mh_populate(s, svc);
	return 0;
}

static int mh_rebuild(struct lb_service *svc)
{
	struct mh_state *s = svc->sched_data;
	s->gcd = mh_gcd_weight(svc);
	s->rshift = mh_shift_weight(svc, s->gcd);
	return mh_reassign(s, svc);
}

static void mh_done_service(struct lb_service *svc)
{
	struct mh_state *s = svc->sched_data;
	if (s)
		free(s->setup);
	free(s);
	svc->sched_data = NULL;
}

/* last_weight follows the kernel's __ip_vs_update_dest rule: set on add, and on edit only to a
 * non-zero weight.  (Kept here as well in case the core does not maintain it; see the report.)
 * A service switching to mh (-E) finds dests added under another scheduler: take a last_weight of 0
 * as "never recorded" and use the current weight, which is what the rule would have recorded
 * unless the weight had been set to 0 after a non-zero one. */
static int mh_init_service(struct lb_service *svc)
{
	struct mh_state *s = calloc(1, sizeof(*s));
	struct lb_dest *d;
	if (!s)
		return -ENOMEM;
	lb_for_each_dest(d, svc) {
		if (d->last_weight == 0)
			d->last_weight = d->weight;
	}
	svc->sched_data = s;
	int rc = mh_rebuild(svc);
	if (rc) {
		mh_done_service(svc);
		return rc;
	}
	return 0;
}

static int mh_add_dest(struct lb_service *svc, struct lb_dest *dest)
{
	dest->last_weight = dest->weight;
	return mh_rebuild(svc);
}

static int mh_del_dest(struct lb_service *svc, struct lb_dest *dest)
{
	(void)dest;
	return mh_rebuild(svc);
}

static int mh_upd_dest(struct lb_service *svc, struct lb_dest *dest)
{
	if (dest->weight != 0)
		dest->last_weight = dest->weight;
	return mh_rebuild(svc);
}

static struct lb_dest *mh_get(struct lb_service *svc, const struct mh_state *s, const union lb_addr *addr,
			      uint16_t port_net)
{
	uint32_t hash = mh_hashkey(svc->af, addr, port_net, MH_HASH1_KEY, 0) % MH_TAB_SIZE;
	struct lb_dest *d = s->lookup[hash];
	return (!d || mh_unavailable(d)) ? NULL : d;
}

/* ip_vs_mh_get_fallback: re-hash with offsets (i + ihash) % 4093, i = 0..4092, until an available
 * dest turns up; an empty slot stops the walk. */
static struct lb_dest *mh_get_fallback(struct lb_service *svc, const struct mh_state *s, const union lb_addr *addr,
				       uint16_t port_net)
{
	uint32_t ihash = mh_hashkey(svc->af, addr, port_net, MH_HASH1_KEY, 0) % MH_TAB_SIZE;
	struct lb_dest *d = s->lookup[ihash];
	if (!d)
		return NULL;
	if (!mh_unavailable(d))
		return d;
	for (uint32_t offset = 0; offset < MH_TAB_SIZE; offset++) {
		uint32_t roffset = (offset + ihash) % MH_TAB_SIZE;
		uint32_t hash = mh_hashkey(svc->af, addr, port_net, MH_HASH1_KEY, roffset) % MH_TAB_SIZE;
		d = s->lookup[hash];
		if (!d)
			break;
		if (!mh_unavailable(d))
			return d;
	}
	return NULL;
}

static struct lb_dest *mh_schedule(struct lb_service *svc, const struct lb_flow_key *k, struct lb_sched_ctx *ctx)
{
	(void)ctx;
	uint16_t port = 0;
	if ((svc->flags & LB_SVC_F_SCHED_MH_PORT) && lb_proto_has_ports(k->proto))
		port = k->sport;
	if (svc->flags & LB_SVC_F_SCHED_MH_FALLBACK)
		return mh_get_fallback(svc, svc->sched_data, &k->saddr, port);
	return mh_get(svc, svc->sched_data, &k->saddr, port);
}

/* ---- test hooks (lb_api_schedtest.h) ---- */

struct lb_service *lb_schedtest_svc(lb_core *core, const struct lb_svc_cfg *key)
{
	union lb_addr a;
	if (!key || (key->af != LB_AF_INET && key->af != LB_AF_INET6))
		return NULL;
	if (key->fwmark)
		return lb_svc_find_fwmark(core, key->af, key->fwmark);
	lb_addr_from_cfg(&a, key->addr, key->af);
	uint8_t port_be[2] = { (uint8_t)(key->port >> 8), (uint8_t)key->port };
	uint16_t port_net;
	memcpy(&port_net, port_be, 2);
	return lb_svc_find(core, key->af, (uint8_t)key->proto, &a, port_net);
}

int lb_sched_mh_table(lb_core *core, const struct lb_svc_cfg *key, int32_t *out, int max)
{
	struct lb_service *svc = lb_schedtest_svc(core, key);
	if (!svc)
		return -ESRCH;
	if (svc->sched != &lb_sched_mh)
		return -EINVAL;
	const struct mh_state *s = svc->sched_data;
	for (int i = 0; i < MH_TAB_SIZE && i < max; i++)
		out[i] = s->lookup[i] ? s->lookup[i]->id : -1;
	return MH_TAB_SIZE;
}

uint32_t lb_hash_hash32(uint32_t val, uint32_t bits)
{
	if (bits < 1 || bits > 32)
		return 0;
	return bits == 32 ? val * LB_GOLDEN_RATIO_32 : lb_hash_32(val, bits);
}

uint32_t lb_hash_hsiphash32(uint32_t v, uint64_t k0, uint64_t k1) { return lb_hsiphash_u32(v, k0, k1); }

const struct lb_sched_ops lb_sched_mh = {
	.name = "mh",
	.flags_ok = LB_SVC_F_SCHED_MH_FALLBACK | LB_SVC_F_SCHED_MH_PORT,
	.init_service = mh_init_service,
	.done_service = mh_done_service,
	.add_dest = mh_add_dest,
	.del_dest = mh_del_dest,
	.upd_dest = mh_upd_dest,
	.schedule = mh_schedule,
};
