/* Tests of firmware/dhcp.c: DHCP requests as servers expect them, answers
 * read with every length checked, SNTP stamps and answers. */
#include <arpa/inet.h>

#include "runner.h"
#include "firmware/dhcp.c"

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static uint32_t ip(const char *s)
{
	uint32_t a;

	inet_pton(AF_INET, s, &a);
	return a;
}

/* An answer the way a server builds it: our request turned into a reply. */
static size_t reply(uint8_t *p, int type, uint32_t xid, const uint8_t *opts, size_t olen)
{
	uint32_t x = htonl(xid), magic = htonl(MAGIC), yi = ip("10.0.2.15");
	uint8_t t = (uint8_t)type;
	size_t n = BOOTP_FIXED + 4;

	memset(p, 0, DHCP_PACKET_MAX);
	p[0] = 2;
	p[1] = 1;
	p[2] = 6;
	memcpy(p + 4, &x, 4);
	memcpy(p + 16, &yi, 4);
	memcpy(p + 28, mac, 6);
	memcpy(p + BOOTP_FIXED, &magic, 4);
	p[n++] = 53;
	p[n++] = 1;
	p[n++] = t;
	if (olen > 0)
		memcpy(p + n, opts, olen);
	n += olen;
	p[n++] = 255;
	return n;
}

TEST(a_discover_asks_for_a_broadcast_answer_and_the_options_keel_reads)
{
	uint8_t p[DHCP_PACKET_MAX];
	size_t n = dhcp_build(p, DHCP_DISCOVER, 0x01020304, mac, 0, 0, 0, "gw1");
	const uint8_t *o;

	CHECK_INT(n, >=, 300);
	CHECK_INT(p[0], ==, 1);
	CHECK_INT(p[4], ==, 1);
	CHECK_INT(p[7], ==, 4);
	CHECK_INT(p[10], ==, 0x80);		/* broadcast flag */
	CHECK(memcmp(p + 28, mac, 6) == 0);
	o = p + BOOTP_FIXED + 4;
	CHECK_INT(o[0], ==, 53);
	CHECK_INT(o[2], ==, DHCP_DISCOVER);
	CHECK_INT(o[3], ==, 55);		/* the parameter list */
	CHECK(memmem(p, n, "\x0c\x03gw1", 5) != NULL);
}

TEST(a_request_names_the_offer_and_its_server_a_renewal_only_its_address)
{
	uint8_t p[DHCP_PACKET_MAX];
	uint32_t a = ip("10.0.2.15"), s = ip("10.0.2.2");
	uint8_t want50[6] = { 50, 4 }, want54[6] = { 54, 4 };
	size_t n;

	memcpy(want50 + 2, &a, 4);
	memcpy(want54 + 2, &s, 4);
	n = dhcp_build(p, DHCP_REQUEST, 7, mac, 0, a, s, NULL);
	CHECK(memmem(p + BOOTP_FIXED, n - BOOTP_FIXED, want50, 6) != NULL);
	CHECK(memmem(p + BOOTP_FIXED, n - BOOTP_FIXED, want54, 6) != NULL);
	n = dhcp_build(p, DHCP_REQUEST, 8, mac, a, 0, 0, NULL);
	CHECK(memcmp(p + 12, &a, 4) == 0);	/* ciaddr */
	CHECK_INT(p[10], ==, 0);		/* it can take a unicast answer */
	CHECK(memmem(p + BOOTP_FIXED, n - BOOTP_FIXED, want50, 6) == NULL);
}

TEST(an_ack_with_every_option_is_read)
{
	static const uint8_t opts[] = {
		54, 4, 10, 0, 2, 2,  1, 4, 255, 255, 255, 0,  3, 8, 10, 0, 2, 2, 10, 0, 2, 3,
		51, 4, 0, 1, 81, 128,  58, 4, 0, 0, 0, 60,  59, 4, 0, 0, 0, 90,
		0, 0,			/* pads */
		6, 16, 10, 0, 2, 3, 1, 1, 1, 1, 8, 8, 8, 8, 9, 9, 9, 9,
		42, 4, 10, 0, 2, 2,  99, 3, 1, 2, 3,
	};
	uint8_t p[DHCP_PACKET_MAX];
	struct dhcp_msg m;
	const char *why = NULL;
	size_t n = reply(p, DHCP_ACK, 42, opts, sizeof(opts));

	CHECK(dhcp_parse(p, n, 42, mac, &m, &why));
	CHECK_INT(m.type, ==, DHCP_ACK);
	CHECK(m.yiaddr == ip("10.0.2.15") && m.server == ip("10.0.2.2"));
	CHECK(m.mask == ip("255.255.255.0") && m.router == ip("10.0.2.2"));
	CHECK_INT(m.lease, ==, 86400);
	CHECK_INT(m.t1, ==, 60);
	CHECK_INT(m.t2, ==, 90);
	CHECK_INT(m.ndns, ==, 3);		/* the fourth is not kept */
	CHECK(m.dns[0] == ip("10.0.2.3") && m.dns[2] == ip("8.8.8.8"));
	CHECK_INT(m.nntp, ==, 1);
}

TEST(answers_that_are_not_ours_or_run_past_their_end_are_refused_with_why)
{
	static const uint8_t runs_over[] = { 6, 200, 1, 2, 3 };
	uint8_t p[DHCP_PACKET_MAX], other[6] = { 1, 2, 3, 4, 5, 6 };
	struct dhcp_msg m;
	const char *why = NULL;
	size_t n = reply(p, DHCP_OFFER, 5, NULL, 0);

	CHECK(!dhcp_parse(p, n, 6, mac, &m, &why));
	CHECK_STR(why, "another transaction");
	CHECK(!dhcp_parse(p, n, 5, other, &m, &why));
	CHECK_STR(why, "for another client");
	CHECK(!dhcp_parse(p, 100, 5, mac, &m, &why));
	CHECK_STR(why, "too short for a DHCP message");
	n = reply(p, DHCP_OFFER, 5, runs_over, sizeof(runs_over));
	CHECK(!dhcp_parse(p, n - 1, 5, mac, &m, &why));	/* without the end option */
	CHECK_STR(why, "an option runs past the end of the packet");
	p[0] = 1;
	CHECK(!dhcp_parse(p, n, 5, mac, &m, &why));
	CHECK_STR(why, "not a BOOTREPLY for Ethernet");
}

TEST(sntp_stamps_keep_milliseconds_and_the_era_after_2036)
{
	uint64_t ms = 1796000000123ULL;		/* 2026 */

	CHECK_INT(sntp_to_unix_ms(sntp_from_unix_ms(ms)), ==, (long long)ms);
	CHECK_INT(sntp_from_unix_ms(0) >> 32, ==, 2208988800LL);
	/* 2040: NTP seconds wrapped past 2^32, top bit clear. */
	CHECK_INT(sntp_to_unix_ms((uint64_t)(2208988800ULL + 2208988800ULL - 4294967296ULL) << 32),
		  ==, 2208988800000LL);
}

TEST(an_sntp_answer_must_echo_our_stamp_and_come_from_a_synchronized_server)
{
	uint8_t req[48], ans[48];
	uint64_t tx = sntp_from_unix_ms(1796000000000ULL) ^ 0x1234, rx, txs;
	const char *why = NULL;

	sntp_build(req, tx);
	CHECK_INT(req[0], ==, 0x23);		/* version 4, client */
	memset(ans, 0, sizeof(ans));
	ans[0] = 4 << 3 | 4;
	ans[1] = 2;
	memcpy(ans + 24, req + 40, 8);
	put64(ans + 32, tx + (1ULL << 32));
	put64(ans + 40, tx + (2ULL << 32));
	CHECK(sntp_parse(ans, 48, tx, &rx, &txs, &why));
	CHECK(rx == tx + (1ULL << 32) && txs == tx + (2ULL << 32));
	CHECK(!sntp_parse(ans, 48, tx + 1, &rx, &txs, &why));
	CHECK_STR(why, "not the answer to our request");
	ans[1] = 0;
	CHECK(!sntp_parse(ans, 48, tx, &rx, &txs, &why));
	CHECK(strstr(why, "kiss-o'-death") != NULL);
	ans[1] = 2;
	ans[0] = 3 << 6 | 4 << 3 | 4;
	CHECK(!sntp_parse(ans, 48, tx, &rx, &txs, &why));
	CHECK(!sntp_parse(ans, 47, tx, &rx, &txs, &why));
}
