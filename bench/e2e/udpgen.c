/*
 * udpgen.c - a bounded, paced UDP packet generator for the end-to-end packet-rate benchmark.
 *
 *   udpgen DST_IP DST_PORT RATE_PPS DURATION_S [FLOWS] [PAYLOAD] [SPORT_BASE] [SRC_IP NSRC]
 *
 * Opens FLOWS connected UDP sockets (source ports SPORT_BASE..+FLOWS-1, so a balancer and a fanout group
 * see FLOWS different flows) and sends RATE_PPS packets per second for DURATION_S seconds, in sendmmsg
 * bursts every 100 us, then prints "sent N seconds T".  RATE_PPS 0 = blast: back-to-back bursts as fast as the
 * sockets take them (the overload point), still bounded by DURATION_S (the clock is read between bursts).  Payload 18 bytes = 64-byte Ethernet frames on
 * the wire with the FCS.  With SRC_IP NSRC, flow i is sent from SRC_IP + (i % NSRC) (addresses that must
 * exist on the sender), so that a balancer spreading clients over workers sees several clients.  Never runs longer than DURATION_S (capped at 60 s); stands alone (no csched).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 256
#define BURST 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s DST_IP DST_PORT RATE_PPS(0=blast) DURATION_S [FLOWS] [PAYLOAD] [SPORT_BASE] [SRC_IP NSRC]\n", argv[0]);
		return 2;
	}
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	double rate = atof(argv[3]);
	double duration = atof(argv[4]);
	int flows = argc > 5 ? atoi(argv[5]) : 16;
	int payload = argc > 6 ? atoi(argv[6]) : 18;
	int sport = argc > 7 ? atoi(argv[7]) : 20000;
	struct in_addr src_base = { .s_addr = htonl(INADDR_ANY) };
	int nsrc = 1;
	if (argc > 9) {
		if (inet_pton(AF_INET, argv[8], &src_base) != 1 || (nsrc = atoi(argv[9])) < 1) {
			fprintf(stderr, "bad source %s/%s\n", argv[8], argv[9]);
			return 2;
		}
	}
	if (rate < 0 || duration <= 0 || duration > 60 || flows < 1 || flows > MAX_FLOWS || payload < 1 ||
	    payload > 1400) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	int fds[MAX_FLOWS];
	for (int i = 0; i < flows; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(sport + i)) };
		if (src_base.s_addr != htonl(INADDR_ANY))
			src.sin_addr.s_addr = htonl(ntohl(src_base.s_addr) + (uint32_t)(i % nsrc));
		int one = 1;
		setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&src, sizeof(src)) < 0 ||
		    connect(fds[i], (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			perror("socket/bind/connect");
			return 1;
		}
	}
	static char buf[1500];
	memset(buf, 'p', sizeof(buf));
	struct iovec iov[BURST];
	struct mmsghdr msgs[BURST];
	for (int i = 0; i < BURST; i++) {
		iov[i].iov_base = buf;
		iov[i].iov_len = (size_t)payload;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	uint64_t sent = 0, errors = 0;
	int flow = 0;
	double t0 = now_s(), t = t0;
	const struct timespec tick = { 0, 100000 };
	while ((t = now_s()) - t0 < duration) {
		/* blast: one burst per pass, so the clock bounds the run; paced: catch up to the schedule, but look
		 * at the clock every 64 bursts so that a rate the sockets cannot take still ends on time */
		uint64_t due = rate > 0 ? (uint64_t)((t - t0) * rate) : sent + BURST;
		unsigned int bursts = 0;
		while (sent < due) {
			if (++bursts % 64 == 0 && now_s() - t0 >= duration)
				break;
			uint64_t want = due - sent;
			unsigned int n = want > BURST ? BURST : (unsigned int)want;
			int r = sendmmsg(fds[flow], msgs, n, 0);
			flow = (flow + 1) % flows;
			if (r < 0) {
				if (errno == EINTR)
					continue;
				errors++;
				sent += n;	/* offered and refused: counts as lost */
				continue;
			}
			sent += (uint64_t)r;
			if ((unsigned int)r < n)
				sent += n - (unsigned int)r;
		}
		if (rate > 0)
			nanosleep(&tick, NULL);
	}
	printf("sent %llu seconds %.3f errors %llu\n", (unsigned long long)sent, now_s() - t0,
	       (unsigned long long)errors);
	return 0;
}
