/*
 * tundecap.c - the C loop of `lb tun-decap`: raw IPPROTO_IPIP socket -> checks -> TUN device.
 * The kernel's ipip receive path (net/ipv4/ipip.c ipip_rcv, ip_tunnel_rcv) pulls the outer header and
 * re-injects the inner packet as if it had arrived on the tunnel device; here a raw socket gets a copy
 * of every IPIP packet for this host (outer header included), and writing the inner packet into a TUN
 * device that holds the VIP does the re-injection.  Python twin: lb/lab/tundecap.py (run_python).
 * One recvmmsg per batch (blocking with MSG_WAITFORONE, so a wake-up costs one system call), one write()
 * per inner packet (a TUN write is one packet), no allocation after lb_tundecap_open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
#include "lb_api_tundecap.h"

#define TD_BATCH_DEFAULT 64
#define TD_BATCH_MAX 1024
#define TD_SLOT_DEFAULT 65536
#define TD_SLOT_MIN 64
#define TD_SLOT_MAX 65536

struct lb_tundecap {
	int raw_fd;
	int tun_fd;
	uint8_t vip[4];
	uint32_t batch;
	uint32_t slot;
	int nonblock;			/* raw_fd has O_NONBLOCK: wait in poll(), not in recvmmsg */
	int rcvtimeo_ms;		/* SO_RCVTIMEO last set on raw_fd (-1: not yet) */
	uint8_t *slab;			/* batch * slot bytes */
	struct iovec *iov;		/* one per slot */
	struct mmsghdr *msgs;		/* one per slot */
	struct lb_tundecap_stats st;
};

int lb_tundecap_classify(const uint8_t *pkt, uint32_t len, const uint8_t *vip, uint32_t *inner_off,
			 uint32_t *inner_len)
{
	if (len < 40)
		return LB_TD_R_SHORT;
	if (pkt[0] >> 4 != 4)
		return LB_TD_R_OUTER_VERSION;
	uint32_t ihl = (uint32_t)(pkt[0] & 0x0F) * 4;
	if (ihl < 20 || len < ihl + 20)
		return LB_TD_R_OUTER_HLEN;
	if (pkt[9] != 4)
		return LB_TD_R_NOT_IPIP;
	const uint8_t *in = pkt + ihl;
	if (in[0] >> 4 != 4)
		return LB_TD_R_INNER_VERSION;
	if (memcmp(in + 16, vip, 4) != 0)
		return LB_TD_R_NOT_VIP;
	uint32_t total = ((uint32_t)in[2] << 8) | in[3];
	if (total < 20 || total > len - ihl)
		return LB_TD_R_INNER_LEN;
	*inner_off = ihl;
	*inner_len = total;
	return LB_TD_PASS;
}

struct lb_tundecap *lb_tundecap_open(int raw_fd, int tun_fd, const uint8_t *vip,
				     const struct lb_tundecap_cfg *cfg)
{
	uint32_t batch = cfg && cfg->batch ? cfg->batch : TD_BATCH_DEFAULT;
	uint32_t slot = cfg && cfg->slot ? cfg->slot : TD_SLOT_DEFAULT;
	if (raw_fd < 0 || tun_fd < 0 || !vip || batch > TD_BATCH_MAX || slot < TD_SLOT_MIN || slot > TD_SLOT_MAX)
		return NULL;
	struct lb_tundecap *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->raw_fd = raw_fd;
	t->tun_fd = tun_fd;
	memcpy(t->vip, vip, 4);
	t->batch = batch;
	t->slot = slot;
	int fl = fcntl(raw_fd, F_GETFL);
	t->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	t->rcvtimeo_ms = -1;
	t->slab = malloc((size_t)batch * slot);
	t->iov = calloc(batch, sizeof(*t->iov));
	t->msgs = calloc(batch, sizeof(*t->msgs));
	if (!t->slab || !t->iov || !t->msgs) {
		lb_tundecap_close(t);
		return NULL;
	}
	for (uint32_t i = 0; i < batch; i++) {
		t->iov[i].iov_base = t->slab + (size_t)i * slot;
		t->iov[i].iov_len = slot;
		t->msgs[i].msg_hdr.msg_iov = &t->iov[i];
		t->msgs[i].msg_hdr.msg_iovlen = 1;
	}
	return t;
}

void lb_tundecap_close(struct lb_tundecap *t)
{
	if (!t)
		return;
	free(t->slab);
	free(t->iov);
	free(t->msgs);
	free(t);
}

static void td_count_drop(struct lb_tundecap_stats *st, int reason)
{
	switch (reason) {
	case LB_TD_R_SHORT: st->drop_short++; break;
	case LB_TD_R_OUTER_VERSION: st->drop_outer_version++; break;
	case LB_TD_R_OUTER_HLEN: st->drop_outer_hlen++; break;
	case LB_TD_R_NOT_IPIP: st->drop_not_ipip++; break;
	case LB_TD_R_INNER_VERSION: st->drop_inner_version++; break;
	case LB_TD_R_NOT_VIP: st->drop_not_vip++; break;
	default: st->drop_inner_len++; break;
	}
}

/* Check and forward the n packets one recvmmsg left in the slots. */
static void td_handle(struct lb_tundecap *t, unsigned int n)
{
	struct lb_tundecap_stats *st = &t->st;
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *pkt = t->iov[i].iov_base;
		uint32_t len = t->msgs[i].msg_len;
		st->rx_pkts++;
		st->rx_bytes += len;
		if ((t->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len > t->slot) {
			st->rx_trunc++;
			continue;
		}
		uint32_t off = 0, ilen = 0;
		int r = lb_tundecap_classify(pkt, len, t->vip, &off, &ilen);
		if (r != LB_TD_PASS) {
			td_count_drop(st, r);
			continue;
		}
		ssize_t w;
		do
			w = write(t->tun_fd, pkt + off, ilen);
		while (w < 0 && errno == EINTR);
		if (w != (ssize_t)ilen) {
			st->tun_errs++;
			continue;
		}
		st->passed++;
		st->passed_bytes += ilen;
	}
}

/* Set the raw socket's receive timeout (the wait of a blocking recvmmsg with MSG_WAITFORONE). */
static int td_set_timeout(struct lb_tundecap *t, int timeout_ms)
{
	if (timeout_ms == t->rcvtimeo_ms)
		return 0;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	if (setsockopt(t->raw_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	t->rcvtimeo_ms = timeout_ms;
	return 0;
}

int lb_tundecap_poll(struct lb_tundecap *t, uint32_t budget, int timeout_ms)
{
	if (!t || timeout_ms < 0)
		return -EINVAL;
	/* A blocking socket waits inside recvmmsg (MSG_WAITFORONE: sleep until one packet, then take what
	 * is queued without waiting more): one system call per wake-up.  A non-blocking one needs poll(). */
	int wait = timeout_ms > 0 && !t->nonblock;
	if (wait) {
		int rc = td_set_timeout(t, timeout_ms);
		if (rc < 0)
			return rc;
	}
	/* MSG_TRUNC: msg_len is the packet's real length, so rx_bytes counts what arrived */
	int flags = MSG_TRUNC | (wait ? MSG_WAITFORONE : MSG_DONTWAIT);
	uint32_t done = 0;
	int polled = 0;
	while (done < budget) {
		uint32_t want = budget - done < t->batch ? budget - done : t->batch;
		int n = recvmmsg(t->raw_fd, t->msgs, want, flags, NULL);
		if (n > 0) {
			td_handle(t, (unsigned int)n);
			done += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			return done ? (int)done : -EINTR;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return done ? (int)done : -errno;
		/* Nothing arrived within the timeout (blocking), or nothing queued (non-blocking). */
		if (wait || done || polled || timeout_ms == 0)
			break;
		struct pollfd pfd = { .fd = t->raw_fd, .events = POLLIN };
		int rc = poll(&pfd, 1, timeout_ms);
		if (rc < 0)
			return -errno;
		if (rc == 0)
			break;
		polled = 1;
	}
	return (int)done;
}

void lb_tundecap_stats(const struct lb_tundecap *t, struct lb_tundecap_stats *out)
{
	if (t && out)
		*out = t->st;
}
