/*
 * lb_list.h - a circular doubly linked list with a sentinel head, the shape of the kernel's
 * struct list_head.  Schedulers iterate a service's destinations exactly as the kernel does
 * (list_for_each_entry, list_for_each_entry_continue with the head skipped), so the list is the same
 * shape: a new destination is inserted right after the head, i.e. at the front.
 */
#ifndef LB_LIST_H
#define LB_LIST_H
#include <stddef.h>

struct lb_list {
	struct lb_list *next, *prev;
};

#define lb_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void lb_list_init(struct lb_list *h) { h->next = h->prev = h; }
static inline int lb_list_empty(const struct lb_list *h) { return h->next == h; }

static inline void lb_list__insert(struct lb_list *n, struct lb_list *prev, struct lb_list *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

/* Insert right after the head (front): the kernel's list_add. */
static inline void lb_list_add(struct lb_list *n, struct lb_list *head) { lb_list__insert(n, head, head->next); }
/* Insert before the head (back): the kernel's list_add_tail. */
static inline void lb_list_add_tail(struct lb_list *n, struct lb_list *head) { lb_list__insert(n, head->prev, head); }

static inline void lb_list_del(struct lb_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

#define lb_list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif
