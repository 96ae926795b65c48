/* Tests of core/tls.c's allocator for mbedTLS: blocks come back zeroed
 * whatever was in them, sizes that overflow are refused, and bignum
 * arithmetic on top of it gets the right answers. */
#include <stdint.h>

#include <mbedtls/bignum.h>
#include <mbedtls/platform.h>

#include "runner.h"
#include "core/tls.c"

TEST(blocks_come_back_zeroed_from_every_size_class)
{
	static const size_t sizes[] = { 1, 15, 16, 17, 33, 100, 255, 512, 1000, 1024, 1025, 5000,
				       16383, 16384, 16717, 18432, 18433 };
	unsigned char *p[sizeof(sizes) / sizeof(*sizes)];
	size_t i, j, round;

	core_tls_mem_init();
	for (round = 0; round < 3; round++) {
		for (i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
			p[i] = mbedtls_calloc(1, sizes[i]);
			CHECK(p[i] != NULL);
			CHECK(((uintptr_t)p[i] & 15) == 0);
			for (j = 0; j < sizes[i]; j++)
				if (p[i][j] != 0)
					test_fail(__FILE__, __LINE__, "round %zu: byte %zu of %zu is %#x",
						  round, j, sizes[i], p[i][j]);
			memset(p[i], 0xa5, sizes[i]);
		}
		for (i = 0; i < sizeof(sizes) / sizeof(*sizes); i++)
			mbedtls_free(p[i]);
	}
	mbedtls_free(NULL);
}

/* keel's allocator only: sanitizer builds hand mbedTLS calloc itself,
 * which ASan stops on an overflowing size, as it should. */
#if !defined(__SANITIZE_ADDRESS__)
TEST(a_size_that_overflows_is_refused)
{
	core_tls_mem_init();
	CHECK(mbedtls_calloc(SIZE_MAX / 2, 4) == NULL);
	CHECK(mbedtls_calloc(4, SIZE_MAX - 8) == NULL);
}

/* Record buffers come back from their list, which keeps TLS_MEM_RECS. */
TEST(record_buffers_are_kept_up_to_their_bound)
{
	unsigned char *p[40], *again;
	size_t i;

	core_tls_mem_init();
	for (i = 0; i < 40; i++)
		CHECK((p[i] = mbedtls_calloc(1, 16717)) != NULL);
	for (i = 0; i < 40; i++)
		mbedtls_free(p[i]);
	CHECK(tls_mem[TLS_MEM_REC].n == TLS_MEM_RECS);
	again = mbedtls_calloc(1, 16400);
	CHECK(again == p[TLS_MEM_RECS - 1]);	/* the last one kept */
	CHECK(tls_mem[TLS_MEM_REC].n == TLS_MEM_RECS - 1);
	mbedtls_free(again);
}
#endif

TEST(bignum_arithmetic_on_it_is_right)
{
	mbedtls_mpi a, e, m, r, want;
	int k;

	core_tls_mem_init();
	for (k = 0; k < 50; k++) {
		mbedtls_mpi_init(&a);
		mbedtls_mpi_init(&e);
		mbedtls_mpi_init(&m);
		mbedtls_mpi_init(&r);
		mbedtls_mpi_init(&want);
		CHECK(mbedtls_mpi_lset(&a, 3) == 0);
		CHECK(mbedtls_mpi_lset(&e, 200) == 0);
		CHECK(mbedtls_mpi_read_string(&m, 16, "7fffffffffffffffffffffffffffffff"
					      "ffffffffffffffffffffffffffffffed") == 0);
		CHECK(mbedtls_mpi_read_string(&want, 16, "421a937a76f3432ffd73d97e447606b6"
					      "83ecf6f6e4a7ae2715acec0ff9232c28") == 0);
		CHECK(mbedtls_mpi_exp_mod(&r, &a, &e, &m, NULL) == 0);
		CHECK(mbedtls_mpi_cmp_mpi(&r, &want) == 0);
		mbedtls_mpi_free(&a);
		mbedtls_mpi_free(&e);
		mbedtls_mpi_free(&m);
		mbedtls_mpi_free(&r);
		mbedtls_mpi_free(&want);
	}
}
