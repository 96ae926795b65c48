/* A small unit test runner: each TEST runs in a forked child with a
 * timeout; a failed CHECK ends that child with a message. */
#ifndef KEEL_TESTS_RUNNER_H
#define KEEL_TESTS_RUNNER_H

#include <string.h>

void test_register(const char *name, void (*fn)(void), const char *file);
void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)							\
	static void test_##name(void);					\
	__attribute__((constructor)) static void test_reg_##name(void)	\
	{ test_register(#name, test_##name, __FILE__); }		\
	static void test_##name(void)

#define CHECK(cond) do {						\
	if (!(cond))							\
		test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);	\
} while (0)

#define CHECK_INT(a, op, b) do {					\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	if (!(a_ op b_))						\
		test_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld",	\
			  #a, #op, #b, a_, b_);				\
} while (0)

#define CHECK_STR(a, b) do {						\
	const char *a_ = (a), *b_ = (b);				\
	if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)		\
		test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", \
			  #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
} while (0)

#endif
