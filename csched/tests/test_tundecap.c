/*
 * test_tundecap.c - Test that the userspace IPIP decapsulator (src/tundecap.c) decides as
 * lb/lab/tundecap.py:classify does, and moves packets without root:
 *   - a well-formed IPIP packet to the VIP passes, with the inner packet located by the outer IHL (also
 *     with IP options) and cut to the inner total length (trailing padding is not written);
 *   - every drop reason on a crafted packet: short, outer not IPv4, outer IHL < 5 or no inner header,
 *     protocol not 4, inner not IPv4, inner destination not the VIP, inner total length < 20 or too long;
 *   - lb_tundecap_poll over a datagram socketpair (standing in for the raw socket) and a pipe (standing
 *     in for the TUN fd): passed inner packets arrive in order and byte-exact, drops and truncated
 *     packets are counted by reason, a failing write is counted, budget and timeout are honoured, on a
 *     non-blocking socket (poll) and on a blocking one (recvmmsg MSG_WAITFORONE with SO_RCVTIMEO);
 *   - bad arguments to lb_tundecap_open are refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "lb_api_tundecap.h"
#include "tap.h"

static const uint8_t VIP[4] = { 10, 5, 0, 100 };

/* outer IPv4 (ihl words) + inner IPv4 header (to dst) + payload bytes; returns the total length. */
static uint32_t ipip(uint8_t *buf, uint32_t ihl_words, uint8_t proto, const uint8_t *dst, uint32_t payload,
		     uint8_t tag)
{
	uint32_t ihl = ihl_words * 4;
	uint32_t inner_total = 20 + payload;
	uint32_t total = ihl + inner_total;
	memset(buf, 0, total);
	buf[0] = (uint8_t)(0x40 | ihl_words);
	buf[2] = (uint8_t)(total >> 8);
	buf[3] = (uint8_t)total;
	buf[8] = 64;
	buf[9] = proto;
	uint8_t *in = buf + ihl;
	in[0] = 0x45;
	in[2] = (uint8_t)(inner_total >> 8);
	in[3] = (uint8_t)inner_total;
	in[8] = 64;
	in[9] = 6;
	in[12] = 10;
	in[15] = 7;
	memcpy(in + 16, dst, 4);
	for (uint32_t i = 0; i < payload; i++)
		in[20 + i] = (uint8_t)(tag + i);
	return total;
}

static void test_classify(void)
{
	uint8_t b[256];
	uint32_t off = 99, len = 99;
	uint32_t n = ipip(b, 5, 4, VIP, 40, 1);
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_PASS);
	CHECK_EQ(off, 20);
	CHECK_EQ(len, 60);
	/* outer options: the inner packet starts after them */
	n = ipip(b, 7, 4, VIP, 10, 2);
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_PASS);
	CHECK_EQ(off, 28);
	CHECK_EQ(len, 30);
	/* trailing bytes after the inner packet (link padding) are not part of it */
	n = ipip(b, 5, 4, VIP, 0, 3);
	CHECK_EQ(lb_tundecap_classify(b, n + 6, VIP, &off, &len), LB_TD_PASS);
	CHECK_EQ(len, 20);

	n = ipip(b, 5, 4, VIP, 40, 1);
	CHECK_EQ(lb_tundecap_classify(b, 39, VIP, &off, &len), LB_TD_R_SHORT);
	CHECK_EQ(lb_tundecap_classify(b, 0, VIP, &off, &len), LB_TD_R_SHORT);
	b[0] = 0x65;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_OUTER_VERSION);
	b[0] = 0x44;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_OUTER_HLEN);
	b[0] = 0x4F;			/* 60-byte outer header: no 20-byte inner header fits in 80 bytes */
	CHECK_EQ(lb_tundecap_classify(b, 79, VIP, &off, &len), LB_TD_R_OUTER_HLEN);
	b[0] = 0x45;
	b[9] = 6;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_NOT_IPIP);
	b[9] = 41;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_NOT_IPIP);
	b[9] = 4;
	b[20] = 0x60;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_INNER_VERSION);
	b[20] = 0x45;
	b[39] = 101;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_NOT_VIP);
	b[39] = 100;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_PASS);
	b[22] = 0;
	b[23] = 19;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_INNER_LEN);
	b[23] = 61;			/* one byte more than received */
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_R_INNER_LEN);
	b[23] = 60;
	CHECK_EQ(lb_tundecap_classify(b, n, VIP, &off, &len), LB_TD_PASS);
	/* order of the checks: a short frame with a wrong version is "short" */
	b[0] = 0x65;
	CHECK_EQ(lb_tundecap_classify(b, 30, VIP, &off, &len), LB_TD_R_SHORT);
}

static void test_poll(void)
{
	int sv[2], pp[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	CHECK_EQ(pipe2(pp, O_NONBLOCK), 0);
	struct lb_tundecap_cfg cfg = { .batch = 4, .slot = 128 };
	struct lb_tundecap *t = lb_tundecap_open(sv[0], pp[1], VIP, &cfg);
	CHECK(t != NULL, "open");
	/* nothing queued: returns 0 at once, and after a short wait */
	CHECK_EQ(lb_tundecap_poll(t, 64, 0), 0);
	CHECK_EQ(lb_tundecap_poll(t, 64, 5), 0);

	uint8_t b[512];
	const uint8_t other[4] = { 10, 5, 0, 101 };
	uint32_t n;
	for (int i = 0; i < 6; i++) {		/* 6 good ones, tagged */
		n = ipip(b, 5, 4, VIP, 10 + (uint32_t)i, (uint8_t)(i * 16));
		CHECK_EQ(write(sv[1], b, n), n);
	}
	n = ipip(b, 5, 4, other, 10, 0);
	CHECK_EQ(write(sv[1], b, n), n);	/* not the VIP */
	n = ipip(b, 5, 17, VIP, 10, 0);
	CHECK_EQ(write(sv[1], b, n), n);	/* not IPIP */
	CHECK_EQ(write(sv[1], b, 20), 20);	/* short */
	n = ipip(b, 5, 4, VIP, 200, 0);
	CHECK_EQ(write(sv[1], b, n), n);	/* longer than a 128-byte slot */

	/* budget 5: one batch of 4 and one of 1 */
	CHECK_EQ(lb_tundecap_poll(t, 5, 0), 5);
	CHECK_EQ(lb_tundecap_poll(t, 64, 10), 5);
	CHECK_EQ(lb_tundecap_poll(t, 64, 0), 0);

	for (int i = 0; i < 6; i++) {
		uint8_t want[256];
		uint32_t wn = ipip(want, 5, 4, VIP, 10 + (uint32_t)i, (uint8_t)(i * 16));
		uint8_t got[256];
		ssize_t r = read(pp[0], got, 30 + (size_t)i);	/* a pipe has no boundaries: read exactly */
		CHECK_EQ(r, 30 + i);
		CHECK(r == (ssize_t)(wn - 20) && memcmp(got, want + 20, wn - 20) == 0, "inner packet %d", i);
	}
	CHECK_EQ(read(pp[0], b, sizeof(b)), -1);

	struct lb_tundecap_stats st;
	lb_tundecap_stats(t, &st);
	CHECK_EQ(st.rx_pkts, 10);
	CHECK_EQ(st.rx_bytes, 315 + 50 + 50 + 20 + 240);	/* the truncated one at its real length */
	CHECK_EQ(st.passed, 6);
	CHECK_EQ(st.passed_bytes, 30 * 6 + 15);
	CHECK_EQ(st.drop_not_vip, 1);
	CHECK_EQ(st.drop_not_ipip, 1);
	CHECK_EQ(st.drop_short, 1);
	CHECK_EQ(st.rx_trunc, 1);
	CHECK_EQ(st.tun_errs, 0);
	CHECK_EQ(st.drop_outer_version + st.drop_outer_hlen + st.drop_inner_version + st.drop_inner_len, 0);

	/* the TUN side fails (reader gone): counted, not passed */
	close(pp[0]);
	n = ipip(b, 5, 4, VIP, 10, 0);
	CHECK_EQ(write(sv[1], b, n), n);
	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(lb_tundecap_poll(t, 64, 0), 1);
	lb_tundecap_stats(t, &st);
	CHECK_EQ(st.tun_errs, 1);
	CHECK_EQ(st.passed, 6);

	lb_tundecap_close(t);
	close(pp[1]);
	close(sv[0]);
	close(sv[1]);
}

/* A blocking socket waits inside recvmmsg (MSG_WAITFORONE + SO_RCVTIMEO) and returns what is queued. */
static void test_poll_blocking(void)
{
	int sv[2], pp[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	CHECK_EQ(pipe2(pp, O_NONBLOCK), 0);
	struct lb_tundecap *t = lb_tundecap_open(sv[0], pp[1], VIP, NULL);
	CHECK(t != NULL, "open");
	CHECK_EQ(lb_tundecap_poll(t, 64, 20), 0);	/* nothing for 20 ms */
	CHECK_EQ(lb_tundecap_poll(t, 64, -1), -EINVAL);
	uint8_t b[128];
	uint32_t n = ipip(b, 5, 4, VIP, 8, 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(write(sv[1], b, n), n);
	CHECK_EQ(lb_tundecap_poll(t, 64, 20), 3);	/* takes the three, then waits 20 ms for more */
	CHECK_EQ(lb_tundecap_poll(t, 2, 0), 0);
	CHECK_EQ(write(sv[1], b, n), n);
	CHECK_EQ(write(sv[1], b, n), n);
	CHECK_EQ(lb_tundecap_poll(t, 1, 1000), 1);	/* budget reached: no wait */
	CHECK_EQ(lb_tundecap_poll(t, 1, 0), 1);
	struct lb_tundecap_stats st;
	lb_tundecap_stats(t, &st);
	CHECK_EQ(st.passed, 5);
	lb_tundecap_close(t);
	close(pp[0]);
	close(pp[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_open_args(void)
{
	struct lb_tundecap_cfg big = { .batch = 2000, .slot = 0 };
	struct lb_tundecap_cfg tiny = { .batch = 0, .slot = 10 };
	CHECK(lb_tundecap_open(-1, 1, VIP, NULL) == NULL, "raw fd");
	CHECK(lb_tundecap_open(0, -1, VIP, NULL) == NULL, "tun fd");
	CHECK(lb_tundecap_open(0, 1, NULL, NULL) == NULL, "vip");
	CHECK(lb_tundecap_open(0, 1, VIP, &big) == NULL, "batch");
	CHECK(lb_tundecap_open(0, 1, VIP, &tiny) == NULL, "slot");
	struct lb_tundecap *t = lb_tundecap_open(0, 1, VIP, NULL);
	CHECK(t != NULL, "defaults");
	lb_tundecap_close(t);
	lb_tundecap_close(NULL);
	CHECK_EQ(lb_tundecap_poll(NULL, 1, 0), -EINVAL);
}

int main(void)
{
	test_classify();
	test_poll();
	test_poll_blocking();
	test_open_args();
	return DONE();
}
