/*
 * test_pump.c - Test that the packet pump moves frames without root:
 *   - recvmmsg ports (a socketpair stands in for AF_PACKET) feed the batch and the slow-path queue in order;
 *   - the slow-path queue is bounded and counts what it could not take;
 *   - read() ports (TAP-like fds) work the same way;
 *   - a TPACKET_V3 ring built in memory is walked block by block, blocks are handed back to the kernel,
 *     truncated frames and partial checksums are counted;
 *   - a TPACKET_V2 ring built in memory is walked slot by slot: a frame is taken as soon as its own
 *     tp_status says TP_STATUS_USER (no block to wait for), each slot goes back to the kernel once
 *     copied, the walk stops at the first kernel-owned slot and resumes there, wraps, counts truncated
 *     and partial-checksum frames and skips a corrupt slot; its TX ring uses the V2 header layout;
 *   - partial checksums (sender's offload on: the field holds the folded pseudo-header sum) are completed
 *     to what a full software checksum gives, for IPv4 TCP/UDP (also behind a VLAN tag) and IPv6 UDP, a
 *     UDP sum of 0 is sent as 0xFFFF, fragments and other protocols are left alone, and a ring frame
 *     flagged TP_STATUS_CSUMNOTREADY reaches the batch completed;
 *   - lb_pump_send writes one frame, lb_pump_stats reports per-port counters, bad arguments fail;
 *   - a TX ring takes lb_pump_send frames at the kernel's data offset, marks them SEND_REQUEST, and
 *     refuses (counted) when the next slot is still the kernel's;
 *   - busy-poll (cfg.spin_us, at most 1000): a frame that lands in a V2 ring while the pump spins is taken
 *     without waiting for poll() (whose fd never becomes readable here); without ring ports nothing spins;
 *   - one lb_pump call serves several wake-ups: frames that arrive one by one, milliseconds apart, are all
 *     handled before it returns (at the first slow-path frame here), and an idle call returns after its
 *     timeout;
 *   - with a core, a frame for a DR service leaves on the dest's port with the next hop's MAC (TX verdicts
 *     are grouped per egress port and sent), a frame for no service goes to the slow path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "lb_api_io.h"
#include "lb_api_pkt.h"
#include "tap.h"

static void frame(uint8_t *buf, uint32_t len, uint8_t tag)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(tag + i);
}

static void test_sock_port(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 8, .stride = 256, .slow_slots = 16, .flags = LB_PUMP_F_PASSTHROUGH };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK(p != NULL, "pump");
	CHECK_EQ(lb_pump_port_sock(p, 2, sv[0]), 0);
	CHECK_EQ(lb_pump_port_sock(p, 2, sv[0]), -EEXIST);
	uint8_t buf[300];
	for (int i = 0; i < 3; i++) {
		frame(buf, 60 + (uint32_t)i, (uint8_t)i);
		CHECK_EQ(write(sv[1], buf, 60 + (size_t)i), 60 + i);
	}
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 3);
	CHECK_EQ(lb_pump_slowpath_count(p), 3);
	for (int i = 0; i < 3; i++) {
		int32_t port = -1;
		uint8_t want[300];
		frame(want, 60 + (uint32_t)i, (uint8_t)i);
		int n = lb_pump_slowpath_get(p, buf, sizeof(buf), &port);
		CHECK_EQ(n, 60 + i);
		CHECK_EQ(port, 2);
		CHECK(memcmp(buf, want, (size_t)n) == 0, "frame %d content", i);
	}
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 0);
	/* a frame longer than the stride is counted and not handed on; the one after it still is */
	frame(buf, 290, 9);
	CHECK_EQ(write(sv[1], buf, 290), 290);
	CHECK_EQ(write(sv[1], buf, 70), 70);
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 2);
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 2, &st), 0);
	CHECK_EQ(st.rx_pkts, 5);
	CHECK_EQ(st.rx_trunc, 1);
	CHECK_EQ(st.slow, 4);
	CHECK_EQ(lb_pump_slowpath_count(p), 1);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 70);
	/* slow-path send */
	frame(buf, 42, 7);
	CHECK_EQ(lb_pump_send(p, 2, buf, 42), 0);
	uint8_t got[100];
	CHECK_EQ(read(sv[1], got, sizeof(got)), 42);
	CHECK(memcmp(got, buf, 42) == 0, "sent frame");
	CHECK_EQ(lb_pump_stats(p, 2, &st), 0);
	CHECK_EQ(st.tx_pkts, 1);
	CHECK_EQ(st.tx_bytes, 42);
	CHECK_EQ(lb_pump_send(p, 3, buf, 42), -EINVAL);
	CHECK_EQ(lb_pump_stats(p, 3, &st), -EINVAL);
	/* without passthrough a core is required */
	struct lb_pump_cfg cfg2 = { 0 };
	struct lb_pump *q = lb_pump_new(&cfg2);
	CHECK_EQ(lb_pump(NULL, q, 1, 0, 0), -EINVAL);
	lb_pump_free(q);
	lb_pump_free(p);
	close(sv[0]);
	close(sv[1]);
}

static void test_slow_full_and_budget(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 4, .stride = 128, .slow_slots = 4, .flags = LB_PUMP_F_PASSTHROUGH };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK_EQ(lb_pump_port_fd(p, 0, sv[0]), 0);
	uint8_t buf[64];
	for (int i = 0; i < 10; i++) {
		frame(buf, 64, (uint8_t)i);
		CHECK_EQ(write(sv[1], buf, 64), 64);
	}
	/* a batch that left frames for the slow path returns at once (Python answers ARP promptly) */
	int n = lb_pump(NULL, p, 100, 0, 0);
	CHECK_EQ(n, 4);
	int total = n;
	while ((n = lb_pump(NULL, p, 100, 0, 0)) > 0)
		total += n;
	CHECK_EQ(total, 10);
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 0, &st), 0);
	CHECK_EQ(st.rx_pkts, 10);
	CHECK_EQ(st.slow, 4);
	CHECK_EQ(st.slow_full, 6);
	/* first in, first out: the four kept are frames 0..3 */
	int32_t port = -1;
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), &port), 64);
	CHECK_EQ(buf[0], 0);
	CHECK_EQ(port, 0);
	/* idle: one poll of timeout_ms, then 0 */
	while (lb_pump_slowpath_get(p, buf, sizeof(buf), NULL) > 0)
		;
	CHECK_EQ(lb_pump(NULL, p, 100, 5, 0), 0);
	lb_pump_free(p);
	close(sv[0]);
	close(sv[1]);
}

/* Lay out one TPACKET_V3 block: frames of the given lengths (snaplen, len). */
static void ring_block_fill(uint8_t *blk, uint32_t block_size, int n, const uint32_t *snap, const uint32_t *wire,
			    uint32_t status_bits)
{
	memset(blk, 0, block_size);
	struct tpacket_block_desc *bd = (struct tpacket_block_desc *)blk;
	bd->version = TPACKET_V3;
	bd->hdr.bh1.num_pkts = (uint32_t)n;
	bd->hdr.bh1.offset_to_first_pkt = 48;
	uint32_t off = 48;
	for (int i = 0; i < n; i++) {
		struct tpacket3_hdr *h = (struct tpacket3_hdr *)(blk + off);
		h->tp_mac = 66;
		h->tp_net = 80;
		h->tp_snaplen = snap[i];
		h->tp_len = wire[i];
		h->tp_status = TP_STATUS_USER | status_bits;
		frame(blk + off + h->tp_mac, snap[i], (uint8_t)(0x40 + i));
		uint32_t next = (h->tp_mac + snap[i] + 15) & ~15u;
		h->tp_next_offset = i + 1 < n ? next : 0;
		off += next;
	}
	bd->hdr.bh1.blk_len = off;
	__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_USER, __ATOMIC_RELEASE);
}

static void test_ring(void)
{
	const uint32_t bs = 4096, nb = 3;
	uint8_t *ring = aligned_alloc(4096, bs * nb);
	memset(ring, 0, bs * nb);
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 2, .stride = 512, .slow_slots = 32, .flags = LB_PUMP_F_PASSTHROUGH };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK_EQ(lb_pump_port_ring(p, 1, sv[0], ring, 100, nb), -EINVAL);
	CHECK_EQ(lb_pump_port_ring(p, 1, sv[0], ring, bs, nb), 0);
	/* block 0: three frames (one more than a batch: the reader resumes mid-block) */
	uint32_t snap0[] = { 60, 100, 1400 }, wire0[] = { 60, 100, 1400 };
	ring_block_fill(ring, bs, 3, snap0, wire0, 0);
	struct tpacket_block_desc *b0 = (struct tpacket_block_desc *)ring;
	struct tpacket_block_desc *b1 = (struct tpacket_block_desc *)(ring + bs);
	int n = lb_pump(NULL, p, 64, 0, 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(b0->hdr.bh1.block_status & TP_STATUS_USER, TP_STATUS_USER);	/* not finished yet */
	n = lb_pump(NULL, p, 64, 0, 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(b0->hdr.bh1.block_status, TP_STATUS_KERNEL);	/* handed back */
	CHECK_EQ(lb_pump_slowpath_count(p), 2);
	uint8_t buf[2048];
	int32_t port = -1;
	for (int i = 0; i < 2; i++) {
		uint8_t want[1500];
		frame(want, snap0[i], (uint8_t)(0x40 + i));
		int len = lb_pump_slowpath_get(p, buf, sizeof(buf), &port);
		CHECK_EQ(len, (int)snap0[i]);
		CHECK_EQ(port, 1);
		CHECK(memcmp(buf, want, snap0[i]) == 0, "ring frame %d", i);
	}
	/* the 1400-byte frame is larger than the 512-byte stride: counted as truncated, not queued */
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 1, &st), 0);
	CHECK_EQ(st.rx_pkts, 3);
	CHECK_EQ(st.rx_trunc, 1);
	CHECK_EQ(st.slow, 2);
	/* nothing ready in block 1: returns 0 without waiting */
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 0);
	/* block 1: a snapped frame (snaplen < len) and one with a partial checksum; then block 2 empty
	 * (retired by timeout with no frames), then block 0 again (the ring wraps) */
	uint32_t snap1[] = { 64, 80 }, wire1[] = { 9000, 80 };
	ring_block_fill(ring + bs, bs, 2, snap1, wire1, TP_STATUS_CSUMNOTREADY);
	ring_block_fill(ring + 2 * bs, bs, 0, NULL, NULL, 0);
	uint32_t snap2[] = { 90 }, wire2[] = { 90 };
	ring_block_fill(ring, bs, 1, snap2, wire2, 0);
	{
		int total = 0;
		while ((n = lb_pump(NULL, p, 64, 0, 0)) > 0)
			total += n;
		CHECK_EQ(total, 3);
	}
	CHECK_EQ(b1->hdr.bh1.block_status, TP_STATUS_KERNEL);
	CHECK_EQ(b0->hdr.bh1.block_status, TP_STATUS_KERNEL);
	CHECK_EQ(lb_pump_stats(p, 1, &st), 0);
	CHECK_EQ(st.rx_pkts, 6);
	CHECK_EQ(st.rx_trunc, 2);
	CHECK_EQ(st.rx_csum_partial, 1);	/* the truncated one never reached the batch */
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 80);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 90);
	lb_pump_free(p);
	free(ring);
	close(sv[0]);
	close(sv[1]);
}

/* RFC 1071 over the pseudo-header + segment (the reference the completion must match). */
static uint16_t ref_l4_csum(const uint8_t *src, const uint8_t *dst, int alen, uint8_t proto, const uint8_t *l4,
			    uint32_t n, uint32_t check_at)
{
	uint32_t sum = 0;
	for (int i = 0; i < alen; i += 2)
		sum += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
	sum += proto + n;
	for (uint32_t i = 0; i < n; i += 2) {
		uint32_t w = (uint32_t)l4[i] << 8 | (i + 1 < n ? l4[i + 1] : 0);
		if (i != check_at)
			sum += w;
	}
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)~sum;
}

/* What a sender with offload leaves in the field: the folded pseudo-header sum, not complemented. */
static uint16_t pseudo_folded(const uint8_t *src, const uint8_t *dst, int alen, uint8_t proto, uint32_t n)
{
	uint32_t sum = 0;
	for (int i = 0; i < alen; i += 2)
		sum += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
	sum += proto + n;
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)sum;
}

/* Ethernet (+ optional VLAN) + IPv4 + TCP/UDP with payload bytes; returns the frame length. */
static uint32_t build4(uint8_t *f, int vlan, uint8_t proto, uint32_t payload, uint8_t seed)
{
	memset(f, 0, 200);
	uint32_t off = 12;
	if (vlan) {
		f[off] = 0x81; f[off + 1] = 0x00; f[off + 3] = 7;
		off += 4;
	}
	f[off] = 0x08; f[off + 1] = 0x00;
	off += 2;
	uint8_t *ip = f + off;
	uint32_t l4len = (proto == 6 ? 20 : 8) + payload;
	ip[0] = 0x45; ip[2] = (uint8_t)((20 + l4len) >> 8); ip[3] = (uint8_t)(20 + l4len); ip[8] = 64; ip[9] = proto;
	ip[12] = 10; ip[13] = 1; ip[14] = 0; ip[15] = 2; ip[16] = 10; ip[17] = 10; ip[18] = 0; ip[19] = 100;
	uint8_t *l4 = ip + 20;
	for (uint32_t i = 0; i < l4len; i++)
		l4[i] = (uint8_t)(seed + i * 7);
	if (proto == 6)
		l4[12] = 0x50;
	else {
		l4[4] = (uint8_t)(l4len >> 8);
		l4[5] = (uint8_t)l4len;
	}
	return off + 20 + l4len;
}

/* Fill one TPACKET_V2 slot as the kernel does (tp_mac past the header, then TP_STATUS_USER last). */
static void ring2_slot_fill(uint8_t *slot, uint32_t snap, uint32_t wire, uint8_t tag, uint32_t status_bits)
{
	struct tpacket2_hdr *h = (struct tpacket2_hdr *)slot;
	h->tp_mac = 66;
	h->tp_net = 80;
	h->tp_snaplen = snap;
	h->tp_len = wire;
	frame(slot + h->tp_mac, snap, tag);
	__atomic_store_n(&h->tp_status, TP_STATUS_USER | status_bits, __ATOMIC_RELEASE);
}

static void test_ring_v2(void)
{
	const uint32_t fs = 512, nr = 4;
	uint8_t *ring = aligned_alloc(4096, 4096);
	memset(ring, 0, 4096);
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 2, .stride = 256, .slow_slots = 32, .flags = LB_PUMP_F_PASSTHROUGH };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK_EQ(lb_pump_port_ring_v2(p, 1, sv[0], ring, 100, nr), -EINVAL);	/* slot too small */
	CHECK_EQ(lb_pump_port_ring_v2(p, 1, sv[0], ring, 520, nr), -EINVAL);	/* not 16-aligned */
	CHECK_EQ(lb_pump_port_ring_v2(p, 1, sv[0], ring, fs, 0), -EINVAL);
	CHECK_EQ(lb_pump_port_ring_v2(p, 1, sv[0], ring, fs, nr), 0);
	CHECK_EQ(lb_pump_port_ring_v2(p, 1, sv[0], ring, fs, nr), -EEXIST);
	struct tpacket2_hdr *h[4];
	int n;
	for (uint32_t i = 0; i < nr; i++)
		h[i] = (struct tpacket2_hdr *)(ring + (size_t)i * fs);
	/* empty ring: nothing, no wait */
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 0);
	/* one lone frame is taken at once (this is the point of V2: no block fill, no retire timer) */
	ring2_slot_fill((uint8_t *)h[0], 60, 60, 0x10, 0);
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 1);
	CHECK_EQ(h[0]->tp_status, TP_STATUS_KERNEL);	/* handed back once copied */
	uint8_t buf[512], want[512];
	int32_t port = -1;
	frame(want, 60, 0x10);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), &port), 60);
	CHECK_EQ(port, 1);
	CHECK(memcmp(buf, want, 60) == 0, "v2 frame 0");
	/* slots 1, 2, 3 ready: a batch of 2 stops mid-ring and the next call resumes at slot 3 */
	ring2_slot_fill((uint8_t *)h[1], 70, 70, 0x20, 0);
	ring2_slot_fill((uint8_t *)h[2], 80, 80, 0x40, 0);
	ring2_slot_fill((uint8_t *)h[3], 300, 300, 0x30, 0);	/* longer than the 256-byte stride */
	n = lb_pump(NULL, p, 2, 0, 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(h[1]->tp_status, TP_STATUS_KERNEL);
	CHECK_EQ(h[2]->tp_status, TP_STATUS_KERNEL);
	CHECK_EQ(h[3]->tp_status & TP_STATUS_USER, TP_STATUS_USER);	/* not taken yet */
	/* slot 0 again (wrap) with a partial checksum; slot 1 snapped (snaplen < len); slot 2 corrupt
	 * (data would run past the slot); slot 3 left to the kernel: the walk stops there */
	uint8_t f[256];
	uint32_t len = build4(f, 0, 17, 40, 9);
	uint8_t *ip = f + 14, *l4 = ip + 20;
	uint16_t wantc = ref_l4_csum(ip + 12, ip + 16, 4, 17, l4, len - 34, 6);
	uint16_t ps = pseudo_folded(ip + 12, ip + 16, 4, 17, len - 34);
	l4[6] = (uint8_t)(ps >> 8);
	l4[7] = (uint8_t)ps;
	ring2_slot_fill((uint8_t *)h[0], len, len, 0, TP_STATUS_CSUMNOTREADY);
	memcpy((uint8_t *)h[0] + h[0]->tp_mac, f, len);
	ring2_slot_fill((uint8_t *)h[1], 64, 9000, 0x50, 0);
	ring2_slot_fill((uint8_t *)h[2], 100, 100, 0x60, 0);
	h[2]->tp_mac = (uint16_t)(fs - 50);
	int total = 0;
	while ((n = lb_pump(NULL, p, 64, 0, 0)) > 0)
		total += n;
	CHECK_EQ(total, 3);	/* slot 3, slot 0, slot 1 (the corrupt slot is skipped, not counted) */
	for (uint32_t i = 0; i < nr; i++)
		CHECK_EQ(h[i]->tp_status, TP_STATUS_KERNEL);
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 1, &st), 0);
	CHECK_EQ(st.rx_pkts, 6);
	CHECK_EQ(st.rx_trunc, 2);
	CHECK_EQ(st.rx_csum_partial, 1);
	CHECK_EQ(st.slow, 4);
	frame(want, 70, 0x20);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 70);
	CHECK(memcmp(buf, want, 70) == 0, "v2 frame 1");
	frame(want, 80, 0x40);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 80);
	CHECK(memcmp(buf, want, 80) == 0, "v2 frame 2");
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), (int)len);
	CHECK_EQ((uint16_t)(buf[40] << 8 | buf[41]), wantc ? wantc : 0xFFFF);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 0);
	/* the next frame lands in slot 3 (the reader is there after the wrap and the skipped slot 2) */
	ring2_slot_fill((uint8_t *)h[3], 61, 61, 0x70, 0);
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 1);
	CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 61);
	/* a TX ring on a V2 port: V2 headers (tp_status first), data at TPACKET_ALIGN(sizeof tpacket2_hdr) */
	const uint32_t tfs = 256, tnr = 2;
	uint8_t *tx = calloc(tnr, tfs);
	CHECK_EQ(lb_pump_port_txring(p, 1, tx, tfs, tnr), 0);
	frame(f, 60, 3);
	CHECK_EQ(lb_pump_send(p, 1, f, 60), 0);
	struct tpacket2_hdr *t0 = (struct tpacket2_hdr *)tx;
	CHECK_EQ(t0->tp_status, TP_STATUS_SEND_REQUEST);
	CHECK_EQ(t0->tp_len, 60);
	CHECK_EQ(t0->tp_snaplen, 60);
	CHECK(memcmp(tx + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)), f, 60) == 0, "v2 tx data");
	CHECK_EQ(lb_pump_send(p, 1, f, tfs - 32 + 1), -ENOBUFS);	/* one byte more than a V2 slot holds */
	CHECK_EQ(lb_pump_send(p, 1, f, 60), 0);	/* slot 1 */
	CHECK_EQ(lb_pump_send(p, 1, f, 60), -ENOBUFS);	/* slot 0 is still the kernel's */
	lb_pump_free(p);
	free(tx);
	free(ring);
	close(sv[0]);
	close(sv[1]);
}

static void test_csum_complete(void)
{
	uint8_t f[256];
	for (int vlan = 0; vlan < 2; vlan++) {
		for (int k = 0; k < 2; k++) {
			uint8_t proto = k ? 17 : 6;
			uint32_t len = build4(f, vlan, proto, 33, (uint8_t)(vlan * 16 + k));
			uint8_t *ip = f + 14 + 4 * vlan, *l4 = ip + 20;
			uint32_t n = len - (uint32_t)(l4 - f), at = proto == 6 ? 16 : 6;
			uint16_t want = ref_l4_csum(ip + 12, ip + 16, 4, proto, l4, n, at);
			uint16_t ps = pseudo_folded(ip + 12, ip + 16, 4, proto, n);
			l4[at] = (uint8_t)(ps >> 8);
			l4[at + 1] = (uint8_t)ps;
			CHECK_EQ(lb_frame_csum_complete(f, len), 1);
			CHECK_EQ((uint16_t)(l4[at] << 8 | l4[at + 1]), want ? want : 0xFFFF);
		}
	}
	/* IPv6 UDP */
	memset(f, 0, sizeof(f));
	f[12] = 0x86; f[13] = 0xDD;
	uint8_t *ip6 = f + 14, *u = f + 54;
	uint32_t ulen = 8 + 21;
	ip6[0] = 0x60; ip6[4] = 0; ip6[5] = (uint8_t)ulen; ip6[6] = 17; ip6[7] = 64;
	ip6[8] = 0xfd; ip6[23] = 1; ip6[24] = 0xfd; ip6[39] = 0x64;
	for (uint32_t i = 0; i < ulen; i++)
		u[i] = (uint8_t)(3 + i * 5);
	u[4] = 0; u[5] = (uint8_t)ulen;
	uint16_t want = ref_l4_csum(ip6 + 8, ip6 + 24, 16, 17, u, ulen, 6);
	uint16_t ps = pseudo_folded(ip6 + 8, ip6 + 24, 16, 17, ulen);
	u[6] = (uint8_t)(ps >> 8);
	u[7] = (uint8_t)ps;
	CHECK_EQ(lb_frame_csum_complete(f, 54 + ulen), 1);
	CHECK_EQ((uint16_t)(u[6] << 8 | u[7]), want ? want : 0xFFFF);
	/* left alone: a fragment, ICMP, ARP, a short frame */
	uint32_t len = build4(f, 0, 17, 10, 1);
	uint8_t before[256];
	f[14 + 6] = 0x20;	/* MF */
	memcpy(before, f, len);
	CHECK_EQ(lb_frame_csum_complete(f, len), 0);
	CHECK(memcmp(before, f, len) == 0, "fragment untouched");
	len = build4(f, 0, 1, 10, 1);
	CHECK_EQ(lb_frame_csum_complete(f, len), 0);
	f[12] = 0x08; f[13] = 0x06;
	CHECK_EQ(lb_frame_csum_complete(f, len), 0);
	CHECK_EQ(lb_frame_csum_complete(f, 10), 0);
	CHECK_EQ(lb_frame_csum_complete(NULL, 100), 0);

	/* a ring frame flagged CSUMNOTREADY reaches the batch (here: the slow path) completed */
	const uint32_t bs = 4096;
	uint8_t *ring = aligned_alloc(4096, bs);
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 4, .stride = 512, .slow_slots = 8, .flags = LB_PUMP_F_PASSTHROUGH };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK_EQ(lb_pump_port_ring(p, 0, sv[0], ring, bs, 1), 0);
	len = build4(f, 0, 17, 40, 9);
	uint8_t *ip = f + 14, *l4 = ip + 20;
	want = ref_l4_csum(ip + 12, ip + 16, 4, 17, l4, len - 34, 6);
	ps = pseudo_folded(ip + 12, ip + 16, 4, 17, len - 34);
	l4[6] = (uint8_t)(ps >> 8);
	l4[7] = (uint8_t)ps;
	uint32_t snap[] = { len }, wire[] = { len };
	ring_block_fill(ring, bs, 1, snap, wire, TP_STATUS_CSUMNOTREADY);
	struct tpacket3_hdr *h = (struct tpacket3_hdr *)(ring + 48);
	memcpy(ring + 48 + h->tp_mac, f, len);
	CHECK_EQ(lb_pump(NULL, p, 64, 0, 0), 1);
	uint8_t out[512];
	CHECK_EQ(lb_pump_slowpath_get(p, out, sizeof(out), NULL), (int)len);
	CHECK_EQ((uint16_t)(out[40] << 8 | out[41]), want ? want : 0xFFFF);
	CHECK(memcmp(out, f, 40) == 0, "headers untouched");
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 0, &st), 0);
	CHECK_EQ(st.rx_csum_partial, 1);
	lb_pump_free(p);
	free(ring);
	close(sv[0]);
	close(sv[1]);
}

static void test_bad_cfg(void)
{
	struct lb_pump_cfg big = { .batch = 5000 };
	CHECK(lb_pump_new(&big) == NULL, "batch too large");
	struct lb_pump_cfg small = { .stride = 10 };
	CHECK(lb_pump_new(&small) == NULL, "stride too small");
	struct lb_pump *p = lb_pump_new(NULL);
	CHECK(p != NULL, "defaults");
	CHECK_EQ(lb_pump_port_sock(p, LB_PUMP_MAX_PORTS, 0), -EINVAL);
	CHECK_EQ(lb_pump_port_fd(p, 0, -1), -EINVAL);
	lb_pump_free(p);
	lb_pump_free(NULL);
}

static uint16_t ip_csum(const uint8_t *h, int len)
{
	uint32_t s = 0;
	for (int i = 0; i < len; i += 2)
		s += (uint32_t)(h[i] << 8 | h[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Ethernet + IPv4 + UDP (checksum 0) from 10.1.0.1:40000 to daddr:5000, 8 bytes of payload. */
static int udp_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, const uint8_t daddr[4])
{
	memset(f, 0, 50);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[3] = 36;	/* total length 20 + 8 + 8 */
	ip[8] = 64;
	ip[9] = 17;
	uint8_t saddr[4] = { 10, 1, 0, 1 };
	memcpy(ip + 12, saddr, 4);
	memcpy(ip + 16, daddr, 4);
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	uint8_t *udp = ip + 20;
	udp[0] = 40000 >> 8;
	udp[1] = 40000 & 0xff;
	udp[2] = 5000 >> 8;
	udp[3] = 5000 & 0xff;
	udp[5] = 16;
	memcpy(udp + 8, "pyvs-dr!", 8);
	return 50;
}

static void test_tx_through_core(void)
{
	struct lb_core_cfg ccfg = { .conn_max = 64, .svc_max = 4, .dest_max = 4, .hash_seed = 1, .rng_seed = 1 };
	lb_core *core = lb_core_new(&ccfg);
	CHECK(core != NULL, "core");
	const uint8_t mac0[6] = { 2, 0, 0, 0, 0xa, 0 }, mac1[6] = { 2, 0, 0, 0, 0xa, 1 };
	const uint8_t cmac[6] = { 2, 0, 0, 0, 0xc, 1 }, rmac[6] = { 2, 0, 0, 0, 0xd, 2 };
	const uint8_t ip0[4] = { 10, 1, 0, 2 }, ip1[4] = { 10, 2, 0, 1 };
	const uint8_t vip[4] = { 10, 1, 0, 100 }, rip[4] = { 10, 2, 0, 2 }, other[4] = { 10, 1, 0, 7 };
	CHECK_EQ(lb_port_set(core, 0, mac0, ip0, 1500), 0);
	CHECK_EQ(lb_port_set(core, 1, mac1, ip1, 1500), 0);
	struct lb_svc_cfg svc = { .af = LB_AF_INET, .proto = LB_PROTO_UDP, .port = 5000, .sched = "rr" };
	memcpy(svc.addr, vip, 4);
	CHECK_EQ(lb_svc_add(core, &svc), 0);
	struct lb_dest_cfg dest = { .af = LB_AF_INET, .port = 5000, .fwd = LB_FWD_DROUTE, .weight = 1 };
	memcpy(dest.addr, rip, 4);
	CHECK_EQ(lb_dest_add(core, &svc, &dest), 0);
	struct lb_dest_info di;
	CHECK_EQ(lb_dest_list(core, &svc, &di, 1), 1);
	CHECK_EQ(lb_dest_set_nexthop(core, di.id, 1, rmac), 0);

	int a[2], b[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, a), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, b), 0);
	struct lb_pump *p = lb_pump_new(NULL);
	CHECK_EQ(lb_pump_port_sock(p, 0, a[0]), 0);
	CHECK_EQ(lb_pump_port_sock(p, 1, b[0]), 0);
	uint8_t f[64], g[2048];
	int n = udp_frame(f, mac0, cmac, vip);
	CHECK_EQ(write(a[1], f, (size_t)n), n);
	n = udp_frame(f, mac0, cmac, other);
	CHECK_EQ(write(a[1], f, (size_t)n), n);
	CHECK_EQ(lb_pump(core, p, 64, 0, 1000), 2);
	/* the DR frame: next hop's MAC, our port-1 MAC, IP addresses untouched, TTL 63, checksum valid */
	int len = (int)read(b[1], g, sizeof(g));
	CHECK_EQ(len, 50);
	CHECK(memcmp(g, rmac, 6) == 0 && memcmp(g + 6, mac1, 6) == 0, "DR MACs");
	CHECK(memcmp(g + 14 + 16, vip, 4) == 0 && memcmp(g + 14 + 12, f + 14 + 12, 4) == 0, "IP untouched");
	CHECK_EQ(g[14 + 8], 63);
	CHECK_EQ(ip_csum(g + 14, 20), 0);
	CHECK(memcmp(g + 42, "pyvs-dr!", 8) == 0, "payload");
	CHECK_EQ(read(a[1], g, sizeof(g)), -1);	/* nothing went back to the client side */
	/* the other frame was for no service: slow path */
	int32_t port = -1;
	CHECK_EQ(lb_pump_slowpath_get(p, g, sizeof(g), &port), 50);
	CHECK_EQ(port, 0);
	struct lb_pump_port_stats st0, st1;
	CHECK_EQ(lb_pump_stats(p, 0, &st0), 0);
	CHECK_EQ(lb_pump_stats(p, 1, &st1), 0);
	CHECK_EQ(st0.rx_pkts, 2);
	CHECK_EQ(st0.slow, 1);
	CHECK_EQ(st0.tx_pkts, 0);
	CHECK_EQ(st1.tx_pkts, 1);
	CHECK_EQ(st1.tx_bytes, 50);
	CHECK_EQ(lb_verdict_count(core, LB_VERDICT_TX), 1);
	lb_pump_free(p);
	lb_core_free(core);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static void test_txring(void)
{
	const uint32_t fs = 256, nr = 4;
	uint8_t *ring = calloc(nr, fs);
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump *p = lb_pump_new(NULL);
	CHECK_EQ(lb_pump_port_txring(p, 0, ring, fs, nr), -EINVAL);	/* port not attached */
	CHECK_EQ(lb_pump_port_sock(p, 0, sv[0]), 0);
	CHECK_EQ(lb_pump_port_txring(p, 0, ring, 40, nr), -EINVAL);	/* frame too small */
	CHECK_EQ(lb_pump_port_txring(p, 0, ring, fs, nr), 0);
	uint8_t f[100];
	for (uint32_t i = 0; i < nr; i++) {
		frame(f, 60 + i, (uint8_t)i);
		CHECK_EQ(lb_pump_send(p, 0, f, 60 + i), 0);
		struct tpacket3_hdr *h = (struct tpacket3_hdr *)(ring + (size_t)i * fs);
		CHECK_EQ(h->tp_status, TP_STATUS_SEND_REQUEST);
		CHECK_EQ(h->tp_len, 60 + i);
		CHECK(memcmp(ring + (size_t)i * fs + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)), f, 60 + i) == 0,
		      "slot %u data", i);
	}
	/* every slot still the kernel's: refused */
	CHECK_EQ(lb_pump_send(p, 0, f, 60), -ENOBUFS);
	/* the kernel sent slot 0 */
	((struct tpacket3_hdr *)ring)->tp_status = TP_STATUS_AVAILABLE;
	CHECK_EQ(lb_pump_send(p, 0, f, 64), 0);
	CHECK_EQ(((struct tpacket3_hdr *)ring)->tp_len, 64);
	CHECK_EQ(lb_pump_send(p, 0, f, 300), -ENOBUFS);	/* larger than a slot */
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 0, &st), 0);
	CHECK_EQ(st.tx_pkts, nr + 1);
	CHECK_EQ(st.tx_errs, 2);
	lb_pump_free(p);
	free(ring);
	close(sv[0]);
	close(sv[1]);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *late_frame(void *slot)
{
	uint64_t end = now_ns() + 50000;	/* ~50 us, spinning: a sleep could oversleep the whole 1 ms spin */
	while (now_ns() < end)
		;
	ring2_slot_fill(slot, 60, 60, 0x55, 0);
	return NULL;
}

static void test_busy_poll(void)
{
	struct lb_pump_cfg bad = { .spin_us = 1001 };
	CHECK(lb_pump_new(&bad) == NULL, "spin_us > 1000 refused");
	const uint32_t fs = 512, nr = 32;
	uint8_t *ring = aligned_alloc(4096, 16384);
	memset(ring, 0, 16384);
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 4, .stride = 256, .slow_slots = 32, .flags = LB_PUMP_F_PASSTHROUGH,
				   .spin_us = 1000 };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK(p != NULL, "pump with spin");
	CHECK_EQ(lb_pump_port_ring_v2(p, 0, sv[0], ring, fs, nr), 0);
	/* sv[0] is never readable: a frame that arrives during the spin can only be seen by the spin.  A
	 * thread writes one ~50 us after it starts; on a loaded machine the thread may come too late for a
	 * 1 ms spin, so several tries are allowed (a missed one returns 0 after the 30 ms poll). */
	int caught = 0;
	for (uint32_t t = 0; t < nr && !caught; t++) {
		uint8_t *slot = ring + (size_t)t * fs;
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, late_frame, slot), 0);
		uint64_t t0 = now_ns();
		int n = lb_pump(NULL, p, 64, 30, 0);
		uint64_t dt = now_ns() - t0;
		pthread_join(th, NULL);
		if (n == 1 && dt < 25000000u)
			caught = 1;
		else
			while (lb_pump(NULL, p, 64, 0, 0) > 0)	/* a missed frame: take it now */
				;
		uint8_t buf[256];
		CHECK_EQ(lb_pump_slowpath_get(p, buf, sizeof(buf), NULL), 60);
	}
	CHECK(caught, "a frame written during the spin is taken without the poll timeout");
	lb_pump_free(p);
	/* no ring port: the spin is skipped, poll() alone waits */
	p = lb_pump_new(&cfg);
	CHECK_EQ(lb_pump_port_sock(p, 0, sv[0]), 0);
	CHECK_EQ(lb_pump(NULL, p, 64, 1, 0), 0);
	lb_pump_free(p);
	free(ring);
	close(sv[0]);
	close(sv[1]);
}

static int writer_fd;

static void *trickle(void *arg)
{
	(void)arg;
	uint8_t buf[300];
	frame(buf, 300, 1);
	usleep(2000);
	CHECK_EQ(write(writer_fd, buf, 290), 290);	/* too long for the stride: counted, no slow path */
	usleep(2000);
	CHECK_EQ(write(writer_fd, buf, 290), 290);
	usleep(2000);
	CHECK_EQ(write(writer_fd, buf, 60), 60);	/* a slow-path frame: the call returns */
	return NULL;
}

static void test_many_wakeups_per_call(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	struct lb_pump_cfg cfg = { .batch = 8, .stride = 256, .slow_slots = 16, .flags = LB_PUMP_F_PASSTHROUGH };
	struct lb_pump *p = lb_pump_new(&cfg);
	CHECK_EQ(lb_pump_port_sock(p, 0, sv[0]), 0);
	writer_fd = sv[1];
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, trickle, NULL), 0);
	int n = lb_pump(NULL, p, 64, 2000, 0);
	pthread_join(th, NULL);
	CHECK_EQ(n, 3);
	struct lb_pump_port_stats st;
	CHECK_EQ(lb_pump_stats(p, 0, &st), 0);
	CHECK_EQ(st.rx_trunc, 2);
	CHECK_EQ(lb_pump_slowpath_count(p), 1);
	/* idle: the call waits out its timeout and returns 0 */
	uint64_t t0 = now_ns();
	CHECK_EQ(lb_pump(NULL, p, 64, 20, 0), 0);
	CHECK(now_ns() - t0 >= 19000000u, "an idle call waits its timeout");
	lb_pump_free(p);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	test_sock_port();
	test_slow_full_and_budget();
	test_ring();
	test_ring_v2();
	test_csum_complete();
	test_bad_cfg();
	test_tx_through_core();
	test_txring();
	test_busy_poll();
	test_many_wakeups_per_call();
	return DONE();
}
