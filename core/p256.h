/* ECDSA signing for mbedTLS with a P-256 path of keel's own (core/p256.c).
 * mbedTLS calls it for every ECDSA signature; nothing else does. */
#ifndef KEEL_CORE_P256_H
#define KEEL_CORE_P256_H

/* Builds the P-256 base-point table (60 KiB, a few ms). The first signature
 * builds it if this was not called; core_tls_init() calls it so that
 * workers inherit it from the master. 0 or an mbedTLS error. */
int core_p256_init(void);

#endif
