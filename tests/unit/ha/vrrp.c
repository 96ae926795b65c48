/* Tests of VRRPv3 adverts (ha/vrrp.c) against a real keepalived's: the
 * packet below is keepalived 2.2.7 (vrrp_version 3, vrid 42, priority
 * 200, advert_int 1, two addresses) as a raw socket received it. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "ha/vrrp.c"

static const uint8_t keepalived_advert[] = {
	0x45, 0xc0, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x12, 0xec,
	0xc0, 0xa8, 0x07, 0x02, 0xe0, 0x00, 0x00, 0x12,			/* IPv4 */
	0x31, 0x2a, 0xc8, 0x02, 0x00, 0x64, 0xce, 0x7a,			/* VRRP */
	0xc0, 0xa8, 0x07, 0x32, 0xc0, 0xa8, 0x07, 0x33,
};

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		abort();
	return a.s_addr;
}

/* An IPv4 packet around a VRRP message, as the kernel hands it over. */
static size_t wrap(uint8_t *pkt, const uint8_t *v, size_t vlen, uint32_t src, uint32_t dst,
		   uint8_t ttl)
{
	memset(pkt, 0, 20);
	pkt[0] = 0x45;
	pkt[2] = (uint8_t)((20 + vlen) >> 8);
	pkt[3] = (uint8_t)(20 + vlen);
	pkt[8] = ttl;
	pkt[9] = VRRP_PROTO;
	memcpy(pkt + 12, &src, 4);
	memcpy(pkt + 16, &dst, 4);
	memcpy(pkt + 20, v, vlen);
	return 20 + vlen;
}

TEST(keepalived_advert_is_read)
{
	struct vrrp_advert a;
	const char *why = NULL;

	CHECK_INT(vrrp_parse4(keepalived_advert, sizeof(keepalived_advert), &a, &why), ==, 0);
	CHECK_INT(a.vrid, ==, 42);
	CHECK_INT(a.priority, ==, 200);
	CHECK_INT(a.interval_cs, ==, 100);
	CHECK_INT(a.naddr, ==, 2);
	CHECK_INT(a.nread, ==, 2);
	CHECK(a.addr[0] == ip4("192.168.7.50"));
	CHECK(a.addr[1] == ip4("192.168.7.51"));
	CHECK(a.src == ip4("192.168.7.2"));
	CHECK(a.dst == htonl(VRRP_GROUP4));
}

TEST(keel_builds_keepalived_bytes)
{
	struct vrrp_advert a;
	uint8_t out[64];

	memset(&a, 0, sizeof(a));
	a.vrid = 42;
	a.priority = 200;
	a.interval_cs = 100;
	a.naddr = 2;
	a.addr[0] = ip4("192.168.7.50");
	a.addr[1] = ip4("192.168.7.51");
	a.src = ip4("192.168.7.2");
	a.dst = htonl(VRRP_GROUP4);
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 16);
	CHECK(memcmp(out, keepalived_advert + 20, 16) == 0);
	/* The checksum covers the pseudo-header: another source, another sum. */
	a.src = ip4("192.168.7.3");
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 16);
	CHECK(memcmp(out, keepalived_advert + 20, 6) == 0);
	CHECK(memcmp(out + 6, keepalived_advert + 26, 2) != 0);
}

static void refused(const uint8_t *pkt, size_t len, const char *want)
{
	struct vrrp_advert a;
	const char *why = NULL;

	if (vrrp_parse4(pkt, len, &a, &why) != -1)
		test_fail(__FILE__, __LINE__, "accepted, wanted \"%s\"", want);
	if (why == NULL || strstr(why, want) == NULL)
		test_fail(__FILE__, __LINE__, "said \"%s\", wanted \"%s\"", why ? why : "(null)",
			  want);
}

TEST(what_rfc_5798_discards_is_refused_with_its_reason)
{
	uint8_t p[sizeof(keepalived_advert)];

	memcpy(p, keepalived_advert, sizeof(p));
	p[8] = 254;				/* came through a router */
	refused(p, sizeof(p), "TTL is not 255");

	memcpy(p, keepalived_advert, sizeof(p));
	p[20] = 0x21;				/* version 2 */
	refused(p, sizeof(p), "version 2");

	memcpy(p, keepalived_advert, sizeof(p));
	p[20] = 0x32;				/* type 2 */
	refused(p, sizeof(p), "not an advertisement");

	memcpy(p, keepalived_advert, sizeof(p));
	p[22] = 201;				/* priority changed, sum not */
	refused(p, sizeof(p), "bad checksum");

	memcpy(p, keepalived_advert, sizeof(p));
	p[12] = 0xc1;				/* another source: the pseudo-header's sum */
	refused(p, sizeof(p), "bad checksum");

	memcpy(p, keepalived_advert, sizeof(p));
	p[23] = 3;				/* three addresses in room for two */
	refused(p, sizeof(p), "shorter than its address count says");

	refused(keepalived_advert, 27, "lengths do not fit");	/* cut short */
	refused(keepalived_advert, 19, "not an IPv4 packet");

	memcpy(p, keepalived_advert, sizeof(p));
	p[9] = 17;
	refused(p, sizeof(p), "not VRRP");

	memcpy(p, keepalived_advert, sizeof(p));
	p[0] = 0x44;				/* IHL 16 bytes */
	refused(p, sizeof(p), "lengths do not fit");

	memcpy(p, keepalived_advert, sizeof(p));
	p[3] = 0x1b;				/* total length: 7 bytes of VRRP */
	refused(p, sizeof(p), "shorter than a VRRP header");

	memcpy(p, keepalived_advert, sizeof(p));
	p[3] = 0x1f;				/* total length: room for one address */
	refused(p, sizeof(p), "shorter than its address count says");
}

TEST(a_zero_count_vrid_or_interval_is_refused_after_a_good_sum)
{
	struct vrrp_advert a;
	uint8_t v[16], pkt[64];
	const char *why;
	size_t n;

	memset(&a, 0, sizeof(a));
	a.vrid = 1;
	a.priority = 100;
	a.interval_cs = 100;
	a.naddr = 1;
	a.addr[0] = ip4("10.0.0.1");
	a.src = ip4("10.0.0.2");
	a.dst = htonl(VRRP_GROUP4);
	CHECK_INT(vrrp_build4(v, sizeof(v), &a), ==, 12);
	/* vrid 0 with the sum made right: built by hand */
	v[1] = 0;
	v[6] = v[7] = 0;
	{
		uint16_t s = vrrp_sum4(a.src, a.dst, v, 12);

		v[6] = (uint8_t)(s >> 8);
		v[7] = (uint8_t)s;
	}
	n = wrap(pkt, v, 12, a.src, a.dst, 255);
	CHECK_INT(vrrp_parse4(pkt, n, &a, &why), ==, -1);
	CHECK_STR(why, "virtual router id 0");
}

TEST(build_refuses_what_it_cannot_send)
{
	struct vrrp_advert a;
	uint8_t out[128];

	memset(&a, 0, sizeof(a));
	a.vrid = 1;
	a.priority = 100;
	a.interval_cs = 100;
	a.naddr = 1;
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 12);
	CHECK_INT(vrrp_build4(out, 11, &a), ==, 0);
	a.naddr = 0;
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 0);
	a.naddr = VRRP_MAX_ADDRS + 1;
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 0);
	a.naddr = 1;
	a.interval_cs = 0;
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 0);
	a.interval_cs = VRRP_MAX_CS + 1;
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 0);
	a.interval_cs = VRRP_MAX_CS;
	a.vrid = 0;
	CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, 0);
}

TEST(more_addresses_than_keel_keeps_are_read_up_to_its_limit)
{
	uint8_t v[VRRP_HDR + 4 * 30], pkt[256];
	struct vrrp_advert a;
	uint32_t src = ip4("10.0.0.2"), dst = htonl(VRRP_GROUP4);
	const char *why;
	uint16_t s;
	size_t i, n;

	memset(v, 0, sizeof(v));
	v[0] = 0x31;
	v[1] = 7;
	v[2] = 100;
	v[3] = 30;
	v[5] = 100;
	for (i = 0; i < 30; i++) {
		uint32_t x = htonl(0x0a000100u + (uint32_t)i);

		memcpy(v + VRRP_HDR + 4 * i, &x, 4);
	}
	s = vrrp_sum4(src, dst, v, sizeof(v));
	v[6] = (uint8_t)(s >> 8);
	v[7] = (uint8_t)s;
	n = wrap(pkt, v, sizeof(v), src, dst, 255);
	CHECK_INT(vrrp_parse4(pkt, n, &a, &why), ==, 0);
	CHECK_INT(a.naddr, ==, 30);
	CHECK_INT(a.nread, ==, VRRP_MAX_ADDRS);
	CHECK(a.addr[VRRP_MAX_ADDRS - 1] == htonl(0x0a000100u + VRRP_MAX_ADDRS - 1));
}

TEST(random_adverts_survive_a_round_trip)
{
	unsigned i, j;

	srand(5798);
	for (i = 0; i < 2000; i++) {
		struct vrrp_advert a, b;
		uint8_t v[VRRP_HDR + 4 * VRRP_MAX_ADDRS], pkt[256];
		const char *why = NULL;
		size_t vlen, n;

		memset(&a, 0, sizeof(a));
		a.vrid = (uint8_t)(rand() % 255 + 1);
		a.priority = (uint8_t)(rand() % 256);
		a.interval_cs = (uint16_t)(rand() % VRRP_MAX_CS + 1);
		a.naddr = (uint8_t)(rand() % VRRP_MAX_ADDRS + 1);
		a.nread = a.naddr;
		for (j = 0; j < a.naddr; j++)
			a.addr[j] = (uint32_t)rand();
		a.src = (uint32_t)rand();
		a.dst = htonl(VRRP_GROUP4);
		vlen = vrrp_build4(v, sizeof(v), &a);
		CHECK_INT(vlen, ==, VRRP_HDR + 4 * a.naddr);
		n = wrap(pkt, v, vlen, a.src, a.dst, 255);
		if (vrrp_parse4(pkt, n, &b, &why) != 0)
			test_fail(__FILE__, __LINE__, "round %u refused: %s", i, why);
		CHECK(memcmp(&a, &b, sizeof(a)) == 0);
		/* any one bit flipped in the VRRP part is caught by the sum, or
		 * by the checks before it */
		pkt[20 + (size_t)rand() % vlen] ^= (uint8_t)(1u << (rand() % 8));
		CHECK_INT(vrrp_parse4(pkt, n, &b, &why), ==, -1);
	}
}

/* One's complement has two zeros: where keel's sum is 0x0000 a sender may
 * write 0xffff (the fuzzer found one such packet); both are read. */
TEST(a_checksum_of_0xffff_for_zero_is_read)
{
	struct vrrp_advert a;
	uint8_t v[VRRP_HDR + 4], pkt[64], out[VRRP_HDR + 4];
	uint32_t src = ip4("10.0.0.2"), dst = htonl(VRRP_GROUP4);
	const char *why = NULL;
	uint32_t x;
	size_t n;

	/* Find an address for which keel's checksum comes out 0x0000. */
	for (x = 0; x < 0x10000; x++) {
		memset(&a, 0, sizeof(a));
		a.vrid = 1;
		a.priority = 100;
		a.interval_cs = 100;
		a.naddr = 1;
		a.addr[0] = htonl(0x0a000000u | x);
		a.src = src;
		a.dst = dst;
		CHECK_INT(vrrp_build4(out, sizeof(out), &a), ==, sizeof(out));
		if (out[6] == 0 && out[7] == 0)
			break;
	}
	CHECK(x < 0x10000);
	memcpy(v, out, sizeof(v));
	n = wrap(pkt, v, sizeof(v), src, dst, 255);
	CHECK_INT(vrrp_parse4(pkt, n, &a, &why), ==, 0);
	pkt[26] = pkt[27] = 0xff;		/* the other zero */
	CHECK_INT(vrrp_parse4(pkt, n, &a, &why), ==, 0);
	pkt[27] = 0xfe;				/* not zero */
	CHECK_INT(vrrp_parse4(pkt, n, &a, &why), ==, -1);
}

/* An IPv4 header in front of a VRRP message, as a raw socket delivers it. */
static size_t wrap4(uint8_t *out, const uint8_t *v, size_t vlen, uint32_t src, uint32_t dst)
{
	memset(out, 0, 20);
	out[0] = 0x45;
	out[2] = (uint8_t)((20 + vlen) >> 8);
	out[3] = (uint8_t)(20 + vlen);
	out[8] = 255;
	out[9] = VRRP_PROTO;
	memcpy(out + 12, &src, 4);
	memcpy(out + 16, &dst, 4);
	memcpy(out + 20, v, vlen);
	return 20 + vlen;
}

TEST(a_signed_advert_is_read_with_its_key_and_refused_without)
{
	static const uint8_t key[] = "a key of sixteen+", other[] = "another key, 16+";
	struct vrrp_advert a, r;
	uint8_t v[VRRP_HDR + 8 + VRRP_AUTH_LEN], pkt[128];
	const char *why = NULL;
	uint64_t counter = 0;
	size_t len, plen, i;

	memset(&a, 0, sizeof(a));
	a.vrid = 42;
	a.priority = 150;
	a.interval_cs = 100;
	a.naddr = 2;
	a.addr[0] = ip4("192.168.7.50");
	a.addr[1] = ip4("192.168.7.51");
	a.src = ip4("192.168.7.2");
	a.dst = htonl(VRRP_GROUP4);
	len = vrrp_build4(v, sizeof(v), &a);
	CHECK_INT(len, ==, VRRP_HDR + 8);
	CHECK_INT(vrrp_seal4(v, len, len + VRRP_AUTH_LEN - 1, a.src, a.dst, 7, key, 16), ==, 0);
	len = vrrp_seal4(v, len, sizeof(v), a.src, a.dst, 0x0102030405060708ull, key, 16);
	CHECK_INT(len, ==, VRRP_HDR + 8 + VRRP_AUTH_LEN);
	plen = wrap4(pkt, v, len, a.src, a.dst);
	/* Plain VRRP still reads it (the trailer is outside the checksum). */
	CHECK_INT(vrrp_parse4(pkt, plen, &r, &why), ==, 0);
	CHECK_INT(r.naddr, ==, 2);
	CHECK_INT(vrrp_unseal4(pkt, plen, &r, key, 16, &counter, &why), ==, 0);
	CHECK(counter == 0x0102030405060708ull);
	CHECK_INT(vrrp_unseal4(pkt, plen, &r, other, 16, &counter, &why), ==, -1);
	CHECK(strstr(why, "another key") != NULL);
	/* Every byte of the message, the counter and the signature counts. */
	for (i = 20; i < plen; i++) {
		pkt[i] ^= 0x20;
		if (vrrp_parse4(pkt, plen, &r, &why) == 0 &&
		    vrrp_unseal4(pkt, plen, &r, key, 16, &counter, &why) == 0)
			test_fail(__FILE__, __LINE__, "byte %zu altered, still taken", i);
		pkt[i] ^= 0x20;
	}
	/* So do the addresses (a copy sent to another destination). */
	plen = wrap4(pkt, v, len, a.src, ip4("192.168.7.3"));
	pkt[10] = pkt[11] = 0;
	CHECK_INT(vrrp_parse4(pkt, plen, &r, &why), ==, -1);	/* the checksum, first */
	/* An unsigned advert is refused, saying so. */
	plen = wrap4(pkt, v, VRRP_HDR + 8, a.src, a.dst);
	CHECK_INT(vrrp_parse4(pkt, plen, &r, &why), ==, 0);
	CHECK_INT(vrrp_unseal4(pkt, plen, &r, key, 16, &counter, &why), ==, -1);
	CHECK(strstr(why, "no keel trailer") != NULL);
	/* As is a cut trailer. */
	plen = wrap4(pkt, v, len - 1, a.src, a.dst);
	CHECK_INT(vrrp_parse4(pkt, plen, &r, &why), ==, 0);
	CHECK_INT(vrrp_unseal4(pkt, plen, &r, key, 16, &counter, &why), ==, -1);
	CHECK(strstr(why, "wrong size") != NULL);
}

static void ip6(const char *s, uint8_t out[16])
{
	CHECK(inet_pton(AF_INET6, s, out) == 1);
}

TEST(an_ipv6_advert_round_trips_and_rfc_5798_discards_are_refused)
{
	struct vrrp_advert6 a, r;
	uint8_t v[VRRP_HDR + 32 + VRRP_AUTH_LEN], group[16], other[16];
	const char *why = NULL;
	uint64_t counter = 0;
	size_t len, i;

	memset(&a, 0, sizeof(a));
	a.vrid = 42;
	a.priority = 200;
	a.interval_cs = 100;
	a.naddr = 2;
	ip6("fd79:1::50", a.addr[0]);
	ip6("fd79:1::51", a.addr[1]);
	ip6("fe80::1", a.src);
	ip6(VRRP_GROUP6, group);
	memcpy(a.dst, group, 16);
	len = vrrp_build6(v, sizeof(v), &a);
	CHECK_INT(len, ==, VRRP_HDR + 32);
	CHECK_INT(vrrp_parse6(v, len, a.src, group, 255, &r, &why), ==, 0);
	CHECK_INT(r.vrid, ==, 42);
	CHECK_INT(r.priority, ==, 200);
	CHECK_INT(r.interval_cs, ==, 100);
	CHECK_INT(r.naddr, ==, 2);
	CHECK(memcmp(r.addr[1], a.addr[1], 16) == 0);
	/* The checksum covers the pseudo-header: another source fails it. */
	ip6("fe80::2", other);
	CHECK_INT(vrrp_parse6(v, len, other, group, 255, &r, &why), ==, -1);
	CHECK(strstr(why, "checksum") != NULL);
	CHECK_INT(vrrp_parse6(v, len, a.src, group, 64, &r, &why), ==, -1);
	CHECK(strstr(why, "hop limit") != NULL);
	CHECK_INT(vrrp_parse6(v, len - 1, a.src, group, 255, &r, &why), ==, -1);
	CHECK(strstr(why, "address count") != NULL);
	CHECK_INT(vrrp_parse6(v, 7, a.src, group, 255, &r, &why), ==, -1);
	for (i = 0; i < len; i++) {
		v[i] ^= 0x01;
		CHECK_INT(vrrp_parse6(v, len, a.src, group, 255, &r, &why), ==, -1);
		v[i] ^= 0x01;
	}
	/* Signed, as keel to keel. */
	len = vrrp_seal6(v, len, sizeof(v), a.src, group, 99, (const uint8_t *)"sixteen byte key", 16);
	CHECK_INT(len, ==, VRRP_HDR + 32 + VRRP_AUTH_LEN);
	CHECK_INT(vrrp_parse6(v, len, a.src, group, 255, &r, &why), ==, 0);
	CHECK_INT(vrrp_unseal6(v, len, &r, (const uint8_t *)"sixteen byte key", 16, &counter,
			       &why), ==, 0);
	CHECK(counter == 99);
	CHECK_INT(vrrp_unseal6(v, len, &r, (const uint8_t *)"sixteen byte kez", 16, &counter,
			       &why), ==, -1);
	CHECK_INT(vrrp_unseal6(v, VRRP_HDR + 32, &r, (const uint8_t *)"sixteen byte key", 16,
			       &counter, &why), ==, -1);
	CHECK(strstr(why, "no keel trailer") != NULL);
}
