/*
 * zz_scaffold.c - TEMPORARY weak fallbacks so the core links while conn.c is being written in
 * parallel.  conn.c's strong definitions replace these; the lead deletes this file as soon as
 * conn.c lands.  Nothing may depend on their behaviour.
 */
#include <stdlib.h>
#include "lb_conn.h"

__attribute__((weak)) struct lb_conn_table *lb_conn_table_new(uint32_t max, uint64_t seed)
{
	(void)max; (void)seed;
	return malloc(1);
}
__attribute__((weak)) void lb_conn_table_free(struct lb_core *core, struct lb_conn_table *t)
{
	(void)core;
	free(t);
}
__attribute__((weak)) uint32_t lb_conn_expire(struct lb_core *core, uint64_t now, uint32_t budget)
{
	(void)core; (void)now; (void)budget;
	return 0;
}
