/* The status-provider registry; see status.h. */
#include <string.h>

#include "core.h"
#include "status.h"

extern const struct core_status_provider *const __start_keel_status[] __attribute__((weak));
extern const struct core_status_provider *const __stop_keel_status[] __attribute__((weak));

/* The providers by order, then name (the section's order is the link's). */
static unsigned status_sorted(const struct core_status_provider **out, unsigned max)
{
	const struct core_status_provider *const *p;
	unsigned n = 0, i, j;

	for (p = __start_keel_status; p != NULL && p < __stop_keel_status && n < max; p++) {
		for (i = 0; i < n; i++)
			if ((*p)->order < out[i]->order ||
			    ((*p)->order == out[i]->order && strcmp((*p)->name, out[i]->name) < 0))
				break;
		for (j = n; j > i; j--)
			out[j] = out[j - 1];
		out[i] = *p;
		n++;
	}
	return n;
}

int core_status_json(struct core_buf *out)
{
	const struct core_status_provider *p[32];
	unsigned i, n = status_sorted(p, CORE_ARRAY_SIZE(p));
	int rc = CORE_OK;

	for (i = 0; i < n; i++) {
		if (p[i]->json == NULL)
			continue;
		rc |= core_buf_printf(out, ",\"%s\":", p[i]->name);
		rc |= p[i]->json(out);
	}
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

int core_status_metrics(struct core_buf *out)
{
	const struct core_status_provider *p[32];
	unsigned i, n = status_sorted(p, CORE_ARRAY_SIZE(p));
	int rc = CORE_OK;

	for (i = 0; i < n; i++)
		if (p[i]->metrics != NULL)
			rc |= p[i]->metrics(out);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

const struct core_status_provider *core_status_find(const char *name)
{
	const struct core_status_provider *const *p;

	for (p = __start_keel_status; p != NULL && p < __stop_keel_status; p++)
		if (!strcmp((*p)->name, name))
			return *p;
	return NULL;
}
