/*
 * test_conn_batch.c - the software-pipelined lb_conn_batch_lookup gives, for every flow, the dest
 * its lb_conn_batch_schedule call gave (hits) and -1 for unknown flows (misses), at every batch
 * length around the pipeline's depth (0, 1, short batches, lengths not a multiple of anything) and
 * with long hash chains (a small table: most buckets hold several entries), for IPv4 and IPv6 flows
 * mixed; entries past their expiry are misses.  Under ASan/UBSan.
 */
#include <stdbool.h>
#include <string.h>
#include "lb_api.h"
#include "lb_api_conn.h"
#include "tap.h"

#define N 600

static struct lb_flow flow(int i, bool v6, bool unknown)
{
	struct lb_flow f;
	memset(&f, 0, sizeof(f));
	f.af = v6 ? LB_AF_INET6 : LB_AF_INET;
	f.proto = LB_PROTO_UDP;
	if (v6) {
		f.saddr[0] = 0xfd, f.saddr[13] = unknown ? 0x77 : 0, f.saddr[14] = (uint8_t)(i >> 8);
		f.saddr[15] = (uint8_t)i;
		f.daddr[0] = 0xfd, f.daddr[15] = 1;
	} else {
		f.saddr[0] = 11, f.saddr[1] = unknown ? 0x77 : 0, f.saddr[2] = (uint8_t)(i >> 8);
		f.saddr[3] = (uint8_t)i;
		f.daddr[0] = 10, f.daddr[1] = 255, f.daddr[3] = 1;
	}
	f.sport = (uint16_t)(1024 + i);
	f.dport = 53;
	return f;
}

static void add_service(lb_core *c, bool v6)
{
	struct lb_svc_cfg s;
	memset(&s, 0, sizeof(s));
	s.af = v6 ? LB_AF_INET6 : LB_AF_INET;
	s.proto = LB_PROTO_UDP;
	if (v6)
		s.addr[0] = 0xfd, s.addr[15] = 1;
	else
		s.addr[0] = 10, s.addr[1] = 255, s.addr[3] = 1;
	s.port = 53;
	strcpy(s.sched, "rr");
	CHECK_EQ(lb_svc_add(c, &s), 0);
	for (int i = 1; i <= 5; i++) {
		struct lb_dest_cfg d;
		memset(&d, 0, sizeof(d));
		d.af = s.af;
		if (v6)
			d.addr[0] = 0xfd, d.addr[1] = 1, d.addr[15] = (uint8_t)i;
		else
			d.addr[0] = 10, d.addr[1] = 1, d.addr[3] = (uint8_t)i;
		d.port = 53;
		d.fwd = LB_FWD_DROUTE;
		d.weight = 1;
		CHECK_EQ(lb_dest_add(c, &s, &d), 0);
	}
}

int main(void)
{
	/* conn_max N: buckets ~N, so chains of 1-4 entries are common */
	struct lb_core_cfg cc = { .conn_max = N, .svc_max = 4, .dest_max = 16, .rng_seed = 1, .hash_seed = 3 };
	lb_core *c = lb_core_new(&cc);
	add_service(c, false);
	add_service(c, true);
	static struct lb_flow known[N], unknown[N], mixed[2 * N];
	static int32_t want[N], got[2 * N];
	for (int i = 0; i < N; i++) {
		known[i] = flow(i, i % 3 == 0, false);
		unknown[i] = flow(i, i % 3 == 0, true);
	}
	const uint64_t t0 = 1000000000ull;
	CHECK_EQ(lb_conn_batch_schedule(c, known, N, want, NULL, t0), N);
	int bad = 0;
	for (int i = 0; i < N; i++)
		bad += want[i] < 0;
	CHECK_EQ(bad, 0);
	/* interleave hits and misses; look up every prefix length that crosses the pipeline's depth */
	for (int i = 0; i < N; i++) {
		mixed[2 * i] = known[(i * 7) % N];
		mixed[2 * i + 1] = unknown[i];
	}
	const uint32_t lens[] = { 0, 1, 2, 3, 7, 8, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 63, 64, 65,
				  100, 257, 2 * N };
	for (unsigned l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		uint32_t n = lens[l];
		for (uint32_t i = 0; i < n; i++)
			got[i] = -7;
		int hits = lb_conn_batch_lookup(c, mixed, n, got, t0 + 1);
		int want_hits = 0, wrong = 0;
		for (uint32_t i = 0; i < n; i++) {
			int32_t w = (i % 2) ? -1 : want[((i / 2) * 7) % N];
			want_hits += w >= 0;
			wrong += got[i] != w;
		}
		CHECK(wrong == 0, "n=%u: %d wrong", n, wrong);
		CHECK_EQ(hits, want_hits);
	}
	/* UDP entries time out after 300 s: all misses then */
	CHECK_EQ(lb_conn_batch_lookup(c, known, N, got, t0 + 301ull * 1000000000ull), 0);
	lb_core_free(c);
	return DONE();
}
