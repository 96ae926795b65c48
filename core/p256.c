/*
 * ECDSA signatures for mbedTLS (MBEDTLS_ECDSA_SIGN_ALT), with a P-256 path
 * of keel's own.
 *
 * A TLS handshake with keel's usual certificate signs once with P-256, and
 * mbedTLS's general bignum code took about 0.3 ms for it here: a comb of
 * point operations on allocated bignums and two constant-time modular
 * inversions that were a third of the time (docs/PERFORMANCE.md). This file
 * replaces mbedtls_ecdsa_sign(), which mbedTLS calls for every ECDSA
 * signature, deterministic (RFC 6979) or not:
 *
 *  - P-256: field and scalar arithmetic in four 64-bit limbs in Montgomery
 *    form; k*G as 64 mixed additions of entries of a table of j * 16^i * G
 *    (j = 1..15), each read by scanning its whole row; inverses by Fermat
 *    (a^(m-2), a public exponent). No branch or memory index depends on the
 *    key, the nonce or the message.
 *  - Any other curve: the textbook steps on mbedTLS's own public functions.
 *
 * The nonce is drawn as mbedTLS draws it (mbedtls_ecp_gen_privkey from the
 * caller's generator), so deterministic signatures are RFC 6979's, the same
 * bytes mbedTLS itself gives.
 */
#include <stdint.h>
#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>

#include "p256.h"


typedef uint64_t u64;
typedef unsigned __int128 u128;

/* A modulus for Montgomery arithmetic: R = 2^256. */
struct mod {
	u64	m[4];
	u64	n0;			/* -m^-1 mod 2^64 */
	u64	r2[4];			/* R^2 mod m */
	u64	one[4];			/* R mod m: 1 in Montgomery form */
};

/* An affine point in Montgomery form; a Jacobian one. */
struct aff {
	u64	x[4], y[4];
};

struct jac {
	u64	x[4], y[4], z[4];
};

#define ROWS	64			/* 4-bit windows of a 256-bit scalar */
#define COLS	15			/* j = 1..15; 0 is the point at infinity */

static struct {
	int		ready;
	struct mod	p, n;
	struct aff	table[ROWS][COLS];	/* j * 16^i * G, 60 KiB */
} p256;


/* ---- arithmetic modulo a 256-bit odd m ------------------------------------------------------- */

/* v, opaque to the optimiser: a mask stays a mask, never a branch. */
static inline u64 ct_barrier(u64 v)
{
	__asm__("" : "+r"(v));
	return v;
}

/* r = a - b over four limbs; the borrow out. */
static u64 sub4(u64 r[4], const u64 a[4], const u64 b[4])
{
	u64 borrow = 0;

	for (int i = 0; i < 4; i++) {
		u128 d = (u128)a[i] - b[i] - borrow;

		r[i] = (u64)d;
		borrow = (u64)(d >> 64) & 1;
	}
	return borrow;
}

/* r = the reduced value of (hi:a) given that it is below 2m. */
static void reduce_once(u64 r[4], const u64 a[4], u64 hi, const struct mod *m)
{
	u64 d[4], borrow, keep;

	borrow = sub4(d, a, m->m);
	/* a - m went below zero and nothing was carried out: a < m, keep a. */
	keep = ct_barrier((u64)0 - (borrow & ~hi & 1));
	for (int i = 0; i < 4; i++)
		r[i] = (a[i] & keep) | (d[i] & ~keep);
}

static void mod_add(u64 r[4], const u64 a[4], const u64 b[4], const struct mod *m)
{
	u64 s[4], carry = 0;

	for (int i = 0; i < 4; i++) {
		u128 t = (u128)a[i] + b[i] + carry;

		s[i] = (u64)t;
		carry = (u64)(t >> 64);
	}
	reduce_once(r, s, carry, m);
}

static void mod_sub(u64 r[4], const u64 a[4], const u64 b[4], const struct mod *m)
{
	u64 d[4], mask, carry = 0;

	mask = ct_barrier((u64)0 - sub4(d, a, b));	/* add m back below 0 */
	for (int i = 0; i < 4; i++) {
		u128 t = (u128)d[i] + (m->m[i] & mask) + carry;

		r[i] = (u64)t;
		carry = (u64)(t >> 64);
	}
}

/* r = a * b / R mod m, a and b below m (word-by-word Montgomery). */
static void mod_mul(u64 r[4], const u64 a[4], const u64 b[4], const struct mod *m)
{
	u64 t[6] = { 0 }, c, q;
	u128 uv;

	for (int i = 0; i < 4; i++) {
		c = 0;
		for (int j = 0; j < 4; j++) {
			uv = (u128)a[j] * b[i] + t[j] + c;
			t[j] = (u64)uv;
			c = (u64)(uv >> 64);
		}
		uv = (u128)t[4] + c;
		t[4] = (u64)uv;
		t[5] = (u64)(uv >> 64);

		q = t[0] * m->n0;
		uv = (u128)q * m->m[0] + t[0];
		c = (u64)(uv >> 64);
		for (int j = 1; j < 4; j++) {
			uv = (u128)q * m->m[j] + t[j] + c;
			t[j - 1] = (u64)uv;
			c = (u64)(uv >> 64);
		}
		uv = (u128)t[4] + c;
		t[3] = (u64)uv;
		t[4] = t[5] + (u64)(uv >> 64);
	}
	reduce_once(r, t, t[4], m);
}

static void mod_sqr(u64 r[4], const u64 a[4], const struct mod *m)
{
	mod_mul(r, a, a, m);
}

/* r = a^(m-2) = 1/a, in Montgomery form (0 for 0). The exponent is the
 * modulus's, public: the same squarings and multiplications for any a. */
static void mod_inv(u64 r[4], const u64 a[4], const struct mod *m)
{
	u64 e[4], acc[4], two = 2;

	/* m - 2: m is odd and far above 2, so only the lowest limb moves. */
	memcpy(e, m->m, sizeof(e));
	e[0] -= two;
	memcpy(acc, m->one, sizeof(acc));
	for (int i = 255; i >= 0; i--) {
		mod_sqr(acc, acc, m);
		if ((e[i / 64] >> (i % 64)) & 1)
			mod_mul(acc, acc, a, m);
	}
	memcpy(r, acc, sizeof(acc));
	mbedtls_platform_zeroize(acc, sizeof(acc));	/* 1/k, in a signature */
}

/* Four limbs from 32 big-endian bytes, and back. */
static void limbs_from_be(u64 r[4], const unsigned char b[32])
{
	for (int i = 0; i < 4; i++) {
		u64 v = 0;

		for (int j = 0; j < 8; j++)
			v = v << 8 | b[(3 - i) * 8 + j];
		r[i] = v;
	}
}

static void limbs_to_be(unsigned char b[32], const u64 a[4])
{
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			b[(3 - i) * 8 + j] = (unsigned char)(a[i] >> (56 - 8 * j));
}

static int limbs_from_mpi(u64 r[4], const mbedtls_mpi *x)
{
	unsigned char b[32];
	int rc;

	if ((rc = mbedtls_mpi_write_binary(x, b, sizeof(b))) != 0)
		return rc;
	limbs_from_be(r, b);
	mbedtls_platform_zeroize(b, sizeof(b));
	return 0;
}

static int mod_setup(struct mod *m, const mbedtls_mpi *modulus)
{
	u64 inv = 1, r[4] = { 1, 0, 0, 0 };
	int rc;

	if ((rc = limbs_from_mpi(m->m, modulus)) != 0)
		return rc;
	if ((m->m[0] & 1) == 0 || m->m[3] >> 63 == 0)
		return MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
	for (int i = 0; i < 6; i++)	/* Newton: each step doubles the bits */
		inv *= 2 - m->m[0] * inv;
	m->n0 = (u64)0 - inv;
	for (int i = 0; i < 512; i++) {	/* 2^512 mod m, by doubling */
		if (i == 256)
			memcpy(m->one, r, sizeof(r));
		mod_add(r, r, r, m);
	}
	memcpy(m->r2, r, sizeof(r));
	return 0;
}

static void to_mont(u64 r[4], const u64 a[4], const struct mod *m)
{
	mod_mul(r, a, m->r2, m);
}

static void from_mont(u64 r[4], const u64 a[4], const struct mod *m)
{
	const u64 one[4] = { 1, 0, 0, 0 };

	mod_mul(r, a, one, m);
}

/* ---- points on y^2 = x^3 - 3x + b ------------------------------------------------------------ */

/* r = 2a (dbl-2001-b). */
static void pt_double(struct jac *r, const struct jac *a)
{
	const struct mod *m = &p256.p;
	u64 delta[4], gamma[4], beta[4], alpha[4], t[4], u[4];

	mod_sqr(delta, a->z, m);
	mod_sqr(gamma, a->y, m);
	mod_mul(beta, a->x, gamma, m);
	mod_sub(t, a->x, delta, m);
	mod_add(u, a->x, delta, m);
	mod_mul(alpha, t, u, m);
	mod_add(t, alpha, alpha, m);
	mod_add(alpha, t, alpha, m);		/* 3 (x - delta)(x + delta) */

	mod_add(t, a->y, a->z, m);
	mod_sqr(t, t, m);
	mod_sub(t, t, gamma, m);
	mod_sub(r->z, t, delta, m);		/* (y + z)^2 - gamma - delta */

	mod_add(beta, beta, beta, m);
	mod_add(beta, beta, beta, m);		/* 4 beta */
	mod_sqr(t, alpha, m);
	mod_sub(t, t, beta, m);
	mod_sub(r->x, t, beta, m);		/* alpha^2 - 8 beta */

	mod_sub(t, beta, r->x, m);
	mod_mul(t, alpha, t, m);
	mod_sqr(u, gamma, m);
	mod_add(u, u, u, m);
	mod_add(u, u, u, m);
	mod_add(u, u, u, m);			/* 8 gamma^2 */
	mod_sub(r->y, t, u, m);
}

/* r = a + b, b affine (madd-2007-bl). Wrong when a is b, -b or the point
 * at infinity: the callers rule those out or throw the result away. */
static void pt_add_affine(struct jac *r, const struct jac *a, const struct aff *b)
{
	const struct mod *m = &p256.p;
	u64 z1z1[4], u2[4], s2[4], h[4], hh[4], i[4], j[4], rr[4], v[4], t[4];

	mod_sqr(z1z1, a->z, m);
	mod_mul(u2, b->x, z1z1, m);
	mod_mul(s2, a->z, z1z1, m);
	mod_mul(s2, b->y, s2, m);
	mod_sub(h, u2, a->x, m);
	mod_sqr(hh, h, m);
	mod_add(i, hh, hh, m);
	mod_add(i, i, i, m);			/* 4 hh */
	mod_mul(j, h, i, m);
	mod_sub(rr, s2, a->y, m);
	mod_add(rr, rr, rr, m);
	mod_mul(v, a->x, i, m);

	mod_add(t, a->z, h, m);			/* z first: r may be a */
	mod_sqr(t, t, m);
	mod_sub(t, t, z1z1, m);
	mod_sub(r->z, t, hh, m);

	mod_mul(t, a->y, j, m);
	mod_add(t, t, t, m);			/* 2 y1 j, before y1 goes */
	mod_sqr(r->x, rr, m);
	mod_sub(r->x, r->x, j, m);
	mod_sub(r->x, r->x, v, m);
	mod_sub(r->x, r->x, v, m);		/* rr^2 - j - 2v */

	mod_sub(v, v, r->x, m);
	mod_mul(v, rr, v, m);
	mod_sub(r->y, v, t, m);
}

static void pt_to_affine(struct aff *r, const struct jac *a)
{
	const struct mod *m = &p256.p;
	u64 zi[4], zi2[4];

	mod_inv(zi, a->z, m);
	mod_sqr(zi2, zi, m);
	mod_mul(r->x, a->x, zi2, m);
	mod_mul(zi2, zi2, zi, m);
	mod_mul(r->y, a->y, zi2, m);
	mbedtls_platform_zeroize(zi, sizeof(zi));
	mbedtls_platform_zeroize(zi2, sizeof(zi2));
}

/* Every limb of dst replaced by src's where mask is all ones. */
static void select4(u64 dst[4], const u64 src[4], u64 mask)
{
	for (int i = 0; i < 4; i++)
		dst[i] = (dst[i] & ~mask) | (src[i] & mask);
}

/* All ones when a == b, else 0, without a branch. */
static u64 eq_mask(u64 a, u64 b)
{
	u64 x = a ^ b;

	return ct_barrier(((x | ((u64)0 - x)) >> 63) - 1);
}

/* r = k * G, k as 32 big-endian bytes; r affine, in Montgomery form. */
static void base_mul(struct aff *r, const unsigned char k[32])
{
	struct jac q, sum;
	struct aff e;
	u64 inf = ~(u64)0;		/* q is still the point at infinity */

	memset(&q, 0, sizeof(q));
	for (int i = 0; i < ROWS; i++) {
		u64 d = (k[31 - i / 2] >> (4 * (i % 2))) & 15, take, first;

		memset(&e, 0, sizeof(e));
		for (int j = 0; j < COLS; j++) {
			u64 hit = eq_mask(d, (u64)j + 1);

			select4(e.x, p256.table[i][j].x, hit);
			select4(e.y, p256.table[i][j].y, hit);
		}
		/* q + e cannot be a doubling or meet -e: q's scalar is below
		 * 16^i and e's is a non-zero multiple of 16^i, both below n,
		 * and their sum is not n since k < n. */
		pt_add_affine(&sum, &q, &e);
		take = ~eq_mask(d, 0);
		first = take & inf;
		select4(q.x, sum.x, take & ~first);
		select4(q.y, sum.y, take & ~first);
		select4(q.z, sum.z, take & ~first);
		select4(q.x, e.x, first);
		select4(q.y, e.y, first);
		select4(q.z, p256.p.one, first);
		inf &= ~take;
	}
	pt_to_affine(r, &q);
	mbedtls_platform_zeroize(&q, sizeof(q));
	mbedtls_platform_zeroize(&sum, sizeof(sum));
	mbedtls_platform_zeroize(&e, sizeof(e));
}

/* The moduli and the table, from mbedTLS's own description of the curve. */
static int p256_setup(void)
{
	mbedtls_ecp_group grp;
	struct jac row, acc;
	struct aff g;
	int rc;

	mbedtls_ecp_group_init(&grp);
	if ((rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1)) != 0 ||
	    (rc = mod_setup(&p256.p, &grp.P)) != 0 || (rc = mod_setup(&p256.n, &grp.N)) != 0 ||
	    (rc = limbs_from_mpi(g.x, &grp.G.MBEDTLS_PRIVATE(X))) != 0 ||
	    (rc = limbs_from_mpi(g.y, &grp.G.MBEDTLS_PRIVATE(Y))) != 0)
		goto out;
	to_mont(g.x, g.x, &p256.p);
	to_mont(g.y, g.y, &p256.p);

	/* Row i holds 16^i G times 1..15: 2P by doubling (the mixed
	 * addition cannot double), the rest by adding P once more. */
	memcpy(row.x, g.x, sizeof(g.x));
	memcpy(row.y, g.y, sizeof(g.y));
	memcpy(row.z, p256.p.one, sizeof(row.z));
	for (int i = 0; i < ROWS; i++) {
		struct aff *t = p256.table[i];

		pt_to_affine(&t[0], &row);
		pt_double(&acc, &row);
		pt_to_affine(&t[1], &acc);
		for (int j = 2; j < COLS; j++) {
			pt_add_affine(&acc, &acc, &t[0]);
			pt_to_affine(&t[j], &acc);
		}
		pt_add_affine(&row, &acc, &t[0]);	/* 16 * 16^i G */
	}
	p256.ready = 1;
out:
	mbedtls_ecp_group_free(&grp);
	return rc;
}

int core_p256_init(void)
{
	return p256.ready ? 0 : p256_setup();
}

/* ---- ECDSA ----------------------------------------------------------------------------------- */

/* The hash as a number below n (SEC 1 4.1.3 step 5: its leftmost bits). */
static int hash_to_scalar(const mbedtls_ecp_group *grp, mbedtls_mpi *e,
			  const unsigned char *buf, size_t blen)
{
	size_t bytes = (grp->nbits + 7) / 8, use = blen < bytes ? blen : bytes;
	int rc;

	if ((rc = mbedtls_mpi_read_binary(e, buf, use)) != 0)
		return rc;
	if (use * 8 > grp->nbits && (rc = mbedtls_mpi_shift_r(e, use * 8 - grp->nbits)) != 0)
		return rc;
	if (mbedtls_mpi_cmp_mpi(e, &grp->N) >= 0)
		return mbedtls_mpi_sub_mpi(e, e, &grp->N);
	return 0;
}

/*
 * One P-256 attempt with nonce k: r = x(kG) mod n, s = (e + r d) / k mod n.
 * Either may come out 0 (with negligible odds); the caller draws again.
 */
static int sign_p256(mbedtls_mpi *r, mbedtls_mpi *s, const mbedtls_mpi *d,
		     const mbedtls_mpi *k, const mbedtls_mpi *e)
{
	const struct mod *n = &p256.n;
	unsigned char kb[32], out[32];
	u64 kl[4], dl[4], el[4], rl[4], sl[4], t[4];
	struct aff R;
	int rc;

	if ((rc = mbedtls_mpi_write_binary(k, kb, sizeof(kb))) != 0 ||
	    (rc = limbs_from_mpi(dl, d)) != 0 || (rc = limbs_from_mpi(el, e)) != 0)
		goto out;
	limbs_from_be(kl, kb);
	base_mul(&R, kb);

	from_mont(rl, R.x, &p256.p);		/* x below p; p < 2n, so once */
	reduce_once(rl, rl, 0, n);

	to_mont(t, rl, n);			/* r d */
	to_mont(dl, dl, n);
	mod_mul(sl, t, dl, n);
	to_mont(el, el, n);
	mod_add(sl, sl, el, n);			/* e + r d */
	to_mont(kl, kl, n);
	mod_inv(kl, kl, n);
	mod_mul(sl, sl, kl, n);
	from_mont(sl, sl, n);

	limbs_to_be(out, rl);
	if ((rc = mbedtls_mpi_read_binary(r, out, sizeof(out))) != 0)
		goto out;
	limbs_to_be(out, sl);
	rc = mbedtls_mpi_read_binary(s, out, sizeof(out));
out:
	mbedtls_platform_zeroize(kb, sizeof(kb));
	mbedtls_platform_zeroize(kl, sizeof(kl));
	mbedtls_platform_zeroize(dl, sizeof(dl));
	mbedtls_platform_zeroize(sl, sizeof(sl));
	mbedtls_platform_zeroize(&R, sizeof(R));
	return rc;
}

/*
 * The same with mbedTLS's general functions, for every other curve. The
 * multiplication's coordinate blinding draws from PSA's generator, never
 * from the caller's: for a deterministic signature that is the RFC 6979
 * generator, and blinding derived from the key and the message would be
 * no blinding (mbedTLS keeps the two apart the same way).
 */
static int sign_generic(mbedtls_ecp_group *grp, mbedtls_mpi *r, mbedtls_mpi *s,
			const mbedtls_mpi *d, const mbedtls_mpi *k, const mbedtls_mpi *e)
{
	mbedtls_ecp_point R;
	mbedtls_mpi kinv;
	int rc;

	mbedtls_ecp_point_init(&R);
	mbedtls_mpi_init(&kinv);
	if ((rc = mbedtls_ecp_mul(grp, &R, k, &grp->G, mbedtls_psa_get_random,
				  MBEDTLS_PSA_RANDOM_STATE)) != 0 ||
	    (rc = mbedtls_mpi_mod_mpi(r, &R.MBEDTLS_PRIVATE(X), &grp->N)) != 0 ||
	    (rc = mbedtls_mpi_mul_mpi(s, r, d)) != 0 ||
	    (rc = mbedtls_mpi_add_mpi(s, s, e)) != 0 ||
	    (rc = mbedtls_mpi_inv_mod(&kinv, k, &grp->N)) != 0 ||
	    (rc = mbedtls_mpi_mul_mpi(s, s, &kinv)) != 0)
		goto out;
	rc = mbedtls_mpi_mod_mpi(s, s, &grp->N);
out:
	mbedtls_mpi_free(&kinv);		/* mbedTLS wipes what it frees */
	mbedtls_ecp_point_free(&R);
	return rc;
}

/* What mbedTLS calls for every ECDSA signature (MBEDTLS_ECDSA_SIGN_ALT). */
int mbedtls_ecdsa_sign(mbedtls_ecp_group *grp, mbedtls_mpi *r, mbedtls_mpi *s,
		       const mbedtls_mpi *d, const unsigned char *buf, size_t blen,
		       int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
	mbedtls_mpi k, e;
	int rc, tries = 0;

	if (!mbedtls_ecdsa_can_do(grp->id) || grp->N.MBEDTLS_PRIVATE(p) == NULL)
		return MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
	if (mbedtls_mpi_cmp_int(d, 1) < 0 || mbedtls_mpi_cmp_mpi(d, &grp->N) >= 0)
		return MBEDTLS_ERR_ECP_INVALID_KEY;
	if (grp->id == MBEDTLS_ECP_DP_SECP256R1 && (rc = core_p256_init()) != 0)
		return rc;

	mbedtls_mpi_init(&k);
	mbedtls_mpi_init(&e);
	if ((rc = hash_to_scalar(grp, &e, buf, blen)) != 0)
		goto out;
	do {
		if (tries++ == 10) {
			rc = MBEDTLS_ERR_ECP_RANDOM_FAILED;
			goto out;
		}
		/* The nonce first, as mbedTLS draws it: RFC 6979's k. */
		if ((rc = mbedtls_ecp_gen_privkey(grp, &k, f_rng, p_rng)) != 0)
			goto out;
		rc = grp->id == MBEDTLS_ECP_DP_SECP256R1 ? sign_p256(r, s, d, &k, &e)
			: sign_generic(grp, r, s, d, &k, &e);
		if (rc != 0)
			goto out;
	} while (mbedtls_mpi_cmp_int(r, 0) == 0 || mbedtls_mpi_cmp_int(s, 0) == 0);
out:
	mbedtls_mpi_free(&k);
	mbedtls_mpi_free(&e);
	return rc;
}
