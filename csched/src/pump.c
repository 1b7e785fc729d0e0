/*
 * pump.c - the receive -> process -> transmit loop over the balancer's ports (lb_api_io.h).
 * One lb_pump() call: walk each port's TPACKET_V3 RX ring (or recvmmsg / read()), copy frames into
 * one batch slab, run the core on the batch, sendmmsg the TX-verdict frames grouped by egress port,
 * queue PASS frames for Python's slow path, count everything per port.  poll() only when every port
 * is idle; the call goes on serving wake-ups until `budget` frames, slow-path work, or timeout_ms since
 * it began, so Python regains control within timeout_ms but is not run once per wake-up.  With cfg.spin_us the
 * pump first spins on the rings for that long (busy-poll) before it sleeps.
 * The core reads no clock (DESIGN.md 1): `now` comes from the caller; the pump reads CLOCK_MONOTONIC
 * to bound its own waiting (timeout, busy-poll) and adds the time spent waiting to the caller's `now`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "lb_api_io.h"
#include "lb_api_pkt.h"

enum { PUMP_V_DROP = LB_VERDICT_DROP, PUMP_V_TX = LB_VERDICT_TX, PUMP_V_PASS = LB_VERDICT_PASS };

struct pump_port {
	bool used;
	int kind;		/* LB_PUMP_IO_* */
	int fd;
	uint8_t *ring;		/* RING: mmap'ed RX ring (TPACKET_V3 blocks, or TPACKET_V2 frames) */
	int version;		/* TPACKET_V3 or TPACKET_V2 (RING ports; the TX ring uses the same layout) */
	uint32_t block_size, block_nr;
	uint32_t cur_block;	/* V3: block the reader is on */
	uint32_t pkts_left;	/* V3: packets of cur_block not yet copied (0: block not started) */
	uint8_t *next_pkt;	/* V3: next tpacket3_hdr in cur_block */
	uint32_t frame_size, frame_nr;	/* V2: contiguous frame slots */
	uint32_t cur_frame;	/* V2: slot the reader is on */
	/* optional TX ring (frames of tx_frame_size, contiguous, the RX ring's TPACKET version): next slot */
	uint8_t *tx_ring;
	uint32_t tx_frame_size, tx_frame_nr, tx_head;
	struct lb_pump_port_stats st;
	/* TX staging for this port: iovecs into the batch slab */
	uint32_t ntx;
	struct mmsghdr *txmsg;
	struct iovec *txiov;
};

struct lb_pump {
	struct lb_pump_cfg cfg;
	struct pump_port ports[LB_PUMP_MAX_PORTS];
	int nports;
	int rx_next;		/* port the next receive pass starts with (round robin: no port starves) */
	/* the batch: slab + parallel arrays (the layout struct lb_batch describes) */
	uint8_t *slab;
	uint16_t *len;
	uint8_t *in_port;
	uint8_t *out_port;
	uint8_t *verdict;
	uint8_t *reason;
	uint32_t n;
	/* recvmmsg scratch */
	struct mmsghdr *rxmsg;
	struct iovec *rxiov;
	/* slow-path queue: ring of slots of cfg.stride bytes */
	uint8_t *slow;
	uint16_t *slow_len;
	int16_t *slow_port;
	uint32_t slow_head, slow_count;
	/* poll set */
	struct pollfd pfd[LB_PUMP_MAX_PORTS];
};

struct lb_pump *lb_pump_new(const struct lb_pump_cfg *cfg)
{
	struct lb_pump *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (cfg)
		p->cfg = *cfg;
	if (p->cfg.batch == 0)
		p->cfg.batch = 64;
	if (p->cfg.stride == 0)
		p->cfg.stride = 2048;
	if (p->cfg.slow_slots == 0)
		p->cfg.slow_slots = 256;
	if (p->cfg.batch > 1024 || p->cfg.stride < 64 || p->cfg.stride > 65535 || p->cfg.slow_slots > 65536 ||
	    p->cfg.spin_us > 1000) {
		free(p);
		return NULL;
	}
	uint32_t b = p->cfg.batch, s = p->cfg.stride;
	p->slab = calloc(b, s);
	p->len = calloc(b, sizeof(*p->len));
	p->in_port = calloc(b, sizeof(*p->in_port));
	p->out_port = calloc(b, sizeof(*p->out_port));
	p->verdict = calloc(b, sizeof(*p->verdict));
	p->reason = calloc(b, sizeof(*p->reason));
	p->rxmsg = calloc(b, sizeof(*p->rxmsg));
	p->rxiov = calloc(b, sizeof(*p->rxiov));
	p->slow = calloc(p->cfg.slow_slots, s);
	p->slow_len = calloc(p->cfg.slow_slots, sizeof(*p->slow_len));
	p->slow_port = calloc(p->cfg.slow_slots, sizeof(*p->slow_port));
	bool ok = p->slab && p->len && p->in_port && p->out_port && p->verdict && p->reason && p->rxmsg &&
		  p->rxiov && p->slow && p->slow_len && p->slow_port;
	for (int i = 0; ok && i < LB_PUMP_MAX_PORTS; i++) {
		p->ports[i].fd = -1;
		p->ports[i].txmsg = calloc(b, sizeof(struct mmsghdr));
		p->ports[i].txiov = calloc(b, sizeof(struct iovec));
		ok = p->ports[i].txmsg && p->ports[i].txiov;
	}
	if (!ok) {
		lb_pump_free(p);
		return NULL;
	}
	return p;
}

void lb_pump_free(struct lb_pump *p)
{
	if (!p)
		return;
	for (int i = 0; i < LB_PUMP_MAX_PORTS; i++) {
		free(p->ports[i].txmsg);
		free(p->ports[i].txiov);
	}
	free(p->slab);
	free(p->len);
	free(p->in_port);
	free(p->out_port);
	free(p->verdict);
	free(p->reason);
	free(p->rxmsg);
	free(p->rxiov);
	free(p->slow);
	free(p->slow_len);
	free(p->slow_port);
	free(p);
}

static struct pump_port *port_attach(struct lb_pump *p, int port, int fd, int kind)
{
	if (!p || port < 0 || port >= LB_PUMP_MAX_PORTS || fd < 0)
		return NULL;
	struct pump_port *pp = &p->ports[port];
	if (pp->used)
		return NULL;
	pp->used = true;
	pp->kind = kind;
	pp->fd = fd;
	if (port + 1 > p->nports)
		p->nports = port + 1;
	return pp;
}

int lb_pump_port_ring(struct lb_pump *p, int port, int fd, uint8_t *ring, uint32_t block_size,
		      uint32_t block_nr)
{
	if (!ring || block_size < 4096 || block_nr == 0)
		return -EINVAL;
	if (p && port >= 0 && port < LB_PUMP_MAX_PORTS && p->ports[port].used)
		return -EEXIST;
	struct pump_port *pp = port_attach(p, port, fd, LB_PUMP_IO_RING);
	if (!pp)
		return -EINVAL;
	pp->ring = ring;
	pp->version = TPACKET_V3;
	pp->block_size = block_size;
	pp->block_nr = block_nr;
	return 0;
}

int lb_pump_port_ring_v2(struct lb_pump *p, int port, int fd, uint8_t *ring, uint32_t frame_size,
			 uint32_t frame_nr)
{
	if (!ring || frame_size < TPACKET2_HDRLEN + 64 || frame_size % TPACKET_ALIGNMENT || frame_nr == 0)
		return -EINVAL;
	if (p && port >= 0 && port < LB_PUMP_MAX_PORTS && p->ports[port].used)
		return -EEXIST;
	struct pump_port *pp = port_attach(p, port, fd, LB_PUMP_IO_RING);
	if (!pp)
		return -EINVAL;
	pp->ring = ring;
	pp->version = TPACKET_V2;
	pp->frame_size = frame_size;
	pp->frame_nr = frame_nr;
	return 0;
}

int lb_pump_port_sock(struct lb_pump *p, int port, int fd)
{
	if (p && port >= 0 && port < LB_PUMP_MAX_PORTS && p->ports[port].used)
		return -EEXIST;
	return port_attach(p, port, fd, LB_PUMP_IO_SOCK) ? 0 : -EINVAL;
}

int lb_pump_port_fd(struct lb_pump *p, int port, int fd)
{
	if (p && port >= 0 && port < LB_PUMP_MAX_PORTS && p->ports[port].used)
		return -EEXIST;
	return port_attach(p, port, fd, LB_PUMP_IO_FD) ? 0 : -EINVAL;
}

/* ---- receive ---- */

/* Append one frame to the batch (copy); false when it does not fit a slot (counted). */
static bool batch_put(struct lb_pump *p, int port, const uint8_t *data, uint32_t len, uint32_t wire_len)
{
	struct pump_port *pp = &p->ports[port];
	pp->st.rx_pkts++;
	pp->st.rx_bytes += wire_len;
	if (len != wire_len || len > p->cfg.stride) {
		pp->st.rx_trunc++;
		return false;
	}
	memcpy(p->slab + (size_t)p->n * p->cfg.stride, data, len);
	p->len[p->n] = (uint16_t)len;
	p->in_port[p->n] = (uint8_t)port;
	p->n++;
	return true;
}

static inline struct tpacket_block_desc *ring_block(struct pump_port *pp, uint32_t i)
{
	return (struct tpacket_block_desc *)(pp->ring + (size_t)i * pp->block_size);
}

/* Copy ready frames from a TPACKET_V3 ring until the batch is full or the current block is not ours.
 * A block goes back to the kernel (block_status = TP_STATUS_KERNEL) as soon as all its frames are
 * copied: the batch owns copies, so the kernel can refill the block while we process. */
static uint32_t rx_ring(struct lb_pump *p, int port)
{
	struct pump_port *pp = &p->ports[port];
	uint32_t got = 0;
	while (p->n < p->cfg.batch) {
		struct tpacket_block_desc *bd = ring_block(pp, pp->cur_block);
		if (pp->pkts_left == 0) {
			if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
				break;
			pp->pkts_left = bd->hdr.bh1.num_pkts;
			pp->next_pkt = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
			if (pp->pkts_left == 0) {	/* retired empty block */
				__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
				pp->cur_block = (pp->cur_block + 1) % pp->block_nr;
				continue;
			}
		}
		while (pp->pkts_left > 0 && p->n < p->cfg.batch) {
			struct tpacket3_hdr *h = (struct tpacket3_hdr *)pp->next_pkt;
			uint8_t *end = (uint8_t *)bd + pp->block_size;
			uint8_t *data = pp->next_pkt + h->tp_mac;
			if (data + h->tp_snaplen > end) {	/* corrupt ring: give the block back */
				pp->pkts_left = 1;
			} else {
				uint32_t slot = p->n;
				if (batch_put(p, port, data, h->tp_snaplen, h->tp_len) &&
				    (h->tp_status & TP_STATUS_CSUMNOTREADY)) {
					pp->st.rx_csum_partial++;
					lb_frame_csum_complete(p->slab + (size_t)slot * p->cfg.stride, p->len[slot]);
				}
				got++;
			}
			pp->pkts_left--;
			pp->next_pkt += h->tp_next_offset;
		}
		if (pp->pkts_left == 0) {
			__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
			pp->cur_block = (pp->cur_block + 1) % pp->block_nr;
		}
	}
	return got;
}

/* Copy ready frames from a TPACKET_V2 ring until the batch is full or the next slot is not ours.  Each
 * slot carries its own tp_status: the kernel sets TP_STATUS_USER as soon as it has written the frame (no
 * block to fill, no retire timer), and the slot goes back (TP_STATUS_KERNEL) as soon as it is copied. */
static uint32_t rx_ring_v2(struct lb_pump *p, int port)
{
	struct pump_port *pp = &p->ports[port];
	uint32_t got = 0;
	while (p->n < p->cfg.batch) {
		uint8_t *slot = pp->ring + (size_t)pp->cur_frame * pp->frame_size;
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)slot;
		uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
		if (!(status & TP_STATUS_USER))
			break;
		if ((uint32_t)h->tp_mac + h->tp_snaplen <= pp->frame_size) {	/* else corrupt: skip it */
			uint32_t at = p->n;
			if (batch_put(p, port, slot + h->tp_mac, h->tp_snaplen, h->tp_len) &&
			    (status & TP_STATUS_CSUMNOTREADY)) {
				pp->st.rx_csum_partial++;
				lb_frame_csum_complete(p->slab + (size_t)at * p->cfg.stride, p->len[at]);
			}
			got++;
		}
		__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		pp->cur_frame = (pp->cur_frame + 1) % pp->frame_nr;
	}
	return got;
}

static uint32_t rx_sock(struct lb_pump *p, int port)
{
	struct pump_port *pp = &p->ports[port];
	uint32_t room = p->cfg.batch - p->n;
	if (room == 0)
		return 0;
	for (uint32_t i = 0; i < room; i++) {
		p->rxiov[i].iov_base = p->slab + (size_t)(p->n + i) * p->cfg.stride;
		p->rxiov[i].iov_len = p->cfg.stride;
		memset(&p->rxmsg[i], 0, sizeof(p->rxmsg[i]));
		p->rxmsg[i].msg_hdr.msg_iov = &p->rxiov[i];
		p->rxmsg[i].msg_hdr.msg_iovlen = 1;
	}
	int r = recvmmsg(pp->fd, p->rxmsg, room, MSG_DONTWAIT | MSG_TRUNC, NULL);
	if (r <= 0)
		return 0;
	for (int i = 0; i < r; i++) {
		uint32_t len = p->rxmsg[i].msg_len;
		bool trunc = (p->rxmsg[i].msg_hdr.msg_flags & MSG_TRUNC) || len > p->cfg.stride;
		pp->st.rx_pkts++;
		pp->st.rx_bytes += len;
		if (trunc) {
			pp->st.rx_trunc++;
			continue;
		}
		uint8_t *dst = p->slab + (size_t)p->n * p->cfg.stride;
		uint8_t *src = p->rxiov[i].iov_base;
		if (dst != src)	/* a truncated frame before this one left a hole: close it */
			memmove(dst, src, len);
		p->len[p->n] = (uint16_t)len;
		p->in_port[p->n] = (uint8_t)port;
		p->n++;
	}
	return (uint32_t)r;
}

static uint32_t rx_fd(struct lb_pump *p, int port)
{
	struct pump_port *pp = &p->ports[port];
	uint32_t got = 0;
	while (p->n < p->cfg.batch) {
		uint8_t *dst = p->slab + (size_t)p->n * p->cfg.stride;
		ssize_t r = read(pp->fd, dst, p->cfg.stride);
		if (r <= 0)
			break;
		got++;
		pp->st.rx_pkts++;
		pp->st.rx_bytes += (uint64_t)r;
		if ((uint32_t)r >= p->cfg.stride) {	/* may have been cut: TAP frames never exceed MTU + 14 */
			pp->st.rx_trunc++;
			continue;
		}
		p->len[p->n] = (uint16_t)r;
		p->in_port[p->n] = (uint8_t)port;
		p->n++;
	}
	return got;
}

static uint32_t rx_all(struct lb_pump *p)
{
	uint32_t got = 0;
	int start = p->rx_next;
	p->rx_next = p->nports ? (p->rx_next + 1) % p->nports : 0;
	for (int k = 0; k < p->nports && p->n < p->cfg.batch; k++) {
		int i = (start + k) % p->nports;
		struct pump_port *pp = &p->ports[i];
		if (!pp->used)
			continue;
		switch (pp->kind) {
		case LB_PUMP_IO_RING: got += pp->version == TPACKET_V2 ? rx_ring_v2(p, i) : rx_ring(p, i); break;
		case LB_PUMP_IO_SOCK: got += rx_sock(p, i); break;
		default: got += rx_fd(p, i); break;
		}
	}
	return got;
}

/* ---- checksum offload ---- */

static uint32_t sum16(uint32_t sum, const uint8_t *b, uint32_t n)
{
	while (n > 1) {
		sum += (uint32_t)b[0] << 8 | b[1];
		b += 2;
		n -= 2;
	}
	if (n)
		sum += (uint32_t)b[0] << 8;
	return sum;
}

int lb_frame_csum_complete(uint8_t *f, uint32_t len)
{
	uint32_t off = 12;
	if (!f || len < 14)
		return 0;
	uint16_t type = (uint16_t)(f[off] << 8 | f[off + 1]);
	if (type == 0x8100) {
		if (len < 18)
			return 0;
		off += 4;
		type = (uint16_t)(f[off] << 8 | f[off + 1]);
	}
	off += 2;
	uint8_t proto;
	uint32_t l4, l4len;
	if (type == 0x0800) {
		if (len < off + 20 || (f[off] >> 4) != 4)
			return 0;
		uint32_t ihl = (f[off] & 0xFu) * 4u, tot = (uint32_t)(f[off + 2] << 8 | f[off + 3]);
		if (ihl < 20 || tot < ihl || off + tot > len || (f[off + 6] & 0x3F) || f[off + 7])
			return 0;	/* short, or a fragment: offload never leaves those partial */
		proto = f[off + 9];
		l4 = off + ihl;
		l4len = tot - ihl;
	} else if (type == 0x86DD) {
		if (len < off + 40 || (f[off] >> 4) != 6)
			return 0;
		uint32_t plen = (uint32_t)(f[off + 4] << 8 | f[off + 5]);
		if (off + 40 + plen > len)
			return 0;
		proto = f[off + 6];
		l4 = off + 40;
		l4len = plen;
	} else {
		return 0;
	}
	uint32_t at;
	if (proto == 6 && l4len >= 20)
		at = l4 + 16;
	else if (proto == 17 && l4len >= 8)
		at = l4 + 6;
	else
		return 0;
	/* the field already holds the folded pseudo-header sum: summing the segment over it gives the rest */
	uint32_t sum = sum16(0, f + l4, l4len);
	sum = (sum & 0xFFFFu) + (sum >> 16);
	sum = (sum & 0xFFFFu) + (sum >> 16);
	uint16_t c = (uint16_t)~sum;
	if (c == 0)
		c = 0xFFFF;	/* CSUM_MANGLED_0: a UDP 0 would mean "no checksum" */
	f[at] = (uint8_t)(c >> 8);
	f[at + 1] = (uint8_t)c;
	return 1;
}

/* ---- process ---- */

static void batch_passthrough(struct lb_pump *p)
{
	for (uint32_t i = 0; i < p->n; i++) {
		p->verdict[i] = PUMP_V_PASS;
		p->out_port[i] = p->in_port[i];
		p->reason[i] = 0;
	}
}

/* Verdicts for the batch from the core (parse -> conn -> schedule -> rewrite in place, process.c).  With
 * LB_PUMP_F_PASSTHROUGH (or a batch the core refuses) every frame goes to the slow path. */
static void batch_process(lb_core *core, struct lb_pump *p, uint64_t now_ns)
{
	/* step 2 of the packet walk: the whole batch through the core (process.c) */
	if (core && !(p->cfg.flags & LB_PUMP_F_PASSTHROUGH)) {
		struct lb_batch b = {
			.slab = p->slab, .stride = p->cfg.stride, .n = p->n, .len = p->len,
			.in_port = p->in_port, .out_port = p->out_port, .verdict = p->verdict, .reason = p->reason,
		};
		if (lb_process_batch(core, &b, now_ns) >= 0)
			return;
	}
	batch_passthrough(p);
}

/* ---- transmit and slow path ---- */

static void slow_put(struct lb_pump *p, uint32_t i)
{
	struct pump_port *pp = &p->ports[p->in_port[i]];
	if (p->slow_count == p->cfg.slow_slots) {
		pp->st.slow_full++;
		return;
	}
	uint32_t slot = (p->slow_head + p->slow_count) % p->cfg.slow_slots;
	memcpy(p->slow + (size_t)slot * p->cfg.stride, p->slab + (size_t)i * p->cfg.stride, p->len[i]);
	p->slow_len[slot] = p->len[i];
	p->slow_port[slot] = p->in_port[i];
	p->slow_count++;
	pp->st.slow++;
}

/* Where a TX-ring frame's data starts: the kernel reads it at tp_hdrlen - sizeof(struct sockaddr_ll),
 * i.e. the aligned frame header of the socket's TPACKET version (af_packet.c tpacket_parse_header,
 * without PACKET_TX_HAS_OFF): 48 bytes for V3, 32 for V2. */
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
#define TX_DATA_OFF_V2 TPACKET_ALIGN(sizeof(struct tpacket2_hdr))

/* Put one frame into the TX ring; false when the next slot is still the kernel's (ring full). */
static bool txring_put(struct pump_port *pp, const uint8_t *frame, uint32_t len)
{
	bool v2 = pp->version == TPACKET_V2;
	uint32_t off = v2 ? TX_DATA_OFF_V2 : TX_DATA_OFF;
	if (len > pp->tx_frame_size - off)
		return false;
	uint8_t *slot = pp->tx_ring + (size_t)pp->tx_head * pp->tx_frame_size;
	uint32_t *statusp = v2 ? &((struct tpacket2_hdr *)slot)->tp_status : &((struct tpacket3_hdr *)slot)->tp_status;
	uint32_t status = __atomic_load_n(statusp, __ATOMIC_ACQUIRE);
	if (status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING))
		return false;
	memcpy(slot + off, frame, len);
	if (v2) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)slot;
		h->tp_len = len;
		h->tp_snaplen = len;
	} else {
		struct tpacket3_hdr *h = (struct tpacket3_hdr *)slot;
		h->tp_len = len;
		h->tp_snaplen = len;
		h->tp_next_offset = 0;
	}
	__atomic_store_n(statusp, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
	pp->tx_head = (pp->tx_head + 1) % pp->tx_frame_nr;
	return true;
}

/* Ask the kernel to send what the ring holds (one syscall for all queued frames). */
static int txring_kick(struct pump_port *pp)
{
	if (send(pp->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
		return -errno;
	return 0;
}

int lb_pump_port_txring(struct lb_pump *p, int port, uint8_t *ring, uint32_t frame_size, uint32_t frame_nr)
{
	if (!p || port < 0 || port >= LB_PUMP_MAX_PORTS || !p->ports[port].used || !ring ||
	    p->ports[port].kind == LB_PUMP_IO_FD || frame_size < TX_DATA_OFF + 64 || frame_nr == 0)
		return -EINVAL;
	struct pump_port *pp = &p->ports[port];
	pp->tx_ring = ring;
	pp->tx_frame_size = frame_size;
	pp->tx_frame_nr = frame_nr;
	pp->tx_head = 0;
	return 0;
}

static int frame_write(struct pump_port *pp, const uint8_t *frame, uint32_t len)
{
	ssize_t r;
	if (pp->tx_ring) {	/* a socket with a TX ring sends only from the ring */
		if (!txring_put(pp, frame, len))
			return -ENOBUFS;
		return txring_kick(pp);
	}
	if (pp->kind == LB_PUMP_IO_FD)
		r = write(pp->fd, frame, len);
	else
		r = send(pp->fd, frame, len, MSG_DONTWAIT);
	if (r < 0)
		return -errno;
	return 0;
}

static void tx_flush_port(struct pump_port *pp)
{
	uint32_t done = 0;
	if (pp->tx_ring) {
		uint32_t queued = 0;
		uint64_t bytes = 0;
		for (uint32_t k = 0; k < pp->ntx; k++) {
			struct iovec *v = &pp->txiov[k];
			if (!txring_put(pp, v->iov_base, (uint32_t)v->iov_len)) {
				pp->st.tx_errs += pp->ntx - k;	/* ring full: the rest is lost */
				break;
			}
			queued++;
			bytes += v->iov_len;
		}
		if (queued && txring_kick(pp) < 0) {
			pp->st.tx_errs += queued;
		} else {
			pp->st.tx_pkts += queued;
			pp->st.tx_bytes += bytes;
		}
		pp->ntx = 0;
		return;
	}
	if (pp->kind == LB_PUMP_IO_FD) {
		for (uint32_t k = 0; k < pp->ntx; k++) {
			struct iovec *v = &pp->txiov[k];
			if (frame_write(pp, v->iov_base, (uint32_t)v->iov_len) == 0) {
				pp->st.tx_pkts++;
				pp->st.tx_bytes += v->iov_len;
			} else {
				pp->st.tx_errs++;
			}
		}
		pp->ntx = 0;
		return;
	}
	while (done < pp->ntx) {
		int r = sendmmsg(pp->fd, pp->txmsg + done, pp->ntx - done, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* the frame at `done` failed (ENOBUFS, EAGAIN, ENETDOWN): count it lost, go on */
			pp->st.tx_errs++;
			done++;
			continue;
		}
		for (int k = 0; k < r; k++) {
			pp->st.tx_pkts++;
			pp->st.tx_bytes += pp->txiov[done + k].iov_len;
		}
		done += (uint32_t)r;
	}
	pp->ntx = 0;
}

/* step 9: TX verdicts grouped per egress port and sent; PASS to the slow path; DROP counted */
static void batch_finish(struct lb_pump *p)
{
	for (uint32_t i = 0; i < p->n; i++) {
		switch (p->verdict[i]) {
		case PUMP_V_TX: {
			uint8_t o = p->out_port[i];
			struct pump_port *op = o < LB_PUMP_MAX_PORTS ? &p->ports[o] : NULL;
			if (!op || !op->used) {
				p->ports[p->in_port[i]].st.drops++;
				break;
			}
			struct iovec *v = &op->txiov[op->ntx];
			v->iov_base = p->slab + (size_t)i * p->cfg.stride;
			v->iov_len = p->len[i];
			memset(&op->txmsg[op->ntx], 0, sizeof(op->txmsg[op->ntx]));
			op->txmsg[op->ntx].msg_hdr.msg_iov = v;
			op->txmsg[op->ntx].msg_hdr.msg_iovlen = 1;
			op->ntx++;
			break;
		}
		case PUMP_V_PASS:
			slow_put(p, i);
			break;
		default:
			p->ports[p->in_port[i]].st.drops++;
			break;
		}
	}
	for (int k = 0; k < p->nports; k++)
		if (p->ports[k].used && p->ports[k].ntx)
			tx_flush_port(&p->ports[k]);
	p->n = 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Busy-poll: check the ring ports' next slots until one has a frame (true) or spin_us have passed. */
static bool spin_rings(struct lb_pump *p)
{
	bool any_ring = false;
	for (int i = 0; i < p->nports; i++)
		any_ring |= p->ports[i].used && p->ports[i].kind == LB_PUMP_IO_RING;
	if (!any_ring)
		return false;
	uint64_t end = mono_ns() + (uint64_t)p->cfg.spin_us * 1000u;
	for (uint32_t k = 1;; k++) {
		for (int i = 0; i < p->nports; i++) {
			struct pump_port *pp = &p->ports[i];
			if (!pp->used || pp->kind != LB_PUMP_IO_RING)
				continue;
			uint32_t st;
			if (pp->version == TPACKET_V2) {
				struct tpacket2_hdr *h = (struct tpacket2_hdr *)(pp->ring +
										(size_t)pp->cur_frame * pp->frame_size);
				st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
			} else {
				st = pp->pkts_left ? TP_STATUS_USER :
				     __atomic_load_n(&ring_block(pp, pp->cur_block)->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
			}
			if (st & TP_STATUS_USER)
				return true;
		}
		if ((k & 63) == 0 && mono_ns() >= end)
			return false;
	}
}

int lb_pump(lb_core *core, struct lb_pump *p, uint32_t budget, int timeout_ms, uint64_t now_ns)
{
	if (!p || (!core && !(p->cfg.flags & LB_PUMP_F_PASSTHROUGH)))
		return -EINVAL;
	uint32_t total = 0;
	bool just_polled = false;	/* the last poll() said ready: if this pass finds nothing, stop */
	uint64_t t0 = timeout_ms > 0 ? mono_ns() : 0;
	uint64_t deadline = t0 + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	if (budget == 0)
		budget = p->cfg.batch;
	for (;;) {
		uint32_t got = rx_all(p);
		if (p->n > 0) {
			/* a call that waits may last up to timeout_ms: the core gets the caller's now plus the
			 * time since the call began (same CLOCK_MONOTONIC as lb/io/loop.py's clock) */
			batch_process(core, p, timeout_ms > 0 ? now_ns + (mono_ns() - t0) : now_ns);
			batch_finish(p);
		}
		total += got;
		if (total >= budget || (got > 0 && p->slow_count > 0))
			return (int)total;
		if (got > 0) {
			just_polled = false;
			continue;
		}
		if (just_polled || timeout_ms == 0)
			return (int)total;
		if (p->cfg.spin_us && spin_rings(p))
			continue;	/* a frame came while we spun: no sleep, no wake-up */
		/* sleep until a port is ready, at most until timeout_ms after the call began: a call keeps
		 * serving wake-ups in C (no return to Python per wake-up) while frames come, yet Python
		 * regains control within timeout_ms */
		uint64_t now = mono_ns();
		if (now >= deadline)
			return (int)total;
		int wait_ms = (int)((deadline - now + 999999u) / 1000000u);
		int nfd = 0;
		for (int i = 0; i < p->nports; i++) {
			if (!p->ports[i].used)
				continue;
			p->pfd[nfd].fd = p->ports[i].fd;
			p->pfd[nfd].events = POLLIN;
			p->pfd[nfd].revents = 0;
			nfd++;
		}
		int r = poll(p->pfd, (nfds_t)nfd, wait_ms);
		just_polled = true;
		if (r < 0)
			return errno == EINTR ? (int)total : -errno;
		if (r == 0)
			return (int)total;
	}
}

int lb_pump_slowpath_get(struct lb_pump *p, uint8_t *buf, uint32_t buflen, int32_t *port)
{
	if (!p || p->slow_count == 0)
		return 0;
	uint32_t slot = p->slow_head;
	uint32_t len = p->slow_len[slot];
	memcpy(buf, p->slow + (size_t)slot * p->cfg.stride, len < buflen ? len : buflen);
	if (port)
		*port = p->slow_port[slot];
	p->slow_head = (p->slow_head + 1) % p->cfg.slow_slots;
	p->slow_count--;
	return (int)len;
}

uint32_t lb_pump_slowpath_count(struct lb_pump *p) { return p ? p->slow_count : 0; }

int lb_pump_send(struct lb_pump *p, int port, const uint8_t *frame, uint32_t len)
{
	if (!p || port < 0 || port >= LB_PUMP_MAX_PORTS || !p->ports[port].used || !frame || len == 0)
		return -EINVAL;
	struct pump_port *pp = &p->ports[port];
	int rc = frame_write(pp, frame, len);
	if (rc == 0) {
		pp->st.tx_pkts++;
		pp->st.tx_bytes += len;
	} else {
		pp->st.tx_errs++;
	}
	return rc;
}

int lb_pump_stats(struct lb_pump *p, int port, struct lb_pump_port_stats *out)
{
	if (!p || port < 0 || port >= LB_PUMP_MAX_PORTS || !p->ports[port].used || !out)
		return -EINVAL;
	*out = p->ports[port].st;
	return 0;
}
