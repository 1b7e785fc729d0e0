/*
 * trace.c - the trace ring: arming and filters, the record of one new connection (flow, service, the
 * dests' loads as the scheduler found them, the pick, state change, rewrite) and reading it back
 * (lb_api_pkt.h).  process.c calls lb_trace_begin/conn/end only for packets lb_trace_match accepted
 * while armed; nothing here runs otherwise.  Kernel counterpart: none (ip_vs_core.c's IP_VS_DBG_BUF
 * lines about each scheduled connection are the nearest thing).
 */
#include <errno.h>
#include <string.h>
#include "lb_conn.h"
#include "lb_trace.h"

static inline uint16_t net16(uint16_t v) { return __builtin_bswap16(v); }

static void addr_out(uint8_t out[16], uint16_t af, const union lb_addr *a)
{
	memset(out, 0, 16);
	memcpy(out, a->b, af == LB_AF_INET ? 4 : 16);
}

int64_t lb_trace_arm(lb_core *core, uint32_t count, uint16_t af, const uint8_t *saddr, const uint8_t *vaddr,
		     uint16_t vport)
{
	if (!core)
		return -EINVAL;
	if ((saddr || vaddr) && af != LB_AF_INET && af != LB_AF_INET6)
		return -EINVAL;
	struct lb_trace *t = lb_pkt_trace(core);
	if (!t)
		return -ENOMEM;
	t->left = 0;
	t->af = af;
	t->has_saddr = saddr != NULL;
	t->has_vaddr = vaddr != NULL;
	memset(&t->saddr, 0, sizeof(t->saddr));
	memset(&t->vaddr, 0, sizeof(t->vaddr));
	if (saddr)
		lb_addr_from_cfg(&t->saddr, saddr, af);
	if (vaddr)
		lb_addr_from_cfg(&t->vaddr, vaddr, af);
	t->vport_net = net16(vport);
	t->left = count;
	return (int64_t)t->seq;
}

uint32_t lb_trace_remaining(lb_core *core)
{
	struct lb_trace *t = core && core->ext ? lb_pkt_trace(core) : NULL;
	return t ? t->left : 0;
}

int lb_trace_read(lb_core *core, uint64_t after, struct lb_trace_rec *out, int max)
{
	if (!core || max < 0 || (max > 0 && !out))
		return -EINVAL;
	struct lb_trace *t = core->ext ? lb_pkt_trace(core) : NULL;
	if (!t)
		return 0;
	uint64_t first = after + 1;
	if (t->seq > LB_TRACE_RING && first < t->seq - LB_TRACE_RING + 1)
		first = t->seq - LB_TRACE_RING + 1;	/* older ones were overwritten */
	int n = 0;
	for (uint64_t s = first; s <= t->seq && n < max; s++)
		out[n++] = t->ring[(s - 1) % LB_TRACE_RING];
	return n;
}

bool lb_trace_match(const struct lb_trace *t, const struct lb_pkt *p)
{
	if ((t->has_saddr || t->has_vaddr) && p->key.af != t->af)
		return false;
	if (t->has_saddr && !lb_addr_eq(t->af, &t->saddr, &p->key.saddr))
		return false;
	if (t->has_vaddr && !lb_addr_eq(t->af, &t->vaddr, &p->key.daddr))
		return false;
	return !t->vport_net || t->vport_net == p->key.dport;
}

struct lb_trace_rec *lb_trace_begin(struct lb_trace *t, const struct lb_pkt *p, const struct lb_service *svc,
				    uint64_t now)
{
	t->left--;
	t->seq++;
	struct lb_trace_rec *r = &t->ring[(t->seq - 1) % LB_TRACE_RING];
	memset(r, 0, sizeof(*r));
	r->seq = t->seq;
	r->now_ns = now;
	r->af = p->key.af;
	r->proto = p->proto;
	r->tcp_flags = p->tcp_flags;
	addr_out(r->saddr, p->key.af, &p->key.saddr);
	addr_out(r->daddr, p->key.af, &p->key.daddr);
	r->sport = net16(p->key.sport);
	r->dport = net16(p->key.dport);
	r->in_port = p->in_port;
	r->len_in = (uint16_t)p->len;
	r->svc_id = svc->id;
	if (svc->sched && svc->sched->name) {
		strncpy(r->sched, svc->sched->name, sizeof(r->sched) - 1);
	}
	r->svc_flags = svc->flags;
	r->num_dests = svc->num_dests;
	r->dest_id = -1;
	/* the scheduler's view: the service's list (newest first), as it is before the pick */
	const struct lb_dest *d;
	uint32_t n = 0;
	lb_for_each_dest(d, svc) {
		if (n == LB_TRACE_DESTS_MAX)
			break;
		struct lb_trace_dest *td = &r->dests[n++];
		td->id = d->id;
		td->weight = d->weight;
		td->activeconns = d->activeconns;
		td->inactconns = d->inactconns;
		td->flags = d->flags;
		td->af = d->af;
		td->port = net16(d->port);
		addr_out(td->addr, d->af, &d->addr);
	}
	r->n_snap = n;
	return r;
}

void lb_trace_conn(struct lb_trace_rec *r, const struct lb_conn *cp, bool template_hit)
{
	r->dest_id = cp->dest ? cp->dest->id : -1;
	r->fwd = cp->fwd;
	r->state_before = cp->state;
	r->state_after = cp->state;
	r->template_hit = template_hit;
	addr_out(r->conn_daddr, cp->af, &cp->daddr);
	r->conn_dport = net16(cp->dport);
}

/* n bytes at offset xo of x (length xl) differ from those at yo of y (length yl); false when either range
 * is not there. */
static bool differ(const uint8_t *x, uint32_t xl, uint32_t xo, const uint8_t *y, uint32_t yl, uint32_t yo,
		   uint32_t n)
{
	if (xo + n > xl || yo + n > yl)
		return false;
	return memcmp(x + xo, y + yo, n) != 0;
}

void lb_trace_end(struct lb_trace_rec *r, const struct lb_pkt *p, const uint8_t *before, uint32_t blen,
		  uint16_t l3_off, uint16_t l4_off, uint8_t proto)
{
	r->verdict = p->verdict;
	r->reason = p->reason;
	if (p->verdict != LB_VERDICT_TX)
		return;
	r->out_port = p->out_port;
	r->len_out = (uint16_t)p->len;
	const uint8_t *a = p->data;
	uint32_t al = p->len;
	if (al < LB_ETH_HLEN)
		return;
	memcpy(r->eth_dst, a, 6);
	memcpy(r->eth_src, a + 6, 6);
	uint32_t ch = 0;
	if (differ(a, al, 0, before, blen, 0, 6))
		ch |= LB_TRACE_CH_ETH_DST;
	if (differ(a, al, 6, before, blen, 6, 6))
		ch |= LB_TRACE_CH_ETH_SRC;
	if (l3_off + 20u > al) {
		r->changed = ch;
		return;
	}
	uint32_t shift = 0;	/* where the original IP header is now, relative to l3_off */
	uint32_t l4c = proto == LB_IPPROTO_TCP ? 16 : proto == LB_IPPROTO_UDP ? 6 : 0;
	if ((a[l3_off] >> 4) == 4) {
		uint8_t oproto = a[l3_off + 9];
		memcpy(r->out_daddr, a + l3_off + 16, 4);
		if (oproto == LB_IPPROTO_ICMP && proto != LB_IPPROTO_ICMP) {
			r->changed = ch | LB_TRACE_CH_ICMP;
			return;
		}
		if (oproto == LB_IPPROTO_IPIP && proto != LB_IPPROTO_IPIP) {
			ch |= LB_TRACE_CH_ENCAP;
			shift = (uint32_t)(a[l3_off] & 0x0f) * 4;
		}
	} else if (l3_off + 40u <= al) {
		memcpy(r->out_daddr, a + l3_off + 24, 16);
		if (a[l3_off + 6] == LB_IPPROTO_ICMPV6 && proto != LB_IPPROTO_ICMPV6) {
			r->changed = ch | LB_TRACE_CH_ICMP;
			return;
		}
	}
	uint32_t o3 = l3_off + shift, o4 = l4_off + shift;
	if (blen > l3_off && (before[l3_off] >> 4) == 4) {
		if (differ(a, al, o3 + 12, before, blen, l3_off + 12, 4))
			ch |= LB_TRACE_CH_IP_SADDR;
		if (differ(a, al, o3 + 16, before, blen, l3_off + 16, 4))
			ch |= LB_TRACE_CH_IP_DADDR;
		if (differ(a, al, o3 + 8, before, blen, l3_off + 8, 1))
			ch |= LB_TRACE_CH_IP_TTL;
		if (differ(a, al, o3 + 10, before, blen, l3_off + 10, 2))
			ch |= LB_TRACE_CH_IP_CSUM;
	} else if (blen > l3_off) {
		if (differ(a, al, o3 + 8, before, blen, l3_off + 8, 16))
			ch |= LB_TRACE_CH_IP_SADDR;
		if (differ(a, al, o3 + 24, before, blen, l3_off + 24, 16))
			ch |= LB_TRACE_CH_IP_DADDR;
		if (differ(a, al, o3 + 7, before, blen, l3_off + 7, 1))
			ch |= LB_TRACE_CH_IP_TTL;
	}
	if (l4c) {
		if (differ(a, al, o4, before, blen, l4_off, 2))
			ch |= LB_TRACE_CH_SPORT;
		if (differ(a, al, o4 + 2, before, blen, l4_off + 2, 2))
			ch |= LB_TRACE_CH_DPORT;
		if (differ(a, al, o4 + l4c, before, blen, l4_off + l4c, 2))
			ch |= LB_TRACE_CH_L4_CSUM;
	}
	r->changed = ch;
}
