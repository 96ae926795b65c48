/* libFuzzer target for IPv6 VRRP adverts (ha/vrrp.c): the first 32 bytes
 * of an input are the source and destination recvmsg() gave, the rest the
 * message. Beyond "no crash": a refusal says why, what is read is in
 * range and builds again to the same bytes (reserved bits 0, every
 * address kept), and no trailer checks out under a key the input cannot
 * know. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/vrrp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vrrp_advert6 a;
	uint8_t again[VRRP_HDR + 16 * VRRP_MAX_ADDRS];
	const char *why = NULL;
	uint64_t counter;
	const uint8_t *v;
	size_t len, n;

	if (size < 32)
		return 0;
	v = data + 32;
	n = size - 32;
	if (vrrp_parse6(v, n, data, data + 16, 255, &a, &why) != 0) {
		if (why == NULL)
			abort();
		return 0;
	}
	if (a.vrid == 0 || a.naddr == 0 || a.interval_cs == 0 || a.interval_cs > VRRP_MAX_CS ||
	    a.nread > VRRP_MAX_ADDRS || a.nread > a.naddr)
		abort();
	why = NULL;
	if (vrrp_unseal6(v, n, &a, (const uint8_t *)"fuzz key 16bytes", 16, &counter, &why) == 0 ||
	    why == NULL)
		abort();
	if (a.naddr == a.nread && (v[4] & 0xf0) == 0) {
		len = vrrp_build6(again, sizeof(again), &a);
		if (len != VRRP_HDR + 16 * (size_t)a.naddr || memcmp(again, v, 6) != 0 ||
		    memcmp(again + 8, v + 8, len - 8) != 0)
			abort();
		if (memcmp(again + 6, v + 6, 2) != 0 &&
		    !((again[6] | again[7]) == 0 && (v[6] & v[7]) == 0xff))
			abort();
	}
	return 0;
}
