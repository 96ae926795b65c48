/* Tests of core/event.c (raised conditions and their sinks), core/list.h
 * and core/kv.c (the shared table and its mirror). */
#include <stdlib.h>

#include "runner.h"
#include "core/event.c"
#include "core/kv.h"

struct seen {
	int	raised, cleared;
	char	last[160];
	char	reason[240];
};

static void on_event(const struct core_event *e, void *arg)
{
	struct seen *s = arg;

	if (e->raised)
		s->raised++;
	else
		s->cleared++;
	snprintf(s->last, sizeof(s->last), "%s", e->subject);
	snprintf(s->reason, sizeof(s->reason), "%s", e->reason);
}

TEST(a_condition_is_told_once_when_raised_and_once_when_cleared)
{
	struct seen s = { 0 };
	struct core_event_sink sink = { .name = "t", .notify = on_event, .arg = &s };

	core_event_reset();
	core_event_sink_add(&sink);
	CHECK(core_event_raise("proxy", "server u/a", "refused %d", 1) == CORE_OK);
	CHECK(core_event_raise("proxy", "server u/a", "refused %d", 2) == CORE_OK);
	CHECK_INT(s.raised, ==, 1);			/* still raised: no news */
	CHECK(core_event_is_raised("proxy", "server u/a"));
	CHECK(core_event_clear("proxy", "server u/b", "UP") == CORE_OK);
	CHECK_INT(s.cleared, ==, 0);			/* never raised */
	CHECK(core_event_clear("proxy", "server u/a", "UP") == CORE_OK);
	CHECK_INT(s.cleared, ==, 1);
	CHECK_STR(s.reason, "UP");
	CHECK(!core_event_is_raised("proxy", "server u/a"));
	core_event_sink_del(&sink);
	CHECK(core_event_raise("redis", "redis master", "lost") == CORE_OK);
	CHECK_INT(s.raised, ==, 1);			/* removed: not told */
}

TEST(a_sink_added_late_hears_what_is_still_raised)
{
	struct seen s = { 0 };
	struct core_event_sink sink = { .name = "t", .notify = on_event, .arg = &s };

	core_event_reset();
	core_event_raise("redis", "redis master", "lost: %s", "timeout");
	core_event_raise("proxy", "server u/a", "x");
	core_event_clear("proxy", "server u/a", "UP");
	core_event_sink_add(&sink);
	CHECK_INT(s.raised, ==, 1);
	CHECK_STR(s.last, "redis master");
	CHECK_STR(s.reason, "lost: timeout");
}

TEST(raised_conditions_are_bounded)
{
	char subj[32];
	unsigned i;

	core_event_reset();
	for (i = 0; i < CORE_EVENT_MAX; i++) {
		snprintf(subj, sizeof(subj), "s%u", i);
		CHECK(core_event_raise("t", subj, "r") == CORE_OK);
	}
	CHECK(core_event_raise("t", "one more", "r") == CORE_ERROR);
	CHECK(core_event_clear("t", "s0", "ok") == CORE_OK);
	CHECK(core_event_raise("t", "one more", "r") == CORE_OK);
}

static int tested;

static int on_test(const char *who, char *err, size_t errlen, void *arg)
{
	(void)err;
	(void)errlen;
	(void)arg;
	tested += who != NULL;
	return CORE_OK;
}

TEST(a_test_notification_needs_a_sink_that_can_send)
{
	char err[128];
	struct core_event_sink sink = { .name = "t", .notify = on_event, .test = on_test };
	struct seen s = { 0 };

	sink.arg = &s;
	core_event_reset();
	CHECK(core_event_test("admin", err, sizeof(err)) == CORE_ERROR);
	CHECK(strstr(err, "no alert channel") != NULL);
	core_event_sink_add(&sink);
	CHECK(core_event_test("admin", err, sizeof(err)) == CORE_OK);
	CHECK_INT(tested, ==, 1);
}

/* ---- core/list.h ---- */

struct item {
	int		 v;
	struct core_list link;
};

TEST(list_adds_walks_and_deletes_while_walking)
{
	CORE_LIST_HEAD(head);
	struct item it[4] = { { .v = 0 }, { .v = 1 }, { .v = 2 }, { .v = 3 } };
	struct core_list *p, *tmp;
	int sum = 0, n = 0;

	CHECK(core_list_empty(&head));
	core_list_add_tail(&head, &it[1].link);
	core_list_add_tail(&head, &it[2].link);
	core_list_add(&head, &it[0].link);
	core_list_add_tail(&head, &it[3].link);
	CHECK(core_list_first(&head, struct item, link) == &it[0]);
	core_list_each(p, tmp, &head) {
		struct item *x = core_list_elem(p, struct item, link);

		CHECK_INT(x->v, ==, n++);
		if (x->v % 2 == 1)
			core_list_del(p);
	}
	core_list_del(&it[1].link);		/* again: nothing */
	CHECK(!core_list_linked(&it[1].link));
	CHECK(core_list_linked(&it[2].link));
	core_list_each(p, tmp, &head)
		sum += core_list_elem(p, struct item, link)->v;
	CHECK_INT(sum, ==, 2);
}

/* ---- core/kv.c ---- */

static int mirror_sets, mirror_dels;

static void m_set(const char *k, const char *v, uint64_t exp, void *arg)
{
	(void)k;
	(void)v;
	(void)exp;
	(void)arg;
	mirror_sets++;
}

static void m_del(const char *k, void *arg)
{
	(void)k;
	(void)arg;
	mirror_dels++;
}

TEST(kv_writes_reach_the_mirror_and_what_it_reads_does_not_echo)
{
	struct core_kv_mirror m = { .set = m_set, .del = m_del };

	core_kv_clear();
	core_kv_mirror_set(&m);
	CHECK(core_kv_set("session:a", "1", 0) == CORE_OK);
	CHECK_STR(core_kv_get("session:a"), "1");
	CHECK_INT(mirror_sets, ==, 1);
	CHECK(core_kv_store("session:b", "2", 0) == CORE_OK);	/* from the mirror */
	CHECK_INT(mirror_sets, ==, 1);
	CHECK_STR(core_kv_get("session:b"), "2");
	core_kv_del("session:a");
	CHECK_INT(mirror_dels, ==, 1);
	CHECK(core_kv_get("session:a") == NULL);
	CHECK(core_kv_store("gone", "x", 1) == CORE_OK);	/* expired long ago */
	CHECK(core_kv_get("gone") == NULL);
	core_kv_mirror_set(NULL);
	core_kv_clear();
	CHECK_INT(core_kv_count(), ==, 0);
}
