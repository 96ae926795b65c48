/* libFuzzer target for the answers keel's DHCP and SNTP clients read off
 * the network (firmware/dhcp.c), from whoever is on the segment. The first
 * byte picks DHCP or SNTP; the rest is the packet, which is asked about
 * its own transaction (so the options are read). Beyond "no crash": a DHCP
 * answer read keeps at most DHCP_MAX_LIST servers of each kind and has a
 * type; an SNTP answer read has a transmit time; and what keel builds, once
 * turned into a reply, reads back as itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/dhcp.c"

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p, out[DHCP_PACKET_MAX];
	struct dhcp_msg m;
	const char *why;
	uint64_t rx, tx;
	size_t n = size - 1;
	int type;

	if (size < 2)
		return 0;
	p = malloc(n);			/* exactly the packet: ASan sees any overrun */
	memcpy(p, data + 1, n);
	if (data[0] & 1) {
		uint64_t stamp = n >= 32 ? get64(p + 24) : 0;

		if (sntp_parse(p, n, stamp, &rx, &tx, &why) && tx == 0)
			abort();
	} else {
		uint32_t xid = n >= 8 ? ntohl(get32(p + 4)) : 0;

		if (dhcp_parse(p, n, xid, n >= 34 ? p + 28 : mac, &m, &why) &&
		    (m.ndns > DHCP_MAX_LIST || m.nntp > DHCP_MAX_LIST || m.type == 0))
			abort();
	}
	free(p);

	/* A request built from the input, answered as a server would start to. */
	type = (data[0] >> 1 & 7) ? (data[0] >> 1 & 7) : DHCP_DISCOVER;
	n = dhcp_build(out, type, (uint32_t)size, mac, 0, (uint32_t)size * 7, 0x0102000a,
		       size > 8 ? "fuzz" : NULL);
	out[0] = 2;
	if (!dhcp_parse(out, n, (uint32_t)size, mac, &m, &why) || m.type != type ||
	    m.server != 0x0102000a)
		abort();
	return 0;
}
