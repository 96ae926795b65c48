/* VRRPv3 adverts for IPv4 and IPv6. See vrrp.h. */
#include <string.h>

#include <mbedtls/md.h>

#include "vrrp.h"

static uint32_t vrrp_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t vrrp_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The internet checksum over the IPv4 pseudo-header (RFC 5798 5.2.8
 * takes it as TCP and UDP do) and the VRRP message. */
static uint16_t vrrp_sum4(uint32_t src, uint32_t dst, const uint8_t *p, size_t len)
{
	uint32_t sum = VRRP_PROTO + (uint32_t)len;

	sum = vrrp_add(sum, (const uint8_t *)&src, 4);
	sum = vrrp_add(sum, (const uint8_t *)&dst, 4);
	return vrrp_fold(vrrp_add(sum, p, len));
}

/* ... and over IPv6's (RFC 8200 8.1: the upper-layer length is 32 bits). */
static uint16_t vrrp_sum6(const uint8_t src[16], const uint8_t dst[16], const uint8_t *p,
			  size_t len)
{
	uint32_t sum = VRRP_PROTO + (uint32_t)len;

	sum = vrrp_add(sum, src, 16);
	sum = vrrp_add(sum, dst, 16);
	return vrrp_fold(vrrp_add(sum, p, len));
}

/* The VRRP message at v[0..len) with addresses of alen bytes: its length
 * without what follows the addresses, or 0 with *why (RFC 5798 7.1:
 * version, type, length). */
static size_t vrrp_message(const uint8_t *v, size_t len, size_t alen, const char **why)
{
	if (len < VRRP_HDR) {
		*why = "shorter than a VRRP header";
		return 0;
	}
	if (v[0] >> 4 != 3) {
		*why = v[0] >> 4 == 2 ? "VRRP version 2 (keel speaks version 3)" :
					"not VRRP version 3";
		return 0;
	}
	if ((v[0] & 0x0f) != 1) {
		*why = "not an advertisement";
		return 0;
	}
	if (len < VRRP_HDR + alen * v[3]) {
		*why = "shorter than its address count says";
		return 0;
	}
	return VRRP_HDR + alen * v[3];
}

size_t vrrp_build4(uint8_t *out, size_t cap, const struct vrrp_advert *a)
{
	size_t len = VRRP_HDR + 4 * (size_t)a->naddr;
	uint16_t sum;

	if (a->naddr == 0 || a->naddr > VRRP_MAX_ADDRS || a->vrid == 0 ||
	    a->interval_cs == 0 || a->interval_cs > VRRP_MAX_CS || cap < len)
		return 0;
	out[0] = 3 << 4 | 1;		/* version 3, advertisement */
	out[1] = a->vrid;
	out[2] = a->priority;
	out[3] = a->naddr;
	out[4] = (uint8_t)(a->interval_cs >> 8);	/* the top 4 bits stay 0 */
	out[5] = (uint8_t)a->interval_cs;
	out[6] = out[7] = 0;
	memcpy(out + VRRP_HDR, a->addr, 4 * (size_t)a->naddr);
	sum = vrrp_sum4(a->src, a->dst, out, len);
	out[6] = (uint8_t)(sum >> 8);
	out[7] = (uint8_t)sum;
	return len;
}

int vrrp_parse4(const uint8_t *pkt, size_t len, struct vrrp_advert *a, const char **why)
{
	size_t ihl, total, vlen, i;
	const uint8_t *v;

	memset(a, 0, sizeof(*a));
	if (len < 20 || pkt[0] >> 4 != 4) {
		*why = "not an IPv4 packet";
		return -1;
	}
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	total = (size_t)(pkt[2] << 8 | pkt[3]);
	if (ihl < 20 || total < ihl || total > len) {
		*why = "IPv4 header lengths do not fit the packet";
		return -1;
	}
	if (pkt[9] != VRRP_PROTO) {
		*why = "not VRRP";
		return -1;
	}
	memcpy(&a->src, pkt + 12, 4);
	memcpy(&a->dst, pkt + 16, 4);
	if (pkt[8] != 255) {
		*why = "TTL is not 255 (it came through a router)";
		return -1;
	}
	v = pkt + ihl;
	vlen = total - ihl;
	if ((vlen = vrrp_message(v, vlen, 4, why)) == 0)
		return -1;
	if (vrrp_sum4(a->src, a->dst, v, vlen) != 0) {
		*why = "bad checksum";
		return -1;
	}
	a->vrid = v[1];
	a->priority = v[2];
	a->naddr = v[3];
	a->interval_cs = (uint16_t)((v[4] & 0x0f) << 8 | v[5]);
	if (a->vrid == 0 || a->naddr == 0 || a->interval_cs == 0) {
		*why = a->vrid == 0 ? "virtual router id 0" : a->naddr == 0 ?
		       "no addresses" : "advert interval 0";
		return -1;
	}
	a->nread = a->naddr < VRRP_MAX_ADDRS ? a->naddr : VRRP_MAX_ADDRS;
	for (i = 0; i < a->nread; i++)
		memcpy(&a->addr[i], v + VRRP_HDR + 4 * i, 4);
	return 0;
}

/* ---- IPv6 ------------------------------------------------------------------------------------ */

size_t vrrp_build6(uint8_t *out, size_t cap, const struct vrrp_advert6 *a)
{
	size_t len = VRRP_HDR + 16 * (size_t)a->naddr;
	uint16_t sum;

	if (a->naddr == 0 || a->naddr > VRRP_MAX_ADDRS || a->vrid == 0 ||
	    a->interval_cs == 0 || a->interval_cs > VRRP_MAX_CS || cap < len)
		return 0;
	out[0] = 3 << 4 | 1;
	out[1] = a->vrid;
	out[2] = a->priority;
	out[3] = a->naddr;
	out[4] = (uint8_t)(a->interval_cs >> 8);
	out[5] = (uint8_t)a->interval_cs;
	out[6] = out[7] = 0;
	memcpy(out + VRRP_HDR, a->addr, 16 * (size_t)a->naddr);
	sum = vrrp_sum6(a->src, a->dst, out, len);
	out[6] = (uint8_t)(sum >> 8);
	out[7] = (uint8_t)sum;
	return len;
}

int vrrp_parse6(const uint8_t *v, size_t len, const uint8_t src[16], const uint8_t dst[16],
		int hoplimit, struct vrrp_advert6 *a, const char **why)
{
	size_t vlen, i;

	memset(a, 0, sizeof(*a));
	memcpy(a->src, src, 16);
	memcpy(a->dst, dst, 16);
	if (hoplimit != 255) {
		*why = "hop limit is not 255 (it came through a router)";
		return -1;
	}
	if ((vlen = vrrp_message(v, len, 16, why)) == 0)
		return -1;
	if (vrrp_sum6(src, dst, v, vlen) != 0) {
		*why = "bad checksum";
		return -1;
	}
	a->vrid = v[1];
	a->priority = v[2];
	a->naddr = v[3];
	a->interval_cs = (uint16_t)((v[4] & 0x0f) << 8 | v[5]);
	if (a->vrid == 0 || a->naddr == 0 || a->interval_cs == 0) {
		*why = a->vrid == 0 ? "virtual router id 0" : a->naddr == 0 ?
		       "no addresses" : "advert interval 0";
		return -1;
	}
	a->nread = a->naddr < VRRP_MAX_ADDRS ? a->naddr : VRRP_MAX_ADDRS;
	for (i = 0; i < a->nread; i++)
		memcpy(a->addr[i], v + VRRP_HDR + 16 * i, 16);
	return 0;
}

/* ---- keel-to-keel authentication ---------------------------------------------------------- */

static int vrrp_mac(uint8_t mac[32], const uint8_t *key, size_t keylen, const void *src,
		    const void *dst, size_t alen, const uint8_t *v, size_t vlen)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	mbedtls_md_context_t c;
	int rc;

	mbedtls_md_init(&c);
	rc = mbedtls_md_setup(&c, md, 1);
	if (rc == 0)
		rc = mbedtls_md_hmac_starts(&c, key, keylen);
	if (rc == 0)
		rc = mbedtls_md_hmac_update(&c, src, alen);
	if (rc == 0)
		rc = mbedtls_md_hmac_update(&c, dst, alen);
	if (rc == 0)
		rc = mbedtls_md_hmac_update(&c, v, vlen);	/* the message and the counter */
	if (rc == 0)
		rc = mbedtls_md_hmac_finish(&c, mac);
	mbedtls_md_free(&c);
	return rc == 0 ? 0 : -1;
}

size_t vrrp_seal4(uint8_t *pkt, size_t len, size_t cap, uint32_t src, uint32_t dst,
		  uint64_t counter, const uint8_t *key, size_t keylen)
{
	uint8_t mac[32];
	int i;

	if (len == 0 || cap < len + VRRP_AUTH_LEN)
		return 0;
	for (i = 0; i < 8; i++)
		pkt[len + (size_t)i] = (uint8_t)(counter >> (56 - 8 * i));
	if (vrrp_mac(mac, key, keylen, &src, &dst, 4, pkt, len + 8) != 0)
		return 0;
	memcpy(pkt + len + 8, mac, 16);
	return len + VRRP_AUTH_LEN;
}

/* The trailer after the VRRP message v[0..vlen) in what arrived, total
 * bytes from v on. */
static int vrrp_unseal(const uint8_t *v, size_t vlen, size_t total, const void *src,
		       const void *dst, size_t alen, const uint8_t *key, size_t keylen,
		       uint64_t *counter, const char **why)
{
	uint8_t mac[32], diff = 0;
	int i;

	if (total != vlen + VRRP_AUTH_LEN) {
		*why = total == vlen ? "not authenticated (no keel trailer)" :
				       "not authenticated (a trailer of the wrong size)";
		return -1;
	}
	if (vrrp_mac(mac, key, keylen, src, dst, alen, v, vlen + 8) != 0) {
		*why = "HMAC failed";
		return -1;
	}
	for (i = 0; i < 16; i++)
		diff |= (uint8_t)(mac[i] ^ v[vlen + 8 + (size_t)i]);
	if (diff != 0) {
		*why = "not authenticated (another key, or altered)";
		return -1;
	}
	*counter = 0;
	for (i = 0; i < 8; i++)
		*counter = *counter << 8 | v[vlen + (size_t)i];
	return 0;
}

int vrrp_unseal4(const uint8_t *pkt, size_t len, const struct vrrp_advert *a,
		 const uint8_t *key, size_t keylen, uint64_t *counter, const char **why)
{
	size_t ihl = (size_t)(pkt[0] & 0x0f) * 4, total = (size_t)(pkt[2] << 8 | pkt[3]);

	if (total > len || total < ihl) {
		*why = "IPv4 header lengths do not fit the packet";
		return -1;
	}
	return vrrp_unseal(pkt + ihl, VRRP_HDR + 4 * (size_t)a->naddr, total - ihl, &a->src,
			   &a->dst, 4, key, keylen, counter, why);
}

size_t vrrp_seal6(uint8_t *v, size_t len, size_t cap, const uint8_t src[16],
		  const uint8_t dst[16], uint64_t counter, const uint8_t *key, size_t keylen)
{
	uint8_t mac[32];
	int i;

	if (len == 0 || cap < len + VRRP_AUTH_LEN)
		return 0;
	for (i = 0; i < 8; i++)
		v[len + (size_t)i] = (uint8_t)(counter >> (56 - 8 * i));
	if (vrrp_mac(mac, key, keylen, src, dst, 16, v, len + 8) != 0)
		return 0;
	memcpy(v + len + 8, mac, 16);
	return len + VRRP_AUTH_LEN;
}

int vrrp_unseal6(const uint8_t *v, size_t len, const struct vrrp_advert6 *a,
		 const uint8_t *key, size_t keylen, uint64_t *counter, const char **why)
{
	return vrrp_unseal(v, VRRP_HDR + 16 * (size_t)a->naddr, len, a->src, a->dst, 16, key,
			   keylen, counter, why);
}
