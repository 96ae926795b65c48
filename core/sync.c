/* One configuration for a cluster of gateways; see sync.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/base64.h>
#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "buf.h"
#include "clock.h"
#include "conf.h"
#include "core.h"
#include "event.h"
#include "kv.h"
#include "log.h"
#include "loop.h"
#include "module.h"
#include "settings.h"
#include "state.h"
#include "status.h"
#include "sync.h"

#define SYNC_POLL_MS	500
#define SYNC_PEERS	16
#define SYNC_MAX_TEXT	(8u << 20)	/* an opened entry, at most */
#define SYNC_NONCE	12
#define SYNC_TAG	16
#define SYNC_MAGIC	"keel-cluster 1\n"

enum peer_state {
	PEER_SAME = 0,		/* runs what this box runs */
	PEER_BEHIND,		/* runs an older text: it will take this one */
	PEER_AHEAD,		/* runs a newer text: this box takes it */
	PEER_DIVERGED,		/* changed apart from this box: a conflict */
	PEER_UNREADABLE,	/* not sealed with this cluster's key, or garbled */
};

static const char *const peer_state_name[] = {
	"same", "behind", "ahead", "diverged", "unreadable",
};

struct sync_peer {
	struct core_sync_entry e;
	char		*text;		/* the opened entry (e.yaml points into it) */
	uint64_t	 raw;		/* hash of the sealed value it was read from */
	uint64_t	 refused;	/* hash of a value that did not apply here */
	enum peer_state	 state;
	char		 why[200];	/* why unreadable, or why it did not apply */
	bool		 seen;		/* still in the table at this poll */
};

static struct {
	struct core_loop *loop;
	struct core_timer poll;
	bool		 on;
	bool		 adopting;	/* installing another gateway's text */
	bool		 conflict;	/* changed apart from another gateway */
	const struct core_sync_control *ctl;	/* main's: applies another's text */
	char		 cluster[64], node[64], state_dir[256];
	char		 prefix[80];	/* "conf.CLUSTER." */
	char		 name[160];	/* this box's entry */
	unsigned char	 key[32];
	struct core_sync_entry me;
	char		*yaml;		/* this box's shared text */
	char		*sealed;	/* this box's entry as last published */
	uint64_t	 reassert_at;	/* mono ms: a taken name is fought for slowly */
	struct sync_peer peers[SYNC_PEERS];
	unsigned	 npeers;
	unsigned long long adopted, published;
} sy;

/* ---- the entry -------------------------------------------------------------------------- */

static uint64_t fnv64(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static bool is_sha(const char *s)
{
	size_t i;

	for (i = 0; i < CORE_SYNC_SHA; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

static void sha_of(const char *text, char out[CORE_SYNC_SHA + 1])
{
	unsigned char d[32];
	int i;

	mbedtls_sha256((const unsigned char *)text, strlen(text), d, 0);
	for (i = 0; i < CORE_SYNC_SHA / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A value without line breaks, for one line of the header. */
static void one_line(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src != NULL && src[i] != '\0' && i + 1 < len; i++)
		dst[i] = src[i] == '\n' || src[i] == '\r' ? ' ' : src[i];
	dst[len ? i : 0] = '\0';
}

static int copy_field(char *dst, size_t len, const char *v, size_t n)
{
	if (n >= len)
		return CORE_ERROR;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return CORE_OK;
}

int core_sync_entry_parse(const char *text, struct core_sync_entry *e, char *err, size_t errlen)
{
	const char *p = text, *nl, *v;
	unsigned seen = 0;
	int line = 1;

	memset(e, 0, sizeof(*e));
	if (strncmp(p, SYNC_MAGIC, strlen(SYNC_MAGIC)) != 0) {
		snprintf(err, errlen, "not a keel cluster entry (version 1)");
		return CORE_ERROR;
	}
	for (p += strlen(SYNC_MAGIC); (line++, *p != '\n'); p = nl + 1) {
		size_t n;
		char *end;

		if ((nl = strchr(p, '\n')) == NULL) {
			snprintf(err, errlen, "line %d: the header does not end", line);
			return CORE_ERROR;
		}
		if ((v = memchr(p, ' ', (size_t)(nl - p))) == NULL) {
			snprintf(err, errlen, "line %d: no value", line);
			return CORE_ERROR;
		}
		n = (size_t)(nl - ++v);
#define KEY(k)	((size_t)(v - 1 - p) == strlen(k) && !memcmp(p, k, strlen(k)))
		if (KEY("node")) {
			if (n == 0 || copy_field(e->node, sizeof(e->node), v, n) != CORE_OK)
				goto bad;
			seen |= 1;
		} else if (KEY("origin")) {
			if (copy_field(e->origin, sizeof(e->origin), v, n) != CORE_OK)
				goto bad;
			seen |= 2;
		} else if (KEY("generation")) {
			errno = 0;
			e->gen = strtoull(v, &end, 10);
			if (end != nl || errno != 0 || *v < '0' || *v > '9')
				goto bad;
			seen |= 4;
		} else if (KEY("sha")) {
			if (copy_field(e->sha, sizeof(e->sha), v, n) != CORE_OK || !is_sha(e->sha))
				goto bad;
			seen |= 8;
		} else if (KEY("history")) {
			while (v < nl) {
				struct core_sync_ver *h = &e->hist[e->nhist];

				if (e->nhist == CORE_SYNC_HIST || *v < '0' || *v > '9')
					goto bad;
				errno = 0;
				h->gen = strtoull(v, &end, 10);
				if (errno != 0 || *end != ':' || nl - end - 1 < CORE_SYNC_SHA ||
				    copy_field(h->sha, sizeof(h->sha), end + 1, CORE_SYNC_SHA) != CORE_OK ||
				    !is_sha(h->sha))
					goto bad;
				e->nhist++;
				v = end + 1 + CORE_SYNC_SHA;
				if (v < nl && *v++ != ' ')
					goto bad;
			}
		} else if (KEY("author")) {
			if (copy_field(e->author, sizeof(e->author), v, n) != CORE_OK)
				goto bad;
		} else if (KEY("comment")) {
			if (copy_field(e->comment, sizeof(e->comment), v, n) != CORE_OK)
				goto bad;
		} else if (KEY("time")) {
			errno = 0;
			e->time = strtoll(v, &end, 10);
			if (end != nl || errno != 0 || n == 0)
				goto bad;
		} else {
			snprintf(err, errlen, "line %d: unknown field \"%.*s\"", line,
				 (int)(v - 1 - p < 32 ? v - 1 - p : 32), p);
			return CORE_ERROR;
		}
#undef KEY
	}
	if (seen != 15) {
		snprintf(err, errlen, "the header lacks %s", !(seen & 1) ? "node" :
			 !(seen & 2) ? "origin" : !(seen & 4) ? "generation" : "sha");
		return CORE_ERROR;
	}
	e->yaml = p + 1;
	return CORE_OK;
bad:
	snprintf(err, errlen, "line %d: a bad value", line);
	return CORE_ERROR;
}

static int entry_write(struct core_buf *b, const struct core_sync_entry *e, const char *yaml)
{
	unsigned i;
	int rc = CORE_OK;

	rc |= core_buf_printf(b, SYNC_MAGIC "node %s\norigin %s\ngeneration %llu\nsha %s\n",
			      e->node, e->origin, e->gen, e->sha);
	for (i = 0; i < e->nhist; i++)
		rc |= core_buf_printf(b, "%s%llu:%s", i ? " " : "history ", e->hist[i].gen,
				      e->hist[i].sha);
	rc |= core_buf_printf(b, "%sauthor %s\ncomment %s\ntime %lld\n\n", e->nhist ? "\n" : "",
			      e->author, e->comment, e->time);
	rc |= core_buf_append(b, yaml, strlen(yaml) + 1);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* "1." base64(nonce | ciphertext | tag). */
char *core_sync_seal(const unsigned char *key, const char *ad, const char *text,
		     char *err, size_t errlen)
{
	mbedtls_gcm_context g;
	size_t n = strlen(text), blen = SYNC_NONCE + n + SYNC_TAG, olen = 0;
	unsigned char *bin = malloc(blen);
	char *out = malloc(2 + (blen + 2) / 3 * 4 + 1);
	int rc;

	if (bin == NULL || out == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (getrandom(bin, SYNC_NONCE, 0) != SYNC_NONCE) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto fail;
	}
	mbedtls_gcm_init(&g);
	rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 256);
	if (rc == 0)
		rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, bin, SYNC_NONCE,
					       (const unsigned char *)ad, strlen(ad),
					       (const unsigned char *)text, bin + SYNC_NONCE,
					       SYNC_TAG, bin + SYNC_NONCE + n);
	mbedtls_gcm_free(&g);
	if (rc != 0) {
		snprintf(err, errlen, "AES-GCM: -0x%04x", (unsigned)-rc);
		goto fail;
	}
	memcpy(out, "1.", 2);
	if (mbedtls_base64_encode((unsigned char *)out + 2, (blen + 2) / 3 * 4 + 1, &olen, bin,
				  blen) != 0) {
		snprintf(err, errlen, "base64 did not fit");
		goto fail;
	}
	free(bin);
	return out;
fail:
	free(bin);
	free(out);
	return NULL;
}

char *core_sync_open(const unsigned char *key, const char *ad, const char *sealed,
		     char *err, size_t errlen)
{
	mbedtls_gcm_context g;
	size_t slen = strlen(sealed), blen = 0, n;
	unsigned char *bin = NULL;
	char *out = NULL;
	int rc;

	if (strncmp(sealed, "1.", 2) != 0) {
		snprintf(err, errlen, "not sealed by keel (version 1)");
		return NULL;
	}
	if (slen > SYNC_MAX_TEXT / 3 * 4) {
		snprintf(err, errlen, "larger than %u MiB", SYNC_MAX_TEXT >> 20);
		return NULL;
	}
	if ((bin = malloc(slen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (mbedtls_base64_decode(bin, slen, &blen, (const unsigned char *)sealed + 2,
				  slen - 2) != 0 || blen < SYNC_NONCE + SYNC_TAG) {
		snprintf(err, errlen, "garbled (not base64, or too short)");
		goto out;
	}
	n = blen - SYNC_NONCE - SYNC_TAG;
	if ((out = malloc(n + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	mbedtls_gcm_init(&g);
	rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 256);
	if (rc == 0)
		rc = mbedtls_gcm_auth_decrypt(&g, n, bin, SYNC_NONCE, (const unsigned char *)ad,
					      strlen(ad), bin + SYNC_NONCE + n, SYNC_TAG,
					      bin + SYNC_NONCE, (unsigned char *)out);
	mbedtls_gcm_free(&g);
	if (rc != 0 || memchr(out, '\0', n) != NULL) {
		snprintf(err, errlen, rc == MBEDTLS_ERR_GCM_AUTH_FAILED ?
			 "not sealed with this cluster's key (or altered)" : "does not open");
		mbedtls_platform_zeroize(out, n);
		free(out);
		out = NULL;
		goto out;
	}
	out[n] = '\0';
out:
	free(bin);
	return out;
}

/* ---- this box's entry ------------------------------------------------------------------- */

static void state_path(char *out, size_t len)
{
	snprintf(out, len, "%s/cluster-%s.state", sy.state_dir, sy.cluster);
}

/* Where this box stands survives restarts: its generation and history. */
static void state_save(void)
{
	struct core_buf b;
	char path[400], err[256];
	unsigned i;

	state_path(path, sizeof(path));
	core_buf_init(&b, 4096);
	core_buf_printf(&b, "generation %llu\nsha %s\n", sy.me.gen, sy.me.sha);
	for (i = 0; i < sy.me.nhist; i++)
		core_buf_printf(&b, "%s%llu:%s", i ? " " : "history ", sy.me.hist[i].gen,
				sy.me.hist[i].sha);
	core_buf_printf(&b, "%s", sy.me.nhist ? "\n" : "");
	if (core_state_write(path, core_buf_head(&b), core_buf_len(&b), 0600, err,
			     sizeof(err)) != CORE_OK)
		core_log_error("cluster", "%s: %s", path, err);
	core_buf_free(&b);
}

/* CORE_AGAIN: no state yet. */
static int state_load(void)
{
	struct core_sync_entry e;
	struct core_buf b;
	char path[400], err[200], buf[4096];
	FILE *f;
	size_t n;
	int rc;

	state_path(path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return CORE_AGAIN;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The same fields as an entry's header. */
	core_buf_init(&b, sizeof(buf) + 128);
	core_buf_printf(&b, SYNC_MAGIC "node x\norigin x\n%s\n", buf);
	core_buf_append(&b, "", 1);
	rc = core_sync_entry_parse(core_buf_head(&b), &e, err, sizeof(err));
	core_buf_free(&b);
	if (rc != CORE_OK) {
		core_log_warn("cluster", "%s: %s; starting as a new member", path, err);
		return CORE_AGAIN;
	}
	sy.me.gen = e.gen;
	memcpy(sy.me.sha, e.sha, sizeof(e.sha));
	memcpy(sy.me.hist, e.hist, sizeof(e.hist));
	sy.me.nhist = e.nhist;
	return CORE_OK;
}

static void publish(void)
{
	struct core_buf b;
	char err[200], *sealed;

	core_buf_init(&b, SYNC_MAX_TEXT);
	if (entry_write(&b, &sy.me, sy.yaml) != CORE_OK) {
		core_log_error("cluster", "this gateway's configuration is larger than %u MiB; "
			       "not shared", SYNC_MAX_TEXT >> 20);
		core_buf_free(&b);
		return;
	}
	sealed = core_sync_seal(sy.key, sy.name, core_buf_head(&b), err, sizeof(err));
	mbedtls_platform_zeroize(core_buf_head(&b), core_buf_len(&b));
	core_buf_free(&b);
	if (sealed == NULL) {
		core_log_error("cluster", "not shared: %s", err);
		return;
	}
	free(sy.sealed);
	sy.sealed = sealed;
	if (core_kv_set(sy.name, sealed, 0) != CORE_OK)
		core_log_error("cluster", "not shared: out of memory");
	sy.published++;
}

static void me_set_text(char *shared)
{
	if (sy.yaml != NULL) {
		mbedtls_platform_zeroize(sy.yaml, strlen(sy.yaml));
		free(sy.yaml);
	}
	sy.yaml = shared;
}

static void hist_push(struct core_sync_entry *e, unsigned long long gen, const char *sha)
{
	if (e->nhist == CORE_SYNC_HIST)
		e->nhist--;
	memmove(&e->hist[1], &e->hist[0], e->nhist * sizeof(e->hist[0]));
	e->hist[0].gen = gen;
	memcpy(e->hist[0].sha, sha, CORE_SYNC_SHA + 1);
	e->nhist++;
}

static bool in_hist(const struct core_sync_entry *e, unsigned long long gen, const char *sha)
{
	unsigned i;

	for (i = 0; i < e->nhist; i++)
		if (e->hist[i].gen == gen && !strcmp(e->hist[i].sha, sha))
			return true;
	return false;
}

static unsigned long long top_gen(void)
{
	unsigned long long g = sy.me.gen;
	unsigned i;

	for (i = 0; i < sy.npeers; i++)
		if (sy.peers[i].state != PEER_UNREADABLE && sy.peers[i].e.gen > g)
			g = sy.peers[i].e.gen;
	return g;
}

/* A new text of this box's own becomes the cluster's next generation. */
static void me_advance(char *shared, const char *sha, const char *author, const char *comment)
{
	hist_push(&sy.me, sy.me.gen, sy.me.sha);
	sy.me.gen = top_gen() + 1;
	memcpy(sy.me.sha, sha, sizeof(sy.me.sha));
	one_line(sy.me.author, sizeof(sy.me.author), author);
	one_line(sy.me.comment, sizeof(sy.me.comment), comment);
	sy.me.time = (long long)(core_clock_wall_ms() / 1000);
	me_set_text(shared);
	state_save();
	publish();
}

void core_sync_set_control(const struct core_sync_control *ctl)
{
	sy.ctl = ctl;
}

char *core_sync_capture(const struct core_conf *conf)
{
	struct core_buf b;
	char *s;

	if (!sy.on || sy.adopting)
		return NULL;
	core_buf_init(&b, SYNC_MAX_TEXT);
	if (core_conf_write_shared(&b, conf) != CORE_OK || core_buf_append(&b, "", 1) != CORE_OK) {
		core_buf_free(&b);
		return NULL;
	}
	s = strdup(core_buf_head(&b));
	mbedtls_platform_zeroize(core_buf_head(&b), core_buf_len(&b));
	core_buf_free(&b);
	return s;
}

void core_sync_local(char *shared, const char *author, const char *comment)
{
	char sha[CORE_SYNC_SHA + 1];

	if (shared == NULL)
		return;
	if (!sy.on) {
		free(shared);
		return;
	}
	sha_of(shared, sha);
	if (!strcmp(sha, sy.me.sha)) {		/* only this box's own settings */
		mbedtls_platform_zeroize(shared, strlen(shared));
		free(shared);
		return;
	}
	me_advance(shared, sha, author, comment);
	core_log_info("cluster", "generation %llu (%s) is this gateway's: shared with cluster %s",
		      sy.me.gen, sy.me.sha, sy.cluster);
}

/* ---- the others --------------------------------------------------------------------------- */

static struct sync_peer *peer_find(const char *node, bool make)
{
	unsigned i;

	for (i = 0; i < sy.npeers; i++)
		if (!strcmp(sy.peers[i].e.node, node))
			return &sy.peers[i];
	if (!make || sy.npeers == SYNC_PEERS)
		return NULL;
	memset(&sy.peers[sy.npeers], 0, sizeof(sy.peers[0]));
	snprintf(sy.peers[sy.npeers].e.node, sizeof(sy.peers[0].e.node), "%s", node);
	return &sy.peers[sy.npeers++];
}

/* Its conditions' subject: "node NAME". */
static const char *peer_subject(const struct sync_peer *p)
{
	static char subject[80];

	snprintf(subject, sizeof(subject), "node %s", p->e.node);
	return subject;
}

static void peer_forget_text(struct sync_peer *p)
{
	if (p->text != NULL) {
		mbedtls_platform_zeroize(p->text, strlen(p->text));
		free(p->text);
	}
	p->text = NULL;
	p->e.yaml = NULL;
}

/* A value in the table changed: open and read it again. */
static void peer_read(struct sync_peer *p, const char *key, const char *val)
{
	char err[160], node[64];
	char *text;

	p->raw = fnv64(val);
	snprintf(node, sizeof(node), "%s", p->e.node);
	peer_forget_text(p);
	text = core_sync_open(sy.key, key, val, err, sizeof(err));
	if (text == NULL || core_sync_entry_parse(text, &p->e, err, sizeof(err)) != CORE_OK ||
	    strcmp(p->e.node, node) != 0) {
		if (text != NULL && strcmp(p->e.node, node) != 0 && p->e.node[0] != '\0')
			snprintf(err, sizeof(err), "its entry names node \"%.63s\"", p->e.node);
		if (text != NULL)
			mbedtls_platform_zeroize(text, strlen(text));
		free(text);
		memset(&p->e, 0, sizeof(p->e));
		snprintf(p->e.node, sizeof(p->e.node), "%s", node);
		p->state = PEER_UNREADABLE;
		snprintf(p->why, sizeof(p->why), "%s", err);
		core_log_warn("cluster", "node %s: entry not taken: %s", node, err);
		core_event_raise("cluster", peer_subject(p), "its configuration cannot be read "
				 "here: %s", err);
		return;
	}
	p->text = text;
	p->why[0] = '\0';
	core_event_clear("cluster", peer_subject(p), "its configuration is readable again");
}

struct sync_scan {
	char	 *keys[SYNC_PEERS + 1];
	unsigned  n;
};

static void scan_one(const char *key, const char *val, void *arg)
{
	struct sync_scan *s = arg;

	(void)val;
	if (s->n < SYNC_PEERS + 1)
		s->keys[s->n++] = strdup(key);
}

/* The state of a readable peer against this box. */
static enum peer_state peer_judge(const struct sync_peer *p)
{
	if (!strcmp(p->e.sha, sy.me.sha))	/* the same text: the higher number wins */
		return p->e.gen == sy.me.gen ? PEER_SAME :
		       p->e.gen > sy.me.gen ? PEER_AHEAD : PEER_BEHIND;
	if (sy.me.gen == 0 && p->e.gen > 0)
		return PEER_AHEAD;		/* a new member takes what runs */
	if (in_hist(&p->e, sy.me.gen, sy.me.sha))
		return PEER_AHEAD;
	if (in_hist(&sy.me, p->e.gen, p->e.sha) || (p->e.gen == 0 && sy.me.gen > 0))
		return PEER_BEHIND;
	return PEER_DIVERGED;
}

/* Applies a peer's text here, with this box's own settings. */
static int adopt(struct sync_peer *p, char *err, size_t errlen)
{
	struct core_conf *c;
	struct core_buf b;
	char comment[300], author[80];
	int64_t rev;
	int rc;

	c = core_conf_load(&core_settings, "cluster", p->e.yaml, strlen(p->e.yaml));
	if (c == NULL || c->nerrors > 0) {
		snprintf(err, errlen, "it does not load: %s", c == NULL ? "out of memory" :
			 c->errors->msg);
		core_conf_free(c);
		return CORE_ERROR;
	}
	if (sy.ctl == NULL) {
		snprintf(err, errlen, "this program cannot apply a configuration");
		core_conf_free(c);
		return CORE_ERROR;
	}
	core_conf_keep_node(c, sy.ctl->conf());
	core_buf_init(&b, SYNC_MAX_TEXT);
	rc = core_conf_write(&b, c, false, true) | core_buf_append(&b, "", 1);
	core_conf_free(c);
	if (rc != CORE_OK) {
		snprintf(err, errlen, "out of memory");
		core_buf_free(&b);
		return CORE_ERROR;
	}
	/* Loaded once more, so that this box's own settings are checked
	 * together with the others' (a listener against admin.listen). */
	c = core_conf_load(&core_settings, "cluster", core_buf_head(&b), core_buf_len(&b) - 1);
	if (c == NULL || c->nerrors > 0) {
		snprintf(err, errlen, "with this gateway's own settings: %s",
			 c == NULL ? "out of memory" : c->errors->msg);
		core_conf_free(c);
		mbedtls_platform_zeroize(core_buf_head(&b), core_buf_len(&b));
		core_buf_free(&b);
		return CORE_ERROR;
	}
	snprintf(author, sizeof(author), "cluster:%s", p->e.node);
	snprintf(comment, sizeof(comment), "generation %llu from %.63s (%.63s: %.80s)", p->e.gen,
		 p->e.node, p->e.author, p->e.comment);
	sy.adopting = true;
	rc = sy.ctl->apply(c, core_buf_head(&b), author, comment, &rev, err, errlen);
	sy.adopting = false;
	mbedtls_platform_zeroize(core_buf_head(&b), core_buf_len(&b));
	core_buf_free(&b);
	if (rc != CORE_OK)
		return CORE_ERROR;
	sy.me.gen = p->e.gen;
	memcpy(sy.me.sha, p->e.sha, sizeof(sy.me.sha));
	memcpy(sy.me.hist, p->e.hist, sizeof(sy.me.hist));
	sy.me.nhist = p->e.nhist;
	memcpy(sy.me.author, p->e.author, sizeof(sy.me.author));
	memcpy(sy.me.comment, p->e.comment, sizeof(sy.me.comment));
	sy.me.time = p->e.time;
	me_set_text(strdup(p->e.yaml));
	if (sy.yaml == NULL)
		me_set_text(strdup(""));
	state_save();
	publish();
	sy.adopted++;
	core_log_info("cluster", "generation %llu (%s) from %s applied as revision %lld",
		      sy.me.gen, sy.me.sha, p->e.node, (long long)rev);
	return CORE_OK;
}

static void judge_all(void)
{
	struct sync_peer *best = NULL;
	char who[200] = "";
	unsigned i, ndiv = 0;
	size_t w = 0;

	for (i = 0; i < sy.npeers; i++) {
		struct sync_peer *p = &sy.peers[i];

		if (p->text == NULL)
			continue;
		p->state = peer_judge(p);
		if (p->state == PEER_AHEAD && p->raw != p->refused &&
		    (best == NULL || p->e.gen > best->e.gen))
			best = p;
		if (p->state == PEER_DIVERGED) {
			ndiv++;
			if (w < sizeof(who))
				w += (size_t)snprintf(who + w, sizeof(who) - w, "%s%s (generation %llu)",
						      w ? ", " : "", p->e.node, p->e.gen);
		}
	}
	if (best != NULL) {
		char err[256];

		if (adopt(best, err, sizeof(err)) != CORE_OK) {
			best->refused = best->raw;
			snprintf(best->why, sizeof(best->why), "did not apply here: %.170s", err);
			core_log_error("cluster", "generation %llu from %s not applied: %s",
				       best->e.gen, best->e.node, err);
			core_event_raise("cluster", peer_subject(best), "its generation %llu did not apply "
					 "here: %s", best->e.gen, err);
		} else {
			core_event_clear("cluster", peer_subject(best), "generation %llu applied",
					 best->e.gen);
			judge_all();	/* against the new text */
			return;
		}
	}
	if (ndiv > 0 && !sy.conflict)
		core_log_warn("cluster", "this gateway's generation %llu and %s were changed apart: "
			      "neither is applied until an admin keeps one", sy.me.gen, who);
	else if (ndiv == 0 && sy.conflict)
		core_log_info("cluster", "one configuration again (generation %llu)", sy.me.gen);
	sy.conflict = ndiv > 0;
	if (ndiv > 0)
		core_event_raise("cluster", "configuration", "this gateway's generation %llu and "
				 "%s were changed apart; keep one (POST /api/v1/cluster/resolve)",
				 sy.me.gen, who);
	else
		core_event_clear("cluster", "configuration", "one configuration again");
}

static void poll_tick(struct core_timer *t)
{
	struct sync_scan s = { .n = 0 };
	const char *mine;
	unsigned i;

	(void)t;
	/* This box's entry: another gateway's mirror may have written back an
	 * older copy it held, or another box may call itself by this name. */
	mine = core_kv_get(sy.name);
	if (mine != NULL && sy.sealed != NULL && strcmp(mine, sy.sealed) == 0)
		core_event_clear("cluster", "node name", "this gateway's entry is its own again");
	if (sy.sealed != NULL && (mine == NULL || strcmp(mine, sy.sealed) != 0) &&
	    core_clock_mono_ms() >= sy.reassert_at) {
		struct core_sync_entry e;
		char err[160], *text = mine ? core_sync_open(sy.key, sy.name, mine, err, sizeof(err))
					    : NULL;

		/* An older copy of this box's own entry (this process's, or the
		 * one before a restart) is not above it, or is the same text. */
		if (text != NULL && core_sync_entry_parse(text, &e, err, sizeof(err)) == CORE_OK &&
		    strcmp(e.origin, sy.me.origin) != 0 &&
		    (e.gen > sy.me.gen || (e.gen == sy.me.gen && strcmp(e.sha, sy.me.sha) != 0))) {
			core_event_raise("cluster", "node name", "another gateway of cluster %s "
					 "calls itself %s too", sy.cluster, sy.node);
			sy.reassert_at = core_clock_mono_ms() + 5000;
		}
		if (text != NULL) {
			mbedtls_platform_zeroize(text, strlen(text));
			free(text);
		}
		if (core_kv_set(sy.name, sy.sealed, 0) != CORE_OK)
			core_log_error("cluster", "not shared: out of memory");
	}

	core_kv_each(sy.prefix, scan_one, &s);
	for (i = 0; i < sy.npeers; i++)
		sy.peers[i].seen = false;
	for (i = 0; i < s.n; i++) {
		const char *node = s.keys[i] != NULL ? s.keys[i] + strlen(sy.prefix) : "";
		const char *val = s.keys[i] != NULL ? core_kv_get(s.keys[i]) : NULL;
		struct sync_peer *p;

		if (val == NULL || !strcmp(s.keys[i], sy.name) || strlen(node) >= sizeof(p->e.node) ||
		    (p = peer_find(node, true)) == NULL) {
			free(s.keys[i]);
			continue;
		}
		p->seen = true;
		if (p->raw != fnv64(val))
			peer_read(p, s.keys[i], val);
		free(s.keys[i]);
	}
	for (i = 0; i < sy.npeers;)
		if (!sy.peers[i].seen) {
			core_event_clear("cluster", peer_subject(&sy.peers[i]), "no longer in the cluster");
			peer_forget_text(&sy.peers[i]);
			sy.peers[i] = sy.peers[--sy.npeers];
		} else
			i++;
	judge_all();
	core_timer_start(&sy.poll, SYNC_POLL_MS);
}

int core_sync_resolve(const char *keep, const char *who, char *err, size_t errlen)
{
	struct sync_peer *p;
	unsigned i, n = 0;

	if (!sy.on) {
		snprintf(err, errlen, "this gateway is in no cluster");
		return CORE_ERROR;
	}
	if (!strcmp(keep, sy.node)) {
		/* This box's text wins: every diverged text goes into its history,
		 * so the others see that it replaces theirs. */
		for (i = 0; i < sy.npeers; i++)
			if (sy.peers[i].text != NULL && sy.peers[i].state == PEER_DIVERGED) {
				hist_push(&sy.me, sy.peers[i].e.gen, sy.peers[i].e.sha);
				n++;
			}
		if (n == 0) {
			snprintf(err, errlen, "no gateway is in conflict with this one");
			return CORE_ERROR;
		}
		hist_push(&sy.me, sy.me.gen, sy.me.sha);
		sy.me.gen = top_gen() + 1;
		snprintf(sy.me.author, sizeof(sy.me.author), "%s", who);
		snprintf(sy.me.comment, sizeof(sy.me.comment), "conflict resolved: %s kept", sy.node);
		sy.me.time = (long long)(core_clock_wall_ms() / 1000);
		state_save();
		publish();
		core_log_warn("cluster", "%s resolved the conflict: this gateway's configuration "
			      "(generation %llu) goes to the %u other%s", who, sy.me.gen, n,
			      n == 1 ? "" : "s");
		judge_all();
		return CORE_OK;
	}
	if ((p = peer_find(keep, false)) == NULL || p->text == NULL) {
		snprintf(err, errlen, "no readable gateway \"%s\" in cluster %s", keep, sy.cluster);
		return CORE_ERROR;
	}
	if (p->state == PEER_SAME) {
		snprintf(err, errlen, "%s already runs this gateway's configuration", keep);
		return CORE_ERROR;
	}
	if (adopt(p, err, errlen) != CORE_OK)
		return CORE_ERROR;
	core_log_warn("cluster", "%s resolved the conflict: %s's configuration (generation %llu) "
		      "applied here", who, keep, p->e.gen);
	judge_all();
	return CORE_OK;
}

/* ---- module ------------------------------------------------------------------------------ */

static void sync_off(void)
{
	unsigned i;

	core_timer_stop(&sy.poll);
	for (i = 0; i < sy.npeers; i++) {
		core_event_clear("cluster", peer_subject(&sy.peers[i]), "left the cluster");
		peer_forget_text(&sy.peers[i]);
	}
	sy.npeers = 0;
	core_event_clear("cluster", "configuration", "left the cluster");
	sy.conflict = false;
	core_event_clear("cluster", "node name", "left the cluster");
	me_set_text(NULL);
	free(sy.sealed);
	sy.sealed = NULL;
	mbedtls_platform_zeroize(sy.key, sizeof(sy.key));
	sy.on = false;
}

static void derive_key(const struct keel_cluster_conf *cc)
{
	struct core_buf b;

	core_buf_init(&b, 1024);
	core_buf_printf(&b, "keel cluster key 1");
	core_buf_append(&b, "", 1);
	core_buf_printf(&b, "%s", cc->name);
	core_buf_append(&b, "", 1);
	core_buf_printf(&b, "%s", cc->key);
	mbedtls_sha256((const unsigned char *)core_buf_head(&b), core_buf_len(&b), sy.key, 0);
	mbedtls_platform_zeroize(core_buf_head(&b), core_buf_len(&b));
	core_buf_free(&b);
}

static int sync_configure(const struct core_conf *conf)
{
	const struct keel_conf *k = core_settings_of(conf);
	char *shared, sha[CORE_SYNC_SHA + 1];
	unsigned char origin[8];
	int i;

	if (sy.on && !strcmp(sy.cluster, k->cluster.name) && !strcmp(sy.node, k->node)) {
		derive_key(&k->cluster);	/* the key may have changed */
		publish();
		return CORE_OK;
	}
	if (sy.on) {
		/* Renamed, or out of this cluster: its entry goes, or the others
		 * would keep a gateway that no longer is. (A stop keeps it.) */
		core_kv_del(sy.name);
		core_log_info("cluster", "%s left cluster %s", sy.node, sy.cluster);
		sync_off();
	}
	if (k->cluster.name[0] == '\0')
		return CORE_OK;
	snprintf(sy.cluster, sizeof(sy.cluster), "%s", k->cluster.name);
	snprintf(sy.node, sizeof(sy.node), "%s", k->node);
	snprintf(sy.state_dir, sizeof(sy.state_dir), "%s", k->state_dir);
	snprintf(sy.prefix, sizeof(sy.prefix), "conf.%s.", sy.cluster);
	snprintf(sy.name, sizeof(sy.name), "conf.%s.%s", sy.cluster, sy.node);
	derive_key(&k->cluster);
	memset(&sy.me, 0, sizeof(sy.me));
	snprintf(sy.me.node, sizeof(sy.me.node), "%s", sy.node);
	if (getrandom(origin, sizeof(origin), 0) != (ssize_t)sizeof(origin))
		memcpy(origin, &(uint64_t){ core_clock_wall_ms() }, sizeof(origin));
	for (i = 0; i < 8; i++)
		snprintf(sy.me.origin + 2 * i, 3, "%02x", origin[i]);
	sy.on = true;
	if ((shared = core_sync_capture(conf)) == NULL) {
		sy.on = false;
		core_log_error("cluster", "out of memory; not in cluster %s", sy.cluster);
		return CORE_ERROR;
	}
	sha_of(shared, sha);
	if (state_load() != CORE_OK) {
		sy.me.gen = 0;
		memcpy(sy.me.sha, sha, sizeof(sha));
		snprintf(sy.me.author, sizeof(sy.me.author), "keel");
		snprintf(sy.me.comment, sizeof(sy.me.comment), "joined");
		sy.me.time = (long long)(core_clock_wall_ms() / 1000);
		me_set_text(shared);
		state_save();
		publish();
		core_log_info("cluster", "joining cluster %s as %s (this gateway's configuration "
			      "is %s)", sy.cluster, sy.node, sha);
	} else if (strcmp(sha, sy.me.sha) != 0) {
		/* Changed while keel was not running (the file edited). */
		if (sy.me.gen == 0) {
			memcpy(sy.me.sha, sha, sizeof(sha));
			me_set_text(shared);
			state_save();
			publish();
		} else
			me_advance(shared, sha, "keel", "changed while keel was stopped");
		core_log_info("cluster", "cluster %s as %s: generation %llu (%s), changed here "
			      "since", sy.cluster, sy.node, sy.me.gen, sy.me.sha);
	} else {
		snprintf(sy.me.author, sizeof(sy.me.author), "keel");
		snprintf(sy.me.comment, sizeof(sy.me.comment), "restarted");
		sy.me.time = (long long)(core_clock_wall_ms() / 1000);
		me_set_text(shared);
		publish();
		core_log_info("cluster", "cluster %s as %s: generation %llu (%s)", sy.cluster,
			      sy.node, sy.me.gen, sy.me.sha);
	}
	core_timer_start(&sy.poll, SYNC_POLL_MS);
	return CORE_OK;
}

static int sync_start(struct core_loop *loop, const struct core_conf *conf, char *err,
		      size_t errlen)
{
	(void)err;
	(void)errlen;
	sy.loop = loop;
	core_timer_init(loop, &sy.poll, poll_tick, NULL);
	return sync_configure(conf);
}

static int sync_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (sy.adopting)
		return CORE_OK;		/* the cluster's own settings stay */
	return sync_configure(conf);
}

static void sync_stop(void)
{
	if (sy.on)
		sync_off();
}

static const struct core_module sync_module = {
	.name = "cluster",
	.order = 95,
	.start = sync_start,
	.reload = sync_reload,
	.stop = sync_stop,
};
CORE_MODULE(sync_module);

/* ---- status ------------------------------------------------------------------------------ */

static void entry_json(struct core_buf *b, const struct core_sync_entry *e)
{
	core_buf_printf(b, "\"generation\":%llu,\"revision\":\"%s\",\"author\":", e->gen, e->sha);
	core_json_str(b, e->author);
	core_buf_printf(b, ",\"comment\":");
	core_json_str(b, e->comment);
	core_buf_printf(b, ",\"time\":%lld", e->time);
}

static int sync_json(struct core_buf *b)
{
	unsigned i, ndiv = 0, nbehind = 0, nahead = 0;
	int rc = CORE_OK;

	if (!sy.on)
		return core_buf_printf(b, "null");
	for (i = 0; i < sy.npeers; i++) {
		ndiv += sy.peers[i].state == PEER_DIVERGED;
		nbehind += sy.peers[i].state == PEER_BEHIND;
		nahead += sy.peers[i].state == PEER_AHEAD;
	}
	rc |= core_buf_printf(b, "{\"name\":");
	rc |= core_json_str(b, sy.cluster);
	rc |= core_buf_printf(b, ",\"node\":");
	rc |= core_json_str(b, sy.node);
	/* A gateway behind this one is its own business: it catches up. */
	rc |= core_buf_printf(b, ",\"shared\":%s,\"state\":\"%s\",\"behind\":%u,",
			      core_kv_mirrored() ? "true" : "false",
			      ndiv ? "conflict" : nahead ? "behind" : sy.npeers ? "in sync" : "alone",
			      nbehind);
	entry_json(b, &sy.me);
	rc |= core_buf_printf(b, ",\"adopted\":%llu,\"peers\":[", sy.adopted);
	for (i = 0; i < sy.npeers; i++) {
		const struct sync_peer *p = &sy.peers[i];

		rc |= core_buf_printf(b, "%s{\"node\":", i ? "," : "");
		rc |= core_json_str(b, p->e.node);
		rc |= core_buf_printf(b, ",\"state\":\"%s\",", peer_state_name[p->state]);
		entry_json(b, &p->e);
		if (p->why[0] != '\0') {
			rc |= core_buf_printf(b, ",\"error\":");
			rc |= core_json_str(b, p->why);
		}
		rc |= core_buf_printf(b, "}");
	}
	rc |= core_buf_printf(b, "]}");
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static int sync_metrics(struct core_buf *b)
{
	unsigned i, ndiv = 0;

	if (!sy.on)
		return CORE_OK;
	for (i = 0; i < sy.npeers; i++)
		ndiv += sy.peers[i].state == PEER_DIVERGED;
	return core_buf_printf(b,
		"# HELP keel_cluster_generation Generation of the cluster configuration this gateway runs.\n"
		"# TYPE keel_cluster_generation gauge\nkeel_cluster_generation %llu\n"
		"# HELP keel_cluster_conflicts Gateways whose configuration was changed apart from this one.\n"
		"# TYPE keel_cluster_conflicts gauge\nkeel_cluster_conflicts %u\n"
		"# HELP keel_cluster_adopted_total Generations taken from other gateways.\n"
		"# TYPE keel_cluster_adopted_total counter\nkeel_cluster_adopted_total %llu\n",
		sy.me.gen, ndiv, sy.adopted);
}

static const struct core_status_provider sync_status = {
	.name = "cluster",
	.order = 95,
	.json = sync_json,
	.metrics = sync_metrics,
};
CORE_STATUS_PROVIDER(sync_status);
