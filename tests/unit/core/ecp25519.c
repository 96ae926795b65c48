/* Tests of core/ecp25519.c, keel's X25519 for mbedTLS: RFC 7748's vectors
 * and its 1 000 iterations through mbedTLS's ladder with keel's step and
 * inversion, and through keel's whole ladder (mbedtls_ecp_mul as the link
 * wraps it, and mbedtls_ecdh_compute_shared), three more from a plain Python rendering of RFC
 * 7748's ladder, the two paths against each other, keys of small order
 * refused, and P-256 left to mbedTLS. */
#include <stdbool.h>

#include <mbedtls/ecdh.h>
#include <mbedtls/ecp.h>

#include "runner.h"
#include "core/ecp25519.c"

static int some_random(void *ctx, unsigned char *out, size_t len)
{
	unsigned *state = ctx;

	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)((*state = *state * 1103515245 + 12345) >> 16);
	return 0;
}

static void unhex(unsigned char *out, const char *hex)
{
	for (int i = 0; i < 32; i++) {
		unsigned v;

		CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
		out[i] = (unsigned char)v;
	}
}

/* RFC 7748's X25519(k, u), both little-endian, clamped and masked as it
 * says: through mbedtls_ecp_mul as mbedTLS's other files call it (the link
 * wraps it: keel's ladder) or, with real set, mbedTLS's own ladder with
 * keel's step and inversion (what calls from inside ecp.c take). */
static void x25519_by(unsigned char out[32], const unsigned char k[32],
		      const unsigned char u[32], bool real)
{
	unsigned char kb[32], ub[32];
	mbedtls_ecp_group grp;
	mbedtls_ecp_point P, R;
	mbedtls_mpi m;
	unsigned seed = 1;

	memcpy(kb, k, 32);
	kb[0] &= 248;
	kb[31] = (kb[31] & 127) | 64;
	memcpy(ub, u, 32);
	ub[31] &= 127;
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&P);
	mbedtls_ecp_point_init(&R);
	mbedtls_mpi_init(&m);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) == 0);
	CHECK(mbedtls_mpi_read_binary_le(&m, kb, 32) == 0);
	CHECK(mbedtls_mpi_read_binary_le(&P.MBEDTLS_PRIVATE(X), ub, 32) == 0);
	CHECK(mbedtls_mpi_lset(&P.MBEDTLS_PRIVATE(Z), 1) == 0);
	if (real)
		CHECK(__real_mbedtls_ecp_mul(&grp, &R, &m, &P, some_random, &seed) == 0);
	else
		CHECK(mbedtls_ecp_mul(&grp, &R, &m, &P, some_random, &seed) == 0);
	CHECK(mbedtls_mpi_write_binary_le(&R.MBEDTLS_PRIVATE(X), out, 32) == 0);
	mbedtls_mpi_free(&m);
	mbedtls_ecp_point_free(&R);
	mbedtls_ecp_point_free(&P);
	mbedtls_ecp_group_free(&grp);
}

static void x25519(unsigned char out[32], const unsigned char k[32], const unsigned char u[32])
{
	x25519_by(out, k, u, true);
}

/* The same through the ECDH shared-secret function: keel's own ladder,
 * after mbedTLS's checks of both keys. Its return code. */
static int x25519_ecdh(unsigned char out[32], const unsigned char k[32], const unsigned char u[32])
{
	unsigned char kb[32], ub[32];
	mbedtls_ecp_group grp;
	mbedtls_ecp_point Q;
	mbedtls_mpi d, z;
	unsigned seed = 7;
	int rc;

	memcpy(kb, k, 32);
	kb[0] &= 248;
	kb[31] = (kb[31] & 127) | 64;
	memcpy(ub, u, 32);
	ub[31] &= 127;
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&Q);
	mbedtls_mpi_init(&d);
	mbedtls_mpi_init(&z);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) == 0);
	CHECK(mbedtls_mpi_read_binary_le(&d, kb, 32) == 0);
	CHECK(mbedtls_mpi_read_binary_le(&Q.MBEDTLS_PRIVATE(X), ub, 32) == 0);
	CHECK(mbedtls_mpi_lset(&Q.MBEDTLS_PRIVATE(Z), 1) == 0);
	rc = mbedtls_ecdh_compute_shared(&grp, &z, &Q, &d, some_random, &seed);
	if (rc == 0)
		CHECK(mbedtls_mpi_write_binary_le(&z, out, 32) == 0);
	mbedtls_mpi_free(&z);
	mbedtls_mpi_free(&d);
	mbedtls_ecp_point_free(&Q);
	mbedtls_ecp_group_free(&grp);
	return rc;
}

static void check_vector(const char *k, const char *u, const char *want)
{
	unsigned char kb[32], ub[32], wb[32], got[32];

	unhex(kb, k);
	unhex(ub, u);
	unhex(wb, want);
	x25519(got, kb, ub);
	if (memcmp(got, wb, 32) != 0)
		test_fail(__FILE__, __LINE__, "X25519(%.8s..., %.8s...) is wrong", k, u);
	memset(got, 0, sizeof(got));
	x25519_by(got, kb, ub, false);
	if (memcmp(got, wb, 32) != 0)
		test_fail(__FILE__, __LINE__, "wrapped X25519(%.8s..., %.8s...) is wrong", k, u);
	memset(got, 0, sizeof(got));
	if (x25519_ecdh(got, kb, ub) != 0 || memcmp(got, wb, 32) != 0)
		test_fail(__FILE__, __LINE__, "ECDH X25519(%.8s..., %.8s...) is wrong", k, u);
}

TEST(rfc_7748_vectors_and_python_ones)
{
	check_vector("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
		     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
		     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
	check_vector("9f41bd5bcbb0f1d7bda6ec8707d777c6f13fa60de6281c5f78de3f618b1a923f",
		     "03bb3768472eeadec46328c3cc12239e9e71202100f8df0135c637f5fb2adf2a",
		     "f99b31e0e27e70d31b85c8f3c4d703ce4885a36b4ed1720c1fd3447206a5456e");
	check_vector("4a50f6328ae0ada0342ef0f7b032f7f7e4624c055c6a2aef254310544dd19a96",
		     "0098adb556104f5ad14e7bb2502f7b78b42d0e41f9f005f3bf5bd867048cc96b",
		     "688a86ee9d377d7abd269bb99cb01a58dc29ed2a691bb5901004a36b7711367d");
	check_vector("5d6094d702730bb52e9ff4f4321ec13eedd1f17658835ae48640c6761b96bfc7",
		     "cc5edc4b096ef2fa173557839c5ceb255746ecb38b174faf514e2dcc14a026b8",
		     "7a43ee1e4ceaf56f6c0021959f7dd05084580cb15a80420ba2aa6d895994c36a");
	/* u = 2^255 - 1 once masked: above p, so 18 */
	check_vector("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
		     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		     "76b00406ce7e87774c0038dd8d89b188047977f8828ca1dcb8f98bb5d5d0cf48");
}

TEST(rfc_7748_iterated_a_thousand_times)
{
	unsigned char k[32] = { 9 }, u[32] = { 9 }, r[32], want1[32], want1000[32];

	unhex(want1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
	unhex(want1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
	for (int i = 0; i < 1000; i++) {
		if (i % 3 == 0)
			x25519(r, k, u);
		else if (i % 3 == 1)
			x25519_by(r, k, u, false);
		else
			CHECK(x25519_ecdh(r, k, u) == 0);
		memcpy(u, k, 32);
		memcpy(k, r, 32);
		if (i == 0)
			CHECK(memcmp(k, want1, 32) == 0);
	}
	CHECK(memcmp(k, want1000, 32) == 0);
}

TEST(only_curve25519_takes_this_code)
{
	mbedtls_ecp_group grp;

	mbedtls_ecp_group_init(&grp);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) == 0);
	CHECK(mbedtls_internal_ecp_grp_capable(&grp));
	mbedtls_ecp_group_free(&grp);
	CHECK(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0);
	CHECK(!mbedtls_internal_ecp_grp_capable(&grp));
	mbedtls_ecp_group_free(&grp);
}

/* mbedTLS's ladder with keel's step against keel's whole ladder, both ways
 * it is reached. */
TEST(both_ladders_agree_on_random_keys)
{
	unsigned char k[32], u[32], a[32], b[32];
	unsigned seed = 12345;

	for (int i = 0; i < 200; i++) {
		some_random(&seed, k, sizeof(k));
		some_random(&seed, u, sizeof(u));
		x25519(a, k, u);
		if (x25519_ecdh(b, k, u) != 0 || memcmp(a, b, 32) != 0)
			test_fail(__FILE__, __LINE__, "the ladders differ on key %d", i);
		x25519_by(b, k, u, false);
		if (memcmp(a, b, 32) != 0)
			test_fail(__FILE__, __LINE__, "the wrapped call differs on key %d", i);
	}
}

/* A peer key of small order would make the secret 0: refused (by
 * mbedTLS's own key check, which keel's path keeps), never a secret of
 * zeros. */
TEST(small_order_peer_keys_are_refused)
{
	static const char *bad[] = {
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	};
	unsigned char k[32] = { 0x77, 1, 2, 3 }, u[32], out[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unhex(u, bad[i]);
		if (x25519_ecdh(out, k, u) == 0)
			test_fail(__FILE__, __LINE__, "peer key %.8s... was taken", bad[i]);
	}
}

/* RFC 7748's ladder on mbedTLS's general bignums, sharing nothing with
 * keel's limbs: the reference for the test below. */
static void x25519_mpi(unsigned char out[32], const unsigned char k[32], const unsigned char u[32])
{
	mbedtls_mpi p, x1, x2, z2, x3, z3, a, aa, b, bb, e, c, d, da, cb, t, a24;
	mbedtls_mpi *all[] = { &p, &x1, &x2, &z2, &x3, &z3, &a, &aa, &b, &bb, &e, &c, &d,
			       &da, &cb, &t, &a24 };
	unsigned char kb[32], ub[32];
	unsigned swap = 0;

	memcpy(kb, k, 32);
	kb[0] &= 248;
	kb[31] = (kb[31] & 127) | 64;
	memcpy(ub, u, 32);
	ub[31] &= 127;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		mbedtls_mpi_init(all[i]);
	CHECK(mbedtls_mpi_lset(&p, 1) == 0);
	CHECK(mbedtls_mpi_shift_l(&p, 255) == 0);
	CHECK(mbedtls_mpi_sub_int(&p, &p, 19) == 0);
	CHECK(mbedtls_mpi_read_binary_le(&x1, ub, 32) == 0);
	CHECK(mbedtls_mpi_mod_mpi(&x1, &x1, &p) == 0);
	CHECK(mbedtls_mpi_lset(&x2, 1) == 0 && mbedtls_mpi_lset(&z2, 0) == 0);
	CHECK(mbedtls_mpi_copy(&x3, &x1) == 0 && mbedtls_mpi_lset(&z3, 1) == 0);
	CHECK(mbedtls_mpi_lset(&a24, 121665) == 0);
#define M(r, op, x, y) CHECK(op(r, x, y) == 0 && mbedtls_mpi_mod_mpi(r, r, &p) == 0)
	for (int i = 254; i >= 0; i--) {
		unsigned bit = (kb[i / 8] >> (i % 8)) & 1;

		swap ^= bit;
		CHECK(mbedtls_mpi_safe_cond_swap(&x2, &x3, (unsigned char)swap) == 0);
		CHECK(mbedtls_mpi_safe_cond_swap(&z2, &z3, (unsigned char)swap) == 0);
		swap = bit;
		M(&a, mbedtls_mpi_add_mpi, &x2, &z2);
		M(&aa, mbedtls_mpi_mul_mpi, &a, &a);
		M(&b, mbedtls_mpi_sub_mpi, &x2, &z2);
		M(&bb, mbedtls_mpi_mul_mpi, &b, &b);
		M(&e, mbedtls_mpi_sub_mpi, &aa, &bb);
		M(&c, mbedtls_mpi_add_mpi, &x3, &z3);
		M(&d, mbedtls_mpi_sub_mpi, &x3, &z3);
		M(&da, mbedtls_mpi_mul_mpi, &d, &a);
		M(&cb, mbedtls_mpi_mul_mpi, &c, &b);
		M(&t, mbedtls_mpi_add_mpi, &da, &cb);
		M(&x3, mbedtls_mpi_mul_mpi, &t, &t);
		M(&t, mbedtls_mpi_sub_mpi, &da, &cb);
		M(&t, mbedtls_mpi_mul_mpi, &t, &t);
		M(&z3, mbedtls_mpi_mul_mpi, &x1, &t);
		M(&x2, mbedtls_mpi_mul_mpi, &aa, &bb);
		M(&t, mbedtls_mpi_mul_mpi, &a24, &e);
		M(&t, mbedtls_mpi_add_mpi, &aa, &t);
		M(&z2, mbedtls_mpi_mul_mpi, &e, &t);
	}
	CHECK(mbedtls_mpi_safe_cond_swap(&x2, &x3, (unsigned char)swap) == 0);
	CHECK(mbedtls_mpi_safe_cond_swap(&z2, &z3, (unsigned char)swap) == 0);
	CHECK(mbedtls_mpi_inv_mod(&t, &z2, &p) == 0);
	M(&x2, mbedtls_mpi_mul_mpi, &x2, &t);
#undef M
	CHECK(mbedtls_mpi_write_binary_le(&x2, out, 32) == 0);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		mbedtls_mpi_free(all[i]);
}

/* keel's three paths against the reference, on keys and points whose limbs
 * take every carry: random ones, and ones made of all-ones bytes. */
TEST(every_path_matches_a_bignum_reference)
{
	unsigned char k[32], u[32], want[32], got[32];
	unsigned seed = 777;

	for (int i = 0; i < 60; i++) {
		some_random(&seed, k, sizeof(k));
		some_random(&seed, u, sizeof(u));
		if (i % 6 == 0)
			memset(u, 0xff, sizeof(u));	/* above p once masked */
		if (i % 6 == 1)
			memset(k, 0xff, sizeof(k));
		x25519_mpi(want, k, u);
		x25519(got, k, u);
		if (memcmp(got, want, 32) != 0)
			test_fail(__FILE__, __LINE__, "mbedTLS's ladder with keel's step, key %d", i);
		x25519_by(got, k, u, false);
		if (memcmp(got, want, 32) != 0)
			test_fail(__FILE__, __LINE__, "the wrapped call, key %d", i);
		if (x25519_ecdh(got, k, u) != 0 || memcmp(got, want, 32) != 0)
			test_fail(__FILE__, __LINE__, "the ECDH secret, key %d", i);
	}
}
