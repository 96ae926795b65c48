/*
 * An update bundle: what a vendor signs and a box takes. Streamed, checked
 * as it arrives, never held whole. Big-endian integers throughout:
 *
 *	"KEELBNDL"			magic, 8 bytes
 *	u32 M, manifest			M bytes of "key value" lines (below)
 *	u16 S, signature		ECDSA P-256 (DER) over SHA-256(manifest)
 *	block hash table		SHA-256 of each payload block, 32 bytes each
 *	payload				size bytes: the part (a unified kernel image)
 *
 * The manifest:
 *
 *	keel-bundle 1
 *	version 0.2.0
 *	arch x86_64
 *	key 3f9c0a1b2c3d4e5f		who signed: the first 8 bytes of SHA-256 of
 *					the public key (DER), in hex
 *	part uki
 *	size 18413409
 *	sha256 <64 hex>			of the payload
 *	block 65536
 *	tree <64 hex>			SHA-256 of the block hash table
 *
 * So the signature covers the table's hash, the table covers every block:
 * a two-level hash tree. The reader checks the signature before it takes
 * the table, the table before the first block, and each block before it is
 * handed on; a byte changed anywhere stops the stream at that point.
 */
#ifndef KEEL_FIRMWARE_BUNDLE_H
#define KEEL_FIRMWARE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#define BUNDLE_MAGIC		"KEELBNDL"
#define BUNDLE_MANIFEST_MAX	4096
#define BUNDLE_SIG_MAX		MBEDTLS_PK_SIGNATURE_MAX_SIZE
#define BUNDLE_BLOCK		65536
#define BUNDLE_BLOCK_MAX	(1u << 20)
#define BUNDLE_TABLE_MAX	(1u << 20)	/* 32768 blocks: 2 GiB of 64 KiB */
#define BUNDLE_VERSION_MAX	32

struct bundle_key {
	char			 id[17];	/* hex of SHA-256(DER)[0..8] */
	char			 name[48];	/* where it came from, for messages */
	mbedtls_pk_context	 pk;
};

struct bundle_manifest {
	char		 version[BUNDLE_VERSION_MAX + 1];
	char		 arch[16];
	char		 key[17];
	char		 part[16];
	uint64_t	 size;
	uint8_t		 sha256[32];
	uint32_t	 block;
	uint8_t		 tree[32];
};

enum bundle_stage {
	BUNDLE_HEAD,		/* magic and manifest length */
	BUNDLE_MANIFEST,
	BUNDLE_SIGLEN,
	BUNDLE_SIG,
	BUNDLE_TABLE,
	BUNDLE_PAYLOAD,
	BUNDLE_DONE,		/* every byte in and checked */
	BUNDLE_FAILED		/* err says why; nothing more is taken */
};

struct bundle_rd {
	/* The caller's. */
	const struct bundle_key *keys;
	size_t		 nkeys;
	/* Once the signature checks, before anything else is taken: the
	 * caller looks at the manifest and may refuse (arch, version) with a
	 * message in err. Then once per checked block, in order. Each returns
	 * 0, or -1 with err filled. */
	int		(*verified)(struct bundle_rd *rd, void *arg);
	int		(*block)(struct bundle_rd *rd, const void *data, size_t len, void *arg);
	void		*arg;

	/* Read by the caller. */
	enum bundle_stage stage;
	struct bundle_manifest m;
	const struct bundle_key *signer;
	uint64_t	 offset;	/* bundle bytes taken */
	uint64_t	 passed;	/* payload bytes checked and handed on */
	char		 err[256];

	/* The reader's own. */
	uint8_t		 hdr[12];
	size_t		 have;		/* of the current stage's bytes */
	uint32_t	 mlen;
	uint16_t	 slen;
	char		 manifest[BUNDLE_MANIFEST_MAX + 1];
	uint8_t		 sig[BUNDLE_SIG_MAX];
	uint8_t		*table;
	size_t		 tlen;
	uint8_t		*blk;
	uint64_t	 nblock;	/* blocks passed */
	mbedtls_sha256_context whole;
};

void bundle_rd_init(struct bundle_rd *rd);
/* Takes the next len bytes; 0, or -1 when the bundle is refused (rd->err,
 * and stage BUNDLE_FAILED). Bytes past the payload are refused too. */
int bundle_rd_feed(struct bundle_rd *rd, const void *buf, size_t len);
/* The stream ended: 0 when the whole bundle came and checked. */
int bundle_rd_finish(struct bundle_rd *rd);
void bundle_rd_free(struct bundle_rd *rd);

/* The manifest's lines into m; -1 with err naming the line. */
int bundle_manifest_parse(const char *text, size_t len, struct bundle_manifest *m,
			  char *err, size_t errlen);

/* A public key (PEM or DER) into key; -1 with err. */
int bundle_key_load(struct bundle_key *key, const char *name, const unsigned char *data,
		    size_t len, char *err, size_t errlen);
void bundle_key_free(struct bundle_key *key);
/* The key id of any key (public or private). */
int bundle_key_id(mbedtls_pk_context *pk, char id[17]);

/* Signs payload_path with the private key in key_path and writes the
 * bundle to out_path. rng fills a buffer with random bytes (0 on success). */
int bundle_sign(const char *key_path, const char *payload_path, const char *version,
		const char *arch, const char *out_path,
		int (*rng)(void *ctx, unsigned char *buf, size_t len), void *rng_ctx,
		char *err, size_t errlen);

#endif
