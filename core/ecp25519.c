/*
 * The Montgomery-ladder step of X25519 for mbedTLS, in 51-bit limbs.
 *
 * mbedTLS does Curve25519 with its general bignum code: every field
 * operation allocates, and one scalar multiplication took about 1 ms here,
 * twice in every TLS 1.3 handshake, full or resumed (docs/PERFORMANCE.md).
 * mbedTLS lets a program replace single steps of its curve code
 * (MBEDTLS_ECP_INTERNAL_ALT, MBEDTLS_ECP_DOUBLE_ADD_MXZ_ALT, set by
 * core/deps.sh): this file gives it the ladder step for Curve25519 only,
 * and mbedTLS keeps the ladder, its constant-time swaps, the coordinate
 * randomisation and the final inversion. Every other curve answers "not
 * capable" and takes mbedTLS's own code.
 *
 * A field element is five limbs of 51 bits, h = sum h[i] * 2^(51 i), with
 * products in unsigned __int128 (gcc on x86_64 and aarch64). No branch or
 * index depends on a value: the step runs in the same time for any key.
 */
#include <stdint.h>
#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>


/* A point's coordinates, private members in mbedTLS 3 (the ALT
 * interface is meant to reach them). */
#define PX	MBEDTLS_PRIVATE(X)
#define PZ	MBEDTLS_PRIVATE(Z)

typedef uint64_t fe[5];
typedef unsigned __int128 u128;

#define MASK51	((UINT64_C(1) << 51) - 1)

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

static void fe_add(fe r, const fe a, const fe b)
{
	for (int i = 0; i < 5; i++)
		r[i] = a[i] + b[i];
	fe_carry(r);
}

/* a - b as a + 4p - b: limbs of b stay under 2^53, so nothing wraps. */
static void fe_sub(fe r, const fe a, const fe b)
{
	r[0] = a[0] + 4 * (MASK51 - 18) - b[0];
	for (int i = 1; i < 5; i++)
		r[i] = a[i] + 4 * MASK51 - b[i];
	fe_carry(r);
}

static void fe_mul(fe r, const fe a, const fe b)
{
	uint64_t b1 = 19 * b[1], b2 = 19 * b[2], b3 = 19 * b[3], b4 = 19 * b[4];
	u128 t0, t1, t2, t3, t4;
	uint64_t c;

	t0 = (u128)a[0] * b[0] + (u128)a[1] * b4 + (u128)a[2] * b3 + (u128)a[3] * b2 +
	     (u128)a[4] * b1;
	t1 = (u128)a[0] * b[1] + (u128)a[1] * b[0] + (u128)a[2] * b4 + (u128)a[3] * b3 +
	     (u128)a[4] * b2;
	t2 = (u128)a[0] * b[2] + (u128)a[1] * b[1] + (u128)a[2] * b[0] + (u128)a[3] * b4 +
	     (u128)a[4] * b3;
	t3 = (u128)a[0] * b[3] + (u128)a[1] * b[2] + (u128)a[2] * b[1] + (u128)a[3] * b[0] +
	     (u128)a[4] * b4;
	t4 = (u128)a[0] * b[4] + (u128)a[1] * b[3] + (u128)a[2] * b[2] + (u128)a[3] * b[1] +
	     (u128)a[4] * b[0];

	t1 += (uint64_t)(t0 >> 51); r[0] = (uint64_t)t0 & MASK51;
	t2 += (uint64_t)(t1 >> 51); r[1] = (uint64_t)t1 & MASK51;
	t3 += (uint64_t)(t2 >> 51); r[2] = (uint64_t)t2 & MASK51;
	t4 += (uint64_t)(t3 >> 51); r[3] = (uint64_t)t3 & MASK51;
	c = (uint64_t)(t4 >> 51);   r[4] = (uint64_t)t4 & MASK51;
	r[0] += 19 * c;
	c = r[0] >> 51; r[0] &= MASK51; r[1] += c;
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

static uint64_t load64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
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

/* Limbs into an mpi, fully reduced: the one value in [0, p). */
static int fe_to_mpi(mbedtls_mpi *x, const fe in)
{
	uint64_t h[5], w[4];
	mbedtls_mpi_uint *p;
	size_t i;
	int rc;

	memcpy(h, in, sizeof(h));
	fe_chain(h);
	fe_chain(h);			/* now below 2^255, limbs carried */
	h[0] += 19;
	fe_chain(h);			/* v + 19, below 2^255 + 19 folded */
	/* Add 2^255 - 19 and drop 2^255: v + 19 + 2^255 - 19 - 2^255 is v
	 * when v < p, and v - p when it was not. */
	h[0] += (UINT64_C(1) << 51) - 19;
	for (i = 1; i < 5; i++)
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
	if ((rc = mbedtls_mpi_grow(x, 4)) != 0)	/* once: then it has the room */
		return rc;
	p = x->MBEDTLS_PRIVATE(p);
	for (i = 0; i < x->MBEDTLS_PRIVATE(n); i++)
		p[i] = i < 4 ? w[i] : 0;
	x->MBEDTLS_PRIVATE(s) = 1;
	return 0;
}

/* ---- what mbedTLS calls (library/ecp_internal_alt.h) ----------------------------------------- */

unsigned char mbedtls_internal_ecp_grp_capable(const mbedtls_ecp_group *grp);
int mbedtls_internal_ecp_init(const mbedtls_ecp_group *grp);
void mbedtls_internal_ecp_free(const mbedtls_ecp_group *grp);
int mbedtls_internal_ecp_double_add_mxz(const mbedtls_ecp_group *grp, mbedtls_ecp_point *R,
					mbedtls_ecp_point *S, const mbedtls_ecp_point *P,
					const mbedtls_ecp_point *Q, const mbedtls_mpi *d);

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

/*
 * R = 2P and S = P + Q, where d is the x of Q - P (the base point), in
 * x/z coordinates: mbedTLS's own formula, 5M + 4S, with grp->A holding
 * (A + 2) / 4 = 121666. R may be P and S may be Q: all is read first.
 */
int mbedtls_internal_ecp_double_add_mxz(const mbedtls_ecp_group *grp, mbedtls_ecp_point *R,
					mbedtls_ecp_point *S, const mbedtls_ecp_point *P,
					const mbedtls_ecp_point *Q, const mbedtls_mpi *d)
{
	fe px, pz, qx, qz, x1, t0, t1, t2, t3, rx, rz, sx, sz;
	unsigned char ab[8];
	uint64_t a24;
	int rc;

	if (mbedtls_mpi_write_binary_le(&grp->A, ab, sizeof(ab)) != 0)
		return MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
	a24 = load64(ab);
	if ((rc = fe_from_mpi(px, &P->PX)) != 0 || (rc = fe_from_mpi(pz, &P->PZ)) != 0 ||
	    (rc = fe_from_mpi(qx, &Q->PX)) != 0 || (rc = fe_from_mpi(qz, &Q->PZ)) != 0 ||
	    (rc = fe_from_mpi(x1, d)) != 0)
		return rc;

	fe_add(t0, px, pz);		/* Pp = PX + PZ */
	fe_sub(t1, px, pz);		/* Pm = PX - PZ */
	fe_add(t2, qx, qz);		/* Qp = QX + QZ */
	fe_sub(t3, qx, qz);		/* Qm = QX - QZ */
	fe_mul(t3, t3, t0);		/* Qm * Pp */
	fe_mul(t2, t2, t1);		/* Qp * Pm */
	fe_mul(t0, t0, t0);		/* Pp^2 */
	fe_mul(t1, t1, t1);		/* Pm^2 */
	fe_mul(rx, t0, t1);		/* Pp^2 * Pm^2 */
	fe_sub(t0, t0, t1);		/* Pp^2 - Pm^2 */
	fe_mul_small(rz, t0, a24);	/* a24 * (Pp^2 - Pm^2) */
	fe_add(rz, t1, rz);		/* + Pm^2 */
	fe_add(sx, t3, t2);		/* Qm*Pp + Qp*Pm */
	fe_mul(sx, sx, sx);
	fe_sub(sz, t3, t2);		/* Qm*Pp - Qp*Pm */
	fe_mul(sz, sz, sz);
	fe_mul(sz, x1, sz);		/* d * (Qm*Pp - Qp*Pm)^2 */
	fe_mul(rz, t0, rz);

	if ((rc = fe_to_mpi(&R->PX, rx)) != 0 || (rc = fe_to_mpi(&R->PZ, rz)) != 0 ||
	    (rc = fe_to_mpi(&S->PX, sx)) != 0 || (rc = fe_to_mpi(&S->PZ, sz)) != 0)
		return rc;
	return 0;
}
