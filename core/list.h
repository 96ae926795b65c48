/* An intrusive doubly linked list: the links live inside the element, so
 * adding and removing never allocate and an element unlinks itself in O(1).
 * A head is a struct core_list whose next and prev point at itself when
 * empty; an element not on any list has both links NULL after
 * core_list_del(), so "is it linked?" is a plain test. */
#ifndef KEEL_CORE_LIST_H
#define KEEL_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "core.h"
#include "list-t.h"


#define CORE_LIST_HEAD(name)	struct core_list name = { &(name), &(name) }

static inline void core_list_init(struct core_list *head)
{
	head->next = head->prev = head;
}

static inline bool core_list_empty(const struct core_list *head)
{
	return head->next == head;
}

/* Whether el is on a list (it was added and not deleted since). */
static inline bool core_list_linked(const struct core_list *el)
{
	return el->next != NULL && el->next != el;
}

static inline void core_list_link(struct core_list *el, struct core_list *prev,
				  struct core_list *next)
{
	el->prev = prev;
	el->next = next;
	prev->next = el;
	next->prev = el;
}

/* Adds el at the front (a stack) or at the back (a queue). */
static inline void core_list_add(struct core_list *head, struct core_list *el)
{
	core_list_link(el, head, head->next);
}

static inline void core_list_add_tail(struct core_list *head, struct core_list *el)
{
	core_list_link(el, head->prev, head);
}

/* Unlinks el; safe to call again on an element already unlinked. */
static inline void core_list_del(struct core_list *el)
{
	if (el->next == NULL)
		return;
	el->prev->next = el->next;
	el->next->prev = el->prev;
	el->next = el->prev = NULL;
}

#define core_list_elem(ptr, type, member)	CORE_CONTAINER_OF(ptr, type, member)

#define core_list_first(head, type, member) \
	(core_list_empty(head) ? NULL : core_list_elem((head)->next, type, member))

/* Walks the list; the body may delete the current element (but not the
 * next one). */
#define core_list_each(it, tmp, head) \
	for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); \
	     (it) = (tmp), (tmp) = (it)->next)

#endif
