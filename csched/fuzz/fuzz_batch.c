/*
 * fuzz_batch.c - libFuzzer harness over lb_process_batch (the whole packet path: parse, conn table,
 * schedulers, NAT/DR/TUN transmitters, ICMP), with a core configured with NAT, DR and TUN services
 * (tests/pkt_fixture.h).  Input layout: byte 0 = options (bit 0: 256-byte slots instead of 2048, bits
 * 1-3: time step), then records [in_port:1][len:2 big-endian][frame:len] until the input ends (at most 32
 * frames; a short last record takes what is left).  The core lives across inputs, so connections made by
 * one input meet the replies and ICMP errors of later ones; its table (1024 entries) fills up too.
 * Seeds: fuzz/corpus/fuzz_batch/ (tests/packets.py frames, written by fuzz/make_corpus.py).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "../tests/pkt_fixture.h"

#define MAX_FRAMES 32
#define BIG 2048
static uint8_t slab[MAX_FRAMES * BIG];
static uint16_t lens[MAX_FRAMES];
static uint8_t in_port[MAX_FRAMES], out_port[MAX_FRAMES], verdict[MAX_FRAMES], reason[MAX_FRAMES];
static lb_core *core;
static uint64_t now = 1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!core) {
		core = fx_core_new(1500);
		if (!core)
			abort();
	}
	if (size < 1)
		return 0;
	uint32_t stride = (data[0] & 1) ? 256 : BIG;
	now += (uint64_t)((data[0] >> 1) & 7) * 1000000000ull;
	/* bit 4: run this input with the trace ring armed, so the traced new-connection path is fuzzed too */
	if (data[0] & 0x10)
		lb_trace_arm(core, UINT32_MAX, 0, NULL, NULL, 0);
	else
		lb_trace_arm(core, 0, 0, NULL, NULL, 0);
	size_t off = 1;
	uint32_t n = 0;
	while (off < size && n < MAX_FRAMES) {
		uint8_t port = data[off++];
		size_t len = 0;
		if (off + 2 <= size) {
			len = ((size_t)data[off] << 8) | data[off + 1];
			off += 2;
		}
		if (len > size - off)
			len = size - off;
		if (len > stride)
			len = stride;
		memcpy(slab + (size_t)n * stride, data + off, len);
		lens[n] = (uint16_t)len;
		in_port[n] = port;
		off += len;
		n++;
	}
	struct lb_batch b = { slab, stride, n, lens, in_port, out_port, verdict, reason };
	int tx = lb_process_batch(core, &b, now);
	if (tx < 0)
		abort();
	for (uint32_t i = 0; i < n; i++) {
		if (verdict[i] > LB_VERDICT_PASS || reason[i] >= (uint8_t)lb_reason_max())
			abort();
		if (verdict[i] == LB_VERDICT_TX && (lens[i] > stride || out_port[i] >= 8))
			abort();
	}
	return 0;
}
