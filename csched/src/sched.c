/*
 * sched.c - the scheduler registry (kernel ip_vs_sched.c without a module loader): a table built at
 * compile time from LB_SCHED_LIST, looked up by name when a service is added or edited.
 */
#include <string.h>
#include "lb_sched.h"

/* Weak while the schedulers are being written one file at a time: a missing one is a NULL slot
 * that the lookups skip.  (Drop the pragma once every scheduler of LB_SCHED_LIST exists.) */
#define LB_SCHED_WEAK(n) _Pragma(LB_STR(weak lb_sched_##n))
#define LB_STR(x) #x
LB_SCHED_LIST(LB_SCHED_WEAK)
#undef LB_SCHED_WEAK

#define LB_SCHED_ENTRY(n) &lb_sched_##n,
static const struct lb_sched_ops *const lb_sched_table[] = { LB_SCHED_LIST(LB_SCHED_ENTRY) };
#undef LB_SCHED_ENTRY

#define LB_SCHED_N ((int)(sizeof(lb_sched_table) / sizeof(lb_sched_table[0])))

const struct lb_sched_ops *lb_sched_lookup(const char *name)
{
	for (int i = 0; i < LB_SCHED_N; i++)
		if (lb_sched_table[i] && strncmp(lb_sched_table[i]->name, name, LB_SCHED_NAME_MAX) == 0)
			return lb_sched_table[i];
	return NULL;
}

/* The i-th existing scheduler (registry order). */
static const struct lb_sched_ops *sched_nth(int i)
{
	for (int j = 0; j < LB_SCHED_N; j++)
		if (lb_sched_table[j] && i-- == 0)
			return lb_sched_table[j];
	return NULL;
}

int lb_sched_count(void)
{
	int n = 0;
	for (int j = 0; j < LB_SCHED_N; j++)
		n += lb_sched_table[j] != NULL;
	return n;
}

const char *lb_sched_name(int i)
{
	const struct lb_sched_ops *s = sched_nth(i);
	return s ? s->name : NULL;
}

uint32_t lb_sched_flags_ok(int i)
{
	const struct lb_sched_ops *s = sched_nth(i);
	return s ? s->flags_ok : 0;
}
