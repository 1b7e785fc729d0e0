/*
 * proto_udp.c - UDP "state machine" (kernel ip_vs_proto_udp.c): one state, NORMAL, printed "UDP",
 * whose timeout (300 s by default, ipvsadm --set ... udp) is re-applied at every packet.  A UDP
 * conn never moves between active and inactive: it stays counted inactive, as it was bound.
 * SCTP conns use this too (no SCTP state machine in pyvs).
 */
#include "lb_conn.h"

void lb_udp_state_transition(struct lb_core *core, struct lb_conn *cp)
{
	cp->state = LB_UDP_S_NORMAL;
	cp->timeout_s = core->timeout_udp;
}

const char *lb_conn_state_name(int proto, int state)
{
	if (proto == LB_PROTO_TCP)
		return lb_tcp_state_name(state);
	if (proto == LB_PROTO_UDP)
		return state == LB_UDP_S_NORMAL ? "UDP" : "ERR!";
	return "NONE";
}
