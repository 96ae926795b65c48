/* Tests of firmware/bundle.c: a bundle signed here streams back through
 * the reader in pieces of any size; a byte changed anywhere, a key not
 * trusted, a cut or an overlong stream is refused, and no block after the
 * change is ever handed on. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>

#include "runner.h"
#include "core/core.h"
#include "core/tls.h"
#include "firmware/bundle.c"

#define PAYLOAD	(3 * BUNDLE_BLOCK + 1234)	/* a short last block */

struct sink {
	uint8_t	*got;
	size_t	 len;
	int	 verified;
};

static int rng(void *ctx, unsigned char *buf, size_t len)
{
	(void)ctx;
	return core_tls_random(buf, len) == CORE_OK ? 0 : -1;
}

/* A fresh key pair: the private key as a PEM file, the public one loaded. */
static void keypair(char *path, struct bundle_key *pub)
{
	mbedtls_pk_context pk;
	unsigned char der[256];
	char err[200];
	int n, fd;
	FILE *f;

	mbedtls_pk_init(&pk);
	CHECK(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0);
	CHECK(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk), rng, NULL) == 0);
	strcpy(path, "/tmp/keel-bundle-key-XXXXXX");
	fd = mkstemp(path);
	CHECK(fd != -1);
	f = fdopen(fd, "w");
	{
		unsigned char pem[1024];

		CHECK(mbedtls_pk_write_key_pem(&pk, pem, sizeof(pem)) == 0);
		fputs((char *)pem, f);
	}
	fclose(f);
	n = mbedtls_pk_write_pubkey_der(&pk, der, sizeof(der));
	CHECK(n > 0);
	CHECK(bundle_key_load(pub, "test", der + sizeof(der) - n, (size_t)n, err, sizeof(err)) == 0);
	mbedtls_pk_free(&pk);
}

static uint8_t *make_bundle(const char *key, size_t *len, uint8_t **payload)
{
	char in[] = "/tmp/keel-bundle-in-XXXXXX", out[] = "/tmp/keel-bundle-out-XXXXXX", err[300];
	uint8_t *p = malloc(PAYLOAD), *b;
	FILE *f;
	long n;
	size_t i;
	int fd;

	for (i = 0; i < PAYLOAD; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 9));
	fd = mkstemp(in);
	CHECK(fd != -1 && write(fd, p, PAYLOAD) == PAYLOAD);
	close(fd);
	fd = mkstemp(out);
	close(fd);
	CHECK(bundle_sign(key, in, "1.2.3", "x86_64", out, rng, NULL, err, sizeof(err)) == 0);
	f = fopen(out, "rb");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n);
	CHECK(fread(b, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	unlink(in);
	unlink(out);
	*len = (size_t)n;
	*payload = p;
	return b;
}

static int on_verified(struct bundle_rd *rd, void *arg)
{
	struct sink *s = arg;

	(void)rd;
	s->verified++;
	return 0;
}

static int on_block(struct bundle_rd *rd, const void *data, size_t len, void *arg)
{
	struct sink *s = arg;

	(void)rd;
	memcpy(s->got + s->len, data, len);
	s->len += len;
	return 0;
}

/* Feeds b in pieces of step; the result of finish, or -1 at the first refusal. */
static int stream(const uint8_t *b, size_t len, size_t step, struct bundle_key *keys, size_t nkeys,
		  struct sink *s, char *err, size_t errlen)
{
	struct bundle_rd rd;
	size_t i;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	s->got = malloc(PAYLOAD + BUNDLE_BLOCK);
	bundle_rd_init(&rd);
	rd.keys = keys;
	rd.nkeys = nkeys;
	rd.verified = on_verified;
	rd.block = on_block;
	rd.arg = s;
	for (i = 0; i < len && rc == 0; i += step)
		rc = bundle_rd_feed(&rd, b + i, len - i < step ? len - i : step);
	if (rc == 0)
		rc = bundle_rd_finish(&rd);
	snprintf(err, errlen, "%s", rd.err);
	bundle_rd_free(&rd);
	return rc;
}

TEST(a_signed_bundle_streams_back_whole_in_pieces_of_any_size)
{
	static const size_t steps[] = { 1, 7, 4096, BUNDLE_BLOCK, 1 << 20 };
	struct bundle_key key;
	char path[64], err[300];
	uint8_t *b, *payload;
	struct sink s;
	size_t len, i;

	keypair(path, &key);
	b = make_bundle(path, &len, &payload);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		CHECK(stream(b, len, steps[i], &key, 1, &s, err, sizeof(err)) == 0);
		CHECK_INT(s.verified, ==, 1);
		CHECK_INT(s.len, ==, PAYLOAD);
		CHECK(memcmp(s.got, payload, PAYLOAD) == 0);
		free(s.got);
	}
	unlink(path);
	free(b);
	free(payload);
	bundle_key_free(&key);
}

TEST(a_byte_changed_anywhere_is_refused_and_nothing_after_it_is_handed_on)
{
	struct bundle_key key;
	char path[64], err[300];
	uint8_t *b, *payload;
	struct sink s;
	size_t len, i, head;

	keypair(path, &key);
	b = make_bundle(path, &len, &payload);
	head = len - PAYLOAD;		/* magic, manifest, signature, table */
	for (i = 0; i < len; i += (i < head ? 1 : 4099)) {
		b[i] ^= 0x20;
		CHECK(stream(b, len, 1000, &key, 1, &s, err, sizeof(err)) != 0);
		/* What was handed on came before the changed byte, checked. */
		CHECK(i < head ? s.len == 0 : s.len <= i - head);
		CHECK(memcmp(s.got, payload, s.len) == 0);
		CHECK(err[0] != '\0');
		free(s.got);
		b[i] ^= 0x20;
	}
	unlink(path);
	free(b);
	free(payload);
	bundle_key_free(&key);
}

TEST(another_key_a_cut_and_bytes_past_the_end_are_refused_with_reasons)
{
	struct bundle_key key, other;
	char path[64], path2[64], err[300];
	uint8_t *b, *payload, *longer;
	struct sink s;
	size_t len;

	keypair(path, &key);
	keypair(path2, &other);
	b = make_bundle(path, &len, &payload);
	CHECK(stream(b, len, 512, &other, 1, &s, err, sizeof(err)) != 0);
	CHECK(strstr(err, "does not trust") != NULL);
	CHECK_INT(s.verified, ==, 0);
	free(s.got);
	CHECK(stream(b, len, 512, NULL, 0, &s, err, sizeof(err)) != 0);
	CHECK(strstr(err, "no key at all") != NULL);
	free(s.got);
	CHECK(stream(b, len - 1, 512, &key, 1, &s, err, sizeof(err)) != 0);
	CHECK(strstr(err, "ends in its payload") != NULL);
	free(s.got);
	CHECK(stream(b, 100, 512, &key, 1, &s, err, sizeof(err)) != 0);
	CHECK(strstr(err, "ends in its manifest") != NULL);
	free(s.got);
	longer = malloc(len + 1);
	memcpy(longer, b, len);
	longer[len] = 0;
	CHECK(stream(longer, len + 1, 512, &key, 1, &s, err, sizeof(err)) != 0);
	CHECK(strstr(err, "after the end") != NULL);
	free(s.got);
	memcpy(longer, "KEELBNDX", 8);
	CHECK(stream(longer, len, 512, &key, 1, &s, err, sizeof(err)) != 0);
	CHECK(strstr(err, "not a keel update bundle") != NULL);
	free(s.got);
	unlink(path);
	unlink(path2);
	free(longer);
	free(b);
	free(payload);
	bundle_key_free(&key);
	bundle_key_free(&other);
}

TEST(the_manifest_parser_names_the_line)
{
	struct bundle_manifest m;
	char err[200];
	const char *ok = "keel-bundle 1\nversion 1.0\narch x86_64\nkey 0011223344556677\n"
			 "part uki\nsize 10\nsha256 "
			 "0000000000000000000000000000000000000000000000000000000000000000\n"
			 "block 65536\ntree "
			 "0000000000000000000000000000000000000000000000000000000000000000\n";
	char buf[600];

	CHECK(bundle_manifest_parse(ok, strlen(ok), &m, err, sizeof(err)) == 0);
	CHECK_STR(m.version, "1.0");
	CHECK(m.size == 10 && m.block == 65536);
	snprintf(buf, sizeof(buf), "%sversion 2\n", ok);
	CHECK(bundle_manifest_parse(buf, strlen(buf), &m, err, sizeof(err)) != 0);
	CHECK(strstr(err, "line 10: version given twice") != NULL);
	CHECK(bundle_manifest_parse(ok, strlen(ok) - 1, &m, err, sizeof(err)) != 0);
	CHECK(strstr(err, "no newline") != NULL);
	CHECK(bundle_manifest_parse(ok + 14, strlen(ok) - 14, &m, err, sizeof(err)) != 0);
	CHECK(strstr(err, "keel-bundle line first") != NULL);
	snprintf(buf, sizeof(buf), "%s", ok);
	memcpy(strstr(buf, "block 65536"), "block 65535", 11);
	CHECK(bundle_manifest_parse(buf, strlen(buf), &m, err, sizeof(err)) != 0);
	CHECK(strstr(err, "power of two") != NULL);
	snprintf(buf, sizeof(buf), "%s", ok);
	memcpy(strstr(buf, "version 1.0"), "version 1/0", 11);
	CHECK(bundle_manifest_parse(buf, strlen(buf), &m, err, sizeof(err)) != 0);
	CHECK(strstr(err, "line 2: bad version") != NULL);
	CHECK(bundle_manifest_parse("keel-bundle 1\n", 14, &m, err, sizeof(err)) != 0);
	CHECK(strstr(err, "no version line") != NULL);
}
