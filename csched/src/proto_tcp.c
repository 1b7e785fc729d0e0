/*
 * proto_tcp.c - the IPVS TCP state machine (kernel ip_vs_proto_tcp.c): three transition tables
 * (input, output, input-only for conns whose replies bypass us: DR/TUN), the flag -> event order
 * rst > syn > fin > ack, per-state timeouts (ESTABLISHED and FIN_WAIT settable with --set), and the
 * move of a conn between its dest's active and inactive counts.  Active states are the kernel's
 * current ones (since "count pre-established TCP states as active"): SYN_SENT, SYN_RECV, SYNACK and
 * ESTABLISHED.
 */
#include "lb_conn.h"

#define sNO LB_TCP_S_NONE
#define sES LB_TCP_S_ESTABLISHED
#define sSS LB_TCP_S_SYN_SENT
#define sSR LB_TCP_S_SYN_RECV
#define sFW LB_TCP_S_FIN_WAIT
#define sTW LB_TCP_S_TIME_WAIT
#define sCL LB_TCP_S_CLOSE
#define sCW LB_TCP_S_CLOSE_WAIT
#define sLA LB_TCP_S_LAST_ACK
#define sLI LB_TCP_S_LISTEN
#define sSA LB_TCP_S_SYNACK

#define TCP_DIR_INPUT 0
#define TCP_DIR_OUTPUT 4
#define TCP_DIR_INPUT_ONLY 8

/* Rows: event (syn, fin, ack, rst) for each direction block; columns: the current state. */
static const uint8_t tcp_states[12][LB_TCP_S_LAST] = {
	/* INPUT:       sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA */
	/* syn */ { sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR },
	/* fin */ { sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW },
	/* ack */ { sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES },
	/* rst */ { sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR },
	/* OUTPUT */
	/* syn */ { sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR },
	/* fin */ { sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW },
	/* ack */ { sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES },
	/* rst */ { sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL },
	/* INPUT-ONLY */
	/* syn */ { sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR },
	/* fin */ { sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW },
	/* ack */ { sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES },
	/* rst */ { sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL },
};

/* Seconds; ESTABLISHED and FIN_WAIT come from the core (ipvsadm --set). */
static const uint32_t tcp_timeouts[LB_TCP_S_LAST] = {
	[sNO] = 2, [sES] = 900, [sSS] = 120, [sSR] = 60, [sFW] = 120, [sTW] = 120,
	[sCL] = 10, [sCW] = 60, [sLA] = 30, [sLI] = 120, [sSA] = 120,
};

static const char *const tcp_state_names[LB_TCP_S_LAST] = {
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK",
};

static const bool tcp_active[LB_TCP_S_LAST] = {
	[sES] = true, [sSS] = true, [sSR] = true, [sSA] = true,
};

const char *lb_tcp_state_name(int state)
{
	if (state < 0 || state >= LB_TCP_S_LAST)
		return "ERR!";
	return tcp_state_names[state];
}

bool lb_tcp_state_active(int state) { return state >= 0 && state < LB_TCP_S_LAST && tcp_active[state]; }

uint32_t lb_tcp_timeout(const struct lb_core *core, int state)
{
	if (state == sES)
		return core->timeout_tcp;
	if (state == sFW)
		return core->timeout_tcpfin;
	if (state < 0 || state >= LB_TCP_S_LAST)
		return 2;
	return tcp_timeouts[state];
}

/* The event a segment is: rst before syn before fin before ack; none of them: -1. */
static int tcp_event(uint8_t flags)
{
	if (flags & 0x04)
		return 3;
	if (flags & 0x02)
		return 0;
	if (flags & 0x01)
		return 1;
	if (flags & 0x10)
		return 2;
	return -1;
}

void lb_tcp_state_transition(struct lb_core *core, struct lb_conn *cp, int dir, uint8_t tcp_flags)
{
	int off = dir ? TCP_DIR_OUTPUT : TCP_DIR_INPUT;
	/* A reply seen on a conn we thought had none (DR/TUN): from now on use the full tables. */
	if (cp->flags & LB_CONN_F_NOOUTPUT) {
		if (off == TCP_DIR_OUTPUT)
			cp->flags &= ~(uint32_t)LB_CONN_F_NOOUTPUT;
		else
			off = TCP_DIR_INPUT_ONLY;
	}
	int ev = tcp_event(tcp_flags);
	int new_state = ev < 0 ? sCL : tcp_states[off + ev][cp->state];
	if (new_state != cp->state && cp->dest) {
		if (!(cp->flags & LB_CONN_F_INACTIVE) && !tcp_active[new_state]) {
			lb_dest_account(cp->dest, LB_EV_TO_INACTIVE);
			cp->flags |= LB_CONN_F_INACTIVE;
		} else if ((cp->flags & LB_CONN_F_INACTIVE) && tcp_active[new_state]) {
			lb_dest_account(cp->dest, LB_EV_TO_ACTIVE);
			cp->flags &= ~(uint32_t)LB_CONN_F_INACTIVE;
		}
	}
	cp->state = (uint8_t)new_state;
	cp->timeout_s = lb_tcp_timeout(core, new_state);
}
