/* VRRP version 3 (RFC 5798) advertisements for IPv4 and IPv6: building
 * them and reading what the network delivers. No state, no I/O: ha.c owns
 * those. Interoperates with keepalived's `vrrp_version 3`. */
#ifndef KEEL_HA_VRRP_H
#define KEEL_HA_VRRP_H

#include <stddef.h>
#include <stdint.h>

#define VRRP_PROTO		112		/* IP protocol number */
#define VRRP_GROUP4		0xe0000012u	/* 224.0.0.18, host order */
#define VRRP_GROUP6		"ff02::12"
#define VRRP_MAX_ADDRS		20		/* what keel sends; more are read */
#define VRRP_HDR		8
#define VRRP_MAX_CS		4095		/* the 12-bit interval field */

struct vrrp_advert {
	uint8_t		vrid;
	uint8_t		priority;	/* 0: the master is leaving */
	uint16_t	interval_cs;	/* Max Adver Int, centiseconds */
	uint8_t		naddr;		/* the packet's count */
	uint8_t		nread;		/* of them kept in addr (at most VRRP_MAX_ADDRS) */
	uint32_t	addr[VRRP_MAX_ADDRS];	/* network order */
	uint32_t	src, dst;	/* of the IP packet, network order */
};

/* The same for IPv6: 16-byte addresses. A raw IPv6 socket delivers no IP
 * header, so the source, destination and hop limit come apart. */
struct vrrp_advert6 {
	uint8_t		vrid;
	uint8_t		priority;
	uint16_t	interval_cs;
	uint8_t		naddr;
	uint8_t		nread;
	uint8_t		addr[VRRP_MAX_ADDRS][16];
	uint8_t		src[16], dst[16];
};

/* Writes the VRRP part of an advert from src to dst (network order; the
 * checksum covers them) into out: its length, or 0 when cap is short or
 * the advert is out of range. */
size_t vrrp_build4(uint8_t *out, size_t cap, const struct vrrp_advert *a);

/* Reads an IPv4 packet as a raw socket delivers it (IP header first).
 * 0 when it is a valid advert; otherwise -1 with *why saying what was
 * wrong (RFC 5798 7.1: TTL other than 255, version, type, length,
 * checksum). */
int vrrp_parse4(const uint8_t *pkt, size_t len, struct vrrp_advert *a, const char **why);

/* IPv6: the message (checksum over the IPv6 pseudo-header of src and
 * dst), and reading one with what recvmsg() told (src, dst, hop limit). */
size_t vrrp_build6(uint8_t *out, size_t cap, const struct vrrp_advert6 *a);
int vrrp_parse6(const uint8_t *v, size_t len, const uint8_t src[16], const uint8_t dst[16],
		int hoplimit, struct vrrp_advert6 *a, const char **why);

/*
 * keel-to-keel authentication (`ha.auth_key`; not RFC 5798, which has
 * none: keepalived does not read these). After the addresses comes a
 * trailer, outside the VRRP checksum: a 64-bit counter that only grows
 * (against replay), then the first 16 bytes of HMAC-SHA256 under the key
 * of the source and destination addresses, the VRRP message and the
 * counter.
 */
#define VRRP_AUTH_LEN		24

/* Appends the trailer to the message built in pkt[0..len): the new
 * length, or 0 when cap is short. */
size_t vrrp_seal4(uint8_t *pkt, size_t len, size_t cap, uint32_t src, uint32_t dst,
		  uint64_t counter, const uint8_t *key, size_t keylen);

/* Checks the trailer of a packet vrrp_parse4() read into a: 0 with its
 * counter, or -1 with *why. */
int vrrp_unseal4(const uint8_t *pkt, size_t len, const struct vrrp_advert *a,
		 const uint8_t *key, size_t keylen, uint64_t *counter, const char **why);

/* IPv6: the message as built or received (v, len), and its addresses. */
size_t vrrp_seal6(uint8_t *v, size_t len, size_t cap, const uint8_t src[16],
		  const uint8_t dst[16], uint64_t counter, const uint8_t *key, size_t keylen);
int vrrp_unseal6(const uint8_t *v, size_t len, const struct vrrp_advert6 *a,
		 const uint8_t *key, size_t keylen, uint64_t *counter, const char **why);

#endif
