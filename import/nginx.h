/* Reads an nginx configuration the way nginx does: words, quotes, escapes,
 * comments, blocks and includes (globs relative to the main file's folder),
 * into a tree of directives that each know their file and line. */
#ifndef KEEL_IMPORT_NGINX_H
#define KEEL_IMPORT_NGINX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define IMP_NGX_MAX_ARGS	64		/* words in one directive */
#define IMP_NGX_MAX_WORD	(64 * 1024)
#define IMP_NGX_MAX_FILE	(16 << 20)
#define IMP_NGX_MAX_FILES	1024
#define IMP_NGX_MAX_DEPTH	16		/* includes within includes */
#define IMP_NGX_MAX_NEST	32		/* blocks within blocks */
#define IMP_NGX_MAX_DIRS	200000

struct imp_ngx_file {
	struct imp_ngx_file *next;
	char		*path;
};

/* One directive. An `include` stays in the tree (kind INCLUDE) and the
 * directives of the files it names follow it in the same list. */
enum imp_ngx_kind {
	IMP_NGX_SIMPLE = 0,		/* name args; */
	IMP_NGX_BLOCK,			/* name args { child } */
	IMP_NGX_INCLUDE			/* include pattern; (already expanded) */
};

struct imp_ngx_dir {
	struct imp_ngx_dir *next;
	struct imp_ngx_dir *child;	/* a block's first directive */
	const struct imp_ngx_file *file;
	char		**argv;		/* argv[0] is the name */
	unsigned	 argc;
	unsigned	 line;
	enum imp_ngx_kind kind;
	unsigned	 nfiles;	/* INCLUDE: files it read */
	bool		 unread;	/* INCLUDE: not read (one uploaded file) */
};

struct imp_ngx_conf {
	struct imp_ngx_dir *root;
	struct imp_ngx_file *files;	/* every file read, the main one first */
	char		*prefix;	/* the main file's folder, with a '/' */
	char		*errors;	/* "file:line: problem\n" lines, or NULL */
	unsigned	 nerrors;
	unsigned	 ndirs;
};

/* Reads a file: returns its bytes (malloc'd, *len set) or NULL with errno. */
typedef char *(*imp_ngx_read_fn)(const char *path, size_t *len, void *arg);
/* Expands a glob: returns the matches in order, or NULL (none). */
typedef char **(*imp_ngx_glob_fn)(const char *pattern, size_t *n, void *arg);

/* read NULL: one file came alone (an upload); its includes stay unread. */
struct imp_ngx_io {
	imp_ngx_read_fn	 read;
	imp_ngx_glob_fn	 glob;
	void		*arg;
};

/* Parses path and what it includes. Always returns a conf (NULL only when
 * out of memory); conf->nerrors says whether it can be used. io NULL: the
 * file system. */
struct imp_ngx_conf *imp_ngx_parse(const char *path, const struct imp_ngx_io *io);
/* Parses text as if it were the file path (includes through io). */
struct imp_ngx_conf *imp_ngx_parse_text(const char *path, const char *text, size_t len,
					const struct imp_ngx_io *io);
void imp_ngx_free(struct imp_ngx_conf *c);

/* Control bytes in s become '?': a message quoting words from a file
 * stays one line. */
void imp_one_line(char *s);
/* Appends "file:line: message\n" (file NULL: the message alone), made one
 * line, to *lines (NUL-terminated, *len bytes). 0, or -1 out of memory. */
int imp_lines_add(char **lines, size_t *len, const char *file, unsigned line,
		  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* nginx's own directive names: is name one, may it have a block, and are
 * the words in its block data rather than directives (map, types). */
#define IMP_NGX_F_BLOCK		0x1
#define IMP_NGX_F_OPAQUE	0x2
#define IMP_NGX_F_EITHER	0x4	/* with or without a block */
int imp_ngx_known(const char *name);	/* flags + 0x100, or 0 when unknown */

#endif
