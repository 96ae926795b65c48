/* Allocation failures on demand, for tests; see fault.h. */
#include "fault.h"

#ifdef KEEL_FAULT
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static struct {
	bool		 parsed, on;
	char		 phase[32];
	unsigned long	 first;		/* N */
	bool		 walk;		/* N+: one further each arm */
	unsigned long	 arms;		/* arms so far */
	unsigned long	 count;		/* allocations since the arm */
	unsigned long	 target;	/* the one that fails */
	bool		 fired;
	pid_t		 pid;		/* who armed it: a forked child is left alone */
} fault;

static void fault_parse(void)
{
	const char *v = getenv("KEEL_ALLOC_FAIL"), *colon;
	char *end;

	fault.parsed = true;
	if (v == NULL || (colon = strchr(v, ':')) == NULL ||
	    (size_t)(colon - v) >= sizeof(fault.phase))
		return;
	memcpy(fault.phase, v, (size_t)(colon - v));
	fault.first = strtoul(colon + 1, &end, 10);
	fault.walk = *end == '+';
}

void core_fault_arm(const char *phase)
{
	if (!fault.parsed)
		fault_parse();
	if (fault.first == 0 || strcmp(phase, fault.phase) != 0 || fault.on)
		return;
	fault.target = fault.walk ? fault.first + fault.arms : fault.first;
	if (!fault.walk && fault.arms > 0)
		return;				/* PHASE:N fails once */
	fault.arms++;
	fault.count = 0;
	fault.fired = false;
	fault.pid = getpid();
	fault.on = true;
}

void core_fault_disarm(const char *phase)
{
	if (!fault.on || strcmp(phase, fault.phase) != 0 || getpid() != fault.pid)
		return;
	fault.on = false;
	if (fault.fired)
		fprintf(stderr, "fault: %s #%lu: allocation %lu failed\n", phase, fault.arms,
			fault.target);
	else
		fprintf(stderr, "fault: %s #%lu: done after %lu allocations (none failed)\n",
			phase, fault.arms, fault.count);
}

static bool fault_hit(void)
{
	if (!fault.on || fault.fired || getpid() != fault.pid)
		return false;
	if (++fault.count == fault.target) {
		fault.fired = true;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n)
{
	return fault_hit() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fault_hit() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fault_hit() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fault_hit() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fault_hit() ? NULL : __real_strndup(s, n);
}
#else
typedef int core_fault_unused;	/* ISO C wants something in a file */
#endif
