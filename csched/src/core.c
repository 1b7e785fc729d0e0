/*
 * core.c - one balancer core: creation and teardown of its pools and tables, the ABI checks the
 * Python side makes at import, the balancer's ports, and timer housekeeping.  Kernel counterparts:
 * the per-netns setup in ip_vs_ctl.c / ip_vs_conn.c (ip_vs_control_net_init, ip_vs_conn_net_init).
 * Nothing here reads a clock or an RNG: `now` and the seeds come from the caller.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lb_conn.h"
#include "lb_core.h"
#include "lb_api_conn.h"
#include "lb_api_io.h"
#include "lb_api_pkt.h"

/* The kernel's defaults (ip_vs_proto_tcp.c tcp_timeouts[], ip_vs_proto_udp.c udp_timeouts[]):
 * what `ipvsadm -L --timeout` shows on a fresh system. */
#define LB_DEFAULT_TIMEOUT_TCP 900
#define LB_DEFAULT_TIMEOUT_TCPFIN 120
#define LB_DEFAULT_TIMEOUT_UDP 300

uint32_t lb_abi_version(void) { return LB_ABI_VERSION; }

size_t lb_sizeof(int which)
{
	switch (which) {
	case 0: return sizeof(struct lb_svc_cfg);
	case 1: return sizeof(struct lb_dest_cfg);
	case 2: return sizeof(struct lb_svc_info);
	case 3: return sizeof(struct lb_dest_info);
	case 4: return sizeof(struct lb_flow);
	case 5: return sizeof(struct lb_core_cfg);
	case 6: return sizeof(struct lb_conn_info);
	case 7: return sizeof(struct lb_conn_stats);
	case 8: return sizeof(struct lb_trace_rec);
	case 9: return sizeof(struct lb_pump_cfg);
	case 10: return sizeof(struct lb_pump_port_stats);
	case 11: return sizeof(struct lb_batch);
	default: return 0;
	}
}

lb_core *lb_core_new(const struct lb_core_cfg *cfg)
{
	if (!cfg || cfg->svc_max == 0 || cfg->dest_max == 0 || cfg->conn_max == 0)
		return NULL;
	struct lb_core *core = calloc(1, sizeof(*core));
	if (!core)
		return NULL;
	core->cfg = *cfg;
	core->svcs = calloc(cfg->svc_max, sizeof(*core->svcs));
	core->dests = calloc(cfg->dest_max, sizeof(*core->dests));
	core->conns = lb_conn_table_new(cfg->conn_max, cfg->hash_seed);
	if (!core->svcs || !core->dests || !core->conns || lb_pkt_init(core) < 0) {
		lb_core_free(core);
		return NULL;
	}
	/* splitmix-style state must not be zero for xorshift-family generators */
	core->rng = cfg->rng_seed ? cfg->rng_seed : 0x9E3779B97F4A7C15ull;
	core->timeout_tcp = LB_DEFAULT_TIMEOUT_TCP;
	core->timeout_tcpfin = LB_DEFAULT_TIMEOUT_TCPFIN;
	core->timeout_udp = LB_DEFAULT_TIMEOUT_UDP;
	for (int i = 0; i < LB_MAX_PORTS; i++)
		core->ports[i].mtu = 1500;
	return core;
}

void lb_core_free(lb_core *core)
{
	if (!core)
		return;
	if (core->conns)
		lb_conn_table_free(core, core->conns);
	core->conns = NULL;
	if (core->svcs)
		lb_svc_flush(core);
	free(core->ext);
	free(core->svcs);
	free(core->dests);
	free(core);
}

int lb_port_set(lb_core *core, int port, const uint8_t *mac6, const uint8_t *ip4, uint32_t mtu)
{
	if (port < 0 || port >= LB_MAX_PORTS || !mac6 || mtu < 68 || mtu > 65535)
		return -EINVAL;
	struct lb_port *p = &core->ports[port];
	p->used = true;
	memcpy(p->mac, mac6, 6);
	p->ip = 0;
	if (ip4)
		memcpy(&p->ip, ip4, 4);
	p->mtu = mtu;
	return 0;
}

void lb_core_tick(lb_core *core, uint64_t now_ns)
{
	for (uint32_t i = 0; i < core->cfg.svc_max; i++) {
		struct lb_service *s = &core->svcs[i];
		if (s->in_use && s->sched && s->sched->tick)
			s->sched->tick(s, now_ns);
	}
	lb_conn_expire(core, now_ns, UINT32_MAX);
}
