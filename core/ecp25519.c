/*
 * X25519 for mbedTLS, in 51-bit limbs.
 *
 * mbedTLS does Curve25519 with its general bignum code: every field
 * operation allocates, the final inversion is a general constant-time GCD,
 * and one scalar multiplication took about 1 ms here, twice in every TLS
 * 1.3 handshake, full or resumed (docs/PERFORMANCE.md). mbedTLS lets a
 * program replace pieces of it (options set by core/deps.sh):
 *
 *  - MBEDTLS_ECDH_COMPUTE_SHARED_ALT: the shared secret, for every curve.
 *    For X25519 the whole ladder runs here, after mbedTLS's own checks of
 *    both keys; other curves go through mbedtls_ecp_mul as before.
 *  - mbedtls_ecp_mul, wrapped by the linker (it has no hook): PSA makes a
 *    key pair's public half with it; X25519 takes the same ladder.
 *  - MBEDTLS_ECP_DOUBLE_ADD_MXZ_ALT and MBEDTLS_ECP_NORMALIZE_MXZ_ALT
 *    (under MBEDTLS_ECP_INTERNAL_ALT): the ladder step and the inversion
 *    of mbedTLS's own ladder, for the calls made inside ecp.c, which the
 *    wrap does not reach. Only Curve25519 is "capable"; every other curve
 *    keeps mbedTLS's code.
 *
 * A field element is five limbs of 51 bits, h = sum h[i] * 2^(51 i), with
 * products in unsigned __int128 (gcc on x86_64 and aarch64). No branch or
 * index depends on a secret: the ladder runs in the same time for any key.
 */
#include <stdint.h>
#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>


/* A point's coordinates, private members in mbedTLS 3 (the ALT
 * interface is meant to reach them). */
#define PX	MBEDTLS_PRIVATE(X)
#define PZ	MBEDTLS_PRIVATE(Z)

typedef uint64_t fe[5];
typedef unsigned __int128 u128;

#define MASK51	((UINT64_C(1) << 51) - 1)
#define A24	121666			/* (A + 2) / 4, what mbedTLS keeps in grp->A */

/* Limbs back under 2^51 (the first may end just over: 19 * carry). */
static void fe_carry(fe h)
{
	uint64_t c;

	c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
	c = h[1] >> 51; h[1] &= MASK51; h[2] += c;
	c = h[2] >> 51; h[2] &= MASK51; h[3] += c;
	c = h[3] >> 51; h[3] &= MASK51; h[4] += c;
	c = h[4] >> 51; h[4] &= MASK51; h[0] += 19 * c;	/* 2^255 = 19 mod p */
	c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
}

/*
 * Sums and differences are left uncarried: their limbs stay under 2^54,
 * and they only ever go into fe_mul, fe_sq or fe_mul_small, whose column
 * sums stay under 2^114 and whose last carry under 2^59 for such inputs.
 * Their own inputs must be carried (a product, or a value just read).
 */
static void fe_add(fe r, const fe a, const fe b)
{
	for (int i = 0; i < 5; i++)
		r[i] = a[i] + b[i];
}

/* a - b as a + 4p - b: limbs of b (carried) stay under 2^53, so nothing wraps. */
static void fe_sub(fe r, const fe a, const fe b)
{
	r[0] = a[0] + 4 * (MASK51 - 18) - b[0];
	for (int i = 1; i < 5; i++)
		r[i] = a[i] + 4 * MASK51 - b[i];
}

/* The five column sums of a product, carried down to limbs. */
static void fe_fold(fe r, u128 t0, u128 t1, u128 t2, u128 t3, u128 t4)
{
	uint64_t c;

	t1 += (uint64_t)(t0 >> 51); r[0] = (uint64_t)t0 & MASK51;
	t2 += (uint64_t)(t1 >> 51); r[1] = (uint64_t)t1 & MASK51;
	t3 += (uint64_t)(t2 >> 51); r[2] = (uint64_t)t2 & MASK51;
	t4 += (uint64_t)(t3 >> 51); r[3] = (uint64_t)t3 & MASK51;
	c = (uint64_t)(t4 >> 51);   r[4] = (uint64_t)t4 & MASK51;
	r[0] += 19 * c;
	c = r[0] >> 51; r[0] &= MASK51; r[1] += c;
}

static void fe_mul(fe r, const fe a, const fe b)
{
	uint64_t b1 = 19 * b[1], b2 = 19 * b[2], b3 = 19 * b[3], b4 = 19 * b[4];

	fe_fold(r,
		(u128)a[0] * b[0] + (u128)a[1] * b4 + (u128)a[2] * b3 + (u128)a[3] * b2 +
		(u128)a[4] * b1,
		(u128)a[0] * b[1] + (u128)a[1] * b[0] + (u128)a[2] * b4 + (u128)a[3] * b3 +
		(u128)a[4] * b2,
		(u128)a[0] * b[2] + (u128)a[1] * b[1] + (u128)a[2] * b[0] + (u128)a[3] * b4 +
		(u128)a[4] * b3,
		(u128)a[0] * b[3] + (u128)a[1] * b[2] + (u128)a[2] * b[1] + (u128)a[3] * b[0] +
		(u128)a[4] * b4,
		(u128)a[0] * b[4] + (u128)a[1] * b[3] + (u128)a[2] * b[2] + (u128)a[3] * b[1] +
		(u128)a[4] * b[0]);
}

/* a^2: the products a_i a_j (i != j) taken once and doubled, 15 in all. */
static void fe_sq(fe r, const fe a)
{
	uint64_t d0 = 2 * a[0], d1 = 2 * a[1], d2 = 2 * a[2], a3 = 19 * a[3], a4 = 19 * a[4];

	fe_fold(r,
		(u128)a[0] * a[0] + (u128)d1 * a4 + (u128)d2 * a3,
		(u128)d0 * a[1] + (u128)d2 * a4 + (u128)a[3] * a3,
		(u128)d0 * a[2] + (u128)a[1] * a[1] + (u128)(2 * a[3]) * a4,
		(u128)d0 * a[3] + (u128)d1 * a[2] + (u128)a[4] * a4,
		(u128)d0 * a[4] + (u128)d1 * a[3] + (u128)a[2] * a[2]);
}

static void fe_mul_small(fe r, const fe a, uint64_t k)
{
	u128 t = 0;

	for (int i = 0; i < 5; i++) {
		t = (u128)a[i] * k + (uint64_t)(t >> 51);
		r[i] = (uint64_t)t & MASK51;
	}
	r[0] += 19 * (uint64_t)(t >> 51);
	fe_carry(r);
}

/* The four 64-bit words of a non-negative mpi below 2^256 (mbedTLS keeps
 * them below p), read from its limbs: the byte-string round trip cost
 * more than the arithmetic. */
static int mpi_words(uint64_t w[4], const mbedtls_mpi *x)
{
	const mbedtls_mpi_uint *p = x->MBEDTLS_PRIVATE(p);
	size_t n = x->MBEDTLS_PRIVATE(n), i;
	mbedtls_mpi_uint high = 0;

	if (sizeof(mbedtls_mpi_uint) != 8 || x->MBEDTLS_PRIVATE(s) < 0)
		return MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
	for (i = 0; i < 4; i++)
		w[i] = i < n ? p[i] : 0;
	for (; i < n; i++)
		high |= p[i];
	return high == 0 ? 0 : MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
}

static int fe_from_mpi(fe h, const mbedtls_mpi *x)
{
	uint64_t w[4];
	int rc;

	if ((rc = mpi_words(w, x)) != 0)
		return rc;
	h[0] = w[0] & MASK51;
	h[1] = (w[0] >> 51 | w[1] << 13) & MASK51;
	h[2] = (w[1] >> 38 | w[2] << 26) & MASK51;
	h[3] = (w[2] >> 25 | w[3] << 39) & MASK51;
	h[4] = (w[3] >> 12) & MASK51;
	h[0] += 19 * (w[3] >> 63);	/* bit 255 */
	fe_carry(h);
	return 0;
}

/* Carries up the limbs once, 2^255 folded back as 19. */
static void fe_chain(uint64_t h[5])
{
	h[1] += h[0] >> 51; h[0] &= MASK51;
	h[2] += h[1] >> 51; h[1] &= MASK51;
	h[3] += h[2] >> 51; h[2] &= MASK51;
	h[4] += h[3] >> 51; h[3] &= MASK51;
	h[0] += 19 * (h[4] >> 51); h[4] &= MASK51;
}

/* The one value in [0, p) as four 64-bit words. */
static void fe_reduce(uint64_t w[4], const fe in)
{
	uint64_t h[5];

	memcpy(h, in, sizeof(h));
	fe_chain(h);
	fe_chain(h);			/* now below 2^255, limbs carried */
	h[0] += 19;
	fe_chain(h);			/* v + 19, below 2^255 + 19 folded */
	/* Add 2^255 - 19 and drop 2^255: v + 19 + 2^255 - 19 - 2^255 is v
	 * when v < p, and v - p when it was not. */
	h[0] += (UINT64_C(1) << 51) - 19;
	for (int i = 1; i < 5; i++)
		h[i] += (UINT64_C(1) << 51) - 1;
	h[1] += h[0] >> 51; h[0] &= MASK51;
	h[2] += h[1] >> 51; h[1] &= MASK51;
	h[3] += h[2] >> 51; h[2] &= MASK51;
	h[4] += h[3] >> 51; h[3] &= MASK51;
	h[4] &= MASK51;

	w[0] = h[0] | h[1] << 51;
	w[1] = h[1] >> 13 | h[2] << 38;
	w[2] = h[2] >> 26 | h[3] << 25;
	w[3] = h[3] >> 39 | h[4] << 12;
}

/* Limbs into an mpi, fully reduced. */
static int fe_to_mpi(mbedtls_mpi *x, const fe in)
{
	mbedtls_mpi_uint *p;
	uint64_t w[4];
	size_t i;
	int rc;

	fe_reduce(w, in);
	if ((rc = mbedtls_mpi_grow(x, 4)) != 0)	/* once: then it has the room */
		return rc;
	p = x->MBEDTLS_PRIVATE(p);
	for (i = 0; i < x->MBEDTLS_PRIVATE(n); i++)
		p[i] = i < 4 ? w[i] : 0;
	x->MBEDTLS_PRIVATE(s) = 1;
	mbedtls_platform_zeroize(w, sizeof(w));
	return 0;
}

/* r = a^(2^n). */
static void fe_sqr_n(fe r, const fe a, int n)
{
	fe_sq(r, a);
	while (--n > 0)
		fe_sq(r, r);
}

/* r = 1/z = z^(p - 2) = z^(2^255 - 21), by the usual chain of 254
 * squarings and 11 multiplications; 0 for 0. */
static void fe_invert(fe r, const fe z)
{
	fe z2, z9, z11, z_5_0, z_10_0, z_20_0, z_50_0, z_100_0, t;

	fe_sq(z2, z);				/* 2 */
	fe_sqr_n(t, z2, 2);			/* 8 */
	fe_mul(z9, t, z);			/* 9 */
	fe_mul(z11, z9, z2);			/* 11 */
	fe_sq(t, z11);				/* 22 */
	fe_mul(z_5_0, t, z9);			/* 2^5 - 1 */
	fe_sqr_n(t, z_5_0, 5);
	fe_mul(z_10_0, t, z_5_0);		/* 2^10 - 1 */
	fe_sqr_n(t, z_10_0, 10);
	fe_mul(z_20_0, t, z_10_0);		/* 2^20 - 1 */
	fe_sqr_n(t, z_20_0, 20);
	fe_mul(t, t, z_20_0);			/* 2^40 - 1 */
	fe_sqr_n(t, t, 10);
	fe_mul(z_50_0, t, z_10_0);		/* 2^50 - 1 */
	fe_sqr_n(t, z_50_0, 50);
	fe_mul(z_100_0, t, z_50_0);		/* 2^100 - 1 */
	fe_sqr_n(t, z_100_0, 100);
	fe_mul(t, t, z_100_0);			/* 2^200 - 1 */
	fe_sqr_n(t, t, 50);
	fe_mul(t, t, z_50_0);			/* 2^250 - 1 */
	fe_sqr_n(t, t, 5);			/* 2^255 - 2^5 */
	fe_mul(r, t, z11);			/* 2^255 - 21 */
}

/*
 * R = 2P and S = P + Q, where x1 is the x of Q - P, in x/z coordinates:
 * mbedTLS's own formula, 5M + 4S, with (A + 2) / 4. R may be P and S may
 * be Q: all is read first.
 */
static void ladder_step(fe rx, fe rz, fe sx, fe sz, const fe px, const fe pz,
			const fe qx, const fe qz, const fe x1)
{
	fe t0, t1, t2, t3;

	fe_add(t0, px, pz);		/* Pp = PX + PZ */
	fe_sub(t1, px, pz);		/* Pm = PX - PZ */
	fe_add(t2, qx, qz);		/* Qp = QX + QZ */
	fe_sub(t3, qx, qz);		/* Qm = QX - QZ */
	fe_mul(t3, t3, t0);		/* Qm * Pp */
	fe_mul(t2, t2, t1);		/* Qp * Pm */
	fe_sq(t0, t0);			/* Pp^2 */
	fe_sq(t1, t1);			/* Pm^2 */
	fe_mul(rx, t0, t1);		/* Pp^2 * Pm^2 */
	fe_sub(t0, t0, t1);		/* Pp^2 - Pm^2 */
	fe_mul_small(rz, t0, A24);	/* a24 * (Pp^2 - Pm^2) */
	fe_add(rz, t1, rz);		/* + Pm^2 */
	fe_add(sx, t3, t2);		/* Qm*Pp + Qp*Pm */
	fe_sq(sx, sx);
	fe_sub(sz, t3, t2);		/* Qm*Pp - Qp*Pm */
	fe_sq(sz, sz);
	fe_mul(sz, x1, sz);		/* x1 * (Qm*Pp - Qp*Pm)^2 */
	fe_mul(rz, t0, rz);
}

/* a and b swapped when mask is all ones, left when it is 0. The empty asm
 * keeps the mask a mask: the compiler may not turn it into a branch. */
static void fe_cswap(fe a, fe b, uint64_t mask)
{
	__asm__("" : "+r"(mask));
	for (int i = 0; i < 5; i++) {
		uint64_t t = mask & (a[i] ^ b[i]);

		a[i] ^= t;
		b[i] ^= t;
	}
}

/*
 * x = the x of k * (u, ...), k as 32 little-endian bytes, bits 254..0
 * (mbedTLS keeps X25519 keys clamped). RFC 7748's ladder, every step the
 * same work, the swaps by mask.
 */
static void x25519_ladder(fe out, const unsigned char k[32], const fe u)
{
	fe x2 = { 1 }, z2 = { 0 }, x3, z3 = { 1 }, zi;
	uint64_t swap = 0;

	memcpy(x3, u, sizeof(fe));
	for (int t = 254; t >= 0; t--) {
		uint64_t bit = (uint64_t)0 - ((k[t / 8] >> (t % 8)) & 1);

		swap ^= bit;
		fe_cswap(x2, x3, swap);
		fe_cswap(z2, z3, swap);
		swap = bit;
		ladder_step(x2, z2, x3, z3, x2, z2, x3, z3, u);
	}
	fe_cswap(x2, x3, swap);
	fe_cswap(z2, z3, swap);
	fe_invert(zi, z2);
	fe_mul(out, x2, zi);		/* 0 when z2 is: the caller checks */
	mbedtls_platform_zeroize(x2, sizeof(x2));
	mbedtls_platform_zeroize(z2, sizeof(z2));
	mbedtls_platform_zeroize(x3, sizeof(x3));
	mbedtls_platform_zeroize(z3, sizeof(z3));
	mbedtls_platform_zeroize(zi, sizeof(zi));
}

/* ---- what mbedTLS calls (library/ecp_internal_alt.h) ----------------------------------------- */

unsigned char mbedtls_internal_ecp_grp_capable(const mbedtls_ecp_group *grp);
int mbedtls_internal_ecp_init(const mbedtls_ecp_group *grp);
void mbedtls_internal_ecp_free(const mbedtls_ecp_group *grp);
int mbedtls_internal_ecp_double_add_mxz(const mbedtls_ecp_group *grp, mbedtls_ecp_point *R,
					mbedtls_ecp_point *S, const mbedtls_ecp_point *P,
					const mbedtls_ecp_point *Q, const mbedtls_mpi *d);
int mbedtls_internal_ecp_normalize_mxz(const mbedtls_ecp_group *grp, mbedtls_ecp_point *P);

unsigned char mbedtls_internal_ecp_grp_capable(const mbedtls_ecp_group *grp)
{
	return grp->id == MBEDTLS_ECP_DP_CURVE25519;
}

int mbedtls_internal_ecp_init(const mbedtls_ecp_group *grp)
{
	(void)grp;
	return 0;
}

void mbedtls_internal_ecp_free(const mbedtls_ecp_group *grp)
{
	(void)grp;
}

/* One step of mbedTLS's ladder (used for a key pair's public half). */
int mbedtls_internal_ecp_double_add_mxz(const mbedtls_ecp_group *grp, mbedtls_ecp_point *R,
					mbedtls_ecp_point *S, const mbedtls_ecp_point *P,
					const mbedtls_ecp_point *Q, const mbedtls_mpi *d)
{
	fe px, pz, qx, qz, x1, rx, rz, sx, sz;
	int rc;

	(void)grp;
	if ((rc = fe_from_mpi(px, &P->PX)) != 0 || (rc = fe_from_mpi(pz, &P->PZ)) != 0 ||
	    (rc = fe_from_mpi(qx, &Q->PX)) != 0 || (rc = fe_from_mpi(qz, &Q->PZ)) != 0 ||
	    (rc = fe_from_mpi(x1, d)) != 0)
		return rc;
	ladder_step(rx, rz, sx, sz, px, pz, qx, qz, x1);
	if ((rc = fe_to_mpi(&R->PX, rx)) != 0 || (rc = fe_to_mpi(&R->PZ, rz)) != 0 ||
	    (rc = fe_to_mpi(&S->PX, sx)) != 0 || (rc = fe_to_mpi(&S->PZ, sz)) != 0)
		return rc;
	return 0;
}

/*
 * X = X / Z, Z = 1 at the end of mbedTLS's ladder. mbedTLS inverts with its
 * general constant-time GCD, about 60 us here; Fermat in the limbs is a
 * few. Z = 0 cannot come after mbedTLS's checks of the keys (small-order
 * points are refused before); should it, it is refused rather than
 * turned into a result of 0.
 */
int mbedtls_internal_ecp_normalize_mxz(const mbedtls_ecp_group *grp, mbedtls_ecp_point *P)
{
	fe x, z, zi;
	uint64_t w[4];
	int rc;

	(void)grp;
	if ((rc = fe_from_mpi(x, &P->PX)) != 0 || (rc = fe_from_mpi(z, &P->PZ)) != 0)
		return rc;
	fe_reduce(w, z);
	if ((w[0] | w[1] | w[2] | w[3]) == 0)
		return MBEDTLS_ERR_MPI_NOT_ACCEPTABLE;
	fe_invert(zi, z);
	fe_mul(x, x, zi);
	rc = fe_to_mpi(&P->PX, x);
	mbedtls_platform_zeroize(x, sizeof(x));
	mbedtls_platform_zeroize(zi, sizeof(zi));
	return rc != 0 ? rc : mbedtls_mpi_lset(&P->PZ, 1);
}

/*
 * x = x(dQ) on Curve25519 with keel's ladder, after mbedTLS's own checks
 * of both keys (a clamped scalar; the peer's x in range and not of small
 * order). 1 when the result is 0 (it cannot be, after those checks).
 */
static int x25519_mul(const mbedtls_ecp_group *grp, fe x, const mbedtls_mpi *d,
		      const mbedtls_ecp_point *Q)
{
	unsigned char k[32];
	uint64_t w[4];
	fe u;
	int rc;

	if ((rc = mbedtls_ecp_check_privkey(grp, d)) != 0 ||
	    (rc = mbedtls_ecp_check_pubkey(grp, Q)) != 0 ||
	    (rc = fe_from_mpi(u, &Q->PX)) != 0 ||
	    (rc = mbedtls_mpi_write_binary_le(d, k, sizeof(k))) != 0)
		goto out;
	x25519_ladder(x, k, u);
	fe_reduce(w, x);
	if ((w[0] | w[1] | w[2] | w[3]) == 0)
		rc = MBEDTLS_ERR_MPI_NOT_ACCEPTABLE;
out:
	mbedtls_platform_zeroize(k, sizeof(k));
	mbedtls_platform_zeroize(w, sizeof(w));
	return rc;
}

/*
 * The ECDH shared secret z = x(dQ) (MBEDTLS_ECDH_COMPUTE_SHARED_ALT): X25519
 * with keel's ladder; every other curve through mbedtls_ecp_mul, as
 * mbedTLS does it.
 */
int mbedtls_ecdh_compute_shared(mbedtls_ecp_group *grp, mbedtls_mpi *z,
				const mbedtls_ecp_point *Q, const mbedtls_mpi *d,
				int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
	fe x;
	int rc;

	if (grp->id != MBEDTLS_ECP_DP_CURVE25519) {
		mbedtls_ecp_point P;

		mbedtls_ecp_point_init(&P);
		if ((rc = mbedtls_ecp_mul(grp, &P, d, Q, f_rng, p_rng)) == 0)
			rc = mbedtls_ecp_is_zero(&P) ? MBEDTLS_ERR_ECP_BAD_INPUT_DATA
				: mbedtls_mpi_copy(z, &P.PX);
		mbedtls_ecp_point_free(&P);
		return rc;
	}
	if ((rc = x25519_mul(grp, x, d, Q)) == 0)
		rc = fe_to_mpi(z, x);
	else if (rc == MBEDTLS_ERR_MPI_NOT_ACCEPTABLE)
		rc = MBEDTLS_ERR_ECP_BAD_INPUT_DATA;	/* mbedTLS's "is zero" */
	mbedtls_platform_zeroize(x, sizeof(x));
	return rc;
}

/*
 * mbedtls_ecp_mul as other parts of mbedTLS call it (the link wraps it:
 * -Wl,--wrap=mbedtls_ecp_mul in the Makefile). PSA makes an X25519 key
 * pair's public half with it, and for Curve25519 that is keel's ladder
 * too; R gets x and z = 1, as mbedTLS's ladder leaves it. Every other
 * curve, and calls from inside ecp.c, take mbedTLS's own code.
 */
int __real_mbedtls_ecp_mul(mbedtls_ecp_group *grp, mbedtls_ecp_point *R, const mbedtls_mpi *m,
			   const mbedtls_ecp_point *P,
			   int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
int __wrap_mbedtls_ecp_mul(mbedtls_ecp_group *grp, mbedtls_ecp_point *R, const mbedtls_mpi *m,
			   const mbedtls_ecp_point *P,
			   int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);

int __wrap_mbedtls_ecp_mul(mbedtls_ecp_group *grp, mbedtls_ecp_point *R, const mbedtls_mpi *m,
			   const mbedtls_ecp_point *P,
			   int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
	fe x;
	int rc;

	if (grp->id != MBEDTLS_ECP_DP_CURVE25519)
		return __real_mbedtls_ecp_mul(grp, R, m, P, f_rng, p_rng);
	if (f_rng == NULL)		/* refused as mbedTLS refuses it */
		return MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
	if ((rc = x25519_mul(grp, x, m, P)) == 0 && (rc = fe_to_mpi(&R->PX, x)) == 0 &&
	    (rc = mbedtls_mpi_lset(&R->PZ, 1)) == 0)
		mbedtls_mpi_free(&R->MBEDTLS_PRIVATE(Y));
	mbedtls_platform_zeroize(x, sizeof(x));
	return rc;
}
