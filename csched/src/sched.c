/*
 * sched.c - the scheduler registry (kernel ip_vs_sched.c without a module loader): a table built at
 * compile time from LB_SCHED_LIST, looked up by name when a service is added or edited.
 */
#include <string.h>
#include "lb_sched.h"

#define LB_SCHED_ENTRY(n) &lb_sched_##n,
static const struct lb_sched_ops *const lb_sched_table[] = { LB_SCHED_LIST(LB_SCHED_ENTRY) };
#undef LB_SCHED_ENTRY

#define LB_SCHED_N ((int)(sizeof(lb_sched_table) / sizeof(lb_sched_table[0])))

const struct lb_sched_ops *lb_sched_lookup(const char *name)
{
	for (int i = 0; i < LB_SCHED_N; i++)
		if (strncmp(lb_sched_table[i]->name, name, LB_SCHED_NAME_MAX) == 0)
			return lb_sched_table[i];
	return NULL;
}

/* The i-th scheduler of the registry, NULL past the end. */
static const struct lb_sched_ops *sched_nth(int i)
{
	return i >= 0 && i < LB_SCHED_N ? lb_sched_table[i] : NULL;
}

int lb_sched_count(void) { return LB_SCHED_N; }

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
