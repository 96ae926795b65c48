/* DHCPv4 and SNTP messages; see dhcp.h. */
#include <arpa/inet.h>
#include <string.h>

#include "dhcp.h"

#define BOOTP_FIXED	236		/* op .. file */
#define MAGIC		0x63825363u
#define NTP_UNIX_DELTA	2208988800ULL	/* 1900-01-01 to 1970-01-01, in seconds */

static void put32(uint8_t *p, uint32_t v)	/* v in network order already */
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)		/* stays in network order */
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint8_t *opt(uint8_t *p, uint8_t code, const void *val, uint8_t len)
{
	*p++ = code;
	*p++ = len;
	memcpy(p, val, len);
	return p + len;
}

size_t dhcp_build(uint8_t *out, int type, uint32_t xid, const uint8_t mac[6],
		  uint32_t ciaddr, uint32_t requested, uint32_t server, const char *hostname)
{
	static const uint8_t params[] = { 1, 3, 6, 42, 51, 54, 58, 59 };
	uint32_t magic = htonl(MAGIC), x = htonl(xid);
	uint8_t t = (uint8_t)type, *p;
	size_t hl;

	memset(out, 0, DHCP_PACKET_MAX);
	out[0] = 1;			/* BOOTREQUEST */
	out[1] = 1;			/* Ethernet */
	out[2] = 6;
	memcpy(out + 4, &x, 4);
	if (ciaddr == 0 && type != DHCP_RELEASE) {
		out[10] = 0x80;		/* broadcast the answer: we have no address yet */
	}
	put32(out + 12, ciaddr);
	memcpy(out + 28, mac, 6);
	p = out + BOOTP_FIXED;
	memcpy(p, &magic, 4);
	p += 4;
	p = opt(p, 53, &t, 1);
	if (requested != 0)
		p = opt(p, 50, &requested, 4);
	if (server != 0)
		p = opt(p, 54, &server, 4);
	if (type != DHCP_RELEASE)
		p = opt(p, 55, params, sizeof(params));
	hl = hostname != NULL ? strlen(hostname) : 0;
	if (hl > 0 && hl <= 63 && type != DHCP_RELEASE)
		p = opt(p, 12, hostname, (uint8_t)hl);
	*p++ = 255;
	/* Some servers want a packet as long as BOOTP's 300 bytes. */
	return (size_t)(p - out) < 300 ? 300 : (size_t)(p - out);
}

static void list_add(uint32_t *v, unsigned *n, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 4 <= len && *n < DHCP_MAX_LIST; i += 4)
		v[(*n)++] = get32(p + i);
}

bool dhcp_parse(const uint8_t *p, size_t n, uint32_t xid, const uint8_t mac[6],
		struct dhcp_msg *m, const char **why)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	if (n < BOOTP_FIXED + 4) {
		*why = "too short for a DHCP message";
		return false;
	}
	if (p[0] != 2 || p[1] != 1 || p[2] != 6) {
		*why = "not a BOOTREPLY for Ethernet";
		return false;
	}
	m->xid = ntohl(get32(p + 4));
	if (m->xid != xid) {
		*why = "another transaction";
		return false;
	}
	if (memcmp(p + 28, mac, 6) != 0) {
		*why = "for another client";
		return false;
	}
	if (ntohl(get32(p + BOOTP_FIXED)) != MAGIC) {
		*why = "no DHCP magic cookie";
		return false;
	}
	m->yiaddr = get32(p + 16);
	for (i = BOOTP_FIXED + 4; i < n;) {
		uint8_t code = p[i], len;
		const uint8_t *v;

		if (code == 0) {		/* pad */
			i++;
			continue;
		}
		if (code == 255)
			break;
		if (i + 2 > n || i + 2 + (size_t)p[i + 1] > n) {
			*why = "an option runs past the end of the packet";
			return false;
		}
		len = p[i + 1];
		v = p + i + 2;
		switch (code) {
		case 53:
			if (len == 1)
				m->type = v[0];
			break;
		case 54:
			if (len == 4)
				m->server = get32(v);
			break;
		case 1:
			if (len == 4)
				m->mask = get32(v);
			break;
		case 3:
			if (len >= 4)
				m->router = get32(v);
			break;
		case 51:
			if (len == 4)
				m->lease = ntohl(get32(v));
			break;
		case 58:
			if (len == 4)
				m->t1 = ntohl(get32(v));
			break;
		case 59:
			if (len == 4)
				m->t2 = ntohl(get32(v));
			break;
		case 6:
			list_add(m->dns, &m->ndns, v, len);
			break;
		case 42:
			list_add(m->ntp, &m->nntp, v, len);
			break;
		default:
			break;
		}
		i += 2 + (size_t)len;
	}
	if (m->type == 0) {
		*why = "no DHCP message type";
		return false;
	}
	return true;
}

/* ---- SNTP --------------------------------------------------------------------------------- */

uint64_t sntp_from_unix_ms(uint64_t ms)
{
	uint64_t sec = ms / 1000 + NTP_UNIX_DELTA, frac = ((ms % 1000) << 32) / 1000;

	return (sec << 32) | (frac & 0xffffffffu);
}

int64_t sntp_to_unix_ms(uint64_t ntp)
{
	uint64_t sec = ntp >> 32, frac = ntp & 0xffffffffu;

	/* RFC 4330: a clear top bit is the era after 2036-02-07. */
	if ((sec & 0x80000000u) == 0)
		sec += 1ULL << 32;
	return (int64_t)((sec - NTP_UNIX_DELTA) * 1000 + ((frac * 1000 + (1ULL << 31)) >> 32));
}

static void put64(uint8_t *p, uint64_t v)
{
	uint32_t hi = htonl((uint32_t)(v >> 32)), lo = htonl((uint32_t)v);

	memcpy(p, &hi, 4);
	memcpy(p + 4, &lo, 4);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)ntohl(get32(p)) << 32 | ntohl(get32(p + 4));
}

void sntp_build(uint8_t out[48], uint64_t tx)
{
	memset(out, 0, 48);
	out[0] = 0 << 6 | 4 << 3 | 3;	/* no leap warning, version 4, client */
	put64(out + 40, tx);
}

bool sntp_parse(const uint8_t *p, size_t n, uint64_t tx, uint64_t *rx_server,
		uint64_t *tx_server, const char **why)
{
	if (n < 48) {
		*why = "too short for an NTP message";
		return false;
	}
	if ((p[0] & 7) != 4) {
		*why = "not a server's answer";
		return false;
	}
	if (p[1] == 0) {
		*why = "kiss-o'-death (stratum 0): the server refuses us";
		return false;
	}
	if ((p[0] >> 6) == 3) {
		*why = "the server's clock is not synchronized";
		return false;
	}
	if (get64(p + 24) != tx) {
		*why = "not the answer to our request";
		return false;
	}
	*rx_server = get64(p + 32);
	*tx_server = get64(p + 40);
	if (*tx_server == 0) {
		*why = "no transmit time";
		return false;
	}
	return true;
}
