/* keel import-nginx: an nginx configuration turned into keel's listeners,
 * upstreams and routes, with a verdict for every directive it holds. */
#ifndef KEEL_IMPORT_IMPORT_H
#define KEEL_IMPORT_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf-t.h"
#include "nginx.h"

enum imp_verdict {
	IMP_MAPPED = 0,			/* keel does the same */
	IMP_APPROX,			/* keel does it another way: the note says how */
	IMP_UNSUPPORTED			/* keel does not do it: the note says what is lost */
};

struct imp_entry {
	const char	*file;		/* the parsed conf's file name */
	unsigned	 line;
	enum imp_verdict verdict;
	char		*directive;	/* its words, secrets left out */
	char		*note;
	unsigned	 order[2];	/* the file's place among those read, a sequence */
};

struct imp_cert {			/* a certificate pair to copy into keel's store */
	char		*cert, *key;	/* nginx's paths */
	char		*name;		/* keel's name: state_dir/certs/NAME.crt and .key */
};

struct imp_result {
	struct imp_entry *entries;
	size_t		 nentries, cap;
	struct imp_cert	*certs;
	size_t		 ncerts;
	char		*errors;	/* "file:line: problem\n" lines; NULL: none */
	unsigned	 nerrors;
	char		*yaml;		/* listeners, upstreams and routes */
	size_t		 yaml_len;
};

/* Maps a parsed configuration. certdir: where keel's copies of the
 * certificates will be (state_dir/certs), named in the YAML. resolve:
 * server names are looked up (else they are errors). Returns the result
 * (NULL: out of memory); errors in it mean no YAML. */
struct imp_result *imp_nginx_map(const struct imp_ngx_conf *c, const char *certdir,
				 bool resolve);
void imp_result_free(struct imp_result *r);

/*
 * A keel configuration (base_text) with the imported listeners, upstreams
 * and routes (yaml), as YAML in out, secrets written or masked; loaded
 * again to check the whole. IMP_MERGE_OK, or the stage that failed with
 * its errors, a line each, in *errors (malloc'ed; the caller frees it).
 */
enum imp_merge_rc {
	IMP_MERGE_OK = 0,
	IMP_MERGE_BASE,			/* the keel configuration does not load */
	IMP_MERGE_IMPORTED,		/* the imported part does not (a bug) */
	IMP_MERGE_UNFIT,		/* the two together do not */
	IMP_MERGE_NOMEM
};
enum imp_merge_rc imp_merge(const char *base_name, const char *base_text, const char *yaml,
			    bool secrets, struct core_buf *out, char **errors);

const char *imp_verdict_str(enum imp_verdict v);
/* The report as text (one line per directive) or as a JSON array. */
int imp_report_text(struct core_buf *out, const struct imp_result *r);
int imp_report_json(struct core_buf *out, const struct imp_result *r);

#endif
