/*
 * DHCPv4 and SNTP messages (RFC 2131/2132, RFC 4330): building keel's
 * requests and checking and reading the answers. No I/O here: system.c
 * sends and receives. Every length is checked against the packet.
 */
#ifndef KEEL_FIRMWARE_DHCP_H
#define KEEL_FIRMWARE_DHCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_PACKET_MAX		576	/* what a client must accept */
#define DHCP_MAX_LIST		3	/* DNS and NTP servers kept */

enum dhcp_type {
	DHCP_DISCOVER = 1, DHCP_OFFER, DHCP_REQUEST, DHCP_DECLINE, DHCP_ACK, DHCP_NAK,
	DHCP_RELEASE, DHCP_INFORM,
};

/* What an answer says (addresses in network order). */
struct dhcp_msg {
	int		 type;		/* enum dhcp_type */
	uint32_t	 xid;
	uint32_t	 yiaddr;	/* the address offered */
	uint32_t	 server;	/* option 54 */
	uint32_t	 mask;		/* option 1; 0: none given */
	uint32_t	 router;	/* option 3, the first */
	uint32_t	 lease;		/* seconds, option 51; 0: none given */
	uint32_t	 t1, t2;	/* options 58, 59; 0: none given */
	uint32_t	 dns[DHCP_MAX_LIST];
	unsigned	 ndns;
	uint32_t	 ntp[DHCP_MAX_LIST];
	unsigned	 nntp;
};

/* Builds a DISCOVER or REQUEST (or RELEASE) from mac into out (at least
 * DHCP_PACKET_MAX bytes); requested and server (0: none) go in options 50
 * and 54, ciaddr in the header (renewing). Returns the length. */
size_t dhcp_build(uint8_t *out, int type, uint32_t xid, const uint8_t mac[6],
		  uint32_t ciaddr, uint32_t requested, uint32_t server, const char *hostname);

/* Reads an answer to xid for mac. false (and why) when it is not one:
 * short, not a BOOTREPLY, another transaction or client, options that run
 * past the end, no message type. */
bool dhcp_parse(const uint8_t *p, size_t n, uint32_t xid, const uint8_t mac[6],
		struct dhcp_msg *m, const char **why);

/* SNTP: a client request stamped with tx (NTP format, 32.32 fixed point). */
void sntp_build(uint8_t out[48], uint64_t tx);
/* Reads a server's answer to the request stamped tx: its receive and
 * transmit times. false (and why) for anything else, a kiss-o'-death
 * included (stratum 0). */
bool sntp_parse(const uint8_t *p, size_t n, uint64_t tx, uint64_t *rx_server,
		uint64_t *tx_server, const char **why);

/* Unix milliseconds <-> NTP 32.32 (era 0, until 2036). */
uint64_t sntp_from_unix_ms(uint64_t ms);
int64_t sntp_to_unix_ms(uint64_t ntp);

#endif
