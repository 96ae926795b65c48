/* The links of an intrusive list (see list.h). */
#ifndef KEEL_CORE_LIST_T_H
#define KEEL_CORE_LIST_T_H

struct core_list {
	struct core_list *next, *prev;
};

#endif
