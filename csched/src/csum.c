/*
 * csum.c - Internet checksums: the RFC 1071 one's-complement sum and the full IPv4 header checksum
 * (kernel ip_send_check).  The RFC 1624 incremental update (kernel inet_proto_csum_replace4/2 as
 * tcp_dnat_handler / udp_snat_handler use it) and the fold are inline in lb_pkt.h, for speed.
 * lb/fwd/csum.py is the Python twin.
 */
#include "lb_pkt.h"

uint32_t lb_csum_add(uint32_t sum, const uint8_t *b, uint32_t n)
{
	uint32_t i = 0;
	for (; i + 1 < n; i += 2)
		sum += (uint32_t)lb_get16(b + i);
	if (i < n)
		sum += (uint32_t)b[i] << 8;
	/* keep the accumulator from overflowing on long inputs */
	sum = (sum & 0xFFFFu) + (sum >> 16);
	return sum;
}

void lb_ip4_send_check(uint8_t *iph)
{
	uint32_t hl = (uint32_t)(iph[0] & 0x0F) * 4;
	iph[10] = 0;
	iph[11] = 0;
	lb_put16(iph + 10, lb_csum_fold(lb_csum_add(0, iph, hl)));
}
