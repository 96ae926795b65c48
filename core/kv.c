/* The shared key-value table; see kv.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "core.h"
#include "kv.h"

#define KV_BUCKETS	256

struct kv_entry {
	struct kv_entry	*next;
	uint64_t	 expires;	/* wall ms; 0: never */
	char		*val;
	char		 key[];
};

static struct {
	struct kv_entry		*b[KV_BUCKETS];
	unsigned		 n;
	const struct core_kv_mirror *mirror;
} kv;

static unsigned kv_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % KV_BUCKETS;
}

static bool kv_expired(const struct kv_entry *e, uint64_t now)
{
	return e->expires != 0 && e->expires <= now;
}

static struct kv_entry **kv_slot(const char *key)
{
	struct kv_entry **pp = &kv.b[kv_hash(key)];

	while (*pp != NULL && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void kv_unlink(struct kv_entry **pp)
{
	struct kv_entry *e = *pp;

	*pp = e->next;
	free(e->val);
	free(e);
	kv.n--;
}

/* Makes room: the expired go first, then the one expiring soonest. */
static void kv_evict(void)
{
	uint64_t now = core_clock_wall_ms();
	struct kv_entry **victim = NULL;
	unsigned i;

	for (i = 0; i < KV_BUCKETS; i++) {
		struct kv_entry **pp = &kv.b[i];

		while (*pp != NULL) {
			if (kv_expired(*pp, now)) {
				kv_unlink(pp);
				continue;
			}
			if (victim == NULL || ((*pp)->expires != 0 &&
					       ((*victim)->expires == 0 ||
						(*pp)->expires < (*victim)->expires)))
				victim = pp;
			pp = &(*pp)->next;
		}
	}
	if (kv.n >= CORE_KV_MAX && victim != NULL)
		kv_unlink(victim);
}

int core_kv_store(const char *key, const char *val, uint64_t expires)
{
	struct kv_entry **pp = kv_slot(key), *e = *pp;
	char *v = strdup(val);

	if (v == NULL)
		return CORE_ERROR;
	if (e == NULL) {
		if (kv.n >= CORE_KV_MAX) {
			kv_evict();
			pp = kv_slot(key);
		}
		if ((e = calloc(1, sizeof(*e) + strlen(key) + 1)) == NULL) {
			free(v);
			return CORE_ERROR;
		}
		strcpy(e->key, key);
		e->next = *pp;
		*pp = e;
		kv.n++;
	} else
		free(e->val);
	e->val = v;
	e->expires = expires;
	return CORE_OK;
}

void core_kv_forget(const char *key)
{
	struct kv_entry **pp = kv_slot(key);

	if (*pp != NULL)
		kv_unlink(pp);
}

int core_kv_set(const char *key, const char *val, uint64_t ttl_ms)
{
	uint64_t expires = ttl_ms ? core_clock_wall_ms() + ttl_ms : 0;

	if (core_kv_store(key, val, expires) != CORE_OK)
		return CORE_ERROR;
	if (kv.mirror != NULL)
		kv.mirror->set(key, val, expires, kv.mirror->arg);
	return CORE_OK;
}

const char *core_kv_get(const char *key)
{
	struct kv_entry **pp = kv_slot(key);

	if (*pp == NULL)
		return NULL;
	if (kv_expired(*pp, core_clock_wall_ms())) {
		kv_unlink(pp);
		return NULL;
	}
	return (*pp)->val;
}

void core_kv_del(const char *key)
{
	core_kv_forget(key);
	if (kv.mirror != NULL)
		kv.mirror->del(key, kv.mirror->arg);
}

void core_kv_each(const char *prefix, void (*fn)(const char *key, const char *val, void *arg),
		  void *arg)
{
	uint64_t now = core_clock_wall_ms();
	size_t n = strlen(prefix);
	unsigned i;

	for (i = 0; i < KV_BUCKETS; i++) {
		struct kv_entry *e, *next;

		for (e = kv.b[i]; e != NULL; e = next) {
			next = e->next;		/* fn may delete e */
			if (!kv_expired(e, now) && !strncmp(e->key, prefix, n))
				fn(e->key, e->val, arg);
		}
	}
}

void core_kv_each_entry(void (*fn)(const char *key, const char *val, uint64_t expires,
				   void *arg), void *arg)
{
	uint64_t now = core_clock_wall_ms();
	unsigned i;

	for (i = 0; i < KV_BUCKETS; i++) {
		struct kv_entry *e;

		for (e = kv.b[i]; e != NULL; e = e->next)
			if (!kv_expired(e, now))
				fn(e->key, e->val, e->expires, arg);
	}
}

unsigned core_kv_count(void)
{
	return kv.n;
}

void core_kv_clear(void)
{
	unsigned i;

	for (i = 0; i < KV_BUCKETS; i++)
		while (kv.b[i] != NULL)
			kv_unlink(&kv.b[i]);
}

void core_kv_mirror_set(const struct core_kv_mirror *m)
{
	kv.mirror = m;
}

bool core_kv_mirrored(void)
{
	return kv.mirror != NULL && kv.mirror->up != NULL && kv.mirror->up(kv.mirror->arg);
}
