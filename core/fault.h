/* Fault injection for tests. In a build with KEEL_FAULT (make SAN=1 links
 * it with --wrap for malloc, calloc, realloc, strdup and strndup), the
 * environment variable KEEL_ALLOC_FAIL=PHASE:N makes the Nth allocation
 * after core_fault_arm(PHASE) fail; PHASE:N+ fails allocation N at the
 * first arm, N+1 at the second, and so on, so one process walks every
 * allocation of a phase that repeats (a reload, a request). Each arm ends
 * at core_fault_disarm(), and says on stderr what happened:
 *   "fault: PHASE #K: allocation K failed"
 *   "fault: PHASE #K: done after M allocations (none failed)"
 * Without KEEL_FAULT both calls compile to nothing. */
#ifndef KEEL_CORE_FAULT_H
#define KEEL_CORE_FAULT_H

#ifdef KEEL_FAULT
void core_fault_arm(const char *phase);
void core_fault_disarm(const char *phase);
#else
#define core_fault_arm(phase)		((void)0)
#define core_fault_disarm(phase)	((void)0)
#endif

#endif
