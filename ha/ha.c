/*
 * High availability: keel boxes sharing virtual addresses by VRRP
 * version 3 (RFC 5798, IPv4), in the master process.
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
 * off), ARP through a packet socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
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

struct ha_rtattr4 {			/* an attribute holding an IPv4 address */
	uint16_t	len, type;
	uint32_t	addr;
};

struct ha_sockaddr_nl {
	sa_family_t	family;
	unsigned short	pad;
	uint32_t	pid, groups;
};

#define HA_MAX_PEERS	8
#define HA_ROUTERS	16	/* other routers heard on the link, remembered */

/* Another virtual router heard on the link (any VRID), for the clash
 * checks: a reload onto a VRID in use for other addresses is refused. */
struct ha_router {
	uint8_t		 vrid, naddr;
	uint32_t	 src;		/* network order */
	uint32_t	 addr[4];	/* the first of its addresses */
	unsigned	 adver_ms;
	uint64_t	 seen;		/* monotonic ms; 0: free */
};

enum ha_role { HA_OFF = 0, HA_BACKUP, HA_MASTER };

static const char *const role_names[] = { "off", "backup", "master" };

/* What a configuration asks for, resolved against the interface. */
struct ha_want {
	char		 ifname[IF_NAMESIZE];
	int		 ifindex;
	uint32_t	 ifaddr, ifmask;	/* network order */
	uint8_t		 mac[6];
	uint8_t		 vrid, priority;
	unsigned	 adver_ms;
	bool		 preempt;
	uint64_t	 preempt_delay;
	unsigned	 naddr;
	uint32_t	 addr[VRRP_MAX_ADDRS];	/* network order */
	uint8_t		 plen[VRRP_MAX_ADDRS];
	bool		 track;
	unsigned	 check_ms, fall, rise;
	unsigned	 npeers;		/* unicast: adverts to these only */
	uint32_t	 peers[HA_MAX_PEERS];	/* network order */
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
	uint32_t	 master_ip;	/* who we last heard as master */
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
	uint32_t	 clash_src;	/* 0: none */
	uint64_t	 clash_seen;	/* monotonic ms */
	unsigned	 clash_adver_ms;

	/* signed adverts: the last counter taken from each sender */
	struct { uint32_t src; uint64_t counter; } auth_seen[HA_ROUTERS];
	uint64_t	 auth_sent;	/* the last counter sent */
	uint64_t	 auth_warned;	/* monotonic ms of the last warning */

	/* the second path (the shared table's lease) */
	uint32_t	 released;	/* sent priority 0: its lease no longer counts */
	bool		 lease_held_off;	/* a lease keeps this box backup now */
} ha = { .fd = -1 };

/* The priority this box advertises: 1 while it cannot serve. */
static uint8_t ha_prio(void)
{
	return ha.w.track && ha.faulty ? 1 : ha.w.priority;
}

static void ha_to_master(const char *why);
static void ha_to_backup(uint32_t from, unsigned interval_ms, const char *why);

static const char *ip_str(uint32_t a, char *buf, size_t len)
{
	struct in_addr in = { .s_addr = a };

	return inet_ntop(AF_INET, &in, buf, (socklen_t)len) != NULL ? buf : "?";
}

/* ---- the interface and its addresses -------------------------------------------------------- */

/* The interface's index, MAC and first IPv4 address and mask. */
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
	else if (memcpy(w->mac, ifr.ifr_hwaddr.sa_data, 6), ioctl(s, SIOCGIFADDR, &ifr) == -1)
		snprintf(err, errlen, "ha.interface: %s has no IPv4 address to send adverts from",
			 w->ifname);
	else {
		w->ifaddr = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
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
static int ha_addr(int type, uint32_t addr, uint8_t plen, char *err, size_t errlen)
{
	struct {
		struct ha_nlmsghdr  nh;
		struct ha_ifaddrmsg ifa;
		struct ha_rtattr4   local, address;
	} req;
	struct {
		struct ha_nlmsghdr nh;
		int32_t		   error;
		struct ha_nlmsghdr orig;
	} ack;
	struct ha_sockaddr_nl kernel = { .family = AF_NETLINK };
	ssize_t n;
	int s, e;

	memset(&req, 0, sizeof(req));
	req.nh.len = sizeof(req);
	req.nh.type = (uint16_t)type;
	req.nh.flags = HA_NLM_F_REQUEST | HA_NLM_F_ACK |
		       (type == HA_RTM_NEWADDR ? HA_NLM_F_CREATE | HA_NLM_F_REPLACE : 0);
	req.nh.seq = 1;
	req.ifa.family = AF_INET;
	req.ifa.prefixlen = plen;
	req.ifa.index = (uint32_t)ha.w.ifindex;
	req.local.len = req.address.len = sizeof(req.local);
	req.local.type = HA_IFA_LOCAL;
	req.address.type = HA_IFA_ADDRESS;
	req.local.addr = req.address.addr = addr;

	if ((s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, HA_NETLINK_ROUTE)) == -1) {
		snprintf(err, errlen, "netlink: %s", strerror(errno));
		return CORE_ERROR;
	}
	if (sendto(s, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) == -1 ||
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
	char err[128], ip[INET_ADDRSTRLEN];
	unsigned i;

	for (i = 0; i < ha.w.naddr; i++)
		if (ha_addr(type, ha.w.addr[i], ha.w.plen[i], err, sizeof(err)) != CORE_OK)
			core_log_error("ha", "%s %s/%u on %s: %s",
				       type == HA_RTM_NEWADDR ? "adding" : "removing",
				       ip_str(ha.w.addr[i], ip, sizeof(ip)), ha.w.plen[i],
				       ha.w.ifname, err);
}

/* A gratuitous ARP request for every address: switches and neighbours
 * learn that the addresses now live behind this box's MAC. */
static void ha_garp(void)
{
	struct sockaddr_ll to;
	uint8_t pkt[28];
	unsigned i;
	int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));

	if (s == -1) {
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
		memcpy(pkt + 14, &ha.w.addr[i], 4);
		memset(pkt + 18, 0xff, 6);
		memcpy(pkt + 24, &ha.w.addr[i], 4);
		if (sendto(s, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) == -1)
			core_log_error("ha", "gratuitous ARP on %s: %s", ha.w.ifname,
				       strerror(errno));
	}
	close(s);
}

/* ---- adverts ------------------------------------------------------------------------------ */

/* One advert to dst; unicast ones leave from the interface's address
 * (IP_PKTINFO), the one the checksum was computed with. */
static void ha_send_to(const uint8_t *pkt, size_t len, uint32_t dst)
{
	union {
		struct cmsghdr	 align;
		char		 buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
	} ctl;
	struct sockaddr_in to;
	struct iovec iov = { (void *)pkt, len };
	struct msghdr msg;
	struct cmsghdr *cm;
	struct in_pktinfo *pi;

	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_addr.s_addr = dst;
	memset(&msg, 0, sizeof(msg));
	msg.msg_name = &to;
	msg.msg_namelen = sizeof(to);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (dst != htonl(VRRP_GROUP4)) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(*pi));
		pi = (struct in_pktinfo *)(void *)CMSG_DATA(cm);
		pi->ipi_ifindex = ha.w.ifindex;
		pi->ipi_spec_dst.s_addr = ha.w.ifaddr;
	}
	if (sendmsg(ha.fd, &msg, 0) == -1) {
		char ip[INET_ADDRSTRLEN];

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

/* With ha.auth_key: the advert carries keel's signature, and its counter
 * is higher than the last one taken from that sender (a replay is not). */
static int ha_auth(const uint8_t *pkt, size_t len, const struct vrrp_advert *a,
		   const char **why)
{
	unsigned i, slot = 0;
	uint64_t counter;

	if (ha.w.auth_len == 0)
		return 0;
	if (vrrp_unseal4(pkt, len, a, ha.w.auth_key, ha.w.auth_len, &counter, why) != 0)
		return -1;
	for (i = 0; i < HA_ROUTERS; i++) {
		if (ha.auth_seen[i].src == a->src) {
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
	ha.auth_seen[slot].src = a->src;
	ha.auth_seen[slot].counter = counter;
	return 0;
}

/* An advert to the group, or to each unicast peer. */
static void ha_send(uint8_t priority)
{
	struct vrrp_advert a;
	uint8_t pkt[VRRP_HDR + 4 * VRRP_MAX_ADDRS + VRRP_AUTH_LEN];
	size_t len;
	unsigned i;

	memset(&a, 0, sizeof(a));
	a.vrid = ha.w.vrid;
	a.priority = priority;
	a.interval_cs = (uint16_t)(ha.w.adver_ms / 10);
	a.naddr = (uint8_t)ha.w.naddr;
	memcpy(a.addr, ha.w.addr, sizeof(a.addr));
	a.src = ha.w.ifaddr;
	for (i = 0; i < (ha.w.npeers > 0 ? ha.w.npeers : 1); i++) {
		a.dst = ha.w.npeers > 0 ? ha.w.peers[i] : htonl(VRRP_GROUP4);
		len = vrrp_build4(pkt, sizeof(pkt), &a);
		if (len != 0 && ha.w.auth_len > 0)
			len = vrrp_seal4(pkt, len, sizeof(pkt), a.src, a.dst, ha_counter(),
					 ha.w.auth_key, ha.w.auth_len);
		if (len != 0)
			ha_send_to(pkt, len, a.dst);
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
	char key[16], val[32], ip[INET_ADDRSTRLEN];

	if (!core_kv_mirrored())
		return;
	ha_lease_key(key, sizeof(key));
	snprintf(val, sizeof(val), "%s,%u", ip_str(ha.w.ifaddr, ip, sizeof(ip)), ha_prio());
	(void)core_kv_set(key, val, 3ull * ha.w.adver_ms);
}

static void ha_lease_drop(void)
{
	char key[16], ip[INET_ADDRSTRLEN];
	const char *v;

	ha_lease_key(key, sizeof(key));
	v = core_kv_get(key);
	ip_str(ha.w.ifaddr, ip, sizeof(ip));
	if (v != NULL && strncmp(v, ip, strlen(ip)) == 0 && v[strlen(ip)] == ',')
		core_kv_del(key);
}

/* Another box of higher rank holds a live lease: its address and priority. */
static bool ha_lease_other(uint32_t *who, unsigned *prio)
{
	char key[16], ip[INET_ADDRSTRLEN];
	const char *v, *comma;
	struct in_addr in;
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
	if (inet_pton(AF_INET, ip, &in) != 1 || *end != '\0' || p > 255 ||
	    in.s_addr == ha.w.ifaddr || in.s_addr == ha.released)
		return false;
	if (p < mine || (p == mine && ntohl(in.s_addr) < ntohl(ha.w.ifaddr)))
		return false;
	*who = in.s_addr;
	*prio = (unsigned)p;
	return true;
}

static void ha_on_adver(struct core_timer *t)
{
	char why[128], ip[INET_ADDRSTRLEN];
	uint32_t who;
	unsigned prio;

	(void)t;
	if (ha.role == HA_MASTER && ha_lease_other(&who, &prio)) {
		snprintf(why, sizeof(why), "%s holds the lease with priority %u (its adverts do "
			 "not reach this box)", ip_str(who, ip, sizeof(ip)), prio);
		ha_to_backup(who, ha.w.adver_ms, why);
		return;
	}
	ha_send(ha_prio());
	ha_lease_renew();
	core_timer_start(&ha.adver, ha.w.adver_ms);
}

static void ha_on_down(struct core_timer *t)
{
	char why[96], ip[INET_ADDRSTRLEN];
	uint32_t who;
	unsigned prio;

	(void)t;
	if (ha_lease_other(&who, &prio)) {
		if (!ha.lease_held_off) {
			core_log_warn("ha", "no advert from %s, but it holds the lease with priority "
				      "%u: its adverts are lost on the way to this box; staying backup",
				      ip_str(who, ip, sizeof(ip)), prio);
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
	if (ha.master_ip != 0)
		snprintf(why, sizeof(why), "no advert from %s for %u ms",
			 ip_str(ha.master_ip, ip, sizeof(ip)),
			 3 * ha.master_adver_ms + ha_skew(ha.master_adver_ms));
	else
		snprintf(why, sizeof(why), "no master heard");
	ha_to_master(why);
}

static void ha_role_set(enum ha_role role, const char *why)
{
	char ip[INET_ADDRSTRLEN];

	if (ha.role == role)
		return;
	ha.role = role;
	ha.since = core_clock_wall_ms();
	ha.transitions++;
	core_log_info("ha", "%s for vrid %u on %s (priority %u, %s): %s", role == HA_MASTER ?
		      "MASTER" : "BACKUP", ha.w.vrid, ha.w.ifname, ha_prio(),
		      ip_str(ha.w.ifaddr, ip, sizeof(ip)), why);
}

static void ha_to_master(const char *why)
{
	core_timer_stop(&ha.down);
	ha_send(ha_prio());
	ha_addrs(HA_RTM_NEWADDR);
	ha_garp();
	ha.master_ip = ha.w.ifaddr;
	ha.released = 0;
	ha_lease_renew();
	core_timer_start(&ha.adver, ha.w.adver_ms);
	ha_role_set(HA_MASTER, why);
}

static void ha_to_backup(uint32_t from, unsigned interval_ms, const char *why)
{
	core_timer_stop(&ha.adver);
	if (ha.role == HA_MASTER) {
		ha_addrs(HA_RTM_DELADDR);
		ha_lease_drop();
	}
	ha.master_ip = from;
	ha.master_adver_ms = interval_ms;
	ha_arm_down(3 * interval_ms + ha_skew(interval_ms));
	ha_role_set(HA_BACKUP, why);
}

/* RFC 5798 6.4.2 and 6.4.3. */
static void ha_advert(const struct vrrp_advert *a)
{
	unsigned interval = a->interval_cs * 10u;
	char why[96], ip[INET_ADDRSTRLEN];
	uint8_t mine = ha_prio();
	bool higher = a->priority > mine ||
		      (a->priority == mine && ntohl(a->src) > ntohl(ha.w.ifaddr));

	ip_str(a->src, ip, sizeof(ip));
	if (ha.role == HA_MASTER) {
		if (a->priority == 0) {		/* a backup leaving: tell the rest who is master */
			ha_send(ha_prio());
			core_timer_start(&ha.adver, ha.w.adver_ms);
		} else if (higher) {
			snprintf(why, sizeof(why), "%s advertises priority %u", ip, a->priority);
			ha_to_backup(a->src, interval, why);
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
	if (ha.lease_held_off && a->src == ha.master_ip) {
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
	if (a->src == ha.released)
		ha.released = 0;		/* back: its lease counts again */
	if (!ha.w.preempt || a->priority >= mine ||
	    core_loop_now(ha.loop) < ha.started + ha.w.preempt_delay) {
		ha.master_ip = a->src;
		ha.master_adver_ms = interval;
		ha_arm_down(3 * interval + ha_skew(interval));
	}
	/* else: a lower master; the down timer runs out and this box preempts */
}

/* With unicast peers, adverts count from them only. */
static bool ha_from_peer(uint32_t src)
{
	unsigned i;

	for (i = 0; i < ha.w.npeers; i++)
		if (ha.w.peers[i] == src)
			return true;
	return ha.w.npeers == 0;
}

/* Whether an advert's addresses (the first nread of naddr) are the set
 * this box has; the order does not matter. */
static bool ha_same_addrs(const uint32_t *a, unsigned nread, unsigned naddr,
			  const uint32_t *w, unsigned nw)
{
	unsigned i, j;

	if (naddr != nw)
		return false;
	for (i = 0; i < nread; i++) {
		for (j = 0; j < nw && w[j] != a[i]; j++)
			;
		if (j == nw)
			return false;
	}
	return true;
}

static void ha_heard(const struct vrrp_advert *a)
{
	struct ha_router *r, *slot = &ha.routers[0];
	unsigned i;

	for (i = 0; i < HA_ROUTERS; i++) {
		r = &ha.routers[i];
		if (r->seen != 0 && r->vrid == a->vrid && r->src == a->src) {
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

static const char *addrs_str(const uint32_t *a, unsigned n, unsigned total, char *buf,
			     size_t len)
{
	char ip[INET_ADDRSTRLEN];
	size_t w = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < n && w < len; i++)
		w += (size_t)snprintf(buf + w, len - w, "%s%s", i ? ", " : "",
				      ip_str(a[i], ip, sizeof(ip)));
	if (total > n && w < len)
		snprintf(buf + w, len - w, " and %u more", total - n);
	return buf;
}

/* Another router uses this VRID for other addresses (or a box of the pair
 * is set up with others): its adverts are not this router's, and are not
 * obeyed. Said once, and cleared when it has been quiet a while. */
static void ha_clash(const struct vrrp_advert *a)
{
	char ip[INET_ADDRSTRLEN], theirs[160], mine[160];

	ha.clash_seen = core_loop_now(ha.loop);
	ha.clash_adver_ms = a->interval_cs * 10u;
	if (ha.clash_src == a->src)
		return;
	ha.clash_src = a->src;
	addrs_str(a->addr, a->nread < 4 ? a->nread : 4, a->naddr, theirs, sizeof(theirs));
	addrs_str(ha.w.addr, ha.w.naddr < 4 ? ha.w.naddr : 4, ha.w.naddr, mine, sizeof(mine));
	core_log_error("ha", "vrid %u on %s is also used by %s for %s (this box: %s): its adverts "
		       "are ignored; give one of the two routers another vrid", ha.w.vrid,
		       ha.w.ifname, ip_str(a->src, ip, sizeof(ip)), theirs, mine);
	core_event_raise("ha", "vrid clash", "vrid %u on %s is also used by %s for %s",
			 ha.w.vrid, ha.w.ifname, ip, theirs);
	core_timer_start(&ha.clash_t, 1000);
}

static void ha_on_clash(struct core_timer *t)
{
	char ip[INET_ADDRSTRLEN];

	(void)t;
	if (ha.clash_src == 0)
		return;
	if (core_loop_now(ha.loop) - ha.clash_seen < 3ull * ha.clash_adver_ms + 1000) {
		core_timer_start(&ha.clash_t, 1000);
		return;
	}
	core_log_info("ha", "no more adverts for vrid %u from %s", ha.w.vrid,
		      ip_str(ha.clash_src, ip, sizeof(ip)));
	core_event_clear("ha", "vrid clash", "no more adverts from %s", ip);
	ha.clash_src = 0;
}

/* A configuration onto a VRID another router on the link uses for other
 * addresses, heard within three of its intervals (and a second). */
static int ha_check_clash(const struct ha_want *w, char *err, size_t errlen)
{
	uint64_t now = core_loop_now(ha.loop);
	char ip[INET_ADDRSTRLEN], theirs[160];
	unsigned i;

	if (ha.fd == -1 || strcmp(w->ifname, ha.w.ifname) != 0)
		return CORE_OK;		/* nothing heard on that link */
	for (i = 0; i < HA_ROUTERS; i++) {
		const struct ha_router *r = &ha.routers[i];

		if (r->seen == 0 || r->vrid != w->vrid || r->src == w->ifaddr ||
		    now - r->seen > 3ull * r->adver_ms + 1000 ||
		    ha_same_addrs(r->addr, r->naddr < 4 ? r->naddr : 4, r->naddr, w->addr, w->naddr))
			continue;
		snprintf(err, errlen, "ha.vrid: %u is in use on %s by %s for %s (heard %.1f s "
			 "ago): pick another", w->vrid, w->ifname, ip_str(r->src, ip, sizeof(ip)),
			 addrs_str(r->addr, r->naddr < 4 ? r->naddr : 4, r->naddr, theirs,
				   sizeof(theirs)), (double)(now - r->seen) / 1000);
		return CORE_ERROR;
	}
	return CORE_OK;
}

static void ha_on_io(struct core_io *io, unsigned revents)
{
	uint8_t pkt[1500];
	struct vrrp_advert a;
	const char *why;
	int i;

	(void)io;
	if (!(revents & CORE_IO_READ))
		return;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(ha.fd, pkt, sizeof(pkt), 0);

		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				core_log_error("ha", "receiving on %s: %s", ha.w.ifname,
					       strerror(errno));
			return;
		}
		if (vrrp_parse4(pkt, (size_t)n, &a, &why) != 0) {
			ha.bad_seen++;
			ha.last_bad = why;
			core_log_debug("ha", "a packet dropped: %s", why);
			continue;
		}
		if (a.src == ha.w.ifaddr || !ha_from_peer(a.src))
			continue;
		if (a.vrid != ha.w.vrid) {
			ha_heard(&a);		/* another router: not signed with this key */
			continue;
		}
		if (ha_auth(pkt, (size_t)n, &a, &why) != 0) {
			ha.bad_seen++;
			ha.last_bad = why;
			if (core_loop_now(ha.loop) >= ha.auth_warned + 10000) {
				char ip[INET_ADDRSTRLEN];

				ha.auth_warned = core_loop_now(ha.loop);
				core_log_warn("ha", "an advert from %s for vrid %u ignored: %s",
					      ip_str(a.src, ip, sizeof(ip)), a.vrid, why);
			}
			continue;
		}
		ha_heard(&a);
		if (!ha_same_addrs(a.addr, a.nread, a.naddr, ha.w.addr, ha.w.naddr)) {
			ha_clash(&a);
			continue;
		}
		ha.adverts_seen++;
		ha_advert(&a);
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
		ha_to_backup(0, ha.w.adver_ms, "this box cannot serve");
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
	char ip[INET_ADDRSTRLEN];
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
	for (i = 0; i < c->peers.n && i < HA_MAX_PEERS; i++) {
		char *const *peers = c->peers.v;
		struct in_addr in;

		if (inet_pton(AF_INET, peers[i], &in) != 1) {
			snprintf(err, errlen, "ha.peers[%zu]: \"%s\" is not an IPv4 address", i,
				 peers[i]);
			return CORE_ERROR;
		}
		w->peers[w->npeers++] = in.s_addr;
	}
	w->auth_len = c->auth_key != NULL ? strlen(c->auth_key) : 0;
	if (w->auth_len > sizeof(w->auth_key))
		w->auth_len = sizeof(w->auth_key);
	memcpy(w->auth_key, c->auth_key != NULL ? c->auth_key : "", w->auth_len);
	if (c->advert_interval % 10 != 0) {
		snprintf(err, errlen, "ha.advert_interval: %lld ms is not a multiple of 10 ms",
			 (long long)c->advert_interval);
		return CORE_ERROR;
	}
	if (ha_iface(w, err, errlen) != CORE_OK)
		return CORE_ERROR;
	for (i = 0; i < c->addresses.n && i < VRRP_MAX_ADDRS; i++) {
		const char *slash = strchr(addrs[i], '/');
		size_t n = slash != NULL ? (size_t)(slash - addrs[i]) : strlen(addrs[i]);
		struct in_addr in;

		/* ha_check in settings.c made sure both parse */
		snprintf(ip, sizeof(ip), "%.*s", (int)n, addrs[i]);
		if (inet_pton(AF_INET, ip, &in) != 1) {
			snprintf(err, errlen, "ha.addresses[%zu]: \"%s\" is not an IPv4 address",
				 i, addrs[i]);
			return CORE_ERROR;
		}
		w->addr[i] = in.s_addr;
		w->plen[i] = (uint8_t)(slash != NULL ? atoi(slash + 1) : 32);
		if ((in.s_addr & w->ifmask) != (w->ifaddr & w->ifmask)) {
			char ifip[INET_ADDRSTRLEN];

			snprintf(err, errlen, "ha.addresses[%zu]: %s is not on %s's subnet (%s/%d)",
				 i, ip, w->ifname, ip_str(w->ifaddr, ifip, sizeof(ifip)),
				 __builtin_popcount(w->ifmask));
			return CORE_ERROR;
		}
		if (in.s_addr == w->ifaddr) {
			snprintf(err, errlen, "ha.addresses[%zu]: %s is %s's own address; a "
				 "virtual address must be one no box has", i, ip, w->ifname);
			return CORE_ERROR;
		}
	}
	w->naddr = (unsigned)i;
	return CORE_OK;
}

static int ha_socket(const struct ha_want *w, char *err, size_t errlen)
{
	struct ip_mreqn mr;
	int fd, ttl = 255, off = 0;

	fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_PROTO);
	if (fd == -1) {
		snprintf(err, errlen, "ha: a raw VRRP socket: %s (keel needs CAP_NET_RAW)",
			 strerror(errno));
		return -1;
	}
	memset(&mr, 0, sizeof(mr));
	mr.imr_multiaddr.s_addr = htonl(VRRP_GROUP4);
	mr.imr_address.s_addr = w->ifaddr;
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
	if (ha.clash_src != 0)
		core_event_clear("ha", "vrid clash", "ha stopped");
	ha.clash_src = 0;
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
		char err[128], ip[INET_ADDRSTRLEN];

		for (j = 0; j < w->naddr && w->addr[j] != old.addr[i]; j++)
			;
		if (j == w->naddr &&
		    ha_addr(HA_RTM_DELADDR, old.addr[i], old.plen[i], err, sizeof(err)) != CORE_OK)
			core_log_error("ha", "removing %s/%u on %s: %s",
				       ip_str(old.addr[i], ip, sizeof(ip)), old.plen[i],
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
	if (ha.fd != -1 && w.ifindex == ha.w.ifindex && w.ifaddr == ha.w.ifaddr &&
	    w.vrid == ha.w.vrid) {
		ha_retune(&w);
		return CORE_OK;
	}
	if ((fd = ha_socket(&w, err, errlen)) == -1)
		return CORE_ERROR;
	ha_leave();
	ha.w = w;
	ha.fd = fd;
	ha.started = core_loop_now(ha.loop);
	ha.master_ip = 0;
	core_io_init(ha.loop, &ha.io, fd, ha_on_io, NULL);
	if (core_io_set(&ha.io, CORE_IO_READ) != CORE_OK) {
		snprintf(err, errlen, "ha: watching the VRRP socket failed");
		ha_leave();
		return CORE_ERROR;
	}
	/* A box that was killed as master left the addresses behind. */
	ha_addrs(HA_RTM_DELADDR);
	ha.role = HA_OFF;
	ha_to_backup(0, w.adver_ms, "started, listening for a master");
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
	char ip[INET_ADDRSTRLEN];
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
			ha.master_ip != 0 ? ip_str(ha.master_ip, ip, sizeof(ip)) : "",
			(unsigned long long)ha.since, ha.transitions,
			(unsigned long long)ha.adverts_sent, (unsigned long long)ha.adverts_seen,
			(unsigned long long)ha.bad_seen);
	for (i = 0; i < ha.w.naddr; i++)
		core_buf_printf(out, "%s\"%s/%u\"", i ? "," : "",
				ip_str(ha.w.addr[i], ip, sizeof(ip)), ha.w.plen[i]);
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
