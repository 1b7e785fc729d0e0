/*
 * lb_api_tundecap.h - the userspace IPIP decapsulator of TUN-mode real servers (`lb tun-decap`, cffi
 * surface; cdef-clean like lb_api.h).  Python (lb/lab/tundecap.py) creates the TUN device holding the VIP
 * and the raw IPPROTO_IPIP socket, hands both fds here, and calls lb_tundecap_poll() in a loop: each call
 * receives IPIP packets in batches (recvmmsg), checks each as lb/lab/tundecap.py:classify() does, writes
 * the inner packet into the TUN device (the kernel then delivers it locally) and counts every drop by
 * reason.  Kernel counterpart: the receive half of net/ipv4/ipip.c (ipip_rcv -> ip_tunnel_rcv).
 */
#ifndef LB_API_TUNDECAP_H
#define LB_API_TUNDECAP_H
#include <stdint.h>

/* Verdicts of lb_tundecap_classify(): 0 passes, every other value names why the packet was dropped.
 * The order is the order of the checks (and of REASONS in lb/lab/tundecap.py). */
#define LB_TD_PASS 0
#define LB_TD_R_SHORT 1		/* fewer than 40 bytes: no room for two IPv4 headers */
#define LB_TD_R_OUTER_VERSION 2	/* outer header is not IPv4 */
#define LB_TD_R_OUTER_HLEN 3	/* outer IHL below 5 words, or no 20-byte inner header after it */
#define LB_TD_R_NOT_IPIP 4	/* outer protocol is not 4 (IPIP) */
#define LB_TD_R_INNER_VERSION 5	/* inner header is not IPv4 */
#define LB_TD_R_NOT_VIP 6	/* inner destination is not the VIP this server holds */
#define LB_TD_R_INNER_LEN 7	/* inner total length below 20 or beyond the received bytes */
#define LB_TD_R_COUNT 8

struct lb_tundecap_cfg {
	uint32_t batch;		/* packets per recvmmsg (1..1024; 0 = 64) */
	uint32_t slot;		/* bytes per receive slot (64..65536; 0 = 65536: a whole IPv4 datagram) */
};

/* Counters since lb_tundecap_open (the same names as DecapStats in lb/lab/tundecap.py). */
struct lb_tundecap_stats {
	uint64_t rx_pkts;		/* packets received on the raw socket */
	uint64_t rx_bytes;
	uint64_t passed;		/* inner packets written into the TUN device */
	uint64_t passed_bytes;
	uint64_t tun_errs;		/* inner packets whose write() failed (lost) */
	uint64_t rx_trunc;		/* packets longer than a slot (dropped) */
	uint64_t drop_short;
	uint64_t drop_outer_version;
	uint64_t drop_outer_hlen;
	uint64_t drop_not_ipip;
	uint64_t drop_inner_version;
	uint64_t drop_not_vip;
	uint64_t drop_inner_len;
};

struct lb_tundecap;

/* Check one received IPIP packet (outer IPv4 header first, as a raw socket hands it over) against the
 * VIP (4 bytes, network order).  On LB_TD_PASS, *inner_off and *inner_len locate the inner packet
 * (its total-length field, not the received length).  Returns LB_TD_PASS or an LB_TD_R_* reason. */
int lb_tundecap_classify(const uint8_t *pkt, uint32_t len, const uint8_t *vip, uint32_t *inner_off,
			 uint32_t *inner_len);

/* raw_fd: an AF_INET SOCK_RAW IPPROTO_IPIP socket; tun_fd: the TUN device (IFF_TUN|IFF_NO_PI).  Both stay
 * owned by the caller.  vip: 4 bytes, network order.  cfg may be NULL (defaults).  All buffers are
 * allocated here, once.  Returns NULL on bad arguments or when out of memory. */
struct lb_tundecap *lb_tundecap_open(int raw_fd, int tun_fd, const uint8_t *vip,
				     const struct lb_tundecap_cfg *cfg);
void lb_tundecap_close(struct lb_tundecap *t);

/* Receive and decapsulate until `budget` packets have been handled, or no packet has arrived for
 * timeout_ms (0: do not wait; return as soon as nothing is queued).  On a blocking raw_fd the wait is
 * a recvmmsg with MSG_WAITFORONE and SO_RCVTIMEO = timeout_ms (set here on the caller's socket); on a
 * non-blocking one, a poll().  Returns the number of packets handled (passed or dropped), or -errno
 * (-EINTR when a signal arrived while nothing had been handled: the caller's signal handlers run as soon
 * as the call returns; -EINVAL for timeout_ms < 0). */
int lb_tundecap_poll(struct lb_tundecap *t, uint32_t budget, int timeout_ms);

void lb_tundecap_stats(const struct lb_tundecap *t, struct lb_tundecap_stats *out);

#endif
