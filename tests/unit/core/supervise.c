/* Tests of core/supervise.c: the restart arithmetic (backoff, jitter,
 * the window that fails a part), exit reasons and the JSON of a part. */
#include <signal.h>
#include <sys/wait.h>

#include "runner.h"
#include "core/supervise.c"

static const struct core_part_policy pol = {
	.progress = 5000, .backoff_min = 100, .backoff_max = 1000,
	.restarts = 5, .window = 60000,
};

/* A wait status as waitpid gives it. */
static int killed_by(int sig)
{
	return sig & 0x7f;
}

static int exited_with(int code)
{
	return (code & 0xff) << 8;
}

/* Starts p at now and has it die at once; returns its delay. */
static uint64_t crash(struct core_part *p, uint64_t now)
{
	core_part_started(p, 4242, now);
	CHECK(core_part_down(p, killed_by(SIGSEGV), NULL, now, &pol));
	CHECK_INT(p->state, ==, CORE_PART_WAITING);
	return p->next - now;
}

TEST(the_delay_doubles_in_its_upper_half_up_to_the_cap)
{
	static const uint64_t lo[] = { 50, 100, 200, 400, 500 };
	struct core_part_policy many = pol;
	struct core_part p;
	uint64_t now = 1000000, d;
	int round, i;

	many.restarts = 64;
	for (round = 0; round < 20; round++) {	/* the jitter differs each time */
		core_part_init(&p, "worker 1");
		for (i = 0; i < 8; i++) {
			core_part_started(&p, 1, now);
			CHECK(core_part_down(&p, killed_by(SIGKILL), NULL, now, &many));
			d = p.next - now;
			CHECK_INT(d, >=, lo[i < 4 ? i : 4]);
			CHECK_INT(d, <=, 2 * lo[i < 4 ? i : 4]);
			now = p.next;
		}
	}
	CHECK_INT(p.restarts, ==, 8);
}

TEST(a_part_that_ran_longer_than_the_cap_starts_over_at_the_shortest_delay)
{
	struct core_part p;
	uint64_t now = 5000000;

	core_part_init(&p, "master");
	crash(&p, now);
	crash(&p, now += 300);
	CHECK_INT(crash(&p, now += 500), >=, 200);	/* third in a row */
	core_part_started(&p, 7, now += 1000);
	CHECK(core_part_down(&p, exited_with(3), NULL, now + 1000, &pol));
	CHECK_INT(p.next - (now + 1000), <=, 100);	/* it ran 1 s: a fresh start */
	CHECK_STR(p.exit, "exited with status 3");
}

TEST(restarts_within_the_window_fail_the_part_and_old_ones_do_not_count)
{
	struct core_part p;
	uint64_t now = 10000000;
	int i;

	core_part_init(&p, "worker 2");
	for (i = 0; i < 5; i++)
		crash(&p, now += 100);
	/* Five restarts within a minute: the sixth exit fails it. */
	core_part_started(&p, 99, now += 100);
	CHECK(!core_part_down(&p, killed_by(SIGKILL), NULL, now, &pol));
	CHECK_INT(p.state, ==, CORE_PART_FAILED);
	CHECK(core_event_is_raised("supervise", "process worker 2"));
	CHECK(core_sup_escalated() == NULL);		/* escalation: degraded */

	/* Revived, it starts at once with a clean slate... */
	core_part_revive(&p, now);
	CHECK_INT(p.state, ==, CORE_PART_WAITING);
	CHECK_INT(p.next, ==, now);
	CHECK(!core_event_is_raised("supervise", "process worker 2"));
	/* ...and restarts spread wider than the window never fail it. */
	for (i = 0; i < 30; i++)
		crash(&p, now += 20000);
	CHECK_INT(p.state, ==, CORE_PART_WAITING);
	core_event_reset();
}

TEST(a_failed_part_with_reboot_escalation_is_what_the_watchdog_sees)
{
	struct core_part_policy reboot = pol;
	struct core_part p;
	uint64_t now = 20000000;

	reboot.restarts = 1;
	reboot.reboot = true;
	core_part_init(&p, "worker 3");
	core_part_started(&p, 5, now);
	CHECK(core_part_down(&p, killed_by(SIGKILL), NULL, now, &reboot));
	core_part_started(&p, 6, now + 200);
	CHECK(!core_part_down(&p, killed_by(SIGABRT), NULL, now + 200, &reboot));
	CHECK(core_sup_escalated() != NULL);
	CHECK(strstr(core_sup_escalated(), "worker 3 failed") != NULL);
	core_sup_escalate(NULL);
	CHECK(core_sup_escalated() == NULL);
	core_event_reset();
}

TEST(exit_reasons_name_the_signal_the_status_the_stall_or_the_cause)
{
	struct core_part p;

	core_part_init(&p, "worker 1");
	crash(&p, 1);
	CHECK_STR(p.exit, "killed by signal 11 (Segmentation fault)");
	core_part_started(&p, 3, 100000);
	core_part_stall(&p, 5300);
	CHECK(core_part_down(&p, killed_by(SIGKILL), NULL, 100000, &pol));
	CHECK_STR(p.exit, "no progress for 5 s");
	CHECK_INT(p.stalled, ==, 0);
	CHECK(core_part_down(&p, 0, "cannot be started: fork: Out of memory", 200000, &pol));
	CHECK_STR(p.exit, "cannot be started: fork: Out of memory");
}

TEST(a_part_in_json_and_metrics)
{
	struct core_part p;
	struct core_buf b;

	core_part_init(&p, "worker \"1\"");
	core_part_started(&p, 321, 1000);
	core_buf_init(&b, 4096);
	CHECK_INT(core_part_json(&b, &p, 3500), ==, CORE_OK);
	core_buf_append(&b, "", 1);
	CHECK_STR(core_buf_head(&b), "{\"name\":\"worker \\\"1\\\"\",\"state\":\"running\",\"pid\":321,"
		  "\"uptime_s\":2.5,\"restarts\":0,\"next_start_ms\":0,\"last_exit\":null}");
	core_buf_free(&b);
}
