/*
 * process.c - lb_process_batch, the hot call: each frame of a batch goes parse -> conn lookup ->
 * (miss) service lookup + schedule -> state -> counters -> the connection's transmitter, rewritten
 * in place (kernel ip_vs_core.c ip_vs_in / ip_vs_out, ip_vs_proto_tcp.c tcp_conn_schedule,
 * ip_vs_leave).  Plus the per-reason and per-verdict counters kept in core->ext.
 * lb/engine/python.py is the Python twin of this file.
 *
 * Decisions (see also parse.c, icmp.c, xmit_*.c):
 * - a TCP packet without a connection creates one only when it is a SYN without RST (sloppy_tcp=0);
 *   other segments are dropped (LB_R_NOT_SYN) where the kernel would hand them to its local stack
 *   (which answers with a RST): in pyvs the balancer's kernel must not act on VIP traffic.
 * - impossible TCP flag combinations (SYN+FIN, SYN+RST, no flag at all) are dropped (LB_R_TCP_FLAGS)
 *   once the packet is known to be ours (a connection or a service); others' packets are passed.
 * - a service without an available destination answers ICMP port unreachable, for TCP as for UDP
 *   (ip_vs_leave: "no matter it is TCP/UDP"); a full connection table drops (LB_R_CONN_FULL).
 * - counters as ip_vs_conn_stats (schedule.c) / ip_vs_in_stats / ip_vs_out_stats: conns on creation; packets
 *   and bytes (IP total length) in on client->server, out on server->client, counted only while the
 *   dest is available, before the transmitter runs.
 * - IPv6: TCP/UDP right behind the fixed header, NAT and DR (TUN and ICMPv6 go to the slow path);
 *   errors are ICMPv6 from the VIP (time exceeded, packet too big, port unreachable); ICMPv6 errors
 *   about tracked conns are forwarded (icmp.c); other ICMPv6 (neighbour discovery, echo) is passed.
 * - tracing (trace.c): while armed, a new-connection packet that passes the trace filter takes the
 *   traced path (snapshot of the service's dests, schedule, record the rewrite); disarmed, the cost is
 *   one predictable branch per new connection and nothing per packet of a known one.
 */
#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include "lb_trace.h"
#include "lb_xmit.h"

struct lb_pkt_state {
	uint64_t reason_count[LB_R__COUNT];
	uint64_t verdict_count[3];
	uint64_t expire_tick;	/* now >> LB_EXPIRE_SHIFT of the last expiry pass (+1; 0 = none yet) */
	struct lb_trace trace;	/* last: lb_pkt_counters_zero leaves it alone */
};

/* The expiry pass at the start of a batch runs at most once per 2^24 ns (16.8 ms, the conn table's
 * wheel tick): entries found past their time by a lookup are expired on the spot anyway, and the pass
 * costs a wheel scan (~0.8 us) that would otherwise be paid by every small batch. */
#define LB_EXPIRE_SHIFT 24

#define LB_REASON_NAME(name, text) #name,
static const char *const reason_names[LB_R__COUNT] = { LB_REASON_LIST(LB_REASON_NAME) };
#undef LB_REASON_NAME
#define LB_REASON_TEXT(name, text) text,
static const char *const reason_texts[LB_R__COUNT] = { LB_REASON_LIST(LB_REASON_TEXT) };
#undef LB_REASON_TEXT

int lb_reason_max(void) { return LB_R__COUNT; }
const char *lb_reason_name(int i) { return i >= 0 && i < LB_R__COUNT ? reason_names[i] : NULL; }
const char *lb_reason_text(int i) { return i >= 0 && i < LB_R__COUNT ? reason_texts[i] : NULL; }

int lb_pkt_init(lb_core *core)
{
	if (!core->ext) {
		core->ext = calloc(1, sizeof(struct lb_pkt_state));
		if (!core->ext)
			return -ENOMEM;
	}
	return 0;
}

uint64_t lb_reason_count(lb_core *core, int i)
{
	const struct lb_pkt_state *st = core->ext;
	return st && i >= 0 && i < LB_R__COUNT ? st->reason_count[i] : 0;
}

uint64_t lb_verdict_count(lb_core *core, int verdict)
{
	const struct lb_pkt_state *st = core->ext;
	return st && verdict >= 0 && verdict < 3 ? st->verdict_count[verdict] : 0;
}

void lb_pkt_counters_zero(lb_core *core)
{
	if (core->ext)
		memset(core->ext, 0, offsetof(struct lb_pkt_state, trace));
}

struct lb_trace *lb_pkt_trace(struct lb_core *core)
{
	if (!core->ext && lb_pkt_init(core) < 0)
		return NULL;
	return &((struct lb_pkt_state *)core->ext)->trace;
}

void lb_stats_in(struct lb_conn *cp, uint32_t bytes)
{
	cp->pkts_in++;
	cp->bytes_in += bytes;
	struct lb_dest *d = cp->dest;
	if (d && (d->flags & LB_DEST_F_AVAILABLE)) {
		d->stats.inpkts++;
		d->stats.inbytes += bytes;
		if (d->svc) {
			d->svc->stats.inpkts++;
			d->svc->stats.inbytes += bytes;
		}
	}
}

void lb_stats_out(struct lb_conn *cp, uint32_t bytes)
{
	cp->pkts_out++;
	cp->bytes_out += bytes;
	struct lb_dest *d = cp->dest;
	if (d && (d->flags & LB_DEST_F_AVAILABLE)) {
		d->stats.outpkts++;
		d->stats.outbytes += bytes;
		if (d->svc) {
			d->svc->stats.outpkts++;
			d->svc->stats.outbytes += bytes;
		}
	}
}

static bool tcp_flags_bad(uint8_t f)
{
	if ((f & (LB_TCP_SYN | LB_TCP_FIN)) == (LB_TCP_SYN | LB_TCP_FIN))
		return true;
	if ((f & (LB_TCP_SYN | LB_TCP_RST)) == (LB_TCP_SYN | LB_TCP_RST))
		return true;
	return (f & 0x3F) == 0;
}

/* kernel ip_vs_in_hook is_new_conn + is_new_conn_expected: a SYN on a conn not controlled by a
 * template, in TIME_WAIT or CLOSE */
static bool reuse_expected(const struct lb_pkt *p, const struct lb_conn *cp)
{
	return p->proto == LB_IPPROTO_TCP && (p->tcp_flags & LB_TCP_SYN) && cp->control == LB_CONN_NONE &&
	       (cp->state == LB_TCP_S_TIME_WAIT || cp->state == LB_TCP_S_CLOSE);
}

/* step 8: a packet of a known connection, client -> server (dir 0) or server -> client (dir 1) */
static void conn_packet(struct lb_core *core, struct lb_pkt *p, struct lb_conn *cp, int dir, uint64_t now)
{
	if (p->proto == LB_IPPROTO_TCP && tcp_flags_bad(p->tcp_flags)) {
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_TCP_FLAGS);
		return;
	}
	if (dir == 0 && cp->dest && !(cp->dest->flags & LB_DEST_F_AVAILABLE)) {
		/* ip_vs_in: the dest was removed (it lingers for its conns): silently drop, keep the timer */
		lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_NO_DEST);
		return;
	}
	lb_conn_state(core, cp, dir, p->tcp_flags, now);
	const struct lb_xmit_ops *ops = cp->fwd < LB_FWD_SLOTS ? lb_xmit_table[cp->fwd] : NULL;
	if (dir == 0) {
		lb_stats_in(cp, p->ip_len);
		if (!ops) {
			lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
			return;
		}
		ops->xmit(core, p, cp);
		lb_conn_put(core, cp);
	} else {
		lb_stats_out(cp, p->ip_len);
		if (!ops || !ops->xmit_reply) {
			lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_SLOW_PATH);
			return;
		}
		ops->xmit_reply(core, p, cp);
		lb_conn_put(core, cp);
	}
}

/* steps 6-7 for a packet that found its service and may start a connection; tr: its trace record */
static inline void new_conn(struct lb_core *core, struct lb_pkt *p, struct lb_service *svc, uint64_t now,
			    struct lb_trace_rec *tr)
{
	int reason = LB_R_NO_DEST;
	bool template_hit = false;
	struct lb_conn *cp = tr ? lb_conn_schedule_traced(core, svc, &p->key, now, &reason, &template_hit)
				: lb_conn_schedule(core, svc, &p->key, now, &reason);
	if (!cp) {
		if (reason == LB_R_NO_DEST && p->key.af == LB_AF_INET6)
			lb_icmp6_send(p, LB_ICMP6_DEST_UNREACH, LB_ICMP6_PORT_UNREACH, 0, p->key.daddr.b, LB_R_NO_DEST);
		else if (reason == LB_R_NO_DEST)
			lb_icmp4_send(p, LB_ICMP_DEST_UNREACH, LB_ICMP_PORT_UNREACH, 0, p->key.daddr.ip, LB_R_NO_DEST);
		else if (reason == LB_R_NO_SERVICE)	/* not scheduled (FTP data): left alone */
			lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_NO_SERVICE);
		else
			lb_pkt_verdict(p, LB_VERDICT_DROP, (uint8_t)reason);
		return;
	}
	cp->cl_port = p->in_port;
	memcpy(cp->cl_mac, p->data + 6, 6);
	if (!tr) {
		conn_packet(core, p, cp, 0, now);
		return;
	}
	lb_trace_conn(tr, cp, template_hit);
	bool one_packet = cp->flags & LB_CONN_F_ONE_PACKET;	/* expired by conn_packet's put */
	conn_packet(core, p, cp, 0, now);
	tr->state_after = one_packet ? LB_UDP_S_NORMAL : cp->state;
}

/* The traced path: the record is begun (dests as the scheduler is about to see them) before scheduling
 * and finished with what the transmitter did to the frame. */
static __attribute__((noinline, cold)) void new_conn_traced(struct lb_core *core, struct lb_trace *t,
							    struct lb_pkt *p, struct lb_service *svc, uint64_t now)
{
	uint8_t before[192];
	uint32_t blen = p->len < sizeof(before) ? p->len : (uint32_t)sizeof(before);
	memcpy(before, p->data, blen);
	uint16_t l3 = p->l3_off, l4 = p->l4_off;
	uint8_t proto = p->proto;
	struct lb_trace_rec *tr = lb_trace_begin(t, p, svc, now);
	new_conn(core, p, svc, now, tr);
	lb_trace_end(tr, p, before, blen, l3, l4, proto);
}

static void process_one(struct lb_core *core, struct lb_pkt *p, uint64_t now)
{
	/* step 3 */
	if (!lb_parse(p))
		return;
	if (p->proto == LB_IPPROTO_ICMP) {
		lb_icmp4_process(core, p, now);
		return;
	}
	if (p->proto == LB_IPPROTO_ICMPV6) {
		lb_icmp6_process(core, p, now);
		return;
	}
	/* step 4 */
	struct lb_conn *cp = lb_conn_lookup_in(core, &p->key, now);
	if (cp && reuse_expected(p, cp)) {
		/* conn_reuse_mode 1: a SYN on a finished conn (not under a template) starts afresh; expire
		 * the old entry (the lookup releases what is past its time) and schedule a new one */
		lb_conn_set_expires(core, cp, now);
		cp = lb_conn_lookup_in(core, &p->key, now);
	}
	if (cp) {
		conn_packet(core, p, cp, 0, now);
		return;
	}
	cp = lb_conn_lookup_out(core, &p->key, now);
	if (cp && cp->fwd == LB_FWD_MASQ) {
		conn_packet(core, p, cp, 1, now);
		return;
	}
	/* step 5 */
	struct lb_service *svc = lb_svc_find(core, p->key.af, p->proto, &p->key.daddr, p->key.dport);
	if (!svc) {
		lb_pkt_verdict(p, LB_VERDICT_PASS, LB_R_NO_SERVICE);
		return;
	}
	if (p->proto == LB_IPPROTO_TCP) {
		if (tcp_flags_bad(p->tcp_flags)) {
			lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_TCP_FLAGS);
			return;
		}
		if (!(p->tcp_flags & LB_TCP_SYN) || (p->tcp_flags & LB_TCP_RST)) {
			lb_pkt_verdict(p, LB_VERDICT_DROP, LB_R_NOT_SYN);
			return;
		}
	}
	/* steps 6-7 */
	struct lb_trace *t = &((struct lb_pkt_state *)core->ext)->trace;
	if (__builtin_expect(t->left != 0, 0) && lb_trace_match(t, p)) {
		new_conn_traced(core, t, p, svc, now);
		return;
	}
	new_conn(core, p, svc, now, NULL);
}

int lb_process_batch(lb_core *core, struct lb_batch *b, uint64_t now_ns)
{
	if (!core || !b || !b->slab || !b->len || !b->in_port || !b->out_port || !b->verdict || !b->reason)
		return -EINVAL;
	if (b->stride < LB_BATCH_STRIDE_MIN || b->stride > 65535)
		return -EINVAL;
	if (!core->ext && lb_pkt_init(core) < 0)
		return -ENOMEM;
	struct lb_pkt_state *st = core->ext;
	uint64_t tick = (now_ns >> LB_EXPIRE_SHIFT) + 1;
	if (tick != st->expire_tick) {
		st->expire_tick = tick;
		lb_conn_expire(core, now_ns, 64);
	}
	int tx = 0;
	for (uint32_t i = 0; i < b->n; i++) {
		struct lb_pkt p;
		p.data = b->slab + (size_t)i * b->stride;
		p.len = b->len[i] < b->stride ? b->len[i] : b->stride;
		p.room = b->stride;
		p.in_port = b->in_port[i];
		p.l3_off = p.l4_off = p.ip_len = 0;
		if (p.in_port >= LB_MAX_PORTS)
			lb_pkt_verdict(&p, LB_VERDICT_DROP, LB_R_NO_ROUTE);
		else
			process_one(core, &p, now_ns);
		if (p.verdict == LB_VERDICT_TX) {
			b->len[i] = (uint16_t)p.len;
			b->out_port[i] = p.out_port;
			tx++;
		} else {
			b->out_port[i] = 0;
		}
		b->verdict[i] = p.verdict;
		b->reason[i] = p.reason;
		st->reason_count[p.reason]++;
		st->verdict_count[p.verdict]++;
	}
	return tx;
}
