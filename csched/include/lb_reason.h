/*
 * lb_reason.h - why a packet got its verdict: one X-macro list gives the enum and the names that
 * lb/trace/explain.py and the counters use.  Order is ABI: append only.
 */
#ifndef LB_REASON_H
#define LB_REASON_H

#define LB_REASON_LIST(X) \
	X(OK, "forwarded") \
	X(NO_SERVICE, "not for a virtual service: left to the kernel") \
	X(NO_DEST, "no destination available") \
	X(CONN_FULL, "connection table full") \
	X(PARSE_SHORT, "frame shorter than its headers") \
	X(PARSE_L2, "not Ethernet/IPv4/IPv6") \
	X(PARSE_IP_VERSION, "bad IP version") \
	X(PARSE_IHL, "bad IPv4 header length") \
	X(PARSE_TOTLEN, "bad IP total length") \
	X(PARSE_CSUM, "bad IPv4 header checksum") \
	X(FRAGMENT, "IP fragment") \
	X(TTL, "TTL expired") \
	X(TCP_FLAGS, "impossible TCP flag combination") \
	X(NO_ROUTE, "no next hop known") \
	X(MTU, "too big for the egress link") \
	X(SLOW_PATH, "handed to the control plane") \
	X(ICMP_UNTRACKED, "ICMP error for no known connection") \
	X(NOT_SYN, "TCP non-SYN for no connection")

#define LB_REASON_ENUM(name, text) LB_R_##name,
enum lb_reason { LB_REASON_LIST(LB_REASON_ENUM) LB_R__COUNT };
#undef LB_REASON_ENUM

#endif
