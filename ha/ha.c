/*
 * High availability: keel boxes sharing virtual addresses by VRRP
 * version 3 (RFC 5798, IPv4 or IPv6), in the master process.
 *
 * One virtual router per box, on ha.interface. As backup, keel listens
 * for the master's adverts and takes over when three intervals and a skew
 * pass without one. As master, it advertises every interval, holds the
 * addresses on the interface and announces them by gratuitous ARP: when it
 * takes them, and again whenever it hears a master of lower priority, the
 * sign that a split has healed and that the other side may have announced
 * itself last. A stop hands the addresses over at once (priority 0).
 *
 * Addresses are added and removed by rtnetlink; adverts go through a raw
 * IPPROTO_VRRP socket bound to the interface (TTL 255, multicast loop
 * off), ARP through a packet socket, IPv6's unsolicited neighbour adverts
 * through a raw ICMPv6 socket. A router is of one family, the family of
 * its addresses; IPv6 adverts leave from the interface's link-local
 * address, to ff02::12.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/event.h"
#include "core/kv.h"
#include "core/net.h"
#include "core/probe.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/status.h"
#include "vrrp.h"

/* The few rtnetlink structures and numbers used here (the C library
 * keel links has no <linux/> headers; these are the kernel's stable ABI,
 * from rtnetlink(7) and netlink(7)). */
#define HA_NETLINK_ROUTE	0
#define HA_NLMSG_ERROR		2
#define HA_RTM_NEWADDR		20
#define HA_RTM_DELADDR		21
#define HA_NLM_F_REQUEST	0x1
#define HA_NLM_F_ACK		0x4
#define HA_NLM_F_REPLACE	0x100
#define HA_NLM_F_CREATE		0x400
#define HA_IFA_ADDRESS		1
#define HA_IFA_LOCAL		2

struct ha_nlmsghdr {
	uint32_t	len;
	uint16_t	type, flags;
	uint32_t	seq, pid;
};

struct ha_ifaddrmsg {
	uint8_t		family, prefixlen, flags, scope;
	uint32_t	index;
};

#define HA_IFA_F_NODAD		0x02	/* IPv6: usable at once, no duplicate detection */

struct ha_rtattr {			/* an attribute holding an address */
	uint16_t	len, type;
	uint8_t		addr[16];
};

struct ha_sockaddr_nl {
	sa_family_t	family;
	unsigned short	pad;
	uint32_t	pid, groups;
};

#define HA_MAX_PEERS	8

/* An address of either family; IPv4 as ::ffff:a.b.c.d, so that one
 * comparison orders both the way RFC 5798 does (as unsigned numbers). */
struct ha_ip {
	uint8_t		b[16];
};
#define HA_ROUTERS	16	/* other routers heard on the link, remembered */

/* Another virtual router heard on the link (any VRID), for the clash
 * checks: a reload onto a VRID in use for other addresses is refused. */
struct ha_router {
	uint8_t		 vrid, naddr;
	struct ha_ip	 src;
	struct ha_ip	 addr[4];	/* the first of its addresses */
	unsigned	 adver_ms;
	uint64_t	 seen;		/* monotonic ms; 0: free */
};

enum ha_role { HA_OFF = 0, HA_BACKUP, HA_MASTER };

static const char *const role_names[] = { "off", "backup", "master" };

/* What a configuration asks for, resolved against the interface. */
struct ha_want {
	char		 ifname[IF_NAMESIZE];
	int		 ifindex;
	int		 family;		/* of the addresses: AF_INET or AF_INET6 */
	struct ha_ip	 ifaddr;		/* adverts leave from it (IPv6: link-local) */
	uint32_t	 ifmask;		/* IPv4, network order */
	uint8_t		 mac[6];
	uint8_t		 vrid, priority;
	unsigned	 adver_ms;
	bool		 preempt;
	uint64_t	 preempt_delay;
	unsigned	 naddr;
	struct ha_ip	 addr[VRRP_MAX_ADDRS];
	uint8_t		 plen[VRRP_MAX_ADDRS];
	bool		 track;
	unsigned	 check_ms, fall, rise;
	unsigned	 npeers;		/* unicast: adverts to these only */
	struct ha_ip	 peers[HA_MAX_PEERS];
	uint8_t		 auth_key[255];	/* keel-to-keel signatures; auth_len 0: none */
	size_t		 auth_len;
};



static struct {
	struct core_loop *loop;
	struct ha_want	 w;
	enum ha_role	 role;
	int		 fd;		/* raw VRRP socket; -1: off */
	struct core_io	 io;
	struct core_timer adver;	/* master: next advert */
	struct core_timer down;		/* backup: Master_Down_Timer */
	unsigned	 master_adver_ms;	/* the master's interval, learnt */
	struct ha_ip	 master_ip;	/* who we last heard as master; zero: none */
	uint64_t	 started;	/* monotonic ms */
	uint64_t	 since;		/* wall ms of the last change of role */
	unsigned	 transitions;
	uint64_t	 adverts_sent, adverts_seen, bad_seen;
	const char	*last_bad;

	/* this box's own health (ha.track) */
	struct core_timer check;
	struct core_probe door;		/* GET / to the first plain listener */
	char		 door_req[64];
	bool		 have_door;
	bool		 faulty;
	unsigned	 fails, passes;	/* checks in a row */
	char		 fault[200];	/* why the last check failed */

	/* other routers, and one on this VRID for other addresses */
	struct ha_router routers[HA_ROUTERS];
	struct core_timer clash_t;
	struct ha_ip	 clash_src;	/* zero: none */
	uint64_t	 clash_seen;	/* monotonic ms */
	unsigned	 clash_adver_ms;

	/* signed adverts: the last counter taken from each sender */
	struct { struct ha_ip src; uint64_t counter; } auth_seen[HA_ROUTERS];
	uint64_t	 auth_sent;	/* the last counter sent */
	uint64_t	 auth_warned;	/* monotonic ms of the last warning */

	/* the second path (the shared table's lease) */
	struct ha_ip	 released;	/* sent priority 0: its lease no longer counts */
	bool		 lease_held_off;	/* a lease keeps this box backup now */
} ha = { .fd = -1 };

/* The priority this box advertises: 1 while it cannot serve. */
static uint8_t ha_prio(void)
{
	return ha.w.track && ha.faulty ? 1 : ha.w.priority;
}

static void ha_to_master(const char *why);
static void ha_to_backup(const struct ha_ip *from, unsigned interval_ms, const char *why);

/* An advert of either family, as this file works with it. */
struct ha_adv {
	uint8_t		vrid, priority, naddr, nread;
	uint16_t	interval_cs;
	struct ha_ip	addr[VRRP_MAX_ADDRS];
	struct ha_ip	src;
};

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static struct ha_ip ip_of4(uint32_t a)
{
	struct ha_ip ip;

	memcpy(ip.b, v4mapped, 12);
	memcpy(ip.b + 12, &a, 4);
	return ip;
}

static struct ha_ip ip_of6(const uint8_t *a)
{
	struct ha_ip ip;

	memcpy(ip.b, a, 16);
	return ip;
}

static uint32_t ip4_of(const struct ha_ip *ip)
{
	uint32_t a;

	memcpy(&a, ip->b + 12, 4);
	return a;
}

static bool ip_is4(const struct ha_ip *ip)
{
	return memcmp(ip->b, v4mapped, 12) == 0;
}

static bool ip_eq(const struct ha_ip *a, const struct ha_ip *b)
{
	return memcmp(a->b, b->b, 16) == 0;
}

static int ip_cmp(const struct ha_ip *a, const struct ha_ip *b)
{
	return memcmp(a->b, b->b, 16);
}

static bool ip_zero(const struct ha_ip *a)
{
	static const struct ha_ip zero;

	return ip_eq(a, &zero);
}

/* Text of an address (either family) or NULL. */
static int ip_parse(const char *s, struct ha_ip *ip)
{
	struct in_addr in;

	if (inet_pton(AF_INET, s, &in) == 1) {
		*ip = ip_of4(in.s_addr);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, s, ip->b) == 1 && !ip_is4(ip))
		return AF_INET6;
	return 0;
}

static const char *ip_str(const struct ha_ip *a, char *buf, size_t len)
{
	const char *r;

	if (ip_is4(a))
		r = inet_ntop(AF_INET, a->b + 12, buf, (socklen_t)len);
	else
		r = inet_ntop(AF_INET6, a->b, buf, (socklen_t)len);
	return r != NULL ? buf : "?";
}

#define IPSTR	INET6_ADDRSTRLEN

/* ---- the interface and its addresses -------------------------------------------------------- */

static bool ip6_linklocal(const uint8_t *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* IPv6: the interface's link-local address, which adverts leave from. */
static int ha_iface6(struct ha_want *w, char *err, size_t errlen)
{
	struct ifaddrs *ifs, *i;

	if (getifaddrs(&ifs) == -1) {
		snprintf(err, errlen, "ha.interface: getifaddrs: %s", strerror(errno));
		return CORE_ERROR;
	}
	for (i = ifs; i != NULL; i = i->ifa_next) {
		const struct sockaddr_in6 *a = (const void *)i->ifa_addr;

		if (a != NULL && a->sin6_family == AF_INET6 && !strcmp(i->ifa_name, w->ifname) &&
		    ip6_linklocal(a->sin6_addr.s6_addr)) {
			w->ifaddr = ip_of6(a->sin6_addr.s6_addr);
			break;
		}
	}
	freeifaddrs(ifs);
	if (i == NULL) {
		snprintf(err, errlen, "ha.interface: %s has no IPv6 link-local address to send "
			 "adverts from", w->ifname);
		return CORE_ERROR;
	}
	return CORE_OK;
}

/* IPv6: whether addr is on one of the interface's prefixes (or is itself
 * link-local); its own address names which one in own. */
static bool ha_on_link6(const struct ha_want *w, const struct ha_ip *addr, bool *own)
{
	struct ifaddrs *ifs, *i;
	bool on = ip6_linklocal(addr->b);

	*own = false;
	if (getifaddrs(&ifs) == -1)
		return on;
	for (i = ifs; i != NULL; i = i->ifa_next) {
		const struct sockaddr_in6 *a = (const void *)i->ifa_addr;
		const struct sockaddr_in6 *m = (const void *)i->ifa_netmask;
		unsigned k;

		if (a == NULL || m == NULL || a->sin6_family != AF_INET6 ||
		    strcmp(i->ifa_name, w->ifname) != 0)
			continue;
		if (!memcmp(a->sin6_addr.s6_addr, addr->b, 16))
			*own = true;
		for (k = 0; k < 16; k++)
			if ((a->sin6_addr.s6_addr[k] ^ addr->b[k]) & m->sin6_addr.s6_addr[k])
				break;
		if (k == 16)
			on = true;
	}
	freeifaddrs(ifs);
	return on;
}

/* The interface's index, MAC and first IPv4 address and mask (IPv6: its
 * link-local address). */
static int ha_iface(struct ha_want *w, char *err, size_t errlen)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = CORE_ERROR;

	if (s == -1) {
		snprintf(err, errlen, "ha: socket: %s", strerror(errno));
		return CORE_ERROR;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", w->ifname);
	if ((w->ifindex = (int)if_nametoindex(w->ifname)) == 0)
		snprintf(err, errlen, "ha.interface: no interface named \"%s\"", w->ifname);
	else if (ioctl(s, SIOCGIFHWADDR, &ifr) == -1)
		snprintf(err, errlen, "ha.interface: %s: no hardware address: %s", w->ifname,
			 strerror(errno));
	else if (memcpy(w->mac, ifr.ifr_hwaddr.sa_data, 6), w->family == AF_INET6)
		rc = ha_iface6(w, err, errlen);
	else if (ioctl(s, SIOCGIFADDR, &ifr) == -1)
		snprintf(err, errlen, "ha.interface: %s has no IPv4 address to send adverts from",
			 w->ifname);
	else {
		w->ifaddr = ip_of4(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr);
		if (ioctl(s, SIOCGIFNETMASK, &ifr) == -1)
			snprintf(err, errlen, "ha.interface: %s: netmask: %s", w->ifname,
				 strerror(errno));
		else {
			w->ifmask = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
			rc = CORE_OK;
		}
	}
	close(s);
	return rc;
}

/* Adds (HA_RTM_NEWADDR) or removes (HA_RTM_DELADDR) one address; an address
 * already there, or already gone, is success. */
static int ha_addr(int type, const struct ha_ip *addr, uint8_t plen, char *err, size_t errlen)
{
	struct {
		struct ha_nlmsghdr  nh;
		struct ha_ifaddrmsg ifa;
		struct ha_rtattr    attr[2];	/* IFA_LOCAL, IFA_ADDRESS */
	} req;
	bool v4 = ip_is4(addr);
	size_t alen = v4 ? 4 : 16;
	struct {
		struct ha_nlmsghdr nh;
		int32_t		   error;
		struct ha_nlmsghdr orig;
	} ack;
	struct ha_sockaddr_nl kernel = { .family = AF_NETLINK };
	uint8_t *p;
	ssize_t n;
	int s, e, i;

	memset(&req, 0, sizeof(req));
	req.nh.type = (uint16_t)type;
	req.nh.flags = HA_NLM_F_REQUEST | HA_NLM_F_ACK |
		       (type == HA_RTM_NEWADDR ? HA_NLM_F_CREATE | HA_NLM_F_REPLACE : 0);
	req.nh.seq = 1;
	req.ifa.family = v4 ? AF_INET : AF_INET6;
	req.ifa.flags = v4 ? 0 : HA_IFA_F_NODAD;
	req.ifa.prefixlen = plen;
	req.ifa.index = (uint32_t)ha.w.ifindex;
	/* Attributes are 4-aligned: an IPv4 one takes 8 bytes, IPv6 20. */
	p = (uint8_t *)&req.attr[0];
	for (i = 0; i < 2; i++) {
		uint16_t len = (uint16_t)(4 + alen), t = i == 0 ? HA_IFA_LOCAL : HA_IFA_ADDRESS;

		memcpy(p, &len, 2);
		memcpy(p + 2, &t, 2);
		memcpy(p + 4, v4 ? addr->b + 12 : addr->b, alen);
		p += 4 + alen;
	}
	req.nh.len = (uint32_t)(p - (uint8_t *)&req);

	if ((s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, HA_NETLINK_ROUTE)) == -1) {
		snprintf(err, errlen, "netlink: %s", strerror(errno));
		return CORE_ERROR;
	}
	if (sendto(s, &req, req.nh.len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) == -1 ||
	    (n = recv(s, &ack, sizeof(ack), 0)) == -1) {
		snprintf(err, errlen, "netlink: %s", strerror(errno));
		close(s);
		return CORE_ERROR;
	}
	close(s);
	if ((size_t)n < sizeof(ack.nh) + sizeof(ack.error) || ack.nh.type != HA_NLMSG_ERROR) {
		snprintf(err, errlen, "netlink: an answer that is not an acknowledgement");
		return CORE_ERROR;
	}
	e = -ack.error;
	if (e == 0 || (type == HA_RTM_NEWADDR && e == EEXIST) ||
	    (type == HA_RTM_DELADDR && e == EADDRNOTAVAIL))
		return CORE_OK;
	snprintf(err, errlen, "%s", strerror(e));
	return CORE_ERROR;
}

static void ha_addrs(int type)
{
	char err[128], ip[IPSTR];
	unsigned i;

	for (i = 0; i < ha.w.naddr; i++)
		if (ha_addr(type, &ha.w.addr[i], ha.w.plen[i], err, sizeof(err)) != CORE_OK)
			core_log_error("ha", "%s %s/%u on %s: %s",
				       type == HA_RTM_NEWADDR ? "adding" : "removing",
				       ip_str(&ha.w.addr[i], ip, sizeof(ip)), ha.w.plen[i],
				       ha.w.ifname, err);
}

/* IPv6: an unsolicited neighbour advert (RFC 4861 7.2.6) for every
 * address, to all nodes, with the override flag and this box's MAC. */
static void ha_unsolicited_na(void)
{
	struct sockaddr_in6 to;
	uint8_t pkt[32];
	unsigned i;
	int hops = 255, s = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);

	if (s == -1 ||
	    setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, ha.w.ifname, (socklen_t)strlen(ha.w.ifname)) ||
	    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) ||
	    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ha.w.ifindex, sizeof(ha.w.ifindex))) {
		core_log_error("ha", "neighbour adverts on %s: %s", ha.w.ifname, strerror(errno));
		if (s != -1)
			close(s);
		return;
	}
	memset(&to, 0, sizeof(to));
	to.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
	to.sin6_scope_id = (uint32_t)ha.w.ifindex;
	for (i = 0; i < ha.w.naddr; i++) {
		memset(pkt, 0, sizeof(pkt));
		pkt[0] = ND_NEIGHBOR_ADVERT;	/* the kernel writes the checksum */
		pkt[4] = 0x20;			/* override */
		memcpy(pkt + 8, ha.w.addr[i].b, 16);
		pkt[24] = ND_OPT_TARGET_LINKADDR;
		pkt[25] = 1;			/* 8 bytes */
		memcpy(pkt + 26, ha.w.mac, 6);
		if (sendto(s, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) == -1)
			core_log_error("ha", "neighbour advert on %s: %s", ha.w.ifname,
				       strerror(errno));
	}
	close(s);
}

/* A gratuitous ARP request for every address (IPv6: an unsolicited
 * neighbour advert): switches and neighbours learn that the addresses now
 * live behind this box's MAC. */
static void ha_garp(void)
{
	struct sockaddr_ll to;
	uint8_t pkt[28];
	unsigned i;
	int s;

	if (ha.w.family == AF_INET6) {
		ha_unsolicited_na();
		return;
	}
	if ((s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP))) == -1) {
		core_log_error("ha", "gratuitous ARP on %s: %s", ha.w.ifname, strerror(errno));
		return;
	}
	memset(&to, 0, sizeof(to));
	to.sll_family = AF_PACKET;
	to.sll_protocol = htons(ETH_P_ARP);
	to.sll_ifindex = ha.w.ifindex;
	to.sll_halen = 6;
	memset(to.sll_addr, 0xff, 6);
	for (i = 0; i < ha.w.naddr; i++) {
		pkt[0] = 0, pkt[1] = ARPHRD_ETHER;
		pkt[2] = 0x08, pkt[3] = 0x00;
		pkt[4] = 6, pkt[5] = 4;
		pkt[6] = 0, pkt[7] = ARPOP_REQUEST;
		memcpy(pkt + 8, ha.w.mac, 6);
		memcpy(pkt + 14, ha.w.addr[i].b + 12, 4);
		memset(pkt + 18, 0xff, 6);
		memcpy(pkt + 24, ha.w.addr[i].b + 12, 4);
		if (sendto(s, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) == -1)
			core_log_error("ha", "gratuitous ARP on %s: %s", ha.w.ifname,
				       strerror(errno));
	}
	close(s);
}

/* ---- adverts ------------------------------------------------------------------------------ */

/* One advert to dst; it leaves from the interface's address (IPv4
 * unicast: IP_PKTINFO; IPv6: IPV6_PKTINFO, its link-local address), the
 * one the checksum was computed with. */
static void ha_send_to(const uint8_t *pkt, size_t len, const struct ha_ip *dst)
{
	union {
		struct cmsghdr	 align;
		char		 buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	union {
		struct sockaddr_in  in;
		struct sockaddr_in6 in6;
	} to;
	struct iovec iov = { (void *)pkt, len };
	struct msghdr msg;
	struct cmsghdr *cm;

	memset(&to, 0, sizeof(to));
	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_name = &to;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (ha.w.family == AF_INET6) {
		struct in6_pktinfo *pi;

		to.in6.sin6_family = AF_INET6;
		memcpy(&to.in6.sin6_addr, dst->b, 16);
		to.in6.sin6_scope_id = (uint32_t)ha.w.ifindex;
		msg.msg_namelen = sizeof(to.in6);
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(*pi));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(*pi));
		pi = (struct in6_pktinfo *)(void *)CMSG_DATA(cm);
		memcpy(&pi->ipi6_addr, ha.w.ifaddr.b, 16);
		pi->ipi6_ifindex = (unsigned)ha.w.ifindex;
	} else {
		to.in.sin_family = AF_INET;
		to.in.sin_addr.s_addr = ip4_of(dst);
		msg.msg_namelen = sizeof(to.in);
		if (ip4_of(dst) != htonl(VRRP_GROUP4)) {
			struct in_pktinfo *pi;

			msg.msg_control = ctl.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(*pi));
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(*pi));
			pi = (struct in_pktinfo *)(void *)CMSG_DATA(cm);
			pi->ipi_ifindex = ha.w.ifindex;
			pi->ipi_spec_dst.s_addr = ip4_of(&ha.w.ifaddr);
		}
	}
	if (sendmsg(ha.fd, &msg, 0) == -1) {
		char ip[IPSTR];

		core_log_error("ha", "advert on %s to %s: %s", ha.w.ifname,
			       ip_str(dst, ip, sizeof(ip)), strerror(errno));
	} else
		ha.adverts_sent++;
}

/* A signed advert's counter: microseconds of the wall clock, so that it
 * keeps growing across restarts, and never the same twice. */
static uint64_t ha_counter(void)
{
	uint64_t c = core_clock_wall_ms() * 1000;

	ha.auth_sent = c > ha.auth_sent ? c : ha.auth_sent + 1;
	return ha.auth_sent;
}

/* With ha.auth_key, a signed advert's counter must be above the last one
 * taken from that sender: a replay is not. */
static int ha_auth_counter(const struct ha_ip *src, uint64_t counter, const char **why)
{
	unsigned i, slot = 0;

	for (i = 0; i < HA_ROUTERS; i++) {
		if (ip_eq(&ha.auth_seen[i].src, src)) {
			if (counter <= ha.auth_seen[i].counter) {
				*why = "a replay (its counter is not above the last one taken)";
				return -1;
			}
			slot = i;
			break;
		}
		if (ha.auth_seen[i].counter < ha.auth_seen[slot].counter)
			slot = i;
	}
	ha.auth_seen[slot].src = *src;
	ha.auth_seen[slot].counter = counter;
	return 0;
}

/* The group of the router's family. */
static struct ha_ip ha_group(void)
{
	struct ha_ip g;

	if (ha.w.family == AF_INET6)
		inet_pton(AF_INET6, VRRP_GROUP6, g.b);
	else
		g = ip_of4(htonl(VRRP_GROUP4));
	return g;
}

/* An advert to the group, or to each unicast peer. */
static void ha_send(uint8_t priority)
{
	uint8_t pkt[VRRP_HDR + 16 * VRRP_MAX_ADDRS + VRRP_AUTH_LEN];
	struct ha_ip dst;
	size_t len;
	unsigned i, j;

	for (i = 0; i < (ha.w.npeers > 0 ? ha.w.npeers : 1); i++) {
		dst = ha.w.npeers > 0 ? ha.w.peers[i] : ha_group();
		if (ha.w.family == AF_INET6) {
			struct vrrp_advert6 a;

			memset(&a, 0, sizeof(a));
			a.vrid = ha.w.vrid;
			a.priority = priority;
			a.interval_cs = (uint16_t)(ha.w.adver_ms / 10);
			a.naddr = (uint8_t)ha.w.naddr;
			for (j = 0; j < ha.w.naddr; j++)
				memcpy(a.addr[j], ha.w.addr[j].b, 16);
			memcpy(a.src, ha.w.ifaddr.b, 16);
			memcpy(a.dst, dst.b, 16);
			len = vrrp_build6(pkt, sizeof(pkt), &a);
			if (len != 0 && ha.w.auth_len > 0)
				len = vrrp_seal6(pkt, len, sizeof(pkt), a.src, a.dst, ha_counter(),
						 ha.w.auth_key, ha.w.auth_len);
		} else {
			struct vrrp_advert a;

			memset(&a, 0, sizeof(a));
			a.vrid = ha.w.vrid;
			a.priority = priority;
			a.interval_cs = (uint16_t)(ha.w.adver_ms / 10);
			a.naddr = (uint8_t)ha.w.naddr;
			for (j = 0; j < ha.w.naddr; j++)
				a.addr[j] = ip4_of(&ha.w.addr[j]);
			a.src = ip4_of(&ha.w.ifaddr);
			a.dst = ip4_of(&dst);
			len = vrrp_build4(pkt, sizeof(pkt), &a);
			if (len != 0 && ha.w.auth_len > 0)
				len = vrrp_seal4(pkt, len, sizeof(pkt), a.src, a.dst, ha_counter(),
						 ha.w.auth_key, ha.w.auth_len);
		}
		if (len != 0)
			ha_send_to(pkt, len, &dst);
	}
}

/* RFC 5798 6.1's Skew_Time, computed as the RFC does, in whole
 * centiseconds (keepalived too: a pair waits the same time either way). */
static unsigned ha_skew(unsigned interval_ms)
{
	return (256u - ha_prio()) * (interval_ms / 10) / 256 * 10;
}

static void ha_arm_down(unsigned ms)
{
	core_timer_start(&ha.down, ms);
}

/* ---- the second path: a lease in the shared table ----------------------------------------- */

/*
 * Adverts can be lost in one direction only (a switch port, a filter, a
 * multicast snooping bug): the backup hears nothing and becomes master,
 * while the master, hearing the backup's lower adverts, stays master, and
 * both hold the address. With the shared table mirrored to Redis (the
 * `redis` section), the master also renews a lease "ha.VRID" =
 * "ADDRESS,PRIORITY" that lasts three intervals, at every advert. A backup
 * whose down timer runs out while a box of higher rank holds a live lease
 * stays backup; a master that finds one steps down. A master that is gone
 * stops renewing, and its lease has run out before a backup's down timer
 * does (three intervals, against three and a skew). Without the mirror the
 * lease is only local and changes nothing.
 */
static void ha_lease_key(char *key, size_t len)
{
	snprintf(key, len, "ha.%u", ha.w.vrid);
}

static void ha_lease_renew(void)
{
	char key[16], val[IPSTR + 8], ip[IPSTR];

	if (!core_kv_mirrored())
		return;
	ha_lease_key(key, sizeof(key));
	snprintf(val, sizeof(val), "%s,%u", ip_str(&ha.w.ifaddr, ip, sizeof(ip)), ha_prio());
	(void)core_kv_set(key, val, 3ull * ha.w.adver_ms);
}

static void ha_lease_drop(void)
{
	char key[16], ip[IPSTR];
	const char *v;

	ha_lease_key(key, sizeof(key));
	v = core_kv_get(key);
	ip_str(&ha.w.ifaddr, ip, sizeof(ip));
	if (v != NULL && strncmp(v, ip, strlen(ip)) == 0 && v[strlen(ip)] == ',')
		core_kv_del(key);
}

/* Another box of higher rank holds a live lease: its address and priority. */
static bool ha_lease_other(struct ha_ip *who, unsigned *prio)
{
	char key[16], ip[IPSTR];
	const char *v, *comma;
	struct ha_ip in;
	unsigned long p;
	uint8_t mine = ha_prio();
	char *end;

	ha_lease_key(key, sizeof(key));
	if ((v = core_kv_get(key)) == NULL || (comma = strchr(v, ',')) == NULL ||
	    (size_t)(comma - v) >= sizeof(ip))
		return false;
	memcpy(ip, v, (size_t)(comma - v));
	ip[comma - v] = '\0';
	p = strtoul(comma + 1, &end, 10);
	if (ip_parse(ip, &in) != ha.w.family || *end != '\0' || p > 255 ||
	    ip_eq(&in, &ha.w.ifaddr) || ip_eq(&in, &ha.released))
		return false;
	if (p < mine || (p == mine && ip_cmp(&in, &ha.w.ifaddr) < 0))
		return false;
	*who = in;
	*prio = (unsigned)p;
	return true;
}

static void ha_on_adver(struct core_timer *t)
{
	char why[160], ip[IPSTR];
	struct ha_ip who;
	unsigned prio;

	(void)t;
	if (ha.role == HA_MASTER && ha_lease_other(&who, &prio)) {
		snprintf(why, sizeof(why), "%s holds the lease with priority %u (its adverts do "
			 "not reach this box)", ip_str(&who, ip, sizeof(ip)), prio);
		ha_to_backup(&who, ha.w.adver_ms, why);
		return;
	}
	ha_send(ha_prio());
	ha_lease_renew();
	core_timer_start(&ha.adver, ha.w.adver_ms);
}

static void ha_on_down(struct core_timer *t)
{
	char why[128], ip[IPSTR];
	struct ha_ip who;
	unsigned prio;

	(void)t;
	if (ha_lease_other(&who, &prio)) {
		if (!ha.lease_held_off) {
			core_log_warn("ha", "no advert from %s, but it holds the lease with priority "
				      "%u: its adverts are lost on the way to this box; staying backup",
				      ip_str(&who, ip, sizeof(ip)), prio);
			core_event_raise("ha", "adverts", "adverts from %s do not reach this box; "
					 "it holds the lease, so this box stays backup", ip);
		}
		ha.lease_held_off = true;
		ha.master_ip = who;
		ha_arm_down(ha.master_adver_ms);	/* look again every interval */
		return;
	}
	if (ha.lease_held_off) {
		ha.lease_held_off = false;
		core_event_clear("ha", "adverts", "the lease ran out");
	}
	if (!ip_zero(&ha.master_ip))
		snprintf(why, sizeof(why), "no advert from %s for %u ms",
			 ip_str(&ha.master_ip, ip, sizeof(ip)),
			 3 * ha.master_adver_ms + ha_skew(ha.master_adver_ms));
	else
		snprintf(why, sizeof(why), "no master heard");
	ha_to_master(why);
}

static void ha_role_set(enum ha_role role, const char *why)
{
	char ip[IPSTR];

	if (ha.role == role)
		return;
	ha.role = role;
	ha.since = core_clock_wall_ms();
	ha.transitions++;
	core_log_info("ha", "%s for vrid %u on %s (priority %u, %s): %s", role == HA_MASTER ?
		      "MASTER" : "BACKUP", ha.w.vrid, ha.w.ifname, ha_prio(),
		      ip_str(&ha.w.ifaddr, ip, sizeof(ip)), why);
}

static void ha_to_master(const char *why)
{
	core_timer_stop(&ha.down);
	ha_send(ha_prio());
	ha_addrs(HA_RTM_NEWADDR);
	ha_garp();
	ha.master_ip = ha.w.ifaddr;
	memset(&ha.released, 0, sizeof(ha.released));
	ha_lease_renew();
	core_timer_start(&ha.adver, ha.w.adver_ms);
	ha_role_set(HA_MASTER, why);
}

static void ha_to_backup(const struct ha_ip *from, unsigned interval_ms, const char *why)
{
	core_timer_stop(&ha.adver);
	if (ha.role == HA_MASTER) {
		ha_addrs(HA_RTM_DELADDR);
		ha_lease_drop();
	}
	if (from != NULL)
		ha.master_ip = *from;
	else
		memset(&ha.master_ip, 0, sizeof(ha.master_ip));
	ha.master_adver_ms = interval_ms;
	ha_arm_down(3 * interval_ms + ha_skew(interval_ms));
	ha_role_set(HA_BACKUP, why);
}

/* RFC 5798 6.4.2 and 6.4.3. */
static void ha_advert(const struct ha_adv *a)
{
	unsigned interval = a->interval_cs * 10u;
	char why[96], ip[IPSTR];
	uint8_t mine = ha_prio();
	bool higher = a->priority > mine ||
		      (a->priority == mine && ip_cmp(&a->src, &ha.w.ifaddr) > 0);

	ip_str(&a->src, ip, sizeof(ip));
	if (ha.role == HA_MASTER) {
		if (a->priority == 0) {		/* a backup leaving: tell the rest who is master */
			ha_send(ha_prio());
			core_timer_start(&ha.adver, ha.w.adver_ms);
		} else if (higher) {
			snprintf(why, sizeof(why), "%s advertises priority %u", ip, a->priority);
			ha_to_backup(&a->src, interval, why);
		} else {
			/* Two masters: a split healed. Ours wins; both the other
			 * master and the neighbours hear it now, not in a second. */
			core_log_info("ha", "%s is also master (priority %u): a split has healed; "
				      "announcing again", ip, a->priority);
			ha_send(ha_prio());
			ha_garp();
			core_timer_start(&ha.adver, ha.w.adver_ms);
		}
		return;
	}
	if (ha.lease_held_off && ip_eq(&a->src, &ha.master_ip)) {
		ha.lease_held_off = false;
		core_log_info("ha", "adverts from %s arrive again", ip);
		core_event_clear("ha", "adverts", "adverts from %s arrive again", ip);
	}
	if (a->priority == 0) {
		ha.master_ip = a->src;
		ha.released = a->src;		/* its lease may reach us after this */
		ha_arm_down(ha_skew(ha.master_adver_ms));
		return;
	}
	if (ip_eq(&a->src, &ha.released))
		memset(&ha.released, 0, sizeof(ha.released));	/* back: its lease counts again */
	if (!ha.w.preempt || a->priority >= mine ||
	    core_loop_now(ha.loop) < ha.started + ha.w.preempt_delay) {
		ha.master_ip = a->src;
		ha.master_adver_ms = interval;
		ha_arm_down(3 * interval + ha_skew(interval));
	}
	/* else: a lower master; the down timer runs out and this box preempts */
}

/* With unicast peers, adverts count from them only. */
static bool ha_from_peer(const struct ha_ip *src)
{
	unsigned i;

	for (i = 0; i < ha.w.npeers; i++)
		if (ip_eq(&ha.w.peers[i], src))
			return true;
	return ha.w.npeers == 0;
}

/* Whether an advert's addresses (the first nread of naddr) are the set
 * this box has; the order does not matter. */
static bool ha_same_addrs(const struct ha_ip *a, unsigned nread, unsigned naddr,
			  const struct ha_ip *w, unsigned nw)
{
	unsigned i, j;

	if (naddr != nw)
		return false;
	for (i = 0; i < nread; i++) {
		for (j = 0; j < nw && !ip_eq(&w[j], &a[i]); j++)
			;
		if (j == nw)
			return false;
	}
	return true;
}

static void ha_heard(const struct ha_adv *a)
{
	struct ha_router *r, *slot = &ha.routers[0];
	unsigned i;

	for (i = 0; i < HA_ROUTERS; i++) {
		r = &ha.routers[i];
		if (r->seen != 0 && r->vrid == a->vrid && ip_eq(&r->src, &a->src)) {
			slot = r;
			break;
		}
		if (r->seen < slot->seen)
			slot = r;		/* a free one, or the oldest */
	}
	slot->vrid = a->vrid;
	slot->src = a->src;
	slot->naddr = a->naddr;
	memcpy(slot->addr, a->addr, sizeof(slot->addr[0]) * (a->nread < 4 ? a->nread : 4));
	slot->adver_ms = a->interval_cs * 10u;
	slot->seen = core_loop_now(ha.loop);
}

static const char *addrs_str(const struct ha_ip *a, unsigned n, unsigned total, char *buf,
			     size_t len)
{
	char ip[IPSTR];
	size_t w = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < n && w < len; i++)
		w += (size_t)snprintf(buf + w, len - w, "%s%s", i ? ", " : "",
				      ip_str(&a[i], ip, sizeof(ip)));
	if (total > n && w < len)
		snprintf(buf + w, len - w, " and %u more", total - n);
	return buf;
}

/* Another router uses this VRID for other addresses (or a box of the pair
 * is set up with others): its adverts are not this router's, and are not
 * obeyed. Said once, and cleared when it has been quiet a while. */
static void ha_clash(const struct ha_adv *a)
{
	char ip[IPSTR], theirs[200], mine[200];

	ha.clash_seen = core_loop_now(ha.loop);
	ha.clash_adver_ms = a->interval_cs * 10u;
	if (ip_eq(&ha.clash_src, &a->src))
		return;
	ha.clash_src = a->src;
	addrs_str(a->addr, a->nread < 4 ? a->nread : 4, a->naddr, theirs, sizeof(theirs));
	addrs_str(ha.w.addr, ha.w.naddr < 4 ? ha.w.naddr : 4, ha.w.naddr, mine, sizeof(mine));
	core_log_error("ha", "vrid %u on %s is also used by %s for %s (this box: %s): its adverts "
		       "are ignored; give one of the two routers another vrid", ha.w.vrid,
		       ha.w.ifname, ip_str(&a->src, ip, sizeof(ip)), theirs, mine);
	core_event_raise("ha", "vrid clash", "vrid %u on %s is also used by %s for %.120s",
			 ha.w.vrid, ha.w.ifname, ip, theirs);
	core_timer_start(&ha.clash_t, 1000);
}

static void ha_on_clash(struct core_timer *t)
{
	char ip[IPSTR];

	(void)t;
	if (ip_zero(&ha.clash_src))
		return;
	if (core_loop_now(ha.loop) - ha.clash_seen < 3ull * ha.clash_adver_ms + 1000) {
		core_timer_start(&ha.clash_t, 1000);
		return;
	}
	core_log_info("ha", "no more adverts for vrid %u from %s", ha.w.vrid,
		      ip_str(&ha.clash_src, ip, sizeof(ip)));
	core_event_clear("ha", "vrid clash", "no more adverts from %s", ip);
	memset(&ha.clash_src, 0, sizeof(ha.clash_src));
}

/* A configuration onto a VRID another router on the link uses for other
 * addresses, heard within three of its intervals (and a second). */
static int ha_check_clash(const struct ha_want *w, char *err, size_t errlen)
{
	char ip[IPSTR], theirs[200];
	uint64_t now;
	unsigned i;

	if (ha.fd == -1 || strcmp(w->ifname, ha.w.ifname) != 0 || w->family != ha.w.family)
		return CORE_OK;		/* nothing heard on that link, in that family */
	now = core_loop_now(ha.loop);
	for (i = 0; i < HA_ROUTERS; i++) {
		const struct ha_router *r = &ha.routers[i];

		if (r->seen == 0 || r->vrid != w->vrid || ip_eq(&r->src, &w->ifaddr) ||
		    now - r->seen > 3ull * r->adver_ms + 1000 ||
		    ha_same_addrs(r->addr, r->naddr < 4 ? r->naddr : 4, r->naddr, w->addr, w->naddr))
			continue;
		snprintf(err, errlen, "ha.vrid: %u is in use on %s by %s for %s (heard %.1f s "
			 "ago): pick another", w->vrid, w->ifname, ip_str(&r->src, ip, sizeof(ip)),
			 addrs_str(r->addr, r->naddr < 4 ? r->naddr : 4, r->naddr, theirs,
				   sizeof(theirs)), (double)(now - r->seen) / 1000);
		return CORE_ERROR;
	}
	return CORE_OK;
}

/* What every advert that was read goes through, of either family. sealed:
 * whether it carried a good signature, and its counter. */
static void ha_received(const struct ha_adv *a, int sealed, uint64_t counter, const char *why)
{
	if (ip_eq(&a->src, &ha.w.ifaddr) || !ha_from_peer(&a->src))
		return;
	if (a->vrid != ha.w.vrid) {
		ha_heard(a);		/* another router: not signed with this key */
		return;
	}
	if (ha.w.auth_len > 0 && (sealed != 0 || ha_auth_counter(&a->src, counter, &why) != 0)) {
		ha.bad_seen++;
		ha.last_bad = why;
		if (core_loop_now(ha.loop) >= ha.auth_warned + 10000) {
			char ip[IPSTR];

			ha.auth_warned = core_loop_now(ha.loop);
			core_log_warn("ha", "an advert from %s for vrid %u ignored: %s",
				      ip_str(&a->src, ip, sizeof(ip)), a->vrid, why);
		}
		return;
	}
	ha_heard(a);
	if (!ha_same_addrs(a->addr, a->nread, a->naddr, ha.w.addr, ha.w.naddr)) {
		ha_clash(a);
		return;
	}
	ha.adverts_seen++;
	ha_advert(a);
}

static void ha_bad(const char *why)
{
	ha.bad_seen++;
	ha.last_bad = why;
	core_log_debug("ha", "a packet dropped: %s", why);
}

static void ha_recv4(const uint8_t *pkt, size_t n)
{
	struct vrrp_advert v;
	struct ha_adv a;
	const char *why = NULL;
	uint64_t counter = 0;
	int sealed = 0;
	unsigned i;

	if (vrrp_parse4(pkt, n, &v, &why) != 0) {
		ha_bad(why);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.vrid = v.vrid;
	a.priority = v.priority;
	a.naddr = v.naddr;
	a.nread = v.nread;
	a.interval_cs = v.interval_cs;
	for (i = 0; i < v.nread; i++)
		a.addr[i] = ip_of4(v.addr[i]);
	a.src = ip_of4(v.src);
	if (ha.w.auth_len > 0 && v.vrid == ha.w.vrid)
		sealed = vrrp_unseal4(pkt, n, &v, ha.w.auth_key, ha.w.auth_len, &counter, &why);
	ha_received(&a, sealed, counter, why);
}

/* IPv6 raw sockets deliver the VRRP message alone: the source comes in
 * the address, the destination and hop limit as control messages. */
static void ha_recv6(const uint8_t *v6, size_t n, const struct sockaddr_in6 *from,
		     struct msghdr *msg)
{
	struct vrrp_advert6 v;
	struct ha_adv a;
	struct cmsghdr *cm;
	uint8_t dst[16] = { 0 };
	const char *why = NULL;
	uint64_t counter = 0;
	int hops = -1, sealed = 0;
	unsigned i;

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != IPPROTO_IPV6)
			continue;
		if (cm->cmsg_type == IPV6_HOPLIMIT && cm->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(&hops, CMSG_DATA(cm), sizeof(int));
		else if (cm->cmsg_type == IPV6_PKTINFO &&
			 cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo)))
			memcpy(dst, &((const struct in6_pktinfo *)(const void *)CMSG_DATA(cm))->ipi6_addr,
			       16);
	}
	if (vrrp_parse6(v6, n, from->sin6_addr.s6_addr, dst, hops, &v, &why) != 0) {
		ha_bad(why);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.vrid = v.vrid;
	a.priority = v.priority;
	a.naddr = v.naddr;
	a.nread = v.nread;
	a.interval_cs = v.interval_cs;
	for (i = 0; i < v.nread; i++)
		a.addr[i] = ip_of6(v.addr[i]);
	a.src = ip_of6(v.src);
	if (ha.w.auth_len > 0 && v.vrid == ha.w.vrid)
		sealed = vrrp_unseal6(v6, n, &v, ha.w.auth_key, ha.w.auth_len, &counter, &why);
	ha_received(&a, sealed, counter, why);
}

static void ha_on_io(struct core_io *io, unsigned revents)
{
	uint8_t pkt[1500];
	union {
		struct cmsghdr	 align;
		char		 buf[256];
	} ctl;
	struct sockaddr_in6 from;
	struct iovec iov = { pkt, sizeof(pkt) };
	struct msghdr msg;
	int i;

	(void)io;
	if (!(revents & CORE_IO_READ))
		return;
	for (i = 0; i < 64; i++) {
		ssize_t n;

		memset(&msg, 0, sizeof(msg));
		msg.msg_name = &from;
		msg.msg_namelen = sizeof(from);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		if ((n = recvmsg(ha.fd, &msg, 0)) == -1) {
			if (errno != EAGAIN && errno != EINTR)
				core_log_error("ha", "receiving on %s: %s", ha.w.ifname,
					       strerror(errno));
			return;
		}
		if (ha.w.family == AF_INET6)
			ha_recv6(pkt, (size_t)n, &from, &msg);
		else
			ha_recv4(pkt, (size_t)n);
	}
}

/* ---- this box's own health ----------------------------------------------------------------- */

/* Why this box cannot serve, from the conditions raised now: an upstream
 * none of whose servers takes requests (the proxy says so), or a failing
 * storage mount. */
static void ha_find_fault(const struct core_event *ev, void *arg)
{
	char *why = arg;

	if (why[0] != '\0')
		return;
	if (strcmp(ev->source, "storage") == 0 ||
	    (strcmp(ev->source, "proxy") == 0 && strncmp(ev->subject, "upstream ", 9) == 0))
		if (snprintf(why, 200, "%s: %s", ev->subject, ev->reason) >= 200)
			memcpy(why + 196, "...", 4);	/* cut, but it says what */
}

static bool ha_parts_ok(char *why, size_t len)
{
	if (len < 200)
		return false;
	why[0] = '\0';
	core_event_each(ha_find_fault, why);
	return why[0] == '\0';
}

static void ha_health_changed(void)
{
	if (ha.faulty)
		core_event_raise("ha", "this gateway", "it cannot serve (%s): it advertises "
				 "priority 1 and holds the virtual addresses only if no other "
				 "box does", ha.fault);
	else
		core_event_clear("ha", "this gateway", "it serves again: priority %u",
				 ha.w.priority);
	if (ha.role != HA_MASTER)
		return;
	if (ha.faulty) {
		/* Give the addresses away now: the backups take over after
		 * their skew alone. With no other box, this one comes back
		 * as master when its down timer runs out. */
		ha_send(0);
		ha_to_backup(NULL, ha.w.adver_ms, "this box cannot serve");
	} else
		ha_on_adver(&ha.adver);		/* the higher priority, at once */
}

static void ha_judge(bool ok, const char *why)
{
	if (ok) {
		ha.fails = 0;
		if (ha.faulty && ++ha.passes >= ha.w.rise) {
			ha.faulty = false;
			core_log_info("ha", "this box serves again after %u good checks: priority %u",
				      ha.passes, ha.w.priority);
			ha_health_changed();
		}
		return;
	}
	ha.passes = 0;
	snprintf(ha.fault, sizeof(ha.fault), "%s", why);
	if (!ha.faulty && ++ha.fails >= ha.w.fall) {
		ha.faulty = true;
		core_log_warn("ha", "this box cannot serve after %u failed checks (%s): "
			      "priority 1", ha.fails, why);
		ha_health_changed();
	}
}

static void ha_door_done(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			 const char *why)
{
	char msg[200];

	(void)p;
	(void)ok;			/* any status is an answer: the proxy runs */
	(void)ms;
	if (status == 0) {
		snprintf(msg, sizeof(msg), "the first listener did not answer: %s",
			 why != NULL && why[0] != '\0' ? why : "no answer");
		ha_judge(false, msg);
		return;
	}
	ha_judge(ha_parts_ok(msg, sizeof(msg)), msg);
}

static void ha_on_check(struct core_timer *t)
{
	char msg[200];

	if (ha.have_door) {
		if (!core_probe_busy(&ha.door))
			core_probe_start(&ha.door);
	} else
		ha_judge(ha_parts_ok(msg, sizeof(msg)), msg);
	core_timer_start(t, ha.w.check_ms);
}

/* What the checks look at, from a configuration: the first plain
 * listener. */
static void ha_track_conf(const struct keel_conf *k)
{
	const struct keel_listener_conf *lc = k->listeners.v;
	struct core_conf_addr door;

	core_probe_cancel(&ha.door);
	core_probe_init(ha.loop, &ha.door);
	ha.have_door = k->listeners.n > 0 && lc[0].tls.certificates.n == 0;
	if (ha.have_door) {
		door = lc[0].address;
		core_net_local_door(&door);
		memcpy(&ha.door.sa, &door.sa, sizeof(ha.door.sa));
		ha.door.salen = door.salen;
		snprintf(ha.door_req, sizeof(ha.door_req),
			 "GET / HTTP/1.1\r\nHost: keel-ha\r\nConnection: close\r\n\r\n");
		ha.door.request = ha.door_req;
		ha.door.reqlen = strlen(ha.door_req);
		snprintf(ha.door.status, sizeof(ha.door.status), "100-599");
		ha.door.timeout = ha.w.check_ms > 2000 ? 2000 : ha.w.check_ms;
		ha.door.done = ha_door_done;
	}
	if (ha.w.track && ha.w.ifname[0] != '\0') {
		if (!core_timer_armed(&ha.check))
			core_timer_start(&ha.check, ha.w.check_ms);
	} else {
		core_timer_stop(&ha.check);
		if (ha.faulty)
			core_event_clear("ha", "this gateway", "no longer tracked");
		ha.faulty = false;
		ha.fails = ha.passes = 0;
	}
}

/* ---- configuration ------------------------------------------------------------------------ */

static int ha_want_of(const struct keel_ha_conf *c, struct ha_want *w, char *err, size_t errlen)
{
	char *const *addrs = c->addresses.v;
	char ip[IPSTR];
	size_t i;

	memset(w, 0, sizeof(*w));
	if (c->interface[0] == '\0')
		return CORE_OK;
	snprintf(w->ifname, sizeof(w->ifname), "%s", c->interface);
	w->vrid = (uint8_t)c->vrid;
	w->priority = (uint8_t)c->priority;
	w->adver_ms = (unsigned)(c->advert_interval / 10 * 10);
	w->preempt = c->preempt;
	w->preempt_delay = (uint64_t)c->preempt_delay;
	w->track = c->track;
	w->check_ms = (unsigned)c->check_interval;
	w->fall = (unsigned)c->fall;
	w->rise = (unsigned)c->rise;
	w->auth_len = c->auth_key != NULL ? strlen(c->auth_key) : 0;
	if (w->auth_len > sizeof(w->auth_key))
		w->auth_len = sizeof(w->auth_key);
	memcpy(w->auth_key, c->auth_key != NULL ? c->auth_key : "", w->auth_len);
	if (c->advert_interval % 10 != 0) {
		snprintf(err, errlen, "ha.advert_interval: %lld ms is not a multiple of 10 ms",
			 (long long)c->advert_interval);
		return CORE_ERROR;
	}
	/* The family is the addresses' (ha_check in settings.c made sure
	 * they parse, and are of one family). */
	for (i = 0; i < c->addresses.n && i < VRRP_MAX_ADDRS; i++) {
		const char *slash = strchr(addrs[i], '/');
		size_t n = slash != NULL ? (size_t)(slash - addrs[i]) : strlen(addrs[i]);
		int fam;

		snprintf(ip, sizeof(ip), "%.*s", (int)n, addrs[i]);
		if ((fam = ip_parse(ip, &w->addr[i])) == 0 || (i > 0 && fam != w->family)) {
			snprintf(err, errlen, "ha.addresses[%zu]: \"%s\" is not an IP address of "
				 "the first one's family", i, addrs[i]);
			return CORE_ERROR;
		}
		w->family = fam;
		w->plen[i] = (uint8_t)(slash != NULL ? atoi(slash + 1) : fam == AF_INET ? 32 : 128);
	}
	w->naddr = (unsigned)i;
	if (w->family == 0)
		w->family = AF_INET;
	for (i = 0; i < c->peers.n && i < HA_MAX_PEERS; i++) {
		char *const *peers = c->peers.v;

		if (ip_parse(peers[i], &w->peers[i]) != w->family) {
			snprintf(err, errlen, "ha.peers[%zu]: \"%s\" is not an %s address, as the "
				 "virtual addresses are", i, peers[i],
				 w->family == AF_INET ? "IPv4" : "IPv6");
			return CORE_ERROR;
		}
		w->npeers++;
	}
	if (ha_iface(w, err, errlen) != CORE_OK)
		return CORE_ERROR;
	for (i = 0; i < w->naddr; i++) {
		char ifip[IPSTR];
		bool own = false;

		ip_str(&w->addr[i], ip, sizeof(ip));
		if (w->family == AF_INET6) {
			if (!ha_on_link6(w, &w->addr[i], &own)) {
				snprintf(err, errlen, "ha.addresses[%zu]: %s is on none of %s's IPv6 "
					 "prefixes", i, ip, w->ifname);
				return CORE_ERROR;
			}
		} else if ((ip4_of(&w->addr[i]) & w->ifmask) != (ip4_of(&w->ifaddr) & w->ifmask)) {
			snprintf(err, errlen, "ha.addresses[%zu]: %s is not on %s's subnet (%s/%d)",
				 i, ip, w->ifname, ip_str(&w->ifaddr, ifip, sizeof(ifip)),
				 __builtin_popcount(w->ifmask));
			return CORE_ERROR;
		}
		if (own || ip_eq(&w->addr[i], &w->ifaddr)) {
			snprintf(err, errlen, "ha.addresses[%zu]: %s is %s's own address; a "
				 "virtual address must be one no box has", i, ip, w->ifname);
			return CORE_ERROR;
		}
	}
	return CORE_OK;
}

static int ha_socket6(const struct ha_want *w, char *err, size_t errlen)
{
	struct ipv6_mreq mr;
	int fd, hops = 255, off = 0, on = 1;

	fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_PROTO);
	if (fd == -1) {
		snprintf(err, errlen, "ha: a raw VRRP socket: %s (keel needs CAP_NET_RAW)",
			 strerror(errno));
		return -1;
	}
	memset(&mr, 0, sizeof(mr));
	inet_pton(AF_INET6, VRRP_GROUP6, &mr.ipv6mr_multiaddr);
	mr.ipv6mr_interface = (unsigned)w->ifindex;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, w->ifname, (socklen_t)strlen(w->ifname)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &w->ifindex, sizeof(w->ifindex)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof(off)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof(on)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on))) {
		snprintf(err, errlen, "ha: the VRRP socket on %s: %s", w->ifname, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int ha_socket(const struct ha_want *w, char *err, size_t errlen)
{
	struct ip_mreqn mr;
	int fd, ttl = 255, off = 0;

	if (w->family == AF_INET6)
		return ha_socket6(w, err, errlen);
	fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_PROTO);
	if (fd == -1) {
		snprintf(err, errlen, "ha: a raw VRRP socket: %s (keel needs CAP_NET_RAW)",
			 strerror(errno));
		return -1;
	}
	memset(&mr, 0, sizeof(mr));
	mr.imr_multiaddr.s_addr = htonl(VRRP_GROUP4);
	mr.imr_address.s_addr = ip4_of(&w->ifaddr);
	mr.imr_ifindex = w->ifindex;
	/* Not bound to the interface's address: that would filter out what
	 * is sent to the group. IP_MULTICAST_IF's address is the source of
	 * what keel sends, the address its checksum is computed with. */
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, w->ifname, (socklen_t)strlen(w->ifname)) ||
	    setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)) ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
	    setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof(off))) {
		snprintf(err, errlen, "ha: the VRRP socket on %s: %s", w->ifname, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Leaves: as master, the addresses go and a priority-0 advert tells the
 * backups to take over now rather than in three intervals. */
static void ha_leave(void)
{
	if (ha.fd == -1)
		return;
	if (ha.role == HA_MASTER) {
		ha_send(0);
		ha_addrs(HA_RTM_DELADDR);
		ha_lease_drop();
	}
	if (ha.lease_held_off)
		core_event_clear("ha", "adverts", "ha stopped");
	ha.lease_held_off = false;
	if (!ip_zero(&ha.clash_src))
		core_event_clear("ha", "vrid clash", "ha stopped");
	memset(&ha.clash_src, 0, sizeof(ha.clash_src));
	core_timer_stop(&ha.clash_t);
	core_timer_stop(&ha.adver);
	core_timer_stop(&ha.down);
	core_io_stop(&ha.io);
	close(ha.fd);
	ha.fd = -1;
	ha.role = HA_OFF;
}

/* The same virtual router with other settings: no hand-over. A master
 * keeps the addresses it still should, drops the others, announces the
 * new ones and advertises its new priority at once; a backup waits on. */
static void ha_retune(const struct ha_want *w)
{
	struct ha_want old = ha.w;
	unsigned i, j;

	ha.w = *w;
	core_log_info("ha", "settings changed for vrid %u on %s: priority %u, every %u ms, "
		      "%u address%s", w->vrid, w->ifname, w->priority, w->adver_ms, w->naddr,
		      w->naddr == 1 ? "" : "es");
	if (ha.role != HA_MASTER) {
		ha_arm_down(3 * ha.master_adver_ms + ha_skew(ha.master_adver_ms));
		return;
	}
	for (i = 0; i < old.naddr; i++) {
		char err[128], ip[IPSTR];

		for (j = 0; j < w->naddr && !ip_eq(&w->addr[j], &old.addr[i]); j++)
			;
		if (j == w->naddr &&
		    ha_addr(HA_RTM_DELADDR, &old.addr[i], old.plen[i], err, sizeof(err)) != CORE_OK)
			core_log_error("ha", "removing %s/%u on %s: %s",
				       ip_str(&old.addr[i], ip, sizeof(ip)), old.plen[i],
				       w->ifname, err);
	}
	ha_addrs(HA_RTM_NEWADDR);
	ha_garp();
	ha_on_adver(&ha.adver);
}

static int ha_apply_vrrp(const struct keel_conf *k, char *err, size_t errlen)
{
	struct ha_want w;
	int fd;

	if (ha_want_of(&k->ha, &w, err, errlen) != CORE_OK)
		return CORE_ERROR;
	if (ha.fd != -1 && memcmp(&w, &ha.w, sizeof(w)) == 0)
		return CORE_OK;			/* nothing changed */
	if (w.ifname[0] == '\0') {
		ha_leave();
		memset(&ha.w, 0, sizeof(ha.w));
		return CORE_OK;
	}
	if (ha.fd != -1 && w.ifindex == ha.w.ifindex && ip_eq(&w.ifaddr, &ha.w.ifaddr) &&
	    w.family == ha.w.family && w.vrid == ha.w.vrid) {
		ha_retune(&w);
		return CORE_OK;
	}
	if ((fd = ha_socket(&w, err, errlen)) == -1)
		return CORE_ERROR;
	ha_leave();
	ha.w = w;
	ha.fd = fd;
	ha.started = core_loop_now(ha.loop);
	memset(&ha.master_ip, 0, sizeof(ha.master_ip));
	core_io_init(ha.loop, &ha.io, fd, ha_on_io, NULL);
	if (core_io_set(&ha.io, CORE_IO_READ) != CORE_OK) {
		snprintf(err, errlen, "ha: watching the VRRP socket failed");
		ha_leave();
		return CORE_ERROR;
	}
	/* A box that was killed as master left the addresses behind. */
	ha_addrs(HA_RTM_DELADDR);
	ha.role = HA_OFF;
	ha_to_backup(NULL, w.adver_ms, "started, listening for a master");
	return CORE_OK;
}

/* Checks a configuration's ha section against the interface: what
 * cannot work (no such interface, an address off its subnet) refuses the
 * whole configuration, and the running one stays. */
static int ha_prepare(const struct core_conf *conf, const struct core_conf *prev, char *err,
		      size_t errlen)
{
	struct ha_want w;

	(void)prev;
	if (ha_want_of(&core_settings_of(conf)->ha, &w, err, errlen) != CORE_OK)
		return CORE_ERROR;
	return ha_check_clash(&w, err, errlen);
}

static int ha_apply(const struct keel_conf *k, char *err, size_t errlen)
{
	int rc = ha_apply_vrrp(k, err, errlen);

	if (rc == CORE_OK)
		ha_track_conf(k);
	return rc;
}

static int ha_start(struct core_loop *loop, const struct core_conf *conf, char *err, size_t errlen)
{
	ha.loop = loop;
	core_timer_init(loop, &ha.adver, ha_on_adver, NULL);
	core_timer_init(loop, &ha.down, ha_on_down, NULL);
	core_timer_init(loop, &ha.check, ha_on_check, NULL);
	core_timer_init(loop, &ha.clash_t, ha_on_clash, NULL);
	core_probe_init(loop, &ha.door);
	return ha_apply(core_settings_of(conf), err, errlen);
}

static int ha_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	return ha_apply(core_settings_of(conf), err, errlen);
}

static void ha_stop(void)
{
	ha_leave();
	core_timer_stop(&ha.check);
	core_probe_cancel(&ha.door);
}

static const struct core_module ha_module = {
	.name = "ha",
	.order = 90,
	.prepare = ha_prepare,
	.start = ha_start,
	.reload = ha_reload,
	.stop = ha_stop,
};
CORE_MODULE(ha_module);

/* ---- status ------------------------------------------------------------------------------- */

static int ha_status_json(struct core_buf *out)
{
	char ip[IPSTR];
	unsigned i;

	if (ha.fd == -1)
		return core_buf_append(out, "null", 4);
	core_buf_printf(out, "{\"role\":\"%s\",\"interface\":", role_names[ha.role]);
	core_json_str(out, ha.w.ifname);
	core_buf_printf(out, ",\"healthy\":%s,\"fault\":", ha.faulty ? "false" : "true");
	core_json_str(out, ha.faulty ? ha.fault : "");
	core_buf_printf(out, ",\"advertised_priority\":%u", ha_prio());
	core_buf_printf(out, ",\"vrid\":%u,\"priority\":%u,\"advert_interval_ms\":%u,"
			"\"master\":\"%s\",\"since\":%llu,\"transitions\":%u,"
			"\"adverts_sent\":%llu,\"adverts_seen\":%llu,\"bad_packets\":%llu,"
			"\"addresses\":[", ha.w.vrid, ha.w.priority, ha.w.adver_ms,
			!ip_zero(&ha.master_ip) ? ip_str(&ha.master_ip, ip, sizeof(ip)) : "",
			(unsigned long long)ha.since, ha.transitions,
			(unsigned long long)ha.adverts_sent, (unsigned long long)ha.adverts_seen,
			(unsigned long long)ha.bad_seen);
	for (i = 0; i < ha.w.naddr; i++)
		core_buf_printf(out, "%s\"%s/%u\"", i ? "," : "",
				ip_str(&ha.w.addr[i], ip, sizeof(ip)), ha.w.plen[i]);
	return core_buf_append(out, "]}", 2);
}

static int ha_status_metrics(struct core_buf *out)
{
	if (ha.fd == -1)
		return CORE_OK;
	return core_buf_printf(out,
		"# HELP keel_ha_master 1 while this box holds the virtual addresses.\n"
		"# TYPE keel_ha_master gauge\nkeel_ha_master{vrid=\"%u\"} %d\n"
		"# HELP keel_ha_transitions_total Changes of VRRP role.\n"
		"# TYPE keel_ha_transitions_total counter\nkeel_ha_transitions_total %u\n",
		ha.w.vrid, ha.role == HA_MASTER, ha.transitions);
}

static const struct core_status_provider ha_status = {
	.name = "ha",
	.order = 90,
	.json = ha_status_json,
	.metrics = ha_status_metrics,
};
CORE_STATUS_PROVIDER(ha_status);
