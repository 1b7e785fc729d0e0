/*
 * lb_api_io.h - the packet pump: the C receive -> process -> transmit loop over the balancer's ports
 * (cffi surface; cdef-clean like lb_api.h).  Python opens the ports (lb/io/afpacket.py sets up the
 * AF_PACKET socket and mmaps its TPACKET_V3 RX ring, lb/io/tap.py opens the TAP fd) and hands the fds
 * and ring memory to the pump; each lb_pump() call then moves up to `budget` frames without Python:
 * walk the RX rings, copy frames into one batch, run the core on it, sendmmsg the TX verdicts per
 * egress port, queue PASS verdicts for the slow path (ARP, ICMP echo to a VIP: lb/io/loop.py), count.
 * Kernel counterpart: none (IPVS sits in the stack); the shape is DPVS's lcore loop.
 */
#ifndef LB_API_IO_H
#define LB_API_IO_H
#include <stdint.h>
#include "lb_api.h"

#define LB_PUMP_MAX_PORTS 8

/* How a port is read and written. */
#define LB_PUMP_IO_RING 0	/* AF_PACKET: TPACKET_V3 or V2 RX ring (mmap'ed by the caller); TX by sendmmsg */
#define LB_PUMP_IO_SOCK 1	/* any datagram socket: recvmmsg / sendmmsg (AF_PACKET without ring, tests) */
#define LB_PUMP_IO_FD 2		/* TAP (or a pipe-like fd): read() / write() one frame each */

/* Pump flags. */
#define LB_PUMP_F_PASSTHROUGH 0x1	/* do not run the core: every frame goes to the slow path */

struct lb_pump_cfg {
	uint32_t batch;		/* frames per batch (1..1024; 0 = 64) */
	uint32_t stride;	/* bytes per batch slot = largest frame handled (0 = 2048) */
	uint32_t slow_slots;	/* slow-path queue length in frames (0 = 256) */
	uint32_t flags;		/* LB_PUMP_F_* */
	uint32_t spin_us;	/* busy-poll: before sleeping in poll(), keep checking the rings for up to this
				 * many microseconds (0 = sleep at once; at most 1000).  Saves the wake-up
				 * (the sender's IPI, our schedule in) when the next frame comes soon, costs
				 * CPU when it does not.  Ring ports only (recvmmsg/read ports are polled). */
};

/* Per-port counters (since lb_pump_new). */
struct lb_pump_port_stats {
	uint64_t rx_pkts;
	uint64_t rx_bytes;
	uint64_t tx_pkts;	/* frames sent on this port (fast path and lb_pump_send) */
	uint64_t tx_bytes;
	uint64_t tx_errs;	/* frames whose send failed (queue full, link down): lost */
	uint64_t drops;		/* DROP verdicts on frames received on this port */
	uint64_t slow;		/* frames handed to the slow path */
	uint64_t slow_full;	/* slow-path queue full: frame not handed (lost) */
	uint64_t rx_trunc;	/* frames longer than a batch slot: dropped */
	uint64_t rx_csum_partial;	/* ring frames with TP_STATUS_CSUMNOTREADY (sender's checksum offload on):
					 * their L4 checksum is completed before processing (lb_frame_csum_complete) */
};

struct lb_pump;

struct lb_pump *lb_pump_new(const struct lb_pump_cfg *cfg);
void lb_pump_free(struct lb_pump *p);

/* Attach a port (index = the core's port number, 0..LB_PUMP_MAX_PORTS-1).  fd stays owned by the
 * caller (non-blocking).  Ring: ring/block_size/block_nr describe the mmap'ed TPACKET_V3 RX ring,
 * which must stay mapped while the pump lives.  Returns 0 or -EINVAL / -EEXIST. */
int lb_pump_port_ring(struct lb_pump *p, int port, int fd, uint8_t *ring, uint32_t block_size,
		      uint32_t block_nr);
/* The same with a TPACKET_V2 RX ring: frame_nr contiguous slots of frame_size bytes (the socket's
 * tpacket_req block_size a multiple of frame_size), each with its own tp_status.  A V2 frame is the
 * pump's as soon as the kernel has written it; a V3 block only when full or when its retire timer fires
 * (>= 1 ms), so V2 is the low-latency ring.  frame_size: a multiple of 16, >= TPACKET2_HDRLEN + 64. */
int lb_pump_port_ring_v2(struct lb_pump *p, int port, int fd, uint8_t *ring, uint32_t frame_size,
			 uint32_t frame_nr);
int lb_pump_port_sock(struct lb_pump *p, int port, int fd);
int lb_pump_port_fd(struct lb_pump *p, int port, int fd);
/* Give an attached AF_PACKET port a TX ring (frame_nr frames of frame_size bytes, contiguous, mapped right
 * after the RX ring; TPACKET_V2 frame headers on a V2 ring port, TPACKET_V3 otherwise): TX frames are copied into it and one send() kicks them all, instead
 * of a sendmmsg of iovecs.  A socket with a TX ring sends only from it (lb_pump_send uses it too). */
int lb_pump_port_txring(struct lb_pump *p, int port, uint8_t *ring, uint32_t frame_size, uint32_t frame_nr);

/* Move frames until `budget` have been handled, or timeout_ms have passed since the call began with
 * nothing ready (0: do not wait at all), or a poll() wake-up brought nothing, or the slow-path queue
 * has frames waiting after a batch.  Between frames the call sleeps in poll() and goes on after each
 * wake-up without returning (one call serves many wake-ups; Python regains control within timeout_ms).
 * The core sees now_ns plus the time spent in the call (CLOCK_MONOTONIC, as the caller's clock).  With
 * cfg.spin_us, every idle gap is first spun through for up to spin_us before poll() sleeps.  core may be
 * NULL with LB_PUMP_F_PASSTHROUGH.  Returns the number of frames handled, or -errno from poll(). */
int lb_pump(lb_core *core, struct lb_pump *p, uint32_t budget, int timeout_ms, uint64_t now_ns);

/* Take the oldest slow-path frame: copies at most buflen bytes into buf, sets *port to the port it
 * came in on; returns the frame's length (0: queue empty).  Frames longer than buflen are cut. */
int lb_pump_slowpath_get(struct lb_pump *p, uint8_t *buf, uint32_t buflen, int32_t *port);
/* Frames waiting in the slow-path queue. */
uint32_t lb_pump_slowpath_count(struct lb_pump *p);

/* Send one frame on a port from the slow path (ARP and ICMP replies): 0 or -errno. */
int lb_pump_send(struct lb_pump *p, int port, const uint8_t *frame, uint32_t len);

int lb_pump_stats(struct lb_pump *p, int port, struct lb_pump_port_stats *out);

/* Finish the L4 checksum of a frame that left its sender with checksum offload on (CHECKSUM_PARTIAL: the
 * TCP/UDP checksum field holds only the folded pseudo-header sum; AF_PACKET flags such frames
 * TP_STATUS_CSUMNOTREADY): sum the segment as the NIC would (kernel skb_checksum_help), so rewrites and
 * receivers see a complete packet.  Ethernet (one 802.1Q tag at most), IPv4 unfragmented or IPv6 without
 * extension headers, TCP or UDP.  Returns 1 when completed, 0 when the frame is none of those. */
int lb_frame_csum_complete(uint8_t *frame, uint32_t len);

#endif
