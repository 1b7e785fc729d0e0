/*
 * udpgen_scale.c - a bounded UDP generator for the end-to-end scaling sweep (bench/e2e/scale_lab.py).
 *
 *   udpgen_scale -i IFACE -m NEXTHOP_MAC -d DST_IP [-n NDST] [-p DPORT] [-r RATE_PPS] -t SECONDS [-c COUNT]
 *                [-f FLOWS] [-s SRC_IP] [-S NSRC] [-P SPORT_BASE] [-N NPORTS] [-o OFFSET]
 *
 * bench/e2e/udpgen.c (connected UDP sockets, at most 256 flows) cannot make a million 5-tuples or a new
 * one per packet, so this one writes whole frames (Ethernet from the -m MAC to IFACE's own, IPv4, UDP with
 * both checksums) and sendmmsg()s them in bursts of 64 on an AF_PACKET socket bound to -i IFACE with
 * PACKET_QDISC_BYPASS: no routing, neighbour or qdisc work per packet, so one core offers more than the
 * balancer under test can take (a raw IP socket, tried first, was the bottleneck on this 2-core box).  Packet k belongs to tuple f = OFFSET + (k % FLOWS), or f = OFFSET + k with -f 0 (every
 * packet a new flow); tuple f goes to DST_IP + f % NDST from source port SPORT_BASE + f % NPORTS of
 * SRC_IP + (f / NPORTS) % NSRC (every tuple its own client side up to NPORTS x NSRC tuples).  18-byte payload = 64-byte Ethernet frames with the FCS; the UDP
 * checksum is computed.  RATE_PPS 0 = as fast as the socket takes them (an overload blast).  Stops after
 * SECONDS (capped at 60) or COUNT packets, then prints "sent N seconds T errors E".  The source addresses
 * need not exist on the sender; replies to them must be routable where they matter.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BURST 64
#define PAYLOAD 18
#define PKT_LEN (20 + 8 + PAYLOAD)
#define FRAME_LEN (14 + PKT_LEN)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)(p[n - 1] << 8);
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

struct gen {
	uint32_t dst, ndst, src, nsrc;
	uint16_t dport, sport, nports;
	uint32_t payload_sum;	/* one's-complement sum of the constant payload */
};

/* Write tuple f's IPv4 packet (both checksums) into pkt. */
static void build(const struct gen *g, uint64_t f, uint8_t *pkt)
{
	/* The client side (source port, then address) varies fastest, so that no two tuples share it: IPVS
	 * and lb hash a connection on the client side only (proto, caddr, cport), and a generator that sent
	 * one client port to many VIPs would measure one long hash chain, not the number of services. */
	uint32_t daddr = g->dst + (uint32_t)(f % g->ndst);
	uint16_t sport = (uint16_t)(g->sport + f % g->nports);
	uint32_t saddr = g->src + (uint32_t)((f / g->nports) % g->nsrc);
	uint8_t *ip = pkt, *udp = pkt + 20;
	uint32_t ns = htonl(saddr), nd = htonl(daddr);
	memset(ip, 0, 28);
	ip[0] = 0x45;
	ip[2] = PKT_LEN >> 8;
	ip[3] = PKT_LEN & 0xff;
	ip[6] = 0x40;	/* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, &ns, 4);
	memcpy(ip + 16, &nd, 4);
	uint16_t ipc = fold(sum16(ip, 20, 0));
	ip[10] = (uint8_t)(ipc >> 8);
	ip[11] = (uint8_t)ipc;
	udp[0] = (uint8_t)(sport >> 8);
	udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(g->dport >> 8);
	udp[3] = (uint8_t)g->dport;
	udp[4] = 0;
	udp[5] = 8 + PAYLOAD;
	/* pseudo header + UDP header + payload */
	uint32_t acc = g->payload_sum + IPPROTO_UDP + 8 + PAYLOAD;
	acc = sum16(ip + 12, 8, acc);
	acc = sum16(udp, 8, acc);
	uint16_t c = fold(acc);
	if (c == 0)
		c = 0xffff;
	udp[6] = (uint8_t)(c >> 8);
	udp[7] = (uint8_t)c;
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s -i IFACE -m NEXTHOP_MAC -d DST_IP [-n NDST] [-p DPORT] [-r RATE_PPS] -t SECONDS [-c COUNT] "
		"[-f FLOWS] [-s SRC_IP] [-S NSRC] [-P SPORT_BASE] [-N NPORTS] [-o OFFSET]\n", prog);
	return 2;
}

int main(int argc, char **argv)
{
	struct gen g = { .ndst = 1, .nsrc = 1, .dport = 9, .sport = 1024, .nports = 1 };
	struct in_addr a;
	const char *dst = NULL, *src = "10.1.0.1", *ifname = NULL, *mac = NULL;
	double rate = 0, duration = 0;
	uint64_t count = 0, flows = 1, offset = 0;
	int opt;
	while ((opt = getopt(argc, argv, "i:m:d:n:p:r:t:c:f:s:S:P:N:o:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'm': mac = optarg; break;
		case 'd': dst = optarg; break;
		case 'n': g.ndst = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'p': g.dport = (uint16_t)atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 't': duration = atof(optarg); break;
		case 'c': count = strtoull(optarg, NULL, 0); break;
		case 'f': flows = strtoull(optarg, NULL, 0); break;
		case 's': src = optarg; break;
		case 'S': g.nsrc = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'P': g.sport = (uint16_t)atoi(optarg); break;
		case 'N': g.nports = (uint16_t)atoi(optarg); break;
		case 'o': offset = strtoull(optarg, NULL, 0); break;
		default: return usage(argv[0]);
		}
	}
	if (!dst || !ifname || !mac || duration <= 0 || duration > 60 || rate < 0 || g.ndst < 1 || g.nsrc < 1 || g.nports < 1 ||
	    (uint32_t)g.sport + g.nports > 65536)
		return usage(argv[0]);
	if (inet_pton(AF_INET, dst, &a) != 1)
		return usage(argv[0]);
	g.dst = ntohl(a.s_addr);
	if (inet_pton(AF_INET, src, &a) != 1)
		return usage(argv[0]);
	g.src = ntohl(a.s_addr);

	uint8_t eth[14];
	unsigned int m[6];
	if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return usage(argv[0]);
	for (int i = 0; i < 6; i++)
		eth[i] = (uint8_t)m[i];
	int ifindex = (int)if_nametoindex(ifname);
	int fd = socket(AF_PACKET, SOCK_RAW, 0);	/* protocol 0: send only, never receive */
	if (ifindex == 0 || fd < 0) {
		perror("if_nametoindex/socket(AF_PACKET)");
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		perror("SIOCGIFHWADDR");
		return 1;
	}
	memcpy(eth + 6, ifr.ifr_hwaddr.sa_data, 6);
	eth[12] = 0x08;
	eth[13] = 0x00;
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_protocol = htons(ETH_P_IP),
				  .sll_halen = 6 };
	memcpy(ll.sll_addr, eth, 6);
	int one = 1;
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	int sndbuf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

	static uint8_t pkts[BURST][FRAME_LEN];
	struct iovec iov[BURST];
	struct mmsghdr msgs[BURST];
	uint8_t payload[PAYLOAD];
	memset(payload, 'p', sizeof(payload));
	g.payload_sum = sum16(payload, PAYLOAD, 0);
	for (int i = 0; i < BURST; i++) {
		memcpy(pkts[i], eth, 14);
		memcpy(pkts[i] + 14 + 28, payload, PAYLOAD);
		iov[i].iov_base = pkts[i];
		iov[i].iov_len = FRAME_LEN;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &ll;
		msgs[i].msg_hdr.msg_namelen = sizeof(ll);
	}

	uint64_t sent = 0, errors = 0, k = 0;
	double t0 = now_s(), t;
	const struct timespec tick = { 0, 100000 };
	while ((t = now_s()) - t0 < duration && (!count || sent < count)) {
		uint64_t due = rate > 0 ? (uint64_t)((t - t0) * rate) : sent + 16 * BURST;
		if (count && due > count)
			due = count;
		while (sent < due) {
			uint64_t want = due - sent;
			unsigned int n = want > BURST ? BURST : (unsigned int)want;
			for (unsigned int i = 0; i < n; i++, k++)
				build(&g, offset + (flows ? k % flows : k), pkts[i] + 14);
			int r = sendmmsg(fd, msgs, n, 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				errors++;
				sent += n;	/* offered and refused: counts as lost */
				continue;
			}
			sent += n;	/* a short send counts the rest as offered and lost */
		}
		if (rate > 0)
			nanosleep(&tick, NULL);
	}
	printf("sent %llu seconds %.3f errors %llu\n", (unsigned long long)sent, now_s() - t0,
	       (unsigned long long)errors);
	close(fd);
	return 0;
}
