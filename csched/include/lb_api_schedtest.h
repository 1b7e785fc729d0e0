/*
 * lb_api_schedtest.h - read-only views into the hashing schedulers' state, for tests, teaching
 * (`lb explain`) and the C-vs-Python parity suite.  cdef-clean (see lb_api.h).  Implemented in
 * sched_sh.c, sched_dh.c, sched_mh.c, sched_lblc.c, sched_lblcr.c.
 *
 * All return -ESRCH when the service does not exist and -EINVAL when it does not use the
 * scheduler the call is about.
 */
#ifndef LB_API_SCHEDTEST_H
#define LB_API_SCHEDTEST_H
#include <stdint.h>
#include "lb_api.h"

/* Table sizes: 256 buckets for sh/dh (IP_VS_SH_TAB_BITS = IP_VS_DH_TAB_BITS = 8), the prime 4093 for
 * mh (CONFIG_IP_VS_MH_TAB_INDEX default 12 -> primes[12 - 8]), 1024 buckets for lblc/lblcr. */
#define LB_SH_TAB_SIZE 256
#define LB_DH_TAB_SIZE 256
#define LB_MH_TAB_SIZE 4093
#define LB_LBLC_TAB_SIZE 1024

/* The bucket table as dest ids (-1 = empty), out[0..min(max, size)-1].  Returns the table size. */
int lb_sched_sh_table(lb_core *core, const struct lb_svc_cfg *svc, int32_t *out, int max);
int lb_sched_dh_table(lb_core *core, const struct lb_svc_cfg *svc, int32_t *out, int max);
int lb_sched_mh_table(lb_core *core, const struct lb_svc_cfg *svc, int32_t *out, int max);

/* lblc/lblcr: the table's entry counter (the kernel's tbl->entries, which drives the overflow
 * collection), or -errno. */
int lb_sched_locality_entries(lb_core *core, const struct lb_svc_cfg *svc);
/* lblc/lblcr: the entry for destination address daddr (16 bytes, network order, IPv4 in the first
 * 4): dest ids into out (lblc: one; lblcr: the set, newest first), its last use time in *lastuse
 * (ns) and, for lblcr, the set's last modification time in *lastmod (lblc: 0).  Returns the number
 * of dests, 0 when there is no entry. */
int lb_sched_locality_lookup(lb_core *core, const struct lb_svc_cfg *svc, const uint8_t *daddr, int32_t *out,
			     int max, uint64_t *lastuse, uint64_t *lastmod);

/* The hash helpers themselves (lb_hash.h), so the Python twin can be checked number for number. */
uint32_t lb_hash_hash32(uint32_t val, uint32_t bits);
uint32_t lb_hash_hsiphash32(uint32_t v, uint64_t k0, uint64_t k1);

#endif
