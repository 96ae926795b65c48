/* Tests of core/sync.c: the sealed entries gateways of a cluster publish,
 * how a gateway judges another's, and the settings they share. */
#include <stdio.h>
#include <stdlib.h>

#include "runner.h"
#include "core/sync.c"

static const unsigned char key1[32] = { 1 }, key2[32] = { 2 };

TEST(a_sealed_entry_opens_only_with_its_key_and_under_its_name)
{
	char err[200], *s, *o;

	s = core_sync_seal(key1, "conf.shop.gw-a", "secret text", err, sizeof(err));
	CHECK(s != NULL);
	CHECK(strncmp(s, "1.", 2) == 0 && strstr(s, "secret") == NULL);
	o = core_sync_open(key1, "conf.shop.gw-a", s, err, sizeof(err));
	CHECK_STR(o, "secret text");
	free(o);
	CHECK(core_sync_open(key2, "conf.shop.gw-a", s, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not sealed with this cluster's key") != NULL);
	CHECK(core_sync_open(key1, "conf.shop.gw-b", s, err, sizeof(err)) == NULL);
	s[10] = s[10] == 'A' ? 'B' : 'A';		/* one byte altered */
	CHECK(core_sync_open(key1, "conf.shop.gw-a", s, err, sizeof(err)) == NULL);
	free(s);
	CHECK(core_sync_open(key1, "conf.shop.gw-a", "1.!!!!", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "garbled") != NULL);
	CHECK(core_sync_open(key1, "conf.shop.gw-a", "plain", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not sealed by keel") != NULL);
	/* Two seals of one text differ (a fresh nonce each). */
	s = core_sync_seal(key1, "n", "x", err, sizeof(err));
	o = core_sync_seal(key1, "n", "x", err, sizeof(err));
	CHECK(s != NULL && o != NULL && strcmp(s, o) != 0);
	free(s);
	free(o);
}

static const char entry[] =
	"keel-cluster 1\nnode gw-a\norigin 0011223344556677\ngeneration 3\n"
	"sha 0123456789abcdef\nhistory 2:fedcba9876543210 1:00000000ffffffff\n"
	"author admin\ncomment three servers\ntime 1796000000\n\nupstreams: {}\n";

TEST(an_entry_is_read_and_written_back_the_same)
{
	struct core_sync_entry e, e2;
	struct core_buf b;
	char err[200];

	CHECK_INT(core_sync_entry_parse(entry, &e, err, sizeof(err)), ==, CORE_OK);
	CHECK_STR(e.node, "gw-a");
	CHECK_INT(e.gen, ==, 3);
	CHECK_STR(e.sha, "0123456789abcdef");
	CHECK_INT(e.nhist, ==, 2);
	CHECK_INT(e.hist[1].gen, ==, 1);
	CHECK_STR(e.hist[1].sha, "00000000ffffffff");
	CHECK_STR(e.comment, "three servers");
	CHECK_STR(e.yaml, "upstreams: {}\n");
	core_buf_init(&b, 1 << 16);
	CHECK_INT(entry_write(&b, &e, e.yaml), ==, CORE_OK);
	CHECK_STR(core_buf_head(&b), entry);
	/* Without a history, too (a new member's). */
	e.nhist = 0;
	core_buf_free(&b);
	core_buf_init(&b, 1 << 16);
	CHECK_INT(entry_write(&b, &e, e.yaml), ==, CORE_OK);
	CHECK_INT(core_sync_entry_parse(core_buf_head(&b), &e2, err, sizeof(err)), ==, CORE_OK);
	CHECK_INT(e2.nhist, ==, 0);
	core_buf_free(&b);
}

TEST(a_bad_entry_is_refused_with_its_reason)
{
	static const struct { const char *text, *why; } bad[] = {
		{ "keel-cluster 2\n", "version 1" },
		{ "keel-cluster 1\nnode a\norigin x\ngeneration 1\n\n", "lacks sha" },
		{ "keel-cluster 1\nnode a\norigin x\nsha 0123456789abcdef\n\n", "lacks generation" },
		{ "keel-cluster 1\nnode a\norigin x\ngeneration -1\nsha 0123456789abcdef\n\n",
		  "line 4: a bad value" },
		{ "keel-cluster 1\nnode a\norigin x\ngeneration 1\nsha 0123456789ABCDEF\n\n",
		  "line 5: a bad value" },
		{ "keel-cluster 1\nnode a\norigin x\ngeneration 1\nsha 0123456789abcdef\n"
		  "history 1:0123456789abcde\n\n", "line 6: a bad value" },
		{ "keel-cluster 1\nnode a\nowner x\n\n", "unknown field \"owner\"" },
		{ "keel-cluster 1\nnode a\norigin x", "the header does not end" },
		{ "keel-cluster 1\nnode\n\n", "no value" },
	};
	struct core_sync_entry e;
	struct core_buf b;
	char err[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(core_sync_entry_parse(bad[i].text, &e, err, sizeof(err)), ==, CORE_ERROR);
		if (strstr(err, bad[i].why) == NULL)
			test_fail(__FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, err,
				  bad[i].why);
	}
	/* At most CORE_SYNC_HIST earlier generations. */
	core_buf_init(&b, 1 << 16);
	core_buf_printf(&b, "keel-cluster 1\nnode a\norigin x\ngeneration 99\n"
			"sha 0123456789abcdef\nhistory");
	for (i = 0; i <= CORE_SYNC_HIST; i++)
		core_buf_printf(&b, " %zu:0123456789abcdef", i);
	core_buf_printf(&b, "\n\n");
	core_buf_append(&b, "", 1);
	CHECK_INT(core_sync_entry_parse(core_buf_head(&b), &e, err, sizeof(err)), ==, CORE_ERROR);
	core_buf_free(&b);
}

static struct sync_peer peer(unsigned long long gen, const char *sha)
{
	struct sync_peer p;

	memset(&p, 0, sizeof(p));
	p.e.gen = gen;
	snprintf(p.e.sha, sizeof(p.e.sha), "%s", sha);
	return p;
}

#define X "000000000000000a"
#define Y "000000000000000b"
#define Z "000000000000000c"

TEST(a_gateway_takes_what_replaced_its_own_and_never_what_was_changed_apart)
{
	struct sync_peer p;

	memset(&sy.me, 0, sizeof(sy.me));
	/* This box: generation 2 (X), which replaced 1 (Y) and 0 (X). */
	sy.me.gen = 2;
	memcpy(sy.me.sha, X, sizeof(X));
	hist_push(&sy.me, 0, X);
	hist_push(&sy.me, 1, Y);
	/* The other still runs 1 (Y), which replaced 0 (X): it is behind,
	 * though this box's text is in its history (the text came back). */
	p = peer(1, Y);
	hist_push(&p.e, 0, X);
	CHECK_INT(peer_judge(&p), ==, PEER_BEHIND);
	/* Generation 3 (Z) replaced this box's 2: it is ahead. */
	p = peer(3, Z);
	hist_push(&p.e, 2, X);
	CHECK_INT(peer_judge(&p), ==, PEER_AHEAD);
	/* Generation 2 (Z) on its own: changed apart. */
	p = peer(2, Z);
	hist_push(&p.e, 1, Y);
	CHECK_INT(peer_judge(&p), ==, PEER_DIVERGED);
	/* So is a later one that never saw this box's generation 2. */
	p = peer(5, Z);
	hist_push(&p.e, 1, Y);
	CHECK_INT(peer_judge(&p), ==, PEER_DIVERGED);
	CHECK_INT(peer_judge(&(struct sync_peer){ .e = sy.me }), ==, PEER_SAME);
	/* A new member (generation 0) is behind; as the new member, this
	 * box takes what runs. */
	CHECK_INT(peer_judge(&(struct sync_peer){ .e = { .gen = 0, .sha = Z } }), ==, PEER_BEHIND);
	sy.me.gen = 0;
	CHECK_INT(peer_judge(&(struct sync_peer){ .e = { .gen = 4, .sha = Z } }), ==, PEER_AHEAD);
	CHECK_INT(peer_judge(&(struct sync_peer){ .e = { .gen = 0, .sha = Z } }), ==, PEER_DIVERGED);
}

TEST(what_gateways_share_leaves_out_each_boxs_own_settings)
{
	static const char a[] =
		"node: gw-a\nlisteners: [ { address: \"10.0.0.1:80\" } ]\n"
		"admin: { listen: [\"10.0.0.1:8443\"] }\n"
		"ha: { priority: 200 }\ncluster: { name: shop, key: \"0123456789abcdef\" }\n"
		"upstreams: { u: { servers: [ { address: \"10.0.1.1:8080\" } ] } }\n"
		"routes: [ { path: /, upstream: u } ]\n"
		"proxy: { cookie_key: \"pw-of-cookie-key\" }\n";
	static const char b[] =
		"node: gw-b\nlisteners: [ { address: \"10.0.0.2:80\" } ]\n"
		"admin: { listen: [\"10.0.0.2:8443\"] }\n"
		"ha: { priority: 100 }\ncluster: { name: shop, key: \"0123456789abcdef\" }\n";
	struct core_conf *ca = core_conf_load(&core_settings, "a", a, strlen(a));
	struct core_conf *cb = core_conf_load(&core_settings, "b", b, strlen(b));
	const struct keel_conf *k;
	struct core_buf out;

	CHECK(ca != NULL && ca->nerrors == 0 && cb != NULL && cb->nerrors == 0);
	core_buf_init(&out, 1 << 16);
	CHECK_INT(core_conf_write_shared(&out, ca), ==, CORE_OK);
	core_buf_append(&out, "", 1);
	CHECK(strstr(core_buf_head(&out), "10.0.1.1:8080") != NULL);
	CHECK(strstr(core_buf_head(&out), "pw-of-cookie-key") != NULL);	/* sealed, so sent */
	CHECK(strstr(core_buf_head(&out), "gw-a") == NULL);
	CHECK(strstr(core_buf_head(&out), "10.0.0.1") == NULL);
	CHECK(strstr(core_buf_head(&out), "priority") == NULL);
	CHECK(strstr(core_buf_head(&out), "cluster") == NULL);
	/* b takes a's configuration with its own settings back. */
	CHECK_INT(core_conf_keep_node(ca, cb), >=, 4);
	k = core_settings_of(ca);
	CHECK_STR(k->node, "gw-b");
	CHECK_STR(((const struct keel_listener_conf *)k->listeners.v)[0].address.text,
		  "10.0.0.2:80");
	CHECK_STR(((const struct core_conf_addr *)k->admin.listen.v)[0].text, "10.0.0.2:8443");
	CHECK_INT(k->ha.priority, ==, 100);
	CHECK_INT(k->upstreams.n, ==, 1);
	CHECK_INT(core_conf_keep_node(ca, cb), ==, 0);
	core_buf_free(&out);
	core_conf_free(ca);
	core_conf_free(cb);
}
