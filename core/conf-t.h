/* Types of the config model: a setting's declaration, and the structures
 * loaded values are stored in. */
#ifndef KEEL_CORE_CONF_T_H
#define KEEL_CORE_CONF_T_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum core_conf_type {
	CORE_CONF_BOOL = 0,	/* bool: true/false, yes/no, on/off */
	CORE_CONF_INT,		/* int64_t within [min, max] */
	CORE_CONF_SIZE,		/* int64_t bytes: 512, 64k, 4M, 1G */
	CORE_CONF_DURATION,	/* int64_t ms: 250ms, 5s, 2m, 1h, 1d */
	CORE_CONF_STRING,	/* char *, length within [min, max] */
	CORE_CONF_ENUM,		/* int: index into .enums */
	CORE_CONF_ADDR,		/* struct core_conf_addr: 1.2.3.4:80, [::1]:80, *:80 */
	CORE_CONF_URL,		/* struct core_conf_url: http://1.2.3.4:8080/path */
	CORE_CONF_SECTION,	/* a struct described by .sub */
	CORE_CONF_LIST,		/* struct core_conf_list of .item values */
	CORE_CONF_MAP,		/* struct core_conf_list of .sub structs, by name */
};

#define CORE_CONF_RELOAD	0x1	/* a reload may change it */
#define CORE_CONF_SECRET	0x2	/* never echoed in errors, logs, exports */
#define CORE_CONF_REQUIRED	0x4	/* has no default: must be set */
#define CORE_CONF_NODE		0x8	/* this box's own: not shared with other gateways */
#define CORE_CONF_TEXT		0x10	/* a string that may hold newlines and tabs */

struct core_conf_section;

struct core_conf_def {
	const char	*name;
	enum core_conf_type type;
	unsigned	 flags;		/* CORE_CONF_* */
	size_t		 offset;	/* of the value in the section's struct */
	const char	*dflt;		/* default, as it would be written in YAML;
					 * a LIST's is comma-separated */
	int64_t		 min, max;	/* bounds: value (INT, SIZE, DURATION),
					 * length (STRING), items (LIST) */
	const char *const *enums;	/* ENUM: names, NULL-terminated */
	enum core_conf_type item;	/* LIST: type of each item */
	const struct core_conf_section *sub; /* SECTION, MAP values, LIST items */
	const char	*doc;		/* one sentence for the reference */
};

struct core_conf_load;

struct core_conf_section {
	size_t		 size;		/* of the struct it describes */
	const struct core_conf_def *defs; /* ends with a NULL name */
	const char	*doc;
	/* Where the loader stores the line the section started on (an int),
	 * for checks made later from elsewhere; 0: not stored. */
	size_t		 line_offset;
	/* Optional checks across fields, after the section is loaded: report
	 * problems with core_conf_error(ld, line, path, ...). */
	void		(*check)(struct core_conf_load *ld, void *obj,
				 const char *path, int line);
};

/* Storage of LIST and MAP values. MAP item structs start with `char *name`. */
struct core_conf_list {
	void		*v;
	size_t		 n;
};

struct core_conf_addr {
	struct sockaddr_storage sa;
	socklen_t	 salen;
	char		 text[64];	/* as written, normalised: "[::1]:8080" */
};

/* An http:// URL with a numeric host (or localhost): names are not
 * resolved at config time. */
struct core_conf_url {
	struct core_conf_addr addr;	/* where to connect */
	char		 host[128];	/* Host header: as written, port included */
	char		 path[512];	/* with the query; "/" when empty */
	char		 text[700];	/* as written */
};

struct core_conf_err {
	struct core_conf_err *next;
	char		 msg[];		/* "keel.yaml:12: a.b[1].c: must be ..." */
};

/* A loaded configuration. Everything it holds lives in its own arena. */
struct core_conf {
	const struct core_conf_section *schema;
	void		*root;		/* schema->size bytes, filled */
	char		*file;		/* name used in messages */
	unsigned	 generation;	/* set by whoever installs it */
	struct core_conf_err *errors;
	size_t		 nerrors;
	struct conf_block *arena;
};

#endif
