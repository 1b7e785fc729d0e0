/*
 * lb_hash.h - the hash functions the hashing schedulers (sh, dh, mh, lblc, lblcr) share, written
 * to give the same numbers as the kernel's: hash_32 (include/linux/hash.h), the IPv6 address fold
 * every ip_vs_*_hashkey() does, and hsiphash on 64-bit hosts (lib/siphash.c, where "HalfSipHash"
 * is really SipHash-1-3 on a 64-bit key pair).  Internal: never in the cffi cdef (test hooks are in
 * lb_api_schedtest.h).  Python twin: lb/sched/ref/hashing.py.
 */
#ifndef LB_HASH_H
#define LB_HASH_H
#include <stdint.h>
#include "lb_core.h"

/* include/linux/hash.h: multiply by the 32-bit golden ratio and keep the top `bits` bits. */
#define LB_GOLDEN_RATIO_32 0x61C88647u

static inline uint32_t lb_hash_32(uint32_t val, unsigned int bits)
{
	return (uint32_t)(val * LB_GOLDEN_RATIO_32) >> (32 - bits);
}

/* The big-endian 32-bit word at p, i.e. ntohl() of a network-order word. */
static inline uint32_t lb_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ntohl(addr_fold): an IPv4 address as a host-order integer; for IPv6 the XOR of its four words
 * (XOR commutes with the byte swap, so folding after ntohl gives the kernel's value). */
static inline uint32_t lb_addr_fold(uint16_t af, const union lb_addr *a)
{
	if (af == LB_AF_INET6)
		return lb_be32(a->b) ^ lb_be32(a->b + 4) ^ lb_be32(a->b + 8) ^ lb_be32(a->b + 12);
	return lb_be32(a->b);
}

static inline uint16_t lb_ntohs(uint16_t net)
{
	const uint8_t *p = (const uint8_t *)&net;
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint64_t lb_rol64(uint64_t w, unsigned int s) { return (w << s) | (w >> (64 - s)); }

#define LB_SIPROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = lb_rol64(v1, 13); v1 ^= v0; v0 = lb_rol64(v0, 32); \
	v2 += v3; v3 = lb_rol64(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = lb_rol64(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = lb_rol64(v1, 17); v1 ^= v2; v2 = lb_rol64(v2, 32); \
} while (0)

/* The kernel's hsiphash(&v, 4, key) on a 64-bit little-endian host: SipHash-1-3 with the standard
 * initial constants, key words k0/k1, and the 4-byte message v (read little-endian) placed in the
 * final block together with the length (4 << 56); one compression round, three finalisation
 * rounds, and the low 32 bits of v0^v1^v2^v3. */
static inline uint32_t lb_hsiphash_u32(uint32_t v, uint64_t k0, uint64_t k1)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = ((uint64_t)4 << 56) | v;

	v3 ^= b;
	LB_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	LB_SIPROUND(v0, v1, v2, v3);
	LB_SIPROUND(v0, v1, v2, v3);
	LB_SIPROUND(v0, v1, v2, v3);
	return (uint32_t)((v0 ^ v1) ^ (v2 ^ v3));
}

/* Is this one of the protocols whose first 4 payload bytes are source/destination ports (the
 * kernel's ip_vs_sh_get_port / ip_vs_mh_get_port)? */
static inline int lb_proto_has_ports(uint8_t proto)
{
	return proto == LB_PROTO_TCP || proto == LB_PROTO_UDP || proto == LB_PROTO_SCTP;
}

/* The kernel's ip_vs_dest_conn_overhead(): active connections weigh 256 inactive ones. */
static inline int64_t lb_dest_overhead(const struct lb_dest *d)
{
	return ((int64_t)d->activeconns << 8) + d->inactconns;
}

/* For the lb_api_schedtest.h hooks: the service named by the key fields of an lb_svc_cfg, or NULL. */
struct lb_service *lb_schedtest_svc(lb_core *core, const struct lb_svc_cfg *key);

#endif
