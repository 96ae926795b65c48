/* libFuzzer target for VRRP adverts (ha/vrrp.c): what anyone on the
 * gateway's LAN can send to 224.0.0.18. Beyond "no crash": an advert that
 * is read has its fields in range, and, built again from what was read,
 * gives the same VRRP bytes (where the packet's reserved bits are 0 and
 * keel kept all its addresses), checksum included but for its two
 * representations of zero; and keel's signed trailer never checks out
 * under a key the input cannot know. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/vrrp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vrrp_advert a;
	uint8_t again[VRRP_HDR + 4 * VRRP_MAX_ADDRS];
	const char *why = NULL;
	const uint8_t *v;
	size_t len;

	if (vrrp_parse4(data, size, &a, &why) != 0) {
		if (why == NULL)
			abort();		/* a refusal always says why */
		return 0;
	}
	if (a.vrid == 0 || a.naddr == 0 || a.interval_cs == 0 || a.interval_cs > VRRP_MAX_CS ||
	    a.nread > VRRP_MAX_ADDRS || a.nread > a.naddr)
		abort();
	/* No signature under a key the input cannot know, and a refusal
	 * says why (the trailer's reader works on what parse4 passed). */
	{
		uint64_t counter;
		const char *w2 = NULL;

		if (vrrp_unseal4(data, size, &a, (const uint8_t *)"fuzz key 16bytes", 16, &counter,
				 &w2) == 0 || w2 == NULL)
			abort();
	}
	v = data + (size_t)(data[0] & 0x0f) * 4;
	if (a.naddr == a.nread && (v[4] & 0xf0) == 0) {
		len = vrrp_build4(again, sizeof(again), &a);
		if (len != VRRP_HDR + 4 * (size_t)a.naddr || memcmp(again, v, 6) != 0 ||
		    memcmp(again + 8, v + 8, len - 8) != 0)
			abort();
		/* One's complement has two zeros: a sender may write 0xffff
		 * where keel writes 0x0000, and both check out. */
		if (memcmp(again + 6, v + 6, 2) != 0 &&
		    !((again[6] | again[7]) == 0 && (v[6] & v[7]) == 0xff))
			abort();
	}
	return 0;
}
