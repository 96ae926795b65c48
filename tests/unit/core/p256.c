/* Tests of core/p256.c, keel's ECDSA signing for mbedTLS: RFC 6979's
 * P-256 vector through mbedTLS's deterministic API, k*G from the table
 * against mbedTLS's own point multiplication for edge and random scalars,
 * random signatures checked by mbedTLS's verifier (and a changed hash
 * refused), and P-384 through the general path. */
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <psa/crypto.h>

#include "runner.h"
#include "core/p256.c"

static int some_random(void *ctx, unsigned char *out, size_t len)
{
	unsigned *state = ctx;

	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)((*state = *state * 1103515245 + 12345) >> 16);
	return 0;
}

static void unhex(unsigned char *out, size_t len, const char *hex)
{
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
		out[i] = (unsigned char)v;
	}
}

static void check_mpi(const mbedtls_mpi *x, const char *hex, const char *what)
{
	unsigned char want[32], got[32];

	unhex(want, 32, hex);
	CHECK(mbedtls_mpi_write_binary(x, got, 32) == 0);
	if (memcmp(want, got, 32) != 0)
		test_fail(__FILE__, __LINE__, "%s is not RFC 6979's", what);
}

/* RFC 6979 A.2.5: P-256, SHA-256, "sample": the same r and s as the RFC. */
TEST(rfc_6979_p256_sample)
{
	mbedtls_ecp_group grp;
	mbedtls_mpi d, r, s;
	unsigned char hash[32], key[32];

	mbedtls_ecp_group_init(&grp);
	mbedtls_mpi_init(&d);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0);
	unhex(key, 32, "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
	CHECK(mbedtls_mpi_read_binary(&d, key, 32) == 0);
	CHECK(mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
			 (const unsigned char *)"sample", 6, hash) == 0);
	CHECK(mbedtls_ecdsa_sign_det_ext(&grp, &r, &s, &d, hash, 32, MBEDTLS_MD_SHA256,
					 NULL, NULL) == 0);
	check_mpi(&r, "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716", "r");
	check_mpi(&s, "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8", "s");
	mbedtls_mpi_free(&s);
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&d);
	mbedtls_ecp_group_free(&grp);
}

/* k*G from keel's table against mbedTLS's comb. */
static void check_base_mul(mbedtls_ecp_group *grp, const unsigned char k[32], unsigned *seed)
{
	mbedtls_ecp_point want;
	mbedtls_mpi m;
	struct aff got;
	u64 x[4], y[4], wx[4], wy[4];

	mbedtls_ecp_point_init(&want);
	mbedtls_mpi_init(&m);
	CHECK(mbedtls_mpi_read_binary(&m, k, 32) == 0);
	CHECK(mbedtls_ecp_mul(grp, &want, &m, &grp->G, some_random, seed) == 0);
	CHECK(limbs_from_mpi(wx, &want.MBEDTLS_PRIVATE(X)) == 0);
	CHECK(limbs_from_mpi(wy, &want.MBEDTLS_PRIVATE(Y)) == 0);
	base_mul(&got, k);
	from_mont(x, got.x, &p256.p);
	from_mont(y, got.y, &p256.p);
	if (memcmp(x, wx, sizeof(x)) != 0 || memcmp(y, wy, sizeof(y)) != 0)
		test_fail(__FILE__, __LINE__, "k*G differs for k = %02x%02x...%02x%02x",
			  k[0], k[1], k[30], k[31]);
	mbedtls_mpi_free(&m);
	mbedtls_ecp_point_free(&want);
}

TEST(table_multiplication_matches_mbedtls)
{
	mbedtls_ecp_group grp;
	unsigned char k[32], n[32];
	unsigned seed = 99;

	CHECK(core_p256_init() == 0);
	mbedtls_ecp_group_init(&grp);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0);
	CHECK(mbedtls_mpi_write_binary(&grp.N, n, 32) == 0);

	/* 1, 2, 15, 16, 17: the first row's ends and the step to the next */
	for (int v = 1; v <= 17; v++) {
		memset(k, 0, 32);
		k[31] = (unsigned char)v;
		check_base_mul(&grp, k, &seed);
	}
	/* n - 1 and n - 2: every window set, the last sums near the order */
	memcpy(k, n, 32);
	k[31] -= 1;
	check_base_mul(&grp, k, &seed);
	k[31] -= 1;
	check_base_mul(&grp, k, &seed);
	/* one non-zero window only, in each position */
	for (int i = 0; i < 64; i++) {
		memset(k, 0, 32);
		k[31 - i / 2] = (unsigned char)(i % 2 ? 0x90 : 0x0b);
		check_base_mul(&grp, k, &seed);
	}
	/* every window 0xf below the top */
	memset(k, 0xff, 32);
	k[0] = 0x0f;
	check_base_mul(&grp, k, &seed);
	for (int i = 0; i < 200; i++) {
		some_random(&seed, k, 32);
		k[0] &= 0x7f;			/* below n */
		check_base_mul(&grp, k, &seed);
	}
	mbedtls_ecp_group_free(&grp);
}

/* Signatures on random keys and hashes, checked by mbedTLS's verifier. */
static void sign_and_verify(mbedtls_ecp_group_id id, int rounds)
{
	mbedtls_ecp_keypair key;
	mbedtls_mpi r, s;
	unsigned char hash[48];
	unsigned seed = 4242 + id;

	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	for (int i = 0; i < rounds; i++) {
		mbedtls_ecp_keypair_init(&key);
		CHECK(mbedtls_ecp_gen_key(id, &key, some_random, &seed) == 0);
		some_random(&seed, hash, sizeof(hash));
		CHECK(mbedtls_ecdsa_sign(&key.MBEDTLS_PRIVATE(grp), &r, &s, &key.MBEDTLS_PRIVATE(d),
					 hash, sizeof(hash), some_random, &seed) == 0);
		if (mbedtls_ecdsa_verify(&key.MBEDTLS_PRIVATE(grp), hash, sizeof(hash),
					 &key.MBEDTLS_PRIVATE(Q), &r, &s) != 0)
			test_fail(__FILE__, __LINE__, "signature %d on curve %d does not verify", i, id);
		hash[i % 32] ^= 0x20;		/* within what every curve reads */
		if (mbedtls_ecdsa_verify(&key.MBEDTLS_PRIVATE(grp), hash, sizeof(hash),
					 &key.MBEDTLS_PRIVATE(Q), &r, &s) == 0)
			test_fail(__FILE__, __LINE__, "signature %d verifies a changed hash", i);
		mbedtls_ecp_keypair_free(&key);
	}
	mbedtls_mpi_free(&s);
	mbedtls_mpi_free(&r);
}

TEST(p256_signatures_verify)
{
	sign_and_verify(MBEDTLS_ECP_DP_SECP256R1, 100);
}

TEST(p384_takes_the_general_path_and_verifies)
{
	CHECK(psa_crypto_init() == PSA_SUCCESS);	/* its blinding draws from PSA */
	sign_and_verify(MBEDTLS_ECP_DP_SECP384R1, 10);
}

TEST(keys_out_of_range_are_refused)
{
	mbedtls_ecp_group grp;
	mbedtls_mpi d, r, s;
	unsigned char hash[32] = { 1 };
	unsigned seed = 5;

	mbedtls_ecp_group_init(&grp);
	mbedtls_mpi_init(&d);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0);
	CHECK(mbedtls_mpi_lset(&d, 0) == 0);
	CHECK(mbedtls_ecdsa_sign(&grp, &r, &s, &d, hash, 32, some_random, &seed) ==
	      MBEDTLS_ERR_ECP_INVALID_KEY);
	CHECK(mbedtls_mpi_copy(&d, &grp.N) == 0);
	CHECK(mbedtls_ecdsa_sign(&grp, &r, &s, &d, hash, 32, some_random, &seed) ==
	      MBEDTLS_ERR_ECP_INVALID_KEY);
	mbedtls_ecp_group_free(&grp);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) == 0);
	CHECK(mbedtls_mpi_lset(&d, 5) == 0);
	CHECK(mbedtls_ecdsa_sign(&grp, &r, &s, &d, hash, 32, some_random, &seed) ==
	      MBEDTLS_ERR_ECP_BAD_INPUT_DATA);
	mbedtls_mpi_free(&s);
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&d);
	mbedtls_ecp_group_free(&grp);
}
