/*
 * The system keel runs on (system.*), in the master: network interfaces
 * (a static address, or keel's own DHCPv4 client), the host name, the
 * clock (SNTP), the readiness gates link/address/clock, the reboot and
 * power-off commands, and the kernel log. On a host keel touches none of
 * this unless the configuration names it; as PID 1 every interface found
 * gets DHCP when none is named.
 *
 * DHCP (RFC 2131) runs over a UDP socket bound to port 68 and to the
 * interface (SO_BINDTODEVICE), asking for broadcast answers while it has
 * no address: INIT, SELECTING (DISCOVER, retried at 2, 4, 8.. 32 s,
 * jittered), REQUESTING, BOUND; RENEWING at T1 (unicast to the server),
 * REBINDING at T2 (broadcast), and at the lease's end the address goes
 * and it starts over. A NAK starts over at once. Addresses and the
 * default route are set with the classic ioctls.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/command.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/core.h"
#include "core/event.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/supervise.h"
#include "core/tls.h"
#include "dhcp.h"

#define SYS_IFACES	16
#define SYS_TICK_MS	1000		/* links looked at, gates reported */
#define SYS_TICK_FAST_MS 50		/* ... while a link just brought up comes */
#define DHCP_FIRST_MS	2000		/* the first retry; doubles... */
#define DHCP_MAX_MS	32000		/* ...up to this */
#define DHCP_SILENT_MS	10000		/* no answer this long: said, and raised */
#define NTP_RETRY_MS	5000		/* until the clock is set */
#define NTP_WAIT_MS	2000		/* for an answer */
#define NTP_STEP_MS	1000		/* an offset this large is stepped, not slewed */
#define LINK_GRACE_MS	5000		/* a link just brought up may take this long */
#define KLOG_MAX	(256 * 1024)
#define KLOG_ANSWER_MAX	(60 * 1024)	/* of a command's 64 KiB answer, for the text */

enum dstate { D_OFF, D_INIT, D_SELECTING, D_REQUESTING, D_BOUND, D_RENEWING, D_REBINDING };

static const char *const dstate_names[] = {
	"static", "init", "selecting", "requesting", "bound", "renewing", "rebinding",
};

struct iface {
	char		 name[IFNAMSIZ];
	char		 subject[32];	/* its condition: "interface eth0" */
	char		 conf[64];	/* address and gateway as configured: equal means unchanged */
	bool		 dhcp;
	uint32_t	 st_addr, st_mask, st_gw;	/* static, network order */
	bool		 exists, link, applied;
	uint64_t	 up_at;		/* mono ms keel brought it up */
	uint8_t		 mac[6];
	uint32_t	 addr, mask, gw;	/* what is set now */
	char		 why[240];	/* what is wrong, or "" */
	bool		 said;		/* why was logged */

	/* DHCP */
	enum dstate	 state;
	int		 fd;
	struct core_io	 io;
	struct core_timer timer;
	uint32_t	 xid, offered, server;
	unsigned	 tries;
	uint64_t	 retry;		/* ms to the next retransmission */
	uint64_t	 selecting_since;	/* mono ms of the first DISCOVER */
	uint64_t	 bound_at, t1_at, t2_at, end_at;	/* mono ms */
	uint64_t	 nak_wait;	/* after a NAK: doubles, reset when bound */
	struct dhcp_msg	 lease;
	bool		 raised;
};

static struct {
	struct core_loop *loop;
	bool		 init;		/* keel is PID 1 */
	int		 ctl;		/* for the ioctls */
	struct iface	 ifs[SYS_IFACES];
	size_t		 n;
	struct core_timer tick;
	uint32_t	 dns[DHCP_MAX_LIST];
	unsigned	 ndns;
	bool		 dns_conf;	/* system.dns given: DHCP's are not used */
	const struct keel_system_conf *conf;	/* the generation being applied or run */

	/* SNTP */
	struct sockaddr_in ntp[4];
	size_t		 nntp, ntp_next;
	bool		 ntp_conf;	/* system.ntp given */
	int		 ntp_fd;
	struct core_io	 ntp_io;
	struct core_timer ntp_timer;
	uint64_t	 ntp_tx;	/* our transmit stamp, NTP format */
	uint64_t	 ntp_t1;	/* ... as wall ms */
	uint64_t	 ntp_interval;
	bool		 synced;
	int64_t		 offset_ms;
	uint64_t	 synced_at;	/* mono ms */
	char		 ntp_server[32];
	char		 ntp_why[200];
} sy = { .ctl = -1, .ntp_fd = -1 };

static void dhcp_start(struct iface *f);
static void sys_ntp_servers(void);

static char *ip_str(uint32_t a, char *buf)
{
	struct in_addr in = { .s_addr = a };

	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
	return buf;
}

static int mask_len(uint32_t mask)
{
	return __builtin_popcount(mask);
}

/* ---- interfaces --------------------------------------------------------------------------- */

static int if_ioctl(const struct iface *f, unsigned long req, struct ifreq *r)
{
	memset(r->ifr_name, 0, sizeof(r->ifr_name));
	snprintf(r->ifr_name, sizeof(r->ifr_name), "%s", f->name);
	return ioctl(sy.ctl, req, r);
}

/* Says what is wrong with f once (per change), and raises it. */
static void iface_trouble(struct iface *f, const char *fmt, const char *detail)
{
	char msg[240];

	snprintf(msg, sizeof(msg), fmt, f->name, detail);
	if (f->said && strcmp(msg, f->why) == 0)
		return;
	snprintf(f->why, sizeof(f->why), "%s", msg);
	f->said = true;
	core_log_error("system", "%s", msg);
	core_event_raise("system", f->subject, "%s", msg);
	f->raised = true;
}

static void iface_fine(struct iface *f)
{
	f->why[0] = '\0';
	f->said = false;
	if (f->raised) {
		core_event_clear("system", f->subject, "interface %s is up", f->name);
		f->raised = false;
	}
}

static void iface_names(char *out, size_t len)
{
	struct if_nameindex *ni = if_nameindex(), *p;
	size_t used = 0;

	out[0] = '\0';
	for (p = ni; p != NULL && p->if_index != 0 && used + IFNAMSIZ + 2 < len; p++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "", p->if_name);
	if (ni != NULL)
		if_freenameindex(ni);
}

/* Looks the interface up, brings it up, and reads its link. */
static void iface_look(struct iface *f)
{
	struct ifreq r;

	if (if_ioctl(f, SIOCGIFFLAGS, &r) == -1) {
		char names[200];

		f->exists = f->link = false;
		iface_names(names, sizeof(names));
		iface_trouble(f, "interface %s does not exist (there are: %s)", names);
		return;
	}
	f->exists = true;
	if (!(r.ifr_flags & IFF_UP)) {
		r.ifr_flags |= IFF_UP;
		if (if_ioctl(f, SIOCSIFFLAGS, &r) == -1) {
			iface_trouble(f, "interface %s cannot be brought up: %s", strerror(errno));
			return;
		}
		core_log_info("system", "interface %s brought up", f->name);
		f->up_at = core_loop_now(sy.loop);
	}
	f->link = (r.ifr_flags & IFF_RUNNING) != 0;
	if (if_ioctl(f, SIOCGIFHWADDR, &r) == 0)
		memcpy(f->mac, r.ifr_hwaddr.sa_data, 6);
	if (!f->link && core_loop_now(sy.loop) - f->up_at >= LINK_GRACE_MS)
		iface_trouble(f, "interface %s has no link (%s)", "is the cable in?");
}

static int iface_addr(struct iface *f, uint32_t addr, uint32_t mask)
{
	struct ifreq r;
	struct sockaddr_in *sin = (struct sockaddr_in *)&r.ifr_addr;
	char a[INET_ADDRSTRLEN];

	memset(&r, 0, sizeof(r));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
	if (if_ioctl(f, SIOCSIFADDR, &r) == -1) {
		iface_trouble(f, "interface %s: cannot set its address: %s", strerror(errno));
		return CORE_ERROR;
	}
	if (addr != 0) {
		sin->sin_addr.s_addr = mask;
		if (if_ioctl(f, SIOCSIFNETMASK, &r) == -1) {
			iface_trouble(f, "interface %s: cannot set its netmask: %s", strerror(errno));
			return CORE_ERROR;
		}
		core_log_info("system", "interface %s: address %s/%d", f->name, ip_str(addr, a),
			      mask_len(mask));
	}
	f->addr = addr;
	f->mask = addr != 0 ? mask : 0;
	return CORE_OK;
}

static void iface_route(struct iface *f, uint32_t gw)
{
	struct rtentry rt;
	struct sockaddr_in *sin;
	char a[INET_ADDRSTRLEN];

	memset(&rt, 0, sizeof(rt));
	sin = (struct sockaddr_in *)&rt.rt_dst;
	sin->sin_family = AF_INET;
	sin = (struct sockaddr_in *)&rt.rt_genmask;
	sin->sin_family = AF_INET;
	sin = (struct sockaddr_in *)&rt.rt_gateway;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = gw;
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = f->name;
	if (ioctl(sy.ctl, SIOCADDRT, &rt) == -1 && errno != EEXIST) {
		iface_trouble(f, "interface %s: cannot add the default route: %s", strerror(errno));
		return;
	}
	f->gw = gw;
	core_log_info("system", "default route via %s (%s)", ip_str(gw, a), f->name);
}

static void iface_static(struct iface *f)
{
	if (f->applied || !f->exists)
		return;
	if (iface_addr(f, f->st_addr, f->st_mask) != CORE_OK)
		return;
	if (f->st_gw != 0)
		iface_route(f, f->st_gw);
	f->applied = true;
}

/* ---- DHCP ----------------------------------------------------------------------------------- */

static uint32_t sys_random32(void)
{
	uint32_t v = 0;

	if (core_tls_random((unsigned char *)&v, sizeof(v)) != CORE_OK)
		v = (uint32_t)core_clock_mono_ms() * 2654435761u;
	return v;
}

/* The retry after d, jittered by up to a second either way (RFC 2131). */
static uint64_t jitter(uint64_t d)
{
	return d - 1000 + sys_random32() % 2001;
}

static void dhcp_send(struct iface *f, int type)
{
	uint8_t pkt[DHCP_PACKET_MAX];
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(67) };
	bool renew = f->state == D_RENEWING, rebind = f->state == D_REBINDING;
	uint32_t ciaddr = renew || rebind ? f->addr : 0;
	uint32_t requested = type == DHCP_REQUEST && !renew && !rebind ? f->offered : 0;
	uint32_t server = type == DHCP_REQUEST && f->state == D_REQUESTING ? f->server : 0;
	char host[65] = "";
	size_t len;

	(void)gethostname(host, sizeof(host) - 1);
	len = dhcp_build(pkt, type, f->xid, f->mac, ciaddr, requested, server, host);
	to.sin_addr.s_addr = renew && f->server != 0 ? f->server : htonl(INADDR_BROADCAST);
	if (sendto(f->fd, pkt, len, 0, (struct sockaddr *)&to, sizeof(to)) == -1)
		core_log_debug("system", "interface %s: DHCP send: %s", f->name, strerror(errno));
}

static void dhcp_forget(struct iface *f, const char *why)
{
	char a[INET_ADDRSTRLEN];

	if (f->addr != 0) {
		core_log_warn("system", "interface %s: address %s given up: %s", f->name,
			      ip_str(f->addr, a), why);
		(void)iface_addr(f, 0, 0);	/* the kernel drops its routes with it */
	}
	f->gw = 0;
	f->state = D_INIT;
}

static void dhcp_bound(struct iface *f, const struct dhcp_msg *m)
{
	uint64_t now = core_loop_now(sy.loop), lease = m->lease ? m->lease : 3600;
	uint32_t mask = m->mask ? m->mask : htonl(0xffffff00u);
	char a[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN];
	bool same = f->addr == m->yiaddr && f->mask == mask;

	f->lease = *m;
	f->server = m->server;
	if (!same && iface_addr(f, m->yiaddr, mask) != CORE_OK) {
		f->state = D_INIT;
		core_timer_start(&f->timer, jitter(DHCP_FIRST_MS));
		return;
	}
	if (m->router != 0 && f->gw != m->router)
		iface_route(f, m->router);
	f->bound_at = now;
	f->t1_at = now + (m->t1 ? m->t1 : lease / 2) * 1000;
	f->t2_at = now + (m->t2 ? m->t2 : lease * 7 / 8) * 1000;
	f->end_at = now + lease * 1000;
	if (f->state != D_RENEWING && f->state != D_REBINDING)
		core_log_info("system", "interface %s: DHCP lease of %s for %llu s from %s",
			      f->name, ip_str(m->yiaddr, a), (unsigned long long)lease,
			      ip_str(m->server, s));
	else
		core_log_info("system", "interface %s: DHCP lease of %s renewed for %llu s",
			      f->name, ip_str(m->yiaddr, a), (unsigned long long)lease);
	f->state = D_BOUND;
	f->nak_wait = 0;
	iface_fine(f);
	if (!sy.dns_conf && m->ndns > 0) {
		memcpy(sy.dns, m->dns, sizeof(sy.dns));
		sy.ndns = m->ndns;
	}
	sys_ntp_servers();
	core_timer_start(&f->timer, f->t1_at - now);
}

static void dhcp_on_read(struct core_io *io, unsigned revents)
{
	struct iface *f = io->data;
	uint8_t pkt[1500];
	struct dhcp_msg m;
	const char *why;
	ssize_t n;

	(void)revents;
	while ((n = recv(f->fd, pkt, sizeof(pkt), MSG_DONTWAIT)) > 0) {
		if (!dhcp_parse(pkt, (size_t)n, f->xid, f->mac, &m, &why)) {
			core_log_debug("system", "interface %s: DHCP packet ignored: %s", f->name, why);
			continue;
		}
		if (m.type == DHCP_OFFER && f->state == D_SELECTING) {
			if (m.yiaddr == 0 || m.server == 0)
				continue;
			f->offered = m.yiaddr;
			f->server = m.server;
			f->state = D_REQUESTING;
			f->tries = 0;
			f->retry = DHCP_FIRST_MS;
			dhcp_send(f, DHCP_REQUEST);
			core_timer_start(&f->timer, jitter(f->retry));
		} else if (m.type == DHCP_ACK && (f->state == D_REQUESTING ||
						  f->state == D_RENEWING ||
						  f->state == D_REBINDING)) {
			dhcp_bound(f, &m);
		} else if (m.type == DHCP_NAK && (f->state == D_REQUESTING ||
						  f->state == D_RENEWING ||
						  f->state == D_REBINDING)) {
			f->nak_wait = f->nak_wait ? f->nak_wait * 2 : DHCP_FIRST_MS;
			if (f->nak_wait > DHCP_MAX_MS)
				f->nak_wait = DHCP_MAX_MS;
			core_log_warn("system", "interface %s: the DHCP server said NAK; asking again "
				      "in about %llu s", f->name, (unsigned long long)(f->nak_wait / 1000));
			dhcp_forget(f, "the server said NAK");
			core_timer_start(&f->timer, jitter(f->nak_wait));
		}
	}
}

/* A DISCOVER, now and again until an OFFER comes. */
static void dhcp_discover(struct iface *f)
{
	uint64_t now = core_loop_now(sy.loop);
	char msg[160];

	if (f->state != D_SELECTING) {
		f->state = D_SELECTING;
		f->xid = sys_random32();
		f->retry = DHCP_FIRST_MS;
		f->tries = 0;
		f->selecting_since = now;
	}
	f->tries++;
	dhcp_send(f, DHCP_DISCOVER);
	if (now - f->selecting_since >= DHCP_SILENT_MS) {
		snprintf(msg, sizeof(msg), "no DHCP server answers (%u DISCOVERs in %llu s)", f->tries,
			 (unsigned long long)((now - f->selecting_since) / 1000));
		/* The count changes each time: say it once, keep the status current. */
		if (!f->said)
			iface_trouble(f, "interface %s: %s; keel keeps asking", msg);
		else
			snprintf(f->why, sizeof(f->why), "interface %s: %s; keel keeps asking",
				 f->name, msg);
	}
	core_timer_start(&f->timer, jitter(f->retry));
	if (f->retry < DHCP_MAX_MS)
		f->retry *= 2;
}

static void dhcp_on_timer(struct core_timer *t)
{
	struct iface *f = t->data;
	uint64_t now = core_loop_now(sy.loop), wait;

	if (f->state >= D_BOUND && !core_clock_before(now, f->end_at)) {
		dhcp_forget(f, "the lease ended with no renewal");
		f->state = D_INIT;
	}
	if (!f->exists || !f->link) {
		core_timer_start(t, SYS_TICK_MS);	/* the tick will find it */
		return;
	}
	switch (f->state) {
	case D_INIT:
	case D_SELECTING:
		dhcp_discover(f);
		return;
	case D_REQUESTING:
		if (++f->tries >= 4) {		/* the offer went away */
			f->state = D_INIT;
			dhcp_discover(f);
			return;
		}
		dhcp_send(f, DHCP_REQUEST);
		core_timer_start(t, jitter(f->retry *= 2));
		return;
	case D_BOUND:
	case D_RENEWING:
	case D_REBINDING:
		if (!core_clock_before(now, f->end_at)) {
			dhcp_forget(f, "the lease ended with no renewal");
			dhcp_discover(f);
			return;
		}
		if (!core_clock_before(now, f->t2_at)) {
			if (f->state != D_REBINDING) {
				core_log_warn("system", "interface %s: the DHCP server did not renew "
					      "the lease: asking any server", f->name);
				f->xid = sys_random32();	/* one per state: late answers count */
			}
			f->state = D_REBINDING;
			wait = f->end_at - now;
		} else if (!core_clock_before(now, f->t1_at)) {
			if (f->state != D_RENEWING)
				f->xid = sys_random32();
			f->state = D_RENEWING;
			wait = f->t2_at - now;
		} else {
			core_timer_start(t, f->t1_at - now);
			return;
		}
		dhcp_send(f, DHCP_REQUEST);
		/* RFC 2131: half the time left, at least a minute; less when it is short. */
		wait /= 2;
		if (wait < 60000)
			wait = wait < 1000 ? 1000 : wait;
		core_timer_start(t, wait);
		return;
	default:
		return;
	}
}

static int dhcp_open(struct iface *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(68) };
	int one = 1;

	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd == -1 ||
	    setsockopt(f->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(f->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) == -1 ||
	    setsockopt(f->fd, SOL_SOCKET, SO_BINDTODEVICE, f->name, (socklen_t)strlen(f->name)) == -1 ||
	    bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		iface_trouble(f, "interface %s: no DHCP socket: %s", strerror(errno));
		if (f->fd != -1)
			close(f->fd);
		f->fd = -1;
		return CORE_ERROR;
	}
	core_io_init(sy.loop, &f->io, f->fd, dhcp_on_read, f);
	return core_io_set(&f->io, CORE_IO_READ);
}

static void dhcp_start(struct iface *f)
{
	if (f->fd == -1 && dhcp_open(f) != CORE_OK) {
		core_timer_start(&f->timer, 5000);
		return;
	}
	f->state = D_INIT;
	core_timer_start(&f->timer, 0);
}

/* ---- the interfaces as configured ------------------------------------------------------------- */

static void iface_stop(struct iface *f)
{
	core_timer_stop(&f->timer);
	if (f->fd != -1) {
		core_io_stop(&f->io);
		close(f->fd);
		f->fd = -1;
	}
	if (f->raised)
		core_event_clear("system", f->subject, "interface %s is no longer managed", f->name);
	f->raised = false;
}

static void iface_init(struct iface *f, const char *name, const struct keel_iface_conf *c)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->subject, sizeof(f->subject), "interface %s", f->name);
	core_timer_init(sy.loop, &f->timer, dhcp_on_timer, f);
	f->dhcp = c == NULL || c->address[0] == '\0';
	snprintf(f->conf, sizeof(f->conf), "%s %s", c ? c->address : "", c ? c->gateway : "");
	if (!f->dhcp) {
		char ip[20];
		int len = atoi(strchr(c->address, '/') + 1);

		snprintf(ip, sizeof(ip), "%.*s", (int)(strchr(c->address, '/') - c->address),
			 c->address);
		inet_pton(AF_INET, ip, &f->st_addr);
		f->st_mask = len >= 32 ? 0xffffffffu : htonl(~(0xffffffffu >> len));
		if (c->gateway[0] != '\0')
			inet_pton(AF_INET, c->gateway, &f->st_gw);
	}
	f->state = f->dhcp ? D_INIT : D_OFF;
}

/* The gates: link, and address. */
static void sys_gates(void)
{
	size_t i;

	for (i = 0; i < sy.n; i++)
		if (!sy.ifs[i].exists || !sy.ifs[i].link) {
			core_sup_gate(KEEL_GATE_LINK, false, "%s", sy.ifs[i].why[0] ? sy.ifs[i].why :
				      "an interface has no link yet");
			core_sup_gate(KEEL_GATE_ADDRESS, false, "%s", sy.ifs[i].why[0] ?
				      sy.ifs[i].why : "an interface has no link yet");
			return;
		}
	core_sup_gate(KEEL_GATE_LINK, true, "%zu interface%s with link", sy.n, sy.n == 1 ? "" : "s");
	for (i = 0; i < sy.n; i++)
		if (sy.ifs[i].addr == 0) {
			core_sup_gate(KEEL_GATE_ADDRESS, false, "interface %s: %s", sy.ifs[i].name,
				      sy.ifs[i].why[0] ? sy.ifs[i].why : sy.ifs[i].dhcp ?
				      "waiting for a DHCP lease" : "no address yet");
			return;
		}
	core_sup_gate(KEEL_GATE_ADDRESS, true, "%zu interface%s addressed", sy.n,
		      sy.n == 1 ? "" : "s");
}

static void sys_on_tick(struct core_timer *t)
{
	size_t i;

	for (i = 0; i < sy.n; i++) {
		struct iface *f = &sy.ifs[i];
		bool had = f->exists && f->link;

		iface_look(f);
		if (f->exists && f->link && !had)
			iface_fine(f);
		if (!f->exists || !f->link)
			continue;
		if (!f->dhcp)
			iface_static(f);
		else if (f->fd == -1 || (f->state == D_INIT && !core_timer_armed(&f->timer)))
			dhcp_start(f);
		if (!f->dhcp && f->applied)
			iface_fine(f);
	}
	sys_gates();
	for (i = 0; i < sy.n; i++)
		if (sy.ifs[i].exists && !sy.ifs[i].link &&
		    core_loop_now(sy.loop) - sy.ifs[i].up_at < LINK_GRACE_MS)
			break;
	core_timer_start(t, i < sy.n ? SYS_TICK_FAST_MS : SYS_TICK_MS);
}

/* Every interface but lo: what PID 1 gives DHCP when none is named. */
static size_t sys_all_interfaces(char names[][IFNAMSIZ], size_t max)
{
	struct if_nameindex *ni = if_nameindex(), *p;
	size_t n = 0;

	for (p = ni; p != NULL && p->if_index != 0 && n < max; p++)
		if (strcmp(p->if_name, "lo") != 0)
			snprintf(names[n++], IFNAMSIZ, "%s", p->if_name);
	if (ni != NULL)
		if_freenameindex(ni);
	return n;
}

static void sys_lo_up(void)
{
	struct iface lo = { .name = "lo" };
	struct ifreq r;

	if (if_ioctl(&lo, SIOCGIFFLAGS, &r) == 0 && !(r.ifr_flags & IFF_UP)) {
		r.ifr_flags |= IFF_UP;
		(void)if_ioctl(&lo, SIOCSIFFLAGS, &r);
	}
}

/* Applies system.interfaces: unchanged interfaces go on as they are
 * (their socket, lease and address); the others start over or are let go. */
static void sys_build(const struct keel_system_conf *c)
{
	const struct keel_iface_conf *ic = c->interfaces.v;
	static struct iface old[SYS_IFACES];
	char all[SYS_IFACES][IFNAMSIZ];
	size_t nold = sy.n, nwant = c->interfaces.n, i, j;

	/* The loop holds pointers into sy.ifs: take them back before moving. */
	for (i = 0; i < nold; i++) {
		core_timer_stop(&sy.ifs[i].timer);
		if (sy.ifs[i].fd != -1)
			core_io_stop(&sy.ifs[i].io);
	}
	memcpy(old, sy.ifs, sizeof(old));
	sy.n = 0;
	if (nwant == 0 && sy.init)
		nwant = sys_all_interfaces(all, SYS_IFACES);
	for (i = 0; i < nwant && sy.n < SYS_IFACES; i++) {
		struct iface *f = &sy.ifs[sy.n++];

		if (c->interfaces.n > 0)
			iface_init(f, ic[i].name, &ic[i]);
		else
			iface_init(f, all[i], NULL);
		for (j = 0; j < nold; j++)
			if (old[j].name[0] && strcmp(old[j].name, f->name) == 0 &&
			    strcmp(old[j].conf, f->conf) == 0)
				break;
		if (j == nold)
			continue;
		*f = old[j];		/* kept */
		old[j].name[0] = '\0';
		core_timer_init(sy.loop, &f->timer, dhcp_on_timer, f);
		if (f->fd != -1) {
			core_io_init(sy.loop, &f->io, f->fd, dhcp_on_read, f);
			(void)core_io_set(&f->io, CORE_IO_READ);
		}
		if (f->dhcp && f->fd != -1)
			core_timer_start(&f->timer, 0);
	}
	for (j = 0; j < nold; j++)
		if (old[j].name[0]) {		/* let go: its address stays */
			if (old[j].fd != -1)
				close(old[j].fd);
			if (old[j].raised)
				core_event_clear("system", old[j].subject, "interface %s is no "
						 "longer managed", old[j].name);
		}
}

/* ---- the clock (SNTP) ---------------------------------------------------------------------------- */

/* system.ntp, or else what the DHCP leases name. */
static void sys_ntp_servers(void)
{
	const struct keel_system_conf *c = sy.conf;
	char *const *v = c->ntp.v;
	size_t i, k;

	sy.nntp = 0;
	sy.ntp_conf = c->ntp.n > 0;
	for (i = 0; i < c->ntp.n && sy.nntp < CORE_ARRAY_SIZE(sy.ntp); i++) {
		struct sockaddr_in *s = &sy.ntp[sy.nntp];
		const char *colon = strchr(v[i], ':');
		char ip[20];

		snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - v[i]) : 19, v[i]);
		memset(s, 0, sizeof(*s));
		s->sin_family = AF_INET;
		s->sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 123);
		if (inet_pton(AF_INET, ip, &s->sin_addr) == 1)
			sy.nntp++;
	}
	for (i = 0; !sy.ntp_conf && i < sy.n; i++)
		for (k = 0; k < sy.ifs[i].lease.nntp && sy.nntp < CORE_ARRAY_SIZE(sy.ntp); k++) {
			struct sockaddr_in *s = &sy.ntp[sy.nntp++];

			memset(s, 0, sizeof(*s));
			s->sin_family = AF_INET;
			s->sin_port = htons(123);
			s->sin_addr.s_addr = sy.ifs[i].lease.ntp[k];
		}
	if (sy.nntp == 0)
		core_sup_gate(KEEL_GATE_CLOCK, false, "no NTP server: none in system.ntp, and no "
			      "DHCP lease named one");
	else if (!sy.synced)
		core_timer_start(&sy.ntp_timer, 0);	/* a new server, or an address: now */
}

static void ntp_on_read(struct core_io *io, unsigned revents)
{
	uint8_t pkt[128];
	uint64_t rx, tx, t4 = core_clock_wall_ms();
	int64_t t1 = (int64_t)sy.ntp_t1, t2, t3, offset, delay;
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	const char *why;
	char a[INET_ADDRSTRLEN];
	ssize_t n;

	(void)io;
	(void)revents;
	while ((n = recvfrom(sy.ntp_fd, pkt, sizeof(pkt), MSG_DONTWAIT, (struct sockaddr *)&from,
			     &fl)) > 0) {
		if (sy.ntp_tx == 0)
			continue;
		if (!sntp_parse(pkt, (size_t)n, sy.ntp_tx, &rx, &tx, &why)) {
			snprintf(sy.ntp_why, sizeof(sy.ntp_why), "%s:%u: %s",
				 ip_str(from.sin_addr.s_addr, a), ntohs(from.sin_port), why);
			continue;
		}
		sy.ntp_tx = 0;
		t2 = sntp_to_unix_ms(rx);
		t3 = sntp_to_unix_ms(tx);
		offset = ((t2 - t1) + (t3 - (int64_t)t4)) / 2;
		delay = ((int64_t)t4 - t1) - (t3 - t2);
		snprintf(sy.ntp_server, sizeof(sy.ntp_server), "%s:%u",
			 ip_str(from.sin_addr.s_addr, a), ntohs(from.sin_port));
		if (offset >= NTP_STEP_MS || offset <= -NTP_STEP_MS) {
			struct timespec ts;
			int64_t now = (int64_t)core_clock_wall_ms() + offset;

			ts.tv_sec = (time_t)(now / 1000);
			ts.tv_nsec = (long)(now % 1000) * 1000000;
			if (clock_settime(CLOCK_REALTIME, &ts) == -1) {
				snprintf(sy.ntp_why, sizeof(sy.ntp_why), "cannot set the clock: %s",
					 strerror(errno));
				core_log_error("system", "%s", sy.ntp_why);
				return;
			}
			core_log_info("system", "clock stepped by %+lld ms from %s (round trip %lld ms)",
				      (long long)offset, sy.ntp_server, (long long)delay);
		} else {
			struct timeval tv = { .tv_sec = offset / 1000,
					      .tv_usec = (offset % 1000) * 1000 };

			if (adjtime(&tv, NULL) == -1)
				core_log_warn("system", "cannot slew the clock: %s", strerror(errno));
			if (!sy.synced)
				core_log_info("system", "clock within %+lld ms of %s: slewed",
					      (long long)offset, sy.ntp_server);
		}
		sy.offset_ms = offset;
		sy.synced = true;
		sy.synced_at = core_loop_now(sy.loop);
		sy.ntp_why[0] = '\0';
		core_sup_gate(KEEL_GATE_CLOCK, true, "set from %s", sy.ntp_server);
		core_timer_start(&sy.ntp_timer, sy.ntp_interval);
	}
}

static void ntp_on_timer(struct core_timer *t)
{
	uint8_t pkt[48];
	const struct sockaddr_in *to;
	char a[INET_ADDRSTRLEN];

	if (sy.ntp_tx != 0 && sy.ntp_why[0] == '\0')
		snprintf(sy.ntp_why, sizeof(sy.ntp_why), "%s:%u did not answer within %u ms",
			 ip_str(sy.ntp[(sy.ntp_next + sy.nntp - 1) % (sy.nntp ? sy.nntp : 1)]
				.sin_addr.s_addr, a),
			 ntohs(sy.ntp[(sy.ntp_next + sy.nntp - 1) % (sy.nntp ? sy.nntp : 1)].sin_port),
			 NTP_WAIT_MS);
	if (sy.nntp == 0)
		return;
	if (sy.ntp_fd == -1) {
		sy.ntp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (sy.ntp_fd == -1) {
			snprintf(sy.ntp_why, sizeof(sy.ntp_why), "no socket: %s", strerror(errno));
			core_timer_start(t, NTP_RETRY_MS);
			return;
		}
		core_io_init(sy.loop, &sy.ntp_io, sy.ntp_fd, ntp_on_read, NULL);
		(void)core_io_set(&sy.ntp_io, CORE_IO_READ);
	}
	to = &sy.ntp[sy.ntp_next++ % sy.nntp];
	sy.ntp_t1 = core_clock_wall_ms();
	/* The low bits are random: an answer must echo them (RFC 4330). */
	sy.ntp_tx = sntp_from_unix_ms(sy.ntp_t1) ^ (sys_random32() & 0xfffff);
	sntp_build(pkt, sy.ntp_tx);
	if (sendto(sy.ntp_fd, pkt, sizeof(pkt), 0, (const struct sockaddr *)to, sizeof(*to)) == -1)
		snprintf(sy.ntp_why, sizeof(sy.ntp_why), "%s:%u: %s", ip_str(to->sin_addr.s_addr, a),
			 ntohs(to->sin_port), strerror(errno));
	core_timer_start(t, sy.synced ? sy.ntp_interval : NTP_RETRY_MS);
}

/* ---- the module ------------------------------------------------------------------------------- */

static void sys_hostname(const struct keel_conf *k)
{
	const char *want = k->system.hostname[0] ? k->system.hostname : sy.init ? k->node : "";
	char now[65] = "";

	if (want[0] == '\0')
		return;
	(void)gethostname(now, sizeof(now) - 1);
	if (strcmp(now, want) == 0)
		return;
	if (sethostname(want, strlen(want)) == -1)
		core_log_error("system", "cannot set the host name to %s: %s", want, strerror(errno));
	else
		core_log_info("system", "host name %s", want);
}

static void sys_resolv(void)
{
	char buf[256], a[INET_ADDRSTRLEN];
	size_t used = 0;
	unsigned i;
	FILE *f;

	if (!sy.init || sy.ndns == 0)
		return;
	for (i = 0; i < sy.ndns; i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "nameserver %s\n",
					 ip_str(sy.dns[i], a));
	f = fopen("/etc/resolv.conf", "w");
	if (f == NULL || fputs(buf, f) == EOF)
		core_log_warn("system", "/etc/resolv.conf: %s", strerror(errno));
	if (f != NULL)
		fclose(f);
}

static void sys_apply(const struct keel_conf *k)
{
	char *const *dns = k->system.dns.v;
	size_t i;

	sy.conf = &k->system;
	sy.ntp_interval = (uint64_t)k->system.ntp_interval;
	sy.dns_conf = k->system.dns.n > 0;
	if (sy.dns_conf) {
		sy.ndns = 0;
		for (i = 0; i < k->system.dns.n && sy.ndns < DHCP_MAX_LIST; i++)
			if (inet_pton(AF_INET, dns[i], &sy.dns[sy.ndns]) == 1)
				sy.ndns++;
	}
	sys_hostname(k);
	sys_build(&k->system);
	sys_ntp_servers();
	sys_resolv();
}

static int sys_start(struct core_loop *loop, const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	struct core_sup_shared *sh = core_sup_shared();

	(void)err;
	(void)errlen;
	sy.loop = loop;
	sy.init = sh != NULL && sh->init;
	sy.ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	core_timer_init(loop, &sy.tick, sys_on_tick, NULL);
	core_timer_init(loop, &sy.ntp_timer, ntp_on_timer, NULL);
	if (sy.init)
		sys_lo_up();
	sys_apply(k);
	if (sy.n == 0) {
		core_sup_gate(KEEL_GATE_LINK, true, "no interface managed");
		core_sup_gate(KEEL_GATE_ADDRESS, true, "no interface managed");
	}
	core_timer_start(&sy.tick, 0);
	return CORE_OK;
}

static int sys_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	sys_apply(core_settings_of(conf));
	return CORE_OK;
}

/* Addresses and leases stay: the apps' traffic goes on while keel restarts. */
static void sys_stop(void)
{
	size_t i;

	core_timer_stop(&sy.tick);
	core_timer_stop(&sy.ntp_timer);
	for (i = 0; i < sy.n; i++)
		iface_stop(&sy.ifs[i]);
	sy.n = 0;
	if (sy.ntp_fd != -1) {
		core_io_stop(&sy.ntp_io);
		close(sy.ntp_fd);
		sy.ntp_fd = -1;
	}
	if (sy.ctl != -1)
		close(sy.ctl);
	sy.ctl = -1;
	sy.synced = false;
}

static const struct core_module system_module = {
	.name = "system",
	.order = 5,		/* the network before the parts that use it */
	.start = sys_start,
	.reload = sys_reload,
	.stop = sys_stop,
};
CORE_MODULE(system_module);

/* ---- status ------------------------------------------------------------------------------------ */

static int sys_json_list(struct core_buf *out, const uint32_t *v, unsigned n)
{
	char a[INET_ADDRSTRLEN];
	unsigned i;
	int rc = core_buf_append(out, "[", 1);

	for (i = 0; i < n; i++)
		rc |= core_buf_printf(out, "%s\"%s\"", i ? "," : "", ip_str(v[i], a));
	return rc | core_buf_append(out, "]", 1);
}

static int sys_status_json(struct core_buf *out)
{
	uint64_t now = core_clock_mono_ms();
	char host[65] = "", when[32], a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN];
	size_t i;
	int rc;

	if (sy.loop == NULL)
		return core_buf_append(out, "null", 4);
	(void)gethostname(host, sizeof(host) - 1);
	rc = core_buf_printf(out, "{\"init\":%s,\"hostname\":", sy.init ? "true" : "false");
	rc |= core_json_str(out, host);
	rc |= core_buf_printf(out, ",\"time\":\"%s\",\"clock\":{\"synced\":%s,\"server\":",
			      core_clock_format_utc(core_clock_wall_ms(), when, sizeof(when)),
			      sy.synced ? "true" : "false");
	rc |= core_json_str(out, sy.ntp_server);
	rc |= core_buf_printf(out, ",\"offset_ms\":%lld,\"last_sync_s_ago\":%lld,\"servers\":%zu,"
			      "\"why\":", (long long)sy.offset_ms,
			      sy.synced ? (long long)((now - sy.synced_at) / 1000) : -1LL, sy.nntp);
	rc |= core_json_str(out, sy.nntp == 0 ? "no NTP server configured or from DHCP" : sy.ntp_why);
	rc |= core_buf_append(out, "},\"dns\":", 8);
	rc |= sys_json_list(out, sy.dns, sy.ndns);
	rc |= core_buf_append(out, ",\"interfaces\":[", 15);
	for (i = 0; i < sy.n; i++) {
		const struct iface *f = &sy.ifs[i];
		bool leased = f->state >= D_BOUND;

		rc |= core_buf_printf(out, "%s{\"name\":", i ? "," : "");
		rc |= core_json_str(out, f->name);
		rc |= core_buf_printf(out, ",\"mode\":\"%s\",\"state\":\"%s\",\"exists\":%s,\"link\":%s,"
				      "\"address\":\"%s/%d\",\"gateway\":\"%s\"",
				      f->dhcp ? "dhcp" : "static",
				      !f->exists ? "missing" : !f->link ? "no link" : dstate_names[f->state],
				      f->exists ? "true" : "false", f->link ? "true" : "false",
				      f->addr ? ip_str(f->addr, a) : "", f->addr ? mask_len(f->mask) : 0,
				      f->gw ? ip_str(f->gw, g) : "");
		if (f->dhcp)
			rc |= core_buf_printf(out, ",\"server\":\"%s\",\"lease_s\":%u,\"lease_left_s\":%lld,"
					      "\"renew_in_s\":%lld", f->server && leased ?
					      ip_str(f->server, a) : "", leased ? f->lease.lease : 0,
					      leased ? (long long)(f->end_at - now) / 1000 : 0LL,
					      leased && core_clock_before(now, f->t1_at) ?
					      (long long)(f->t1_at - now) / 1000 : 0LL);
		rc |= core_buf_append(out, ",\"why\":", 7);
		rc |= core_json_str(out, f->why);
		rc |= core_buf_append(out, "}", 1);
	}
	rc |= core_buf_append(out, "]}", 2);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static int sys_status_metrics(struct core_buf *out)
{
	size_t i;
	int rc;

	if (sy.loop == NULL)
		return CORE_OK;
	rc = core_buf_printf(out, "# HELP keel_clock_synced Whether keel set the clock from NTP.\n"
			     "# TYPE keel_clock_synced gauge\nkeel_clock_synced %d\n"
			     "# HELP keel_interface_up Whether a managed interface has link and address.\n"
			     "# TYPE keel_interface_up gauge\n", sy.synced ? 1 : 0);
	for (i = 0; i < sy.n; i++)
		rc |= core_buf_printf(out, "keel_interface_up{interface=\"%s\"} %d\n", sy.ifs[i].name,
				      sy.ifs[i].link && sy.ifs[i].addr != 0);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static const struct core_status_provider system_status = {
	.name = "system",
	.order = 3,
	.json = sys_status_json,
	.metrics = sys_status_metrics,
};
CORE_STATUS_PROVIDER(system_status);

/* ---- commands ------------------------------------------------------------------------------------ */

static void sys_shutdown(struct core_command_call *call, bool poweroff)
{
	char err[200];

	if (core_control_shutdown(poweroff, call->who, err, sizeof(err)) != CORE_OK) {
		core_command_fail(call, 409, "%s", err);
		return;
	}
	core_buf_printf(&call->out, "{\"ok\":true,\"detail\":\"%s\"}",
			poweroff ? "powering off" : "rebooting");
	core_command_answer(call, 202);
}

static void cmd_reboot(struct core_command_call *call)
{
	sys_shutdown(call, false);
}

static void cmd_poweroff(struct core_command_call *call)
{
	sys_shutdown(call, true);
}

/* Where the newest part of the log starts whose JSON string takes at most
 * budget bytes: the kernel's ring can be larger than an answer may be, and
 * every '\n' takes 6 bytes escaped. A cut starts at a line. */
static size_t klog_newest(const char *buf, size_t n, size_t budget)
{
	size_t used = 0, i = n;

	while (i > 0) {
		unsigned char ch = (unsigned char)buf[i - 1];
		size_t w = ch == '"' || ch == '\\' ? 2 : ch < 0x20 || ch == 0x7f ? 6 : 1;

		if (used + w > budget)
			break;
		used += w;
		i--;
	}
	if (i > 0)
		while (i < n && buf[i - 1] != '\n')
			i++;
	return i;
}

static void cmd_kernel_log(struct core_command_call *call)
{
	int size = klogctl(10, NULL, 0), n, i;	/* SYSLOG_ACTION_SIZE_BUFFER */
	char *buf;

	if (size <= 0)
		size = 64 * 1024;
	if (size > KLOG_MAX)
		size = KLOG_MAX;
	buf = malloc((size_t)size + 1);
	if (buf == NULL) {
		core_command_fail(call, 500, "out of memory");
		return;
	}
	n = klogctl(3, buf, size);		/* SYSLOG_ACTION_READ_ALL */
	if (n < 0) {
		core_command_fail(call, 502, "the kernel log cannot be read: %s", strerror(errno));
		free(buf);
		return;
	}
	buf[n] = '\0';
	for (i = 0; i < n; i++)		/* JSON wants UTF-8; the kernel's bytes may not be */
		if ((unsigned char)buf[i] >= 0x80)
			buf[i] = '?';
	/* The answer holds 64 KiB: the newest lines that fit, and whether
	 * older ones were left out. */
	i = (int)klog_newest(buf, (size_t)n, KLOG_ANSWER_MAX);
	if (core_buf_append(&call->out, "{\"text\":", 8) != CORE_OK ||
	    core_json_str(&call->out, buf + i) != CORE_OK ||
	    core_buf_printf(&call->out, ",\"truncated\":%s}", i > 0 ? "true" : "false") != CORE_OK) {
		free(buf);
		core_command_fail(call, 500, "the kernel log does not fit the answer");
		return;
	}
	free(buf);
	core_command_answer(call, 200);
}

static const struct core_command reboot_command = {
	.name = "system.reboot",
	.doc = "Reboot the box: keel stops, syncs, unmounts (a hung NFS mount lazily) and "
	       "reboots. Only when keel is the init (PID 1).",
	.run = cmd_reboot,
};
CORE_COMMAND(reboot_command);

static const struct core_command poweroff_command = {
	.name = "system.poweroff",
	.doc = "Power the box off, the same way. Only when keel is the init (PID 1).",
	.run = cmd_poweroff,
};
CORE_COMMAND(poweroff_command);

static const struct core_command klog_command = {
	.name = "system.kernel_log",
	.doc = "The kernel's log (its ring buffer), as text.",
	.run = cmd_kernel_log,
};
CORE_COMMAND(klog_command);
