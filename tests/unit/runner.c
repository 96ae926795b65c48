/* The unit test runner: each test in its own forked child, killed by
 * SIGALRM after a timeout; the last line is "N passed, N failed".
 * KEEL_TEST_TIMEOUT (seconds, default 10) stretches it for qemu and ASan;
 * an argument runs only the tests whose name contains it. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"

#define MAX_TESTS	512

static struct {
	const char	*name;
	const char	*file;
	void		(*fn)(void);
} tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, void (*fn)(void), const char *file)
{
	if (ntests == MAX_TESTS) {
		fprintf(stderr, "runner: more than %d tests\n", MAX_TESTS);
		exit(2);
	}
	tests[ntests].name = name;
	tests[ntests].file = file;
	tests[ntests].fn = fn;
	ntests++;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	_exit(1);
}

static int run_one(int i, unsigned timeout)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == -1) {
		perror("fork");
		return 0;
	}
	if (pid == 0) {
		alarm(timeout);
		tests[i].fn();
		/* exit(), not _exit(): LeakSanitizer checks at exit. */
		exit(0);
	}
	while (waitpid(pid, &status, 0) == -1)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok   %s\n", tests[i].name);
		return 1;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		printf("FAIL %s (%s): timed out after %u s\n", tests[i].name,
		       tests[i].file, timeout);
	else if (WIFSIGNALED(status))
		printf("FAIL %s (%s): killed by signal %d\n", tests[i].name,
		       tests[i].file, WTERMSIG(status));
	else
		printf("FAIL %s (%s)\n", tests[i].name, tests[i].file);
	return 0;
}

int main(int argc, char **argv)
{
	const char *env = getenv("KEEL_TEST_TIMEOUT");
	unsigned timeout = env ? (unsigned)atoi(env) : 10;
	int i, passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < ntests; i++) {
		if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL)
			continue;
		if (run_one(i, timeout ? timeout : 10))
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
