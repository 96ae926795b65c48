/* The access log: one line per request, in nginx's combined format with
 * keel's fields appended, or as JSON. Lines are buffered and written at
 * least once a second, or when the buffer fills. */
#ifndef KEEL_PROXY_ACCESSLOG_H
#define KEEL_PROXY_ACCESSLOG_H

#include <stdint.h>

#include "core/conf-t.h"
#include "core/loop-t.h"
#include "core/http-t.h"

enum proxy_log_format {
	PROXY_LOG_OFF = 0,
	PROXY_LOG_COMBINED,
	PROXY_LOG_JSON,
};

/* What one line says; filled when the head arrives, finished at the end. */
struct proxy_logrec {
	uint64_t	start_wall;	/* ms */
	uint64_t	start_mono;	/* ms */
	char		client[48];
	char		method[16];
	char		host[128];
	char		path[512];	/* longer paths are cut */
	char		referer[128];
	char		agent[128];
	char		upstream[64];	/* the server that answered, or "-" */
	uint64_t	upstream_ms;	/* from the try's start to its response head */
	unsigned	version;	/* 10 or 11; 0 when unknown */
	unsigned	status;
	uint64_t	bytes;		/* body bytes sent to the client */
};

/* Opens (or reopens after a reload or SIGUSR1) the log per the config. */
int proxy_log_open(struct core_loop *loop, const struct core_conf *conf,
		   char *err, size_t errlen);
void proxy_log_close(void);
int proxy_log_enabled(void);

/* Fills a record from a parsed request head (any field may be missing). */
void proxy_log_fill(struct proxy_logrec *r, const char *client,
		    const struct core_http_msg *m, const char *buf, uint64_t now_mono);
void proxy_log_write(const struct proxy_logrec *r, uint64_t now_mono);

#endif
