/* The structs keel's settings load into. The table that describes them is
 * in settings.c; docs/CONFIGURATION.md is generated from it. */
#ifndef KEEL_CORE_SETTINGS_T_H
#define KEEL_CORE_SETTINGS_T_H

#include <stdbool.h>
#include <stdint.h>

#include "conf-t.h"

struct keel_log_conf {
	int		level;		/* enum core_log_level */
	int64_t		ring_lines;	/* lines kept in memory for the UI */
};

struct keel_cert_conf {
	char		*cert;		/* PEM chain file */
	char		*key;		/* PEM key file */
	int		line;
};

enum keel_tls_min {
	KEEL_TLS_12 = 0,
	KEEL_TLS_13,
};

struct keel_tls_conf {
	bool		enabled;	/* admin only: listeners use TLS when they
					 * have certificates */
	struct core_conf_list certificates; /* of struct keel_cert_conf */
	int		min_version;	/* enum keel_tls_min */
};

struct keel_admin_conf {
	struct core_conf_list listen;	/* of struct core_conf_addr */
	struct keel_tls_conf tls;	/* no certificates: a self-signed one */
	char		*metrics_token;	/* Bearer token for /metrics; "": a session */
	int64_t		confirm_timeout; /* ms: risky API changes revert unless confirmed */
	int64_t		max_connections;
	int64_t		idle_timeout;	/* ms */
	int64_t		request_memory;	/* bytes per connection, headers included */
	int64_t		head_timeout;	/* ms for a whole request head */
	int64_t		max_connections_per_ip;
	char		*session_key_file; /* "": state_dir/session.key */
};

enum keel_balance {
	KEEL_BALANCE_ROUND_ROBIN = 0,	/* smooth weighted round-robin */
	KEEL_BALANCE_LEAST_CONN,	/* fewest active requests, by weight */
	KEEL_BALANCE_IP_HASH,		/* client address picks the server */
	KEEL_BALANCE_P2C,		/* best of two random picks */
	KEEL_BALANCE_COOKIE,		/* a cookie pins each client to a server */
};

struct keel_server_conf {
	struct core_conf_addr address;
	int64_t		weight;
	int64_t		max_fails;	/* failures within fail_timeout... */
	int64_t		fail_timeout;	/* ...take it out for fail_timeout ms */
	bool		backup;		/* used only when no primary is up */
	bool		down;		/* never used (maintenance) */
	bool		drain;		/* no new clients; pinned ones stay */
};

enum keel_check_type {
	KEEL_CHECK_OFF = 0,
	KEEL_CHECK_HTTP,		/* a request; status and body judged */
	KEEL_CHECK_TCP,			/* a connect is enough */
};

struct keel_upstream_tls_conf {	/* HTTPS to the servers */
	bool		enabled;
	bool		verify;		/* the chain must lead to ca_file */
	char		*ca_file;
	char		*server_name;	/* SNI and the name checked; "": the address */
};

struct keel_health_conf {
	int		type;		/* enum keel_check_type */
	char		*method;
	char		*path;
	char		*host;		/* Host header; "": the server's address */
	char		*status;	/* "200-399", "200,204" */
	char		*body;		/* substring the body must hold; "": none */
	int64_t		interval;	/* ms */
	int64_t		timeout;	/* ms */
	int64_t		healthy;	/* passes in a row to come UP */
	int64_t		unhealthy;	/* failures in a row to go DOWN */
};

enum keel_all_down {
	KEEL_ALL_DOWN_CLOSED = 0,	/* 503 */
	KEEL_ALL_DOWN_OPEN,		/* send to every server anyway */
};

struct keel_upstream_conf {
	char		*name;
	int		balance;	/* enum keel_balance */
	struct core_conf_list servers;	/* of struct keel_server_conf */
	int64_t		keepalive;	/* idle connections kept per server */
	int64_t		keepalive_timeout; /* ms an idle one is kept */
	char		*cookie;	/* affinity cookie's name */
	struct keel_health_conf health;
	struct keel_upstream_tls_conf tls;
	int64_t		slow_start;	/* ms a recovered server takes to full weight */
	int64_t		stall_timeout;	/* ms of silence that ejects a server; 0: off */
	int		all_down;	/* enum keel_all_down */
	int		line;
};

/* routes[].static: files from an NFS export, through libnfs. */
struct keel_static_conf {
	char		*mount;		/* storage.mounts.NAME: its servers and export; "": none */
	char		*root;		/* the folder in the export served at the route's path */
	char		*index;		/* a directory's file; "": none */
	bool		 listing;	/* list a directory without one */
	int64_t		 timeout;	/* ms for each answer of the NFS server */
};

struct keel_route_conf {
	struct core_conf_list hosts;	/* of char *: exact or "*.example.com" */
	char		*path;		/* prefix, starts with '/' */
	char		*upstream;
	char		*rewrite;	/* "keep", "strip", or a replacement prefix */
	int64_t		connect_timeout;
	int64_t		send_timeout;
	int64_t		read_timeout;	/* between bytes from the upstream */
	int64_t		idle_timeout;	/* client keep-alive between requests */
	int64_t		max_body;	/* request body bytes */
	int64_t		tries;		/* servers tried per request */
	int64_t		try_timeout;	/* total time for those tries; 0: none */
	bool		retry_5xx;	/* idempotent requests: 5xx -> next server */
	bool		upstream_header; /* add X-Keel-Upstream to responses */
	bool		https_redirect;	/* plain http gets a redirect to https */
	int64_t		https_port;	/* where the redirect points */
	int64_t		hsts;		/* ms; Strict-Transport-Security max-age, 0: none */
	bool		exact;		/* the path itself only (nginx's "location =") */
	int64_t		ret;		/* answer with this status instead; 0: proxy */
	char		*return_url;	/* its Location, with $host, $request_uri... */
	char		*return_body;	/* its body, for the other statuses */
	struct keel_static_conf serve;	/* "static": files, instead of an upstream */
	int		line;
};

struct keel_listener_conf {
	struct core_conf_addr address;
	struct keel_tls_conf tls;	/* certificates: an HTTPS listener */
	int		line;
};

struct keel_proxy_conf {
	int64_t		max_connections;	/* client connections at once */
	int64_t		header_timeout;		/* to receive a whole request head */
	int64_t		max_request_line;
	int64_t		max_header_bytes;
	int64_t		max_headers;
	int64_t		buffer_size;		/* per direction, per connection */
	char		*cookie_key;		/* affinity cookies' key; "": the install key */
};

struct keel_access_log_conf {
	int		format;		/* off, combined, json */
	char		*path;		/* "": stdout */
};

struct keel_workers_conf {
	int64_t		count;		/* 0: one per core */
	int64_t		drain_timeout;	/* ms old workers get to finish */
};

struct keel_monitor_conf {		/* one an operator defined */
	char		*name;
	struct core_conf_url url;
	char		*status;
	char		*body;
	int64_t		interval;	/* ms */
	int64_t		timeout;	/* ms */
};

struct keel_monitors_conf {
	bool		routes;		/* one per route, through the front door */
	bool		servers;	/* one per upstream server, directly */
	int64_t		interval;	/* ms, for those */
	int64_t		timeout;	/* ms, for those */
	char		*status;	/* what passes, for those */
	char		*database;	/* "": state_dir/monitor.db */
	int64_t		max_db_size;
	struct core_conf_list list;	/* map of struct keel_monitor_conf */
};

struct keel_webhook_conf {
	struct core_conf_url url;
	char		*secret;	/* HMAC-SHA256 key for X-Keel-Signature */
};

enum keel_smtp_tls {
	KEEL_SMTP_STARTTLS = 0,		/* upgrade with STARTTLS before AUTH */
	KEEL_SMTP_NONE,			/* plain text, for a relay on the LAN */
};

struct keel_email_conf {
	struct core_conf_list to;	/* of char *: empty means no e-mail */
	struct core_conf_addr server;
	int		tls;		/* enum keel_smtp_tls */
	bool		tls_verify;
	char		*tls_name;	/* the name the certificate must carry */
	char		*ca_file;
	char		*user;		/* "": no AUTH */
	char		*password;
	char		*from;
	char		*helo;
};

struct keel_alerts_conf {
	int64_t		failures;	/* at least this many failures... */
	int64_t		window;		/* ...within this many ms open an incident */
	int64_t		recover;	/* passes in a row that close it */
	int64_t		max_per_hour;	/* notifications, against storms */
	struct core_conf_list webhooks;	/* of struct keel_webhook_conf */
	struct keel_email_conf email;
};

struct keel_redis_front_conf {
	struct core_conf_list listen;	/* of struct core_conf_addr; none: off */
	int64_t		max_clients;
	int64_t		wait_master;	/* ms a new client waits for a master */
	int64_t		max_bulk;	/* bytes in one argument */
	int64_t		idle_timeout;	/* ms; 0: none */
};

struct keel_redis_conf {
	struct core_conf_list sentinels;	/* of struct core_conf_addr */
	char		*master_name;
	struct core_conf_list nodes;		/* of struct core_conf_addr */
	char		*username, *password;
	char		*sentinel_username, *sentinel_password;
	int64_t		db;
	int64_t		connect_timeout, command_timeout, sentinel_timeout;	/* ms */
	int64_t		check_interval;		/* ms */
	struct keel_redis_front_conf front;
	int		line;
};

enum keel_mount_type {
	KEEL_MOUNT_NFS = 0,
	KEEL_MOUNT_GLUSTERFS,
};

/* storage.mounts.NAME: a shared folder and the servers that export it. */
struct keel_mount_conf {
	char		*name;
	int		 type;		/* enum keel_mount_type */
	struct core_conf_list servers;	/* of char *: IP addresses, primary first */
	char		*export;	/* NFS: "/export"; "" for GlusterFS */
	char		*volume;	/* GlusterFS: "gv0"; "" for NFS */
	char		*path;		/* where keel mounts it: "/share"; "": watch only */
	char		*options;	/* mount options, over keel's defaults */
	bool		 adopt;		/* take over a mount keel did not make */
	bool		 failback;	/* back to the primary once it answers */
	bool		 canary;	/* write and read a file in the mount */
	int64_t		 mount_timeout;	/* ms a mount attempt may take */
	int64_t		 probe_interval, probe_timeout, slow_after;	/* ms */
	int64_t		 misses;	/* timeouts in a row that make it hung */
	int64_t		 canary_interval, canary_timeout;	/* ms */
	int		 line;
};

struct keel_storage_conf {
	struct core_conf_list mounts;	/* map of struct keel_mount_conf */
};

struct keel_watchdog_conf {
	char		*device;	/* "": none, never armed */
	int64_t		 timeout;	/* ms the hardware waits for a ping */
	bool		 front_door;	/* ping only while the front door answers */
};

struct keel_iface_conf {
	char		*name;		/* eth0 */
	char		*address;	/* "10.0.2.15/24"; "": DHCP */
	char		*gateway;	/* static: the default route; "": none */
};

struct keel_system_conf {
	char		*hostname;	/* "": keep it (PID 1: the node name) */
	struct core_conf_list interfaces;	/* of struct keel_iface_conf */
	struct core_conf_list ntp;	/* of char *: "IP" or "IP:port" */
	struct core_conf_list dns;	/* of char *: IP addresses */
	int64_t		 ntp_interval;	/* ms between syncs */
};

/* ha: two or more keel boxes sharing virtual addresses by VRRPv3. */
struct keel_ha_conf {
	char		*interface;	/* "": off */
	int64_t		 vrid;		/* virtual router id, 1-255 */
	int64_t		 priority;	/* 1-254: the highest healthy box is master */
	struct core_conf_list addresses;	/* of char *: "IP" or "IP/len" */
	int64_t		 advert_interval;	/* ms, 10 ms steps */
	bool		 preempt;	/* a higher priority takes the address back */
	int64_t		 preempt_delay;	/* ms after start before it does */
	bool		 track;		/* priority 1 while this box cannot serve */
	int64_t		 check_interval;	/* ms between its own checks */
	int64_t		 fall, rise;	/* checks in a row that change its health */
	struct core_conf_list peers;	/* of char *: unicast adverts to these */
	char		*auth_key;	/* secret; "": adverts as RFC 5798 has them */
};

/* cluster: gateways that share their configuration through Redis. */
struct keel_cluster_conf {
	char		*name;		/* "": this box alone */
	char		*key;		/* secret: seals what goes through Redis */
};

struct keel_update_conf {
	int64_t		 health_timeout;	/* ms a new slot has to pass its checks */
	int64_t		 tries;		/* boots of a new slot before it is given up */
};

enum keel_escalation {
	KEEL_ESCALATE_DEGRADED = 0,	/* a failed part stays down, the rest runs */
	KEEL_ESCALATE_REBOOT,		/* the box is reset */
};

struct keel_supervise_conf {
	int64_t		 progress_limit;	/* ms a process may go without progress */
	int64_t		 backoff_min;	/* ms before the first restart */
	int64_t		 backoff_max;	/* ms the delay doubles up to */
	int64_t		 restarts;	/* this many in window, and the next exit fails it */
	int64_t		 window;	/* ms */
	int		 escalation;	/* enum keel_escalation */
	struct core_conf_list wait_for;	/* of int: enum keel_gate */
	int64_t		 wait_max;	/* ms the workers wait for them at most */
};

enum keel_gate {
	KEEL_GATE_LINK = 0,		/* every managed interface has its link */
	KEEL_GATE_ADDRESS,		/* ... and its address (a lease) */
	KEEL_GATE_CLOCK,		/* the clock was set from NTP */
	KEEL_GATE_STORAGE,		/* every managed mount is mounted */
	KEEL_GATE_COUNT
};

struct keel_conf {
	char		*node;		/* this box's name */
	char		*pid_file;	/* "": none */
	char		*state_dir;	/* install key, later the config store */
	struct keel_workers_conf workers;
	struct keel_log_conf log;
	struct keel_admin_conf admin;
	struct keel_proxy_conf proxy;
	struct keel_access_log_conf access_log;
	struct core_conf_list listeners;	/* of struct keel_listener_conf */
	struct core_conf_list upstreams;	/* map of struct keel_upstream_conf */
	struct core_conf_list routes;		/* of struct keel_route_conf */
	struct keel_monitors_conf monitors;
	struct keel_alerts_conf alerts;
	struct keel_redis_conf redis;
	struct keel_storage_conf storage;
	struct keel_watchdog_conf watchdog;
	struct keel_supervise_conf supervise;
	struct keel_system_conf system;
	struct keel_update_conf update;
	struct keel_ha_conf ha;
	struct keel_cluster_conf cluster;
};

#endif
