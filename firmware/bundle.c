/* Update bundles: the streaming reader that checks as it goes, and the
 * vendor's signer. See bundle.h for the format. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>

#include "bundle.h"

#define BUNDLE_FORMAT	1

static int rd_fail(struct bundle_rd *rd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int rd_fail(struct bundle_rd *rd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rd->err, sizeof(rd->err), fmt, ap);
	va_end(ap);
	rd->stage = BUNDLE_FAILED;
	return -1;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unhex(const char *s, size_t len, uint8_t *out, size_t n)
{
	size_t i;

	if (len != 2 * n)
		return -1;
	for (i = 0; i < 2 * n; i++) {
		int v = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
			s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;

		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

/* ---- the manifest ------------------------------------------------------------------------- */

static bool word_ok(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len == 0 || len > max)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(".+~_-", s[i]) != NULL))
			return false;
	return true;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int bundle_manifest_parse(const char *text, size_t len, struct bundle_manifest *m,
			  char *err, size_t errlen)
{
	enum { F_FORMAT = 1, F_VERSION = 2, F_ARCH = 4, F_KEY = 8, F_PART = 16, F_SIZE = 32,
	       F_SHA = 64, F_BLOCK = 128, F_TREE = 256, F_ALL = 511 };
	static const char *const names[] = { "keel-bundle", "version", "arch", "key", "part",
					      "size", "sha256", "block", "tree" };
	const char *p = text, *end = text + len;
	unsigned seen = 0, line = 0;

	memset(m, 0, sizeof(*m));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp, *v;
		size_t klen, vlen;
		uint64_t u;
		unsigned f, i;

		line++;
		if (nl == NULL) {
			snprintf(err, errlen, "manifest line %u: no newline at its end", line);
			return -1;
		}
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == NULL) {
			snprintf(err, errlen, "manifest line %u: not \"key value\"", line);
			return -1;
		}
		klen = (size_t)(sp - p);
		v = sp + 1;
		vlen = (size_t)(nl - v);
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i]) == klen && memcmp(names[i], p, klen) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			snprintf(err, errlen, "manifest line %u: unknown key '%.*s'", line,
				 (int)(klen > 32 ? 32 : klen), p);
			return -1;
		}
		f = 1u << i;
		if (seen & f) {
			snprintf(err, errlen, "manifest line %u: %s given twice", line, names[i]);
			return -1;
		}
		if (i == 0 && line != 1) {
			snprintf(err, errlen, "manifest line %u: keel-bundle must come first", line);
			return -1;
		}
		if (i != 0 && !(seen & F_FORMAT)) {
			snprintf(err, errlen, "not a keel bundle manifest (no keel-bundle line first)");
			return -1;
		}
		seen |= f;
		switch (f) {
		case F_FORMAT:
			if (parse_u64(v, vlen, &u) != 0 || u != BUNDLE_FORMAT) {
				snprintf(err, errlen, "bundle format %.*s: this keel reads format %d",
					 (int)(vlen > 16 ? 16 : vlen), v, BUNDLE_FORMAT);
				return -1;
			}
			break;
		case F_VERSION:
		case F_ARCH:
		case F_PART: {
			char *dst = f == F_VERSION ? m->version : f == F_ARCH ? m->arch : m->part;
			size_t max = f == F_VERSION ? sizeof(m->version) - 1 :
				     f == F_ARCH ? sizeof(m->arch) - 1 : sizeof(m->part) - 1;

			if (!word_ok(v, vlen, max)) {
				snprintf(err, errlen, "manifest line %u: bad %s (letters, digits and "
					 ".+~_- only, at most %zu)", line, names[i], max);
				return -1;
			}
			memcpy(dst, v, vlen);
			dst[vlen] = '\0';
			break;
		}
		case F_KEY:
			if (vlen != 16 || unhex(v, vlen, (uint8_t[8]){ 0 }, 8) != 0) {
				snprintf(err, errlen, "manifest line %u: key must be 16 hex digits", line);
				return -1;
			}
			memcpy(m->key, v, 16);
			m->key[16] = '\0';
			break;
		case F_SIZE:
			if (parse_u64(v, vlen, &m->size) != 0 || m->size == 0) {
				snprintf(err, errlen, "manifest line %u: bad size", line);
				return -1;
			}
			break;
		case F_SHA:
		case F_TREE:
			if (unhex(v, vlen, f == F_SHA ? m->sha256 : m->tree, 32) != 0) {
				snprintf(err, errlen, "manifest line %u: %s must be 64 hex digits", line,
					 names[i]);
				return -1;
			}
			break;
		case F_BLOCK:
			if (parse_u64(v, vlen, &u) != 0 || u < 4096 || u > BUNDLE_BLOCK_MAX ||
			    (u & (u - 1)) != 0) {
				snprintf(err, errlen, "manifest line %u: block must be a power of two "
					 "from 4096 to %u", line, BUNDLE_BLOCK_MAX);
				return -1;
			}
			m->block = (uint32_t)u;
			break;
		}
		p = nl + 1;
	}
	if (seen != F_ALL) {
		unsigned i;

		for (i = 0; (seen >> i) & 1; i++)
			;
		snprintf(err, errlen, "the manifest has no %s line", names[i]);
		return -1;
	}
	if ((m->size + m->block - 1) / m->block * 32 > BUNDLE_TABLE_MAX) {
		snprintf(err, errlen, "the payload is too large (%llu bytes in %u-byte blocks)",
			 (unsigned long long)m->size, m->block);
		return -1;
	}
	return 0;
}

/* ---- keys ------------------------------------------------------------------------------- */

/* ECDSA on P-256 itself: another 256-bit curve (secp256k1, brainpool) is not it. */
static bool is_p256(mbedtls_pk_context *pk)
{
	return mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY &&
	       mbedtls_ecp_keypair_get_group_id(mbedtls_pk_ec(*pk)) == MBEDTLS_ECP_DP_SECP256R1;
}

int bundle_key_id(mbedtls_pk_context *pk, char id[17])
{
	unsigned char der[256], sum[32];
	int n = mbedtls_pk_write_pubkey_der(pk, der, sizeof(der));

	if (n <= 0 || mbedtls_sha256(der + sizeof(der) - n, (size_t)n, sum, 0) != 0)
		return -1;
	hex(sum, 8, id);
	return 0;
}

int bundle_key_load(struct bundle_key *key, const char *name, const unsigned char *data,
		    size_t len, char *err, size_t errlen)
{
	char msg[128];
	int rc;

	memset(key, 0, sizeof(*key));
	mbedtls_pk_init(&key->pk);
	snprintf(key->name, sizeof(key->name), "%s", name);
	rc = mbedtls_pk_parse_public_key(&key->pk, data, len);
	if (rc != 0) {
		mbedtls_strerror(rc, msg, sizeof(msg));
		snprintf(err, errlen, "update key %s: %s", name, msg);
		goto fail;
	}
	if (!mbedtls_pk_can_do(&key->pk, MBEDTLS_PK_ECDSA) ||
	    !is_p256(&key->pk)) {
		snprintf(err, errlen, "update key %s: not an ECDSA P-256 key", name);
		goto fail;
	}
	if (bundle_key_id(&key->pk, key->id) != 0) {
		snprintf(err, errlen, "update key %s: cannot be written out for its id", name);
		goto fail;
	}
	return 0;
fail:
	mbedtls_pk_free(&key->pk);
	return -1;
}

void bundle_key_free(struct bundle_key *key)
{
	mbedtls_pk_free(&key->pk);
}

/* ---- the reader ------------------------------------------------------------------------------ */

void bundle_rd_init(struct bundle_rd *rd)
{
	memset(rd, 0, sizeof(*rd));
	rd->stage = BUNDLE_HEAD;
	mbedtls_sha256_init(&rd->whole);
}

void bundle_rd_free(struct bundle_rd *rd)
{
	free(rd->table);
	free(rd->blk);
	rd->table = rd->blk = NULL;
	rd->stage = BUNDLE_FAILED;	/* fed after this, it takes nothing */
	if (rd->err[0] == '\0')
		snprintf(rd->err, sizeof(rd->err), "the update was stopped");
	mbedtls_sha256_free(&rd->whole);
}

/* Takes up to want - have bytes of the stage's into dst; true when full. */
static bool rd_take(struct bundle_rd *rd, uint8_t *dst, size_t want, const uint8_t **p,
		    size_t *len)
{
	size_t n = want - rd->have;

	if (n > *len)
		n = *len;
	memcpy(dst + rd->have, *p, n);
	rd->have += n;
	*p += n;
	*len -= n;
	return rd->have == want;
}

static void rd_key_ids(const struct bundle_rd *rd, char *ids, size_t len)
{
	size_t k, used = 0;

	ids[0] = '\0';
	for (k = 0; k < rd->nkeys && used + 20 < len; k++)
		used += (size_t)snprintf(ids + used, len - used, "%s%s", k ? ", " : "",
					 rd->keys[k].id);
	if (rd->nkeys == 0)
		snprintf(ids, len, "no key at all");
}

/* The signature is checked before the manifest is believed: against each
 * trusted key, over the manifest's bytes as they came. */
static int rd_verify(struct bundle_rd *rd)
{
	char ids[160], why[sizeof(rd->err)];
	uint8_t sum[32];
	size_t i;

	if (mbedtls_sha256((const unsigned char *)rd->manifest, rd->mlen, sum, 0) != 0)
		return rd_fail(rd, "hash error");
	for (i = 0; i < rd->nkeys; i++)
		if (mbedtls_pk_verify((mbedtls_pk_context *)&rd->keys[i].pk, MBEDTLS_MD_SHA256, sum,
				      sizeof(sum), rd->sig, rd->slen) == 0)
			break;
	rd_key_ids(rd, ids, sizeof(ids));
	if (i == rd->nkeys) {
		/* Who says it signed, to tell a foreign key from a changed byte. */
		if (bundle_manifest_parse(rd->manifest, rd->mlen, &rd->m, why, sizeof(why)) == 0) {
			size_t k;

			for (k = 0; k < rd->nkeys; k++)
				if (strcmp(rd->keys[k].id, rd->m.key) == 0)
					break;
			if (k == rd->nkeys)
				return rd_fail(rd, "signed with key %s, which this keel does not "
					       "trust (it trusts %s)", rd->m.key, ids);
		}
		return rd_fail(rd, "the signature does not verify with any key this keel trusts "
			       "(%s): the manifest was changed, or another key signed it", ids);
	}
	if (bundle_manifest_parse(rd->manifest, rd->mlen, &rd->m, why, sizeof(why)) != 0)
		return rd_fail(rd, "bad manifest (signed by %s): %.200s", rd->keys[i].id, why);
	if (strcmp(rd->m.key, rd->keys[i].id) != 0)
		return rd_fail(rd, "the manifest names key %s but key %s signed it", rd->m.key,
			       rd->keys[i].id);
	rd->signer = &rd->keys[i];
	if (rd->verified != NULL && rd->verified(rd, rd->arg) != 0) {
		rd->stage = BUNDLE_FAILED;
		return -1;
	}
	rd->tlen = (size_t)((rd->m.size + rd->m.block - 1) / rd->m.block) * 32;
	rd->table = malloc(rd->tlen);
	rd->blk = malloc(rd->m.block);
	if (rd->table == NULL || rd->blk == NULL)
		return rd_fail(rd, "out of memory for the block table");
	rd->stage = BUNDLE_TABLE;
	rd->have = 0;
	return 0;
}

/* A whole block (or the last, short one) is in rd->blk. */
static int rd_block(struct bundle_rd *rd, size_t n)
{
	uint8_t sum[32];

	if (mbedtls_sha256(rd->blk, n, sum, 0) != 0 ||
	    memcmp(sum, rd->table + rd->nblock * 32, 32) != 0)
		return rd_fail(rd, "payload block %llu (bytes %llu to %llu) does not match its "
			       "hash: the bundle was changed or damaged in transit",
			       (unsigned long long)rd->nblock,
			       (unsigned long long)(rd->nblock * rd->m.block),
			       (unsigned long long)(rd->nblock * rd->m.block + n - 1));
	if (mbedtls_sha256_update(&rd->whole, rd->blk, n) != 0)
		return rd_fail(rd, "hash error");
	if (rd->block != NULL && rd->block(rd, rd->blk, n, rd->arg) != 0) {
		rd->stage = BUNDLE_FAILED;
		return -1;
	}
	rd->nblock++;
	rd->passed += n;
	rd->have = 0;
	return 0;
}

static int rd_feed(struct bundle_rd *rd, const uint8_t **p, size_t *len)
{
	uint8_t sum[32];

	while (*len > 0) {
		switch (rd->stage) {
		case BUNDLE_HEAD:
			if (!rd_take(rd, rd->hdr, sizeof(rd->hdr), p, len))
				return 0;
			if (memcmp(rd->hdr, BUNDLE_MAGIC, 8) != 0)
				return rd_fail(rd, "not a keel update bundle (it does not start "
					       "with %s)", BUNDLE_MAGIC);
			rd->mlen = be32(rd->hdr + 8);
			if (rd->mlen == 0 || rd->mlen > BUNDLE_MANIFEST_MAX)
				return rd_fail(rd, "manifest length %u (at most %d)", rd->mlen,
					       BUNDLE_MANIFEST_MAX);
			rd->stage = BUNDLE_MANIFEST;
			rd->have = 0;
			break;
		case BUNDLE_MANIFEST:
			if (!rd_take(rd, (uint8_t *)rd->manifest, rd->mlen, p, len))
				return 0;
			rd->manifest[rd->mlen] = '\0';
			rd->stage = BUNDLE_SIGLEN;
			rd->have = 0;
			break;
		case BUNDLE_SIGLEN:
			if (!rd_take(rd, rd->hdr, 2, p, len))
				return 0;
			rd->slen = (uint16_t)(rd->hdr[0] << 8 | rd->hdr[1]);
			if (rd->slen == 0 || rd->slen > BUNDLE_SIG_MAX)
				return rd_fail(rd, "signature length %u (at most %d)", rd->slen,
					       BUNDLE_SIG_MAX);
			rd->stage = BUNDLE_SIG;
			rd->have = 0;
			break;
		case BUNDLE_SIG:
			if (!rd_take(rd, rd->sig, rd->slen, p, len))
				return 0;
			if (rd_verify(rd) != 0)
				return -1;
			break;
		case BUNDLE_TABLE:
			if (!rd_take(rd, rd->table, rd->tlen, p, len))
				return 0;
			if (mbedtls_sha256(rd->table, rd->tlen, sum, 0) != 0 ||
			    memcmp(sum, rd->m.tree, 32) != 0)
				return rd_fail(rd, "the block hash table does not match the signed "
					       "manifest: the bundle was changed");
			if (mbedtls_sha256_starts(&rd->whole, 0) != 0)
				return rd_fail(rd, "hash error");
			rd->stage = BUNDLE_PAYLOAD;
			rd->have = 0;
			break;
		case BUNDLE_PAYLOAD: {
			uint64_t left = rd->m.size - rd->passed;
			size_t want = left < rd->m.block ? (size_t)left : rd->m.block;

			if (!rd_take(rd, rd->blk, want, p, len))
				return 0;
			if (rd_block(rd, want) != 0)
				return -1;
			if (rd->passed == rd->m.size) {
				if (mbedtls_sha256_finish(&rd->whole, sum) != 0 ||
				    memcmp(sum, rd->m.sha256, 32) != 0)
					return rd_fail(rd, "the payload's SHA-256 does not match "
						       "the manifest");
				rd->stage = BUNDLE_DONE;
			}
			break;
		}
		case BUNDLE_DONE:
			return rd_fail(rd, "%zu bytes after the end of the payload", *len);
		case BUNDLE_FAILED:
			return -1;
		}
	}
	return 0;
}

int bundle_rd_feed(struct bundle_rd *rd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int rc;

	if (rd->stage == BUNDLE_FAILED)
		return -1;
	rc = rd_feed(rd, &p, &len);
	rd->offset += (uint64_t)(p - (const uint8_t *)buf);
	return rc;
}

int bundle_rd_finish(struct bundle_rd *rd)
{
	static const char *const where[] = { "its header", "its manifest", "its signature",
					     "its signature", "its block table", "its payload" };

	if (rd->stage == BUNDLE_DONE)
		return 0;
	if (rd->stage == BUNDLE_FAILED)
		return -1;
	if (rd->stage == BUNDLE_PAYLOAD)
		return rd_fail(rd, "the bundle ends in its payload, after %llu of %llu bytes",
			       (unsigned long long)(rd->passed + rd->have),
			       (unsigned long long)rd->m.size);
	return rd_fail(rd, "the bundle ends in %s (%llu bytes in all)", where[rd->stage],
		       (unsigned long long)rd->offset);
}

/* ---- the signer ------------------------------------------------------------------------------ */

int bundle_sign(const char *key_path, const char *payload_path, const char *version,
		const char *arch, const char *out_path,
		int (*rng)(void *ctx, unsigned char *buf, size_t len), void *rng_ctx,
		char *err, size_t errlen)
{
	mbedtls_pk_context pk;
	mbedtls_sha256_context whole;
	struct bundle_manifest check;
	unsigned char sig[BUNDLE_SIG_MAX], sum[32], tree[32];
	char manifest[BUNDLE_MANIFEST_MAX], keyid[17], sumhex[65], treehex[65], msg[128];
	uint8_t *table = NULL, *blk = NULL, hdr[12];
	FILE *in = NULL, *out = NULL;
	size_t siglen, nblocks, i, n;
	long long size;
	int mlen, rc = -1;

	mbedtls_pk_init(&pk);
	mbedtls_sha256_init(&whole);
	if ((rc = mbedtls_pk_parse_keyfile(&pk, key_path, NULL, rng, rng_ctx)) != 0) {
		mbedtls_strerror(rc, msg, sizeof(msg));
		snprintf(err, errlen, "%s: %s", key_path, msg);
		rc = -1;
		goto out;
	}
	rc = -1;
	if (!mbedtls_pk_can_do(&pk, MBEDTLS_PK_ECDSA) ||
	    !is_p256(&pk)) {
		snprintf(err, errlen, "%s: not an ECDSA P-256 private key", key_path);
		goto out;
	}
	if (bundle_key_id(&pk, keyid) != 0) {
		snprintf(err, errlen, "%s: cannot compute the key id", key_path);
		goto out;
	}
	if ((in = fopen(payload_path, "rb")) == NULL || fseek(in, 0, SEEK_END) != 0 ||
	    (size = ftell(in)) < 0 || fseek(in, 0, SEEK_SET) != 0) {
		snprintf(err, errlen, "%s: %s", payload_path, strerror(errno));
		goto out;
	}
	if (size == 0) {
		snprintf(err, errlen, "%s: empty", payload_path);
		goto out;
	}
	nblocks = (size_t)((size + BUNDLE_BLOCK - 1) / BUNDLE_BLOCK);
	if (nblocks * 32 > BUNDLE_TABLE_MAX) {
		snprintf(err, errlen, "%s: too large for a bundle", payload_path);
		goto out;
	}
	table = malloc(nblocks * 32);
	blk = malloc(BUNDLE_BLOCK);
	if (table == NULL || blk == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	mbedtls_sha256_starts(&whole, 0);
	for (i = 0; i < nblocks; i++) {
		n = fread(blk, 1, BUNDLE_BLOCK, in);
		if (n == 0 || (n < BUNDLE_BLOCK && i + 1 < nblocks)) {
			snprintf(err, errlen, "%s: short read", payload_path);
			goto out;
		}
		mbedtls_sha256(blk, n, table + i * 32, 0);
		mbedtls_sha256_update(&whole, blk, n);
	}
	mbedtls_sha256_finish(&whole, sum);
	mbedtls_sha256(table, nblocks * 32, tree, 0);
	hex(sum, 32, sumhex);
	hex(tree, 32, treehex);
	mlen = snprintf(manifest, sizeof(manifest),
			"keel-bundle %d\nversion %s\narch %s\nkey %s\npart uki\nsize %lld\n"
			"sha256 %s\nblock %d\ntree %s\n", BUNDLE_FORMAT, version, arch, keyid, size,
			sumhex, BUNDLE_BLOCK, treehex);
	if (mlen <= 0 || (size_t)mlen >= sizeof(manifest) ||
	    bundle_manifest_parse(manifest, (size_t)mlen, &check, err, errlen) != 0)
		goto out;
	mbedtls_sha256((unsigned char *)manifest, (size_t)mlen, sum, 0);
	if ((rc = mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, sum, sizeof(sum), sig, sizeof(sig),
				  &siglen, rng, rng_ctx)) != 0) {
		mbedtls_strerror(rc, msg, sizeof(msg));
		snprintf(err, errlen, "signing: %s", msg);
		rc = -1;
		goto out;
	}
	rc = -1;
	if ((out = fopen(out_path, "wb")) == NULL) {
		snprintf(err, errlen, "%s: %s", out_path, strerror(errno));
		goto out;
	}
	memcpy(hdr, BUNDLE_MAGIC, 8);
	hdr[8] = (uint8_t)(mlen >> 24);
	hdr[9] = (uint8_t)(mlen >> 16);
	hdr[10] = (uint8_t)(mlen >> 8);
	hdr[11] = (uint8_t)mlen;
	fwrite(hdr, 1, 12, out);
	fwrite(manifest, 1, (size_t)mlen, out);
	hdr[0] = (uint8_t)(siglen >> 8);
	hdr[1] = (uint8_t)siglen;
	fwrite(hdr, 1, 2, out);
	fwrite(sig, 1, siglen, out);
	fwrite(table, 1, nblocks * 32, out);
	/* The payload again, exactly as hashed: a file that changed meanwhile
	 * makes no bundle. */
	rewind(in);
	mbedtls_sha256_starts(&whole, 0);
	for (i = 0; i < nblocks; i++) {
		n = fread(blk, 1, BUNDLE_BLOCK, in);
		mbedtls_sha256(blk, n, tree, 0);
		if (n == 0 || memcmp(tree, table + i * 32, 32) != 0) {
			snprintf(err, errlen, "%s changed while it was being signed", payload_path);
			goto out;
		}
		fwrite(blk, 1, n, out);
	}
	if (ferror(in) || ferror(out) || fflush(out) != 0) {
		snprintf(err, errlen, "%s: write error: %s", out_path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0 && rc == 0) {
		snprintf(err, errlen, "%s: %s", out_path, strerror(errno));
		rc = -1;
	}
	free(table);
	free(blk);
	mbedtls_sha256_free(&whole);
	mbedtls_pk_free(&pk);
	return rc;
}
