/* TLS for keel's listeners, on mbedTLS: server contexts built from
 * certificate/key files (SNI picks among them), non-blocking connections,
 * and the self-signed certificate a fresh box starts its admin server with.
 *
 * Only modern protocol: TLS 1.2 with ECDHE and AEAD suites, and TLS 1.3.
 * Session tickets share one key per configuration generation, so a client
 * resumes on any worker. */
#ifndef KEEL_CORE_TLS_H
#define KEEL_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct core_buf;
struct core_tls_server;
struct core_tls;

/* A certificate chain file and its key file, both PEM. */
struct core_tls_pair {
	const char	*cert;
	const char	*key;
};

struct core_tls_opts {
	bool		 tls13_only;	/* refuse TLS 1.2 */
	const unsigned char *ticket_key; /* 32 bytes shared by workers; NULL: tickets off */
	const unsigned char *ticket_prev; /* the one before, still accepted; or NULL */
};

/* Gives mbedTLS keel's allocator for its small blocks. First thing in
 * main(), before any mbedTLS call: a block must be freed by the allocator
 * that made it. Without the call mbedTLS uses calloc and free. */
void core_tls_mem_init(void);

/* The crypto library and the random generator; the functions below call
 * it when needed. */
int core_tls_init(void);

/* In a forked child, first thing: fresh random state of its own. */
int core_tls_after_fork(void);

/* Fills buf with random bytes from the process's generator. */
int core_tls_random(void *buf, size_t len);

/* Loads every pair; the first is served to clients that send no matching
 * server name. Returns NULL with a message naming the file that failed. */
struct core_tls_server *core_tls_server_new(const struct core_tls_pair *pairs, size_t n,
					    const struct core_tls_opts *o,
					    char *err, size_t errlen);
void core_tls_server_hold(struct core_tls_server *srv);
void core_tls_server_drop(struct core_tls_server *srv);

/* Checks that pairs load and match, without keeping them. */
int core_tls_check_pair(const struct core_tls_pair *p, char *err, size_t errlen);

/* What the UI shows of a certificate. */
struct core_tls_info {
	char		 subject[256];
	char		 issuer[256];
	char		 names[512];		/* the names SNI matches, comma-separated */
	char		 not_before[24];	/* "2026-11-21T10:00:00Z" */
	char		 not_after[24];
	char		 fingerprint[3 * 32];	/* SHA-256, "AB:CD:..." */
	bool		 self_signed;
};

/* Loads a pair as core_tls_check_pair does and describes its first
 * certificate. */
int core_tls_pair_info(const struct core_tls_pair *p, struct core_tls_info *info,
		       char *err, size_t errlen);

/* "AB:CD:..." SHA-256 of the first certificate, and its subject. */
const char *core_tls_server_fingerprint(const struct core_tls_server *srv);

/* Makes an ECDSA P-256 key and a self-signed certificate for `name`, valid
 * ten years, unless cert_path already exists. The key file is 0600. */
int core_tls_self_signed(const char *cert_path, const char *key_path, const char *name,
			 char *err, size_t errlen);

/* A client context for connections to servers (upstreams): TLS 1.2 and
 * 1.3, the same modern suites; with verify, the server's chain must lead
 * to a certificate in ca_file (PEM) and carry the name given to
 * core_tls_client. Released with core_tls_server_drop. */
struct core_tls_server *core_tls_client_new(const char *ca_file, bool verify,
					    char *err, size_t errlen);

/* A client connection on fd (connected, non-blocking) that sends name as
 * SNI and checks it against the certificate. NULL when out of memory. */
struct core_tls *core_tls_client(struct core_tls_server *cli, int fd, const char *name);

/* After a failed client handshake: why the certificate was refused, if it
 * was ("the certificate is not correctly signed by the trusted CA"). */
int core_tls_verify_error(const struct core_tls *t, char *buf, size_t len);

/* A connection on fd (non-blocking). NULL when out of memory. */
struct core_tls *core_tls_new(struct core_tls_server *srv, int fd);
void core_tls_free(struct core_tls *t);

/* CORE_OK once established, CORE_AGAIN (see core_tls_want), CORE_ERROR
 * with the reason in err. */
int core_tls_handshake(struct core_tls *t, char *err, size_t errlen);

/* CORE_IO_READ and/or CORE_IO_WRITE the last CORE_AGAIN waits for. */
unsigned core_tls_want(const struct core_tls *t);

/* Plaintext in: bytes, 0 at the end (close_notify or a plain close),
 * CORE_AGAIN, or CORE_ERROR. */
ssize_t core_tls_read(struct core_tls *t, void *buf, size_t len);

/* core_tls_read into b's free space (at most 2 KiB more reserved): as
 * core_buf_read answers, with -EPROTO for a TLS failure. */
ssize_t core_tls_read_buf(struct core_tls *t, struct core_buf *b);

/* Decrypted bytes waiting inside the library: readable without the fd. */
size_t core_tls_pending(const struct core_tls *t);

/* Plaintext out, gathered from iov, which is advanced past what was taken:
 * the byte count (0 when the socket is full), or CORE_ERROR. The next call
 * must offer the bytes not taken again, unchanged, at the front. */
ssize_t core_tls_writev(struct core_tls *t, struct iovec *iov, int n);

/* Sends close_notify, best effort. */
void core_tls_close(struct core_tls *t);

/* The negotiated version ("TLSv1.3") and cipher suite, for logs. */
const char *core_tls_version(const struct core_tls *t);

#endif
