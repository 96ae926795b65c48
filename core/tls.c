/* TLS on mbedTLS: server contexts, connections over non-blocking sockets,
 * and self-signed certificates. See tls.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "buf.h"
#include "core.h"
#include "loop.h"
#include "p256.h"
#include "state.h"
#include "tls.h"

#define TLS_MAX_NAMES	32		/* server names kept per certificate */
#define TLS_RECORD	16384		/* plaintext per record */
#define TLS_TICKET_LIFE	(12 * 3600)	/* seconds */

struct tls_cert {
	mbedtls_x509_crt   crt;
	mbedtls_pk_context key;
	char		  *names[TLS_MAX_NAMES];	/* lower case; "*.a.b" allowed */
	unsigned	   nnames;
};

struct core_tls_server {		/* a client context too (upstreams) */
	unsigned	   refs;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt   ca;		/* a client's trusted authorities */
	bool		   client;
	mbedtls_ssl_ticket_context ticket;
	bool		   tickets;
	struct tls_cert	  *certs;
	size_t		   ncerts;
	char		   fingerprint[3 * 32];
};

struct core_tls {
	mbedtls_ssl_context ssl;
	struct core_tls_server *srv;
	int		   fd;
	unsigned	   want;	/* CORE_IO_* the last CORE_AGAIN waits for */
	size_t		   pending;	/* a write the socket took only part of */
	unsigned char	  *stash;	/* handshake bytes the socket did not take */
	size_t		   stash_len;
};

/*
 * A handshake flight is several records (ServerHello, EncryptedExtensions,
 * Certificate, CertificateVerify, Finished), and mbedTLS hands each to the
 * socket on its own: five sends and five segments where one does. While
 * core_tls_handshake() runs, the records gather here (one worker, one
 * handshake at a time) and go out in one send at its end; what the socket
 * does not take then waits in the connection's stash, ahead of anything
 * sent later.
 */
static __thread struct {
	struct core_tls	*owner;		/* the connection gathering, or NULL */
	size_t		 len;
	unsigned char	 buf[8192];
} tls_flight;

static struct {
	bool			 ready;
	mbedtls_entropy_context	 entropy;
	mbedtls_ctr_drbg_context drbg;
} tls;

/* Modern suites only: AEAD, forward secrecy. TLS 1.3's three first. */
static const int tls_suites[] = {
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0
};

static const uint16_t tls_groups[] = {
	MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_NONE
};

static const char *tls_alpn[] = { "http/1.1", NULL };

static void tls_error(int rc, const char *what, const char *file, char *err, size_t errlen)
{
	char msg[160];

	mbedtls_strerror(rc, msg, sizeof(msg));
	if (file != NULL)
		snprintf(err, errlen, "%s %s: %s", what, file, msg);
	else
		snprintf(err, errlen, "%s: %s", what, msg);
}

/*
 * mbedTLS's memory. Its bignum code allocates and frees small limb arrays
 * thousands of times a handshake: musl's allocator was 15% of a full
 * handshake's CPU (docs/PERFORMANCE.md). Blocks up to TLS_MEM_MAX bytes
 * are kept on a free list per power-of-two size and handed out again,
 * zeroed as calloc's are; each list holds TLS_MEM_KEEP bytes at most, so
 * a burst of handshakes leaves little behind. A connection's two record
 * buffers (16 KiB and a little) have a list of their own, TLS_MEM_RECS of
 * them at most: from musl they cost two madvise calls and eight page
 * faults per connection. Other big blocks go to calloc. A 16-byte header
 * keeps the block's class (and the payload's alignment); on a free list it
 * holds the link.
 * Sanitizer builds use calloc and free for all, so ASan sees every block.
 */
#if !defined(__SANITIZE_ADDRESS__)
#define TLS_MEM_MIN	16
#define TLS_MEM_CLASSES	7		/* 16, 32, ... 1024 bytes */
#define TLS_MEM_MAX	(TLS_MEM_MIN << (TLS_MEM_CLASSES - 1))
#define TLS_MEM_KEEP	(64 * 1024)
#define TLS_MEM_REC_MIN	(16 * 1024)	/* a record buffer: 16 KiB of content */
#define TLS_MEM_REC_MAX	(18 * 1024)	/* and mbedTLS's overhead for it */
#define TLS_MEM_REC	TLS_MEM_CLASSES	/* their class */
#define TLS_MEM_RECS	16		/* kept: 288 KiB */
#define TLS_MEM_HEAD	16
#define TLS_MEM_BIG	0xff		/* class of a block from calloc */

static __thread struct {
	void	*head;
	size_t	 n;
} tls_mem[TLS_MEM_CLASSES + 1];

/* A block of class c from its list, or a new one of its size. */
static unsigned char *tls_mem_get(size_t c, size_t size)
{
	unsigned char *p;

	if ((p = tls_mem[c].head) != NULL) {
		memcpy(&tls_mem[c].head, p, sizeof(void *));
		tls_mem[c].n--;
	} else if ((p = malloc(TLS_MEM_HEAD + size)) == NULL)
		return NULL;
	p[8] = (unsigned char)c;
	return p;
}

static void *tls_calloc(size_t n, size_t size)
{
	unsigned char *p;
	size_t len, c;

	if (size != 0 && n > (SIZE_MAX - TLS_MEM_HEAD) / size)
		return NULL;
	len = n * size;
	if (len >= TLS_MEM_REC_MIN && len <= TLS_MEM_REC_MAX) {
		p = tls_mem_get(TLS_MEM_REC, TLS_MEM_REC_MAX);
	} else if (len > TLS_MEM_MAX) {
		if ((p = calloc(1, TLS_MEM_HEAD + len)) == NULL)
			return NULL;
		p[8] = TLS_MEM_BIG;
		return p + TLS_MEM_HEAD;
	} else {
		for (c = 0; (size_t)TLS_MEM_MIN << c < len; c++)
			;
		p = tls_mem_get(c, (size_t)TLS_MEM_MIN << c);
	}
	if (p == NULL)
		return NULL;
	memset(p + TLS_MEM_HEAD, 0, len);
	return p + TLS_MEM_HEAD;
}

static void tls_free(void *ptr)
{
	unsigned char *p = ptr;
	unsigned c;

	if (p == NULL)
		return;
	p -= TLS_MEM_HEAD;
	c = p[8];
	if (c == TLS_MEM_BIG ||
	    (c == TLS_MEM_REC ? tls_mem[c].n + 1 > TLS_MEM_RECS
	     : (tls_mem[c].n + 1) * ((size_t)TLS_MEM_MIN << c) > TLS_MEM_KEEP)) {
		free(p);
		return;
	}
	memcpy(p, &tls_mem[c].head, sizeof(void *));
	tls_mem[c].head = p;
	tls_mem[c].n++;
}
#endif

void core_tls_mem_init(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	mbedtls_platform_set_calloc_free(tls_calloc, tls_free);
#endif
}

int core_tls_init(void)
{
	if (tls.ready)
		return CORE_OK;
	if (psa_crypto_init() != PSA_SUCCESS)
		return CORE_ERROR;
	mbedtls_entropy_init(&tls.entropy);
	mbedtls_ctr_drbg_init(&tls.drbg);
	if (mbedtls_ctr_drbg_seed(&tls.drbg, mbedtls_entropy_func, &tls.entropy,
				  (const unsigned char *)"keel", 4) != 0)
		return CORE_ERROR;
	if (core_p256_init() != 0)	/* workers inherit the signing table */
		return CORE_ERROR;
	tls.ready = true;
	return CORE_OK;
}

int core_tls_after_fork(void)
{
	pid_t pid = getpid();

	/* The parent's generator states must not be reused: both start over
	 * from fresh entropy, whoever initialised the crypto library. */
	mbedtls_psa_crypto_free();
	if (psa_crypto_init() != PSA_SUCCESS)
		return CORE_ERROR;
	if (!tls.ready)
		return CORE_OK;
	return mbedtls_ctr_drbg_reseed(&tls.drbg, (const unsigned char *)&pid,
				       sizeof(pid)) == 0 ? CORE_OK : CORE_ERROR;
}

int core_tls_random(void *buf, size_t len)
{
	if (!tls.ready && core_tls_init() != CORE_OK)
		return CORE_ERROR;
	return mbedtls_ctr_drbg_random(&tls.drbg, buf, len) == 0 ? CORE_OK : CORE_ERROR;
}

/* ---- certificates ---------------------------------------------------------------------------- */

static void cert_add_name(struct tls_cert *c, const unsigned char *p, size_t len)
{
	char *s;
	size_t i;

	if (c->nnames == TLS_MAX_NAMES || len == 0 || len > 253)
		return;
	if ((s = malloc(len + 1)) == NULL)
		return;
	for (i = 0; i < len; i++)
		s[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
	s[len] = '\0';
	c->names[c->nnames++] = s;
}

/* The names SNI matches: the DNS subject alternative names, or the
 * common name when there are none. */
static void cert_collect_names(struct tls_cert *c)
{
	const mbedtls_x509_sequence *seq;
	const mbedtls_x509_name *n;

	for (seq = &c->crt.subject_alt_names; seq != NULL && seq->buf.p != NULL; seq = seq->next) {
		mbedtls_x509_subject_alternative_name san;

		if (mbedtls_x509_parse_subject_alt_name(&seq->buf, &san) != 0)
			continue;
		if (san.type == MBEDTLS_X509_SAN_DNS_NAME)
			cert_add_name(c, san.san.unstructured_name.p, san.san.unstructured_name.len);
		mbedtls_x509_free_subject_alt_name(&san);
	}
	if (c->nnames > 0)
		return;
	for (n = &c->crt.subject; n != NULL; n = n->next)
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0)
			cert_add_name(c, n->val.p, n->val.len);
}

static void cert_free(struct tls_cert *c)
{
	unsigned i;

	mbedtls_x509_crt_free(&c->crt);
	mbedtls_pk_free(&c->key);
	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	c->nnames = 0;
}

static int cert_load(struct tls_cert *c, const struct core_tls_pair *p, char *err, size_t errlen)
{
	int rc;

	mbedtls_x509_crt_init(&c->crt);
	mbedtls_pk_init(&c->key);
	c->nnames = 0;
	if ((rc = mbedtls_x509_crt_parse_file(&c->crt, p->cert)) != 0) {
		tls_error(rc, "certificate", p->cert, err, errlen);
		return CORE_ERROR;
	}
	if ((rc = mbedtls_pk_parse_keyfile(&c->key, p->key, NULL,
					   mbedtls_ctr_drbg_random, &tls.drbg)) != 0) {
		tls_error(rc, "key", p->key, err, errlen);
		return CORE_ERROR;
	}
	if (mbedtls_pk_check_pair(&c->crt.pk, &c->key, mbedtls_ctr_drbg_random, &tls.drbg) != 0) {
		snprintf(err, errlen, "key %s does not belong to certificate %s", p->key, p->cert);
		return CORE_ERROR;
	}
	cert_collect_names(c);
	return CORE_OK;
}

int core_tls_check_pair(const struct core_tls_pair *p, char *err, size_t errlen)
{
	struct tls_cert c;
	int rc;

	if (!tls.ready && core_tls_init() != CORE_OK) {
		snprintf(err, errlen, "the crypto library did not start");
		return CORE_ERROR;
	}
	rc = cert_load(&c, p, err, errlen);
	cert_free(&c);
	return rc;
}

static void tls_time(const mbedtls_x509_time *t, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year, t->mon, t->day,
		 t->hour, t->min, t->sec);
}

static void tls_hex_fingerprint(const unsigned char *der, size_t len, char *out)
{
	unsigned char hash[32];
	size_t i;

	mbedtls_sha256(der, len, hash, 0);
	for (i = 0; i < sizeof(hash); i++)
		snprintf(out + 3 * i, 4, "%02X%s", hash[i], i + 1 < sizeof(hash) ? ":" : "");
}

int core_tls_pair_info(const struct core_tls_pair *p, struct core_tls_info *info,
		       char *err, size_t errlen)
{
	struct tls_cert c;
	size_t n = 0;
	unsigned i;

	memset(info, 0, sizeof(*info));
	if (!tls.ready && core_tls_init() != CORE_OK) {
		snprintf(err, errlen, "the crypto library did not start");
		return CORE_ERROR;
	}
	if (cert_load(&c, p, err, errlen) != CORE_OK) {
		cert_free(&c);
		return CORE_ERROR;
	}
	if (mbedtls_x509_dn_gets(info->subject, sizeof(info->subject), &c.crt.subject) < 0)
		info->subject[0] = '\0';
	if (mbedtls_x509_dn_gets(info->issuer, sizeof(info->issuer), &c.crt.issuer) < 0)
		info->issuer[0] = '\0';
	for (i = 0; i < c.nnames && n + 2 < sizeof(info->names); i++) {
		int w = snprintf(info->names + n, sizeof(info->names) - n, "%s%s",
				 i ? "," : "", c.names[i]);

		if (w < 0 || (size_t)w >= sizeof(info->names) - n)
			break;
		n += (size_t)w;
	}
	tls_time(&c.crt.valid_from, info->not_before, sizeof(info->not_before));
	tls_time(&c.crt.valid_to, info->not_after, sizeof(info->not_after));
	tls_hex_fingerprint(c.crt.raw.p, c.crt.raw.len, info->fingerprint);
	info->self_signed = c.crt.issuer_raw.len == c.crt.subject_raw.len &&
			    !memcmp(c.crt.issuer_raw.p, c.crt.subject_raw.p, c.crt.subject_raw.len);
	cert_free(&c);
	return CORE_OK;
}

static bool name_matches(const char *pat, const unsigned char *name, size_t len)
{
	size_t plen = strlen(pat);

	if (pat[0] == '*' && pat[1] == '.') {
		/* One label: "*.a.b" matches "x.a.b", not "a.b" or "y.x.a.b". */
		const unsigned char *dot = memchr(name, '.', len);

		if (dot == NULL || dot == name)
			return false;
		len -= (size_t)(dot - name);
		name = dot;
		pat++;
		plen--;
	}
	return plen == len && strncasecmp(pat, (const char *)name, len) == 0;
}

static int tls_on_sni(void *arg, mbedtls_ssl_context *ssl, const unsigned char *name,
		      size_t len)
{
	struct core_tls_server *srv = arg;
	size_t i;
	unsigned j;

	for (i = 0; i < srv->ncerts; i++)
		for (j = 0; j < srv->certs[i].nnames; j++)
			if (name_matches(srv->certs[i].names[j], name, len))
				return mbedtls_ssl_set_hs_own_cert(ssl, &srv->certs[i].crt,
								   &srv->certs[i].key);
	return 0;	/* the default certificate */
}

/* ---- servers --------------------------------------------------------------------------------- */

struct core_tls_server *core_tls_server_new(const struct core_tls_pair *pairs, size_t n,
					    const struct core_tls_opts *o,
					    char *err, size_t errlen)
{
	struct core_tls_server *srv;
	size_t i;
	int rc;

	if (!tls.ready && core_tls_init() != CORE_OK) {
		snprintf(err, errlen, "the crypto library did not start");
		return NULL;
	}
	if (n == 0) {
		snprintf(err, errlen, "no certificate");
		return NULL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL ||
	    (srv->certs = calloc(n, sizeof(*srv->certs))) == NULL) {
		free(srv);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->refs = 1;
	mbedtls_ssl_config_init(&srv->conf);
	mbedtls_ssl_ticket_init(&srv->ticket);
	for (i = 0; i < n; i++, srv->ncerts++)
		if (cert_load(&srv->certs[i], &pairs[i], err, errlen) != CORE_OK) {
			srv->ncerts++;
			goto fail;
		}

	if ((rc = mbedtls_ssl_config_defaults(&srv->conf, MBEDTLS_SSL_IS_SERVER,
					      MBEDTLS_SSL_TRANSPORT_STREAM,
					      MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		tls_error(rc, "TLS setup", NULL, err, errlen);
		goto fail;
	}
	mbedtls_ssl_conf_rng(&srv->conf, mbedtls_ctr_drbg_random, &tls.drbg);
	mbedtls_ssl_conf_min_tls_version(&srv->conf, o->tls13_only ? MBEDTLS_SSL_VERSION_TLS1_3
								    : MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&srv->conf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(&srv->conf, tls_suites);
	mbedtls_ssl_conf_groups(&srv->conf, tls_groups);
	mbedtls_ssl_conf_alpn_protocols(&srv->conf, tls_alpn);
	mbedtls_ssl_conf_sni(&srv->conf, tls_on_sni, srv);
	if ((rc = mbedtls_ssl_conf_own_cert(&srv->conf, &srv->certs[0].crt,
					    &srv->certs[0].key)) != 0) {
		tls_error(rc, "certificate", pairs[0].cert, err, errlen);
		goto fail;
	}
	if (o->ticket_key != NULL) {
		/* setup makes a random key; rotate puts the generation's shared
		 * one in its place, so every worker reads every ticket. */
		unsigned char name[32], prev_name[32];

		/* The key name travels in the clear: a hash, not key bytes. */
		mbedtls_sha256(o->ticket_key, 32, name, 0);
		if (o->ticket_prev != NULL)
			mbedtls_sha256(o->ticket_prev, 32, prev_name, 0);
		if ((rc = mbedtls_ssl_ticket_setup(&srv->ticket, mbedtls_ctr_drbg_random, &tls.drbg,
						   MBEDTLS_CIPHER_AES_256_GCM,
						   TLS_TICKET_LIFE)) != 0 ||
		    (o->ticket_prev != NULL &&
		     (rc = mbedtls_ssl_ticket_rotate(&srv->ticket, prev_name, 4,
						     o->ticket_prev, 32, TLS_TICKET_LIFE)) != 0) ||
		    (rc = mbedtls_ssl_ticket_rotate(&srv->ticket, name, 4,
						    o->ticket_key, 32, TLS_TICKET_LIFE)) != 0) {
			tls_error(rc, "session tickets", NULL, err, errlen);
			goto fail;
		}
		mbedtls_ssl_conf_session_tickets_cb(&srv->conf, mbedtls_ssl_ticket_write,
						    mbedtls_ssl_ticket_parse, &srv->ticket);
		srv->tickets = true;
	} else
		mbedtls_ssl_conf_session_tickets(&srv->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);

	tls_hex_fingerprint(srv->certs[0].crt.raw.p, srv->certs[0].crt.raw.len, srv->fingerprint);
	return srv;

fail:
	core_tls_server_drop(srv);
	return NULL;
}

void core_tls_server_hold(struct core_tls_server *srv)
{
	srv->refs++;
}

void core_tls_server_drop(struct core_tls_server *srv)
{
	size_t i;

	if (srv == NULL || --srv->refs > 0)
		return;
	mbedtls_ssl_config_free(&srv->conf);
	if (srv->client) {
		mbedtls_x509_crt_free(&srv->ca);
		free(srv);
		return;
	}
	mbedtls_ssl_ticket_free(&srv->ticket);
	for (i = 0; i < srv->ncerts; i++)
		cert_free(&srv->certs[i]);
	free(srv->certs);
	free(srv);
}

const char *core_tls_server_fingerprint(const struct core_tls_server *srv)
{
	return srv->fingerprint;
}

/* ---- self-signed ------------------------------------------------------------------------------ */

int core_tls_self_signed(const char *cert_path, const char *key_path, const char *name,
			 char *err, size_t errlen)
{
	mbedtls_pk_context key;
	mbedtls_x509write_cert w;
	mbedtls_x509_san_list san[2];
	unsigned char serial[16];
	unsigned char *pem = NULL;
	char subject[160];
	size_t pem_size = 8192;
	int rc, result = CORE_ERROR;

	if (access(cert_path, F_OK) == 0)
		return CORE_OK;
	if (!tls.ready && core_tls_init() != CORE_OK) {
		snprintf(err, errlen, "the crypto library did not start");
		return CORE_ERROR;
	}
	mbedtls_pk_init(&key);
	mbedtls_x509write_crt_init(&w);
	if ((pem = malloc(pem_size)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((rc = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
	    (rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
				      mbedtls_ctr_drbg_random, &tls.drbg)) != 0 ||
	    (rc = mbedtls_pk_write_key_pem(&key, pem, pem_size)) != 0) {
		tls_error(rc, "making a key", NULL, err, errlen);
		goto out;
	}
	if (core_state_write(key_path, pem, strlen((char *)pem), 0600, err, errlen) != CORE_OK)
		goto out;

	snprintf(subject, sizeof(subject), "CN=%s,O=keel", name);
	memset(san, 0, sizeof(san));
	san[0].node.type = MBEDTLS_X509_SAN_DNS_NAME;
	san[0].node.san.unstructured_name.p = (unsigned char *)name;
	san[0].node.san.unstructured_name.len = strlen(name);
	san[0].next = &san[1];
	san[1].node.type = MBEDTLS_X509_SAN_DNS_NAME;
	san[1].node.san.unstructured_name.p = (unsigned char *)"localhost";
	san[1].node.san.unstructured_name.len = 9;
	if (core_tls_random(serial, sizeof(serial)) != CORE_OK) {
		snprintf(err, errlen, "no random bytes for a serial number");
		goto out;
	}
	serial[0] &= 0x7f;	/* positive */
	serial[0] |= 0x01;	/* and no leading zero byte */
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &key);
	mbedtls_x509write_crt_set_issuer_key(&w, &key);
	if ((rc = mbedtls_x509write_crt_set_serial_raw(&w, serial, sizeof(serial))) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_name(&w, subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_issuer_name(&w, subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_validity(&w, "20260101000000", "20360101000000")) != 0 ||
	    (rc = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_alternative_name(&w, san)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0 ||
	    (rc = mbedtls_x509write_crt_pem(&w, pem, pem_size, mbedtls_ctr_drbg_random,
					    &tls.drbg)) != 0) {
		tls_error(rc, "making a certificate", NULL, err, errlen);
		unlink(key_path);
		goto out;
	}
	if (core_state_write(cert_path, pem, strlen((char *)pem), 0644, err, errlen) != CORE_OK) {
		unlink(key_path);
		goto out;
	}
	result = CORE_OK;
out:
	if (pem != NULL) {
		mbedtls_platform_zeroize(pem, pem_size);
		free(pem);
	}
	mbedtls_x509write_crt_free(&w);
	mbedtls_pk_free(&key);
	return result;
}

/* ---- connections ----------------------------------------------------------------------------- */

static ssize_t sock_send(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	do
		n = send(fd, p, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	return n;
}

/* The stash to the socket: 0 when it is empty, MBEDTLS_ERR_SSL_WANT_WRITE
 * while the socket is full, or the send error. */
static int stash_flush(struct core_tls *t)
{
	ssize_t n;

	if (t->stash_len == 0)
		return 0;
	n = sock_send(t->fd, t->stash, t->stash_len);
	if (n < 0)
		return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
	t->stash_len -= (size_t)n;
	memmove(t->stash, t->stash + n, t->stash_len);
	if (t->stash_len > 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	free(t->stash);
	t->stash = NULL;
	return 0;
}

/* The gathered flight to the socket; the rest to the stash. */
static int flight_flush(struct core_tls *t)
{
	ssize_t n = 0;

	if (tls_flight.len == 0)
		return 0;
	if (t->stash_len == 0 && (n = sock_send(t->fd, tls_flight.buf, tls_flight.len)) < 0) {
		if (errno != EAGAIN) {
			tls_flight.len = 0;
			return MBEDTLS_ERR_NET_SEND_FAILED;
		}
		n = 0;
	}
	if ((size_t)n < tls_flight.len) {
		size_t rest = tls_flight.len - (size_t)n;
		unsigned char *s = realloc(t->stash, t->stash_len + rest);

		if (s == NULL) {
			tls_flight.len = 0;
			return MBEDTLS_ERR_SSL_ALLOC_FAILED;
		}
		memcpy(s + t->stash_len, tls_flight.buf + n, rest);
		t->stash = s;
		t->stash_len += rest;
	}
	tls_flight.len = 0;
	return 0;
}

static int bio_send(void *arg, const unsigned char *p, size_t len)
{
	struct core_tls *t = arg;
	ssize_t n;
	int rc;

	if (tls_flight.owner == t) {
		if (tls_flight.len + len > sizeof(tls_flight.buf) && (rc = flight_flush(t)) != 0)
			return rc;
		if (len <= sizeof(tls_flight.buf) - tls_flight.len) {
			memcpy(tls_flight.buf + tls_flight.len, p, len);
			tls_flight.len += len;
			return (int)len;
		}
	}
	if ((rc = stash_flush(t)) != 0)		/* nothing overtakes the stash */
		return rc;
	n = sock_send(t->fd, p, len);
	if (n >= 0)
		return (int)n;
	return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *arg, unsigned char *p, size_t len)
{
	struct core_tls *t = arg;
	ssize_t n;

	do
		n = read(t->fd, p, len);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return (int)n;
	return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_NET_RECV_FAILED;
}

struct core_tls_server *core_tls_client_new(const char *ca_file, bool verify,
					    char *err, size_t errlen)
{
	struct core_tls_server *c;
	int rc;

	if (!tls.ready && core_tls_init() != CORE_OK) {
		snprintf(err, errlen, "the crypto library did not start");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->refs = 1;
	c->client = true;
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_x509_crt_init(&c->ca);
	if ((rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
					      MBEDTLS_SSL_TRANSPORT_STREAM,
					      MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		tls_error(rc, "client defaults", NULL, err, errlen);
		goto fail;
	}
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &tls.drbg);
	mbedtls_ssl_conf_min_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_ciphersuites(&c->conf, tls_suites);
	mbedtls_ssl_conf_groups(&c->conf, tls_groups);
	if (verify) {
		if (access(ca_file, R_OK) != 0) {
			snprintf(err, errlen, "CA file %s: %s", ca_file, strerror(errno));
			goto fail;
		}
		if ((rc = mbedtls_x509_crt_parse_file(&c->ca, ca_file)) < 0) {
			tls_error(rc, "CA file", ca_file, err, errlen);
			goto fail;
		}
		mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
		mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else
		mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	return c;
fail:
	core_tls_server_drop(c);
	return NULL;
}

struct core_tls *core_tls_client(struct core_tls_server *cli, int fd, const char *name)
{
	struct core_tls *t = core_tls_new(cli, fd);

	if (t == NULL)
		return NULL;
	if (mbedtls_ssl_set_hostname(&t->ssl, name != NULL && *name != '\0' ? name : NULL) != 0) {
		core_tls_free(t);
		return NULL;
	}
	t->want = CORE_IO_WRITE;	/* the ClientHello */
	return t;
}

int core_tls_verify_error(const struct core_tls *t, char *buf, size_t len)
{
	uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
	int n;

	if (flags == 0 || flags == (uint32_t)-1)
		return CORE_ERROR;
	n = mbedtls_x509_crt_verify_info(buf, len, "", flags);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ';';
	return CORE_OK;
}

struct core_tls *core_tls_new(struct core_tls_server *srv, int fd)
{
	struct core_tls *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	mbedtls_ssl_init(&t->ssl);
	if (mbedtls_ssl_setup(&t->ssl, &srv->conf) != 0) {
		mbedtls_ssl_free(&t->ssl);
		free(t);
		return NULL;
	}
	t->fd = fd;
	t->srv = srv;
	t->want = CORE_IO_READ;	/* the ClientHello */
	core_tls_server_hold(srv);
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	return t;
}

void core_tls_free(struct core_tls *t)
{
	if (t == NULL)
		return;
	mbedtls_ssl_free(&t->ssl);
	core_tls_server_drop(t->srv);
	free(t->stash);
	free(t);
}

/* Maps mbedTLS's "call again" codes; true when rc is one. */
static bool tls_again(struct core_tls *t, int rc)
{
	switch (rc) {
	case MBEDTLS_ERR_SSL_WANT_READ:
		t->want = CORE_IO_READ;
		return true;
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		t->want = CORE_IO_WRITE;
		return true;
	case MBEDTLS_ERR_SSL_ASYNC_IN_PROGRESS:
	case MBEDTLS_ERR_SSL_CRYPTO_IN_PROGRESS:
		t->want = CORE_IO_READ;
		return true;
	}
	return false;
}

int core_tls_handshake(struct core_tls *t, char *err, size_t errlen)
{
	int rc, sent;

	if ((rc = stash_flush(t)) == 0) {
		tls_flight.owner = t;
		rc = mbedtls_ssl_handshake(&t->ssl);
		tls_flight.owner = NULL;
		if ((sent = flight_flush(t)) != 0 && (rc == 0 || tls_again(t, rc)))
			rc = sent;
	}
	/* Done, or waiting to read, only once the flight has left: the peer
	 * may be waiting for it before it says anything. */
	if (t->stash_len > 0 && (rc == 0 || tls_again(t, rc)))
		rc = MBEDTLS_ERR_SSL_WANT_WRITE;
	if (rc == 0) {
		t->want = 0;
		return CORE_OK;
	}
	if (tls_again(t, rc))
		return CORE_AGAIN;
	if (rc == MBEDTLS_ERR_SSL_CONN_EOF || rc == MBEDTLS_ERR_NET_RECV_FAILED)
		snprintf(err, errlen, "the client closed the connection");
	else
		tls_error(rc, "handshake", NULL, err, errlen);
	return CORE_ERROR;
}

unsigned core_tls_want(const struct core_tls *t)
{
	return t->want;
}

ssize_t core_tls_read(struct core_tls *t, void *buf, size_t len)
{
	int rc;

	for (;;) {
		rc = mbedtls_ssl_read(&t->ssl, buf, len);
		if (rc > 0)
			return rc;
		if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
		    rc == MBEDTLS_ERR_SSL_CONN_EOF)
			return 0;
		/* A TLS 1.3 client may send tickets or key updates: go on. */
		if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		if (tls_again(t, rc))
			return CORE_AGAIN;
		return CORE_ERROR;
	}
}

ssize_t core_tls_read_buf(struct core_tls *t, struct core_buf *b)
{
	size_t room = b->max - core_buf_len(b);
	ssize_t n;
	int rc;

	if (room == 0)
		return CORE_FULL;
	if ((rc = core_buf_reserve(b, room < 2048 ? room : 2048)) != CORE_OK)
		return rc;
	n = core_tls_read(t, b->data + b->end, b->size - b->end);
	if (n > 0)
		b->end += (size_t)n;
	return n == CORE_ERROR ? -EPROTO : n;
}

size_t core_tls_pending(const struct core_tls *t)
{
	return mbedtls_ssl_get_bytes_avail(&t->ssl);
}

ssize_t core_tls_writev(struct core_tls *t, struct iovec *iov, int n)
{
	static unsigned char gather[TLS_RECORD];
	const unsigned char *p;
	size_t len = 0, want;
	ssize_t total = 0;
	int i, rc;

	for (;;) {
		/* A record the socket took only part of is retried with the
		 * same length, as mbedTLS requires; the bytes are unchanged at
		 * the front of iov. */
		want = t->pending ? t->pending : TLS_RECORD;
		len = 0;
		p = NULL;
		for (i = 0; i < n && len < want; i++) {
			size_t take = iov[i].iov_len;

			if (take == 0)
				continue;
			if (len == 0 && (take >= want || i == n - 1)) {
				/* One piece fills the record: no copy. */
				p = iov[i].iov_base;
				len = take < want ? take : want;
				break;
			}
			if (take > want - len)
				take = want - len;
			memcpy(gather + len, iov[i].iov_base, take);
			len += take;
			p = gather;
		}
		if (len == 0)
			return total;
		rc = mbedtls_ssl_write(&t->ssl, p, len);
		if (rc > 0) {
			size_t left = (size_t)rc;

			t->pending = 0;
			total += rc;
			for (i = 0; i < n && left > 0; i++) {
				size_t d = iov[i].iov_len < left ? iov[i].iov_len : left;

				iov[i].iov_base = (char *)iov[i].iov_base + d;
				iov[i].iov_len -= d;
				left -= d;
			}
			continue;
		}
		if (tls_again(t, rc)) {
			t->pending = len;
			return total;
		}
		return CORE_ERROR;
	}
}

void core_tls_close(struct core_tls *t)
{
	(void)mbedtls_ssl_close_notify(&t->ssl);
}

const char *core_tls_version(const struct core_tls *t)
{
	return mbedtls_ssl_get_version(&t->ssl);
}
