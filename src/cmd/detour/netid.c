/* SPDX-License-Identifier: ISC */
/* netid.c - see netid.h */
#include "cmd/detour/netid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

/* Routing flags of the kernel's tables (linux/route.h). */
#define NETID_RTF_UP      0x0001
#define NETID_RTF_GATEWAY 0x0002
#define NETID_RTF_REJECT  0x0200

/* The /proc tables are small; a machine with a full routing table is not
 * one a person sends mail from, and a bigger table is read in part. */
#define NETID_TABLE_MAX (256 * 1024)

/* next_line - the line at *p (without its LF) into buf; false at the end. */
static bool next_line(const char **p, char *buf, size_t size)
{
	if (**p == '\0')
		return false;
	const char *nl = strchr(*p, '\n');
	size_t len = nl != NULL ? (size_t)(nl - *p) : strlen(*p);
	size_t n = len < size - 1 ? len : size - 1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p += len + (nl != NULL);
	return true;
}

static unsigned popcount32(uint32_t v)
{
	unsigned n = 0;
	for (; v != 0; v &= v - 1)
		n++;
	return n;
}

/* A row of /proc/net/route: the hex fields hold each address as the host
 * integer whose memory is the address in network order, so they compare
 * directly with in_addr.s_addr. */
struct route4 {
	char iface[NETID_IFACE_MAX];
	uint32_t dest, gw, mask;
	unsigned flags, metric;
};

static bool parse_route4(const char *line, struct route4 *r)
{
	char iface[64];
	unsigned long dest, gw, mask;
	unsigned flags, refcnt, use, metric;
	if (sscanf(line, "%63s %lx %lx %x %u %u %u %lx", iface, &dest, &gw, &flags, &refcnt, &use,
	           &metric, &mask) != 8)
		return false;
	str_copy(r->iface, iface, sizeof(r->iface));
	r->dest = (uint32_t)dest;
	r->gw = (uint32_t)gw;
	r->mask = (uint32_t)mask;
	r->flags = flags;
	r->metric = metric;
	return true;
}

int netid_route4(const char *text, struct in_addr dst, char iface_r[NETID_IFACE_MAX],
                 struct in_addr *gw_r)
{
	const char *p = text;
	char line[512];
	bool found = false;
	unsigned best_len = 0, best_metric = 0;
	next_line(&p, line, sizeof(line)); /* the column titles */
	while (next_line(&p, line, sizeof(line))) {
		struct route4 r;
		if (!parse_route4(line, &r) || !(r.flags & NETID_RTF_UP) ||
		    (r.flags & NETID_RTF_REJECT))
			continue;
		if ((dst.s_addr & r.mask) != r.dest)
			continue;
		unsigned len = popcount32(r.mask);
		if (found && (len < best_len || (len == best_len && r.metric >= best_metric)))
			continue;
		found = true;
		best_len = len;
		best_metric = r.metric;
		str_copy(iface_r, r.iface, NETID_IFACE_MAX);
		gw_r->s_addr = (r.flags & NETID_RTF_GATEWAY) ? r.gw : 0;
	}
	return found ? 0 : -1;
}

void netid_subnet4(const char *text, const char *iface, struct in_addr src, char *net_r,
                   size_t size)
{
	const char *p = text;
	char line[512], addr[INET_ADDRSTRLEN];
	unsigned best_len = 0;
	bool found = false;
	struct in_addr net = src;
	next_line(&p, line, sizeof(line));
	while (next_line(&p, line, sizeof(line))) {
		struct route4 r;
		if (!parse_route4(line, &r) || (r.flags & NETID_RTF_GATEWAY) || r.mask == 0 ||
		    strcmp(r.iface, iface) != 0 || (src.s_addr & r.mask) != r.dest)
			continue;
		unsigned len = popcount32(r.mask);
		if (found && len <= best_len)
			continue;
		found = true;
		best_len = len;
		net.s_addr = r.dest;
	}
	inet_ntop(AF_INET, &net, addr, sizeof(addr));
	snprintf(net_r, size, "%s/%u", addr, found ? best_len : 32);
}

int netid_arp(const char *text, struct in_addr ip, const char *iface, char mac_r[NETID_MAC_MAX])
{
	const char *p = text;
	char line[512];
	next_line(&p, line, sizeof(line));
	while (next_line(&p, line, sizeof(line))) {
		char a[64], type[16], flags[16], mac[64], mask[16], dev[64];
		if (sscanf(line, "%63s %15s %15s %63s %15s %63s", a, type, flags, mac, mask, dev) !=
		    6)
			continue;
		struct in_addr ia;
		if (inet_pton(AF_INET, a, &ia) != 1 || ia.s_addr != ip.s_addr)
			continue;
		if (iface != NULL && strcmp(dev, iface) != 0)
			continue;
		/* ATF_COM: the entry is complete (linux/if_arp.h) */
		if (!(strtoul(flags, NULL, 16) & 0x2) || strcmp(mac, "00:00:00:00:00:00") == 0 ||
		    strlen(mac) != NETID_MAC_MAX - 1)
			continue;
		str_copy(mac_r, mac, NETID_MAC_MAX);
		str_lower(mac_r);
		return 0;
	}
	return -1;
}

static bool hex16(const char *s, struct in6_addr *a)
{
	if (strlen(s) != 32)
		return false;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		a->s6_addr[i] = (uint8_t)v;
	}
	return true;
}

static bool prefix_match6(const struct in6_addr *a, const struct in6_addr *net, unsigned len)
{
	for (unsigned i = 0; i < 16 && len > 0; i++) {
		unsigned bits = len >= 8 ? 8 : len;
		uint8_t mask = (uint8_t)(0xff << (8 - bits));
		if ((a->s6_addr[i] & mask) != (net->s6_addr[i] & mask))
			return false;
		len -= bits;
	}
	return true;
}

int netid_route6(const char *text, const struct in6_addr *dst, char iface_r[NETID_IFACE_MAX],
                 struct in6_addr *gw_r)
{
	const char *p = text;
	char line[512];
	bool found = false;
	unsigned best_len = 0, best_metric = 0;
	/* no title line in this table */
	while (next_line(&p, line, sizeof(line))) {
		char dest[40], src[40], hop[40], dev[64];
		unsigned plen, slen, metric, refcnt, use, flags;
		if (sscanf(line, "%39s %x %39s %x %39s %x %x %x %x %63s", dest, &plen, src, &slen,
		           hop, &metric, &refcnt, &use, &flags, dev) != 10)
			continue;
		struct in6_addr d, g;
		if (!hex16(dest, &d) || !hex16(hop, &g) || plen > 128 || !(flags & NETID_RTF_UP) ||
		    (flags & NETID_RTF_REJECT))
			continue;
		if (!prefix_match6(dst, &d, plen))
			continue;
		if (found && (plen < best_len || (plen == best_len && metric >= best_metric)))
			continue;
		found = true;
		best_len = plen;
		best_metric = metric;
		str_copy(iface_r, dev, NETID_IFACE_MAX);
		if (flags & NETID_RTF_GATEWAY)
			*gw_r = g;
		else
			memset(gw_r, 0, sizeof(*gw_r));
	}
	return found ? 0 : -1;
}

/* read_table - a /proc table as text (NUL-terminated); NULL on error. */
static char *read_table(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = xmalloc(NETID_TABLE_MAX + 1);
	size_t len = 0;
	while (len < NETID_TABLE_MAX) {
		ssize_t r = read(fd, buf + len, NETID_TABLE_MAX - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* source_of - the local address the kernel picks to reach addr. */
static bool source_of(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *src)
{
	struct sockaddr_storage dst;
	if (len > sizeof(dst))
		return false;
	memcpy(&dst, addr, len);
	/* connect(2) on a datagram socket only picks a route and a source;
	 * nothing is sent. A port is needed, any will do. */
	if (dst.ss_family == AF_INET)
		((struct sockaddr_in *)&dst)->sin_port = htons(9);
	else if (dst.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&dst)->sin6_port = htons(9);
	int fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	socklen_t slen = sizeof(*src);
	bool ok = connect(fd, (struct sockaddr *)&dst, len) == 0 &&
	          getsockname(fd, (struct sockaddr *)src, &slen) == 0;
	close(fd);
	return ok;
}

void netid_get(const struct sockaddr *addr, socklen_t addrlen, struct netid *id)
{
	str_copy(id->gw, "?", sizeof(id->gw));
	str_copy(id->mac, "?", sizeof(id->mac));
	str_copy(id->net, "?", sizeof(id->net));
	str_copy(id->iface, "?", sizeof(id->iface));
	bool loopback =
	    (addr->sa_family == AF_INET &&
	     (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127) ||
	    (addr->sa_family == AF_INET6 &&
	     IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)addr)->sin6_addr));
	if (loopback) {
		/* the relay is this machine: the same wherever it goes */
		str_copy(id->gw, "-", sizeof(id->gw));
		str_copy(id->mac, "-", sizeof(id->mac));
		str_copy(id->net, "loopback", sizeof(id->net));
		str_copy(id->iface, "lo", sizeof(id->iface));
		return;
	}
	struct sockaddr_storage src;
	bool have_src = source_of(addr, addrlen, &src);
	if (addr->sa_family == AF_INET) {
		struct in_addr dst = ((const struct sockaddr_in *)addr)->sin_addr, gw;
		char *route = read_table("/proc/net/route");
		if (route != NULL && netid_route4(route, dst, id->iface, &gw) == 0) {
			if (gw.s_addr == 0) {
				str_copy(id->gw, "-", sizeof(id->gw));
				str_copy(id->mac, "-", sizeof(id->mac));
			} else {
				inet_ntop(AF_INET, &gw, id->gw, sizeof(id->gw));
				char *arp = read_table("/proc/net/arp");
				if (arp != NULL)
					netid_arp(arp, gw, id->iface, id->mac);
				free(arp);
			}
			if (have_src && src.ss_family == AF_INET)
				netid_subnet4(route, id->iface,
				              ((struct sockaddr_in *)&src)->sin_addr, id->net,
				              sizeof(id->net));
		}
		free(route);
	} else if (addr->sa_family == AF_INET6) {
		const struct in6_addr *dst = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		struct in6_addr gw;
		char *route = read_table("/proc/net/ipv6_route");
		if (route != NULL && netid_route6(route, dst, id->iface, &gw) == 0) {
			if (IN6_IS_ADDR_UNSPECIFIED(&gw)) {
				str_copy(id->gw, "-", sizeof(id->gw));
				str_copy(id->mac, "-", sizeof(id->mac));
			} else {
				inet_ntop(AF_INET6, &gw, id->gw, sizeof(id->gw));
			}
		}
		free(route);
		if (have_src && src.ss_family == AF_INET6) {
			/* RFC 4291 2.5.4: a /64 per link */
			struct in6_addr net = ((struct sockaddr_in6 *)&src)->sin6_addr;
			memset(net.s6_addr + 8, 0, 8);
			char a[INET6_ADDRSTRLEN];
			inet_ntop(AF_INET6, &net, a, sizeof(a));
			snprintf(id->net, sizeof(id->net), "%s/64", a);
		}
	}
}

void netid_describe(const struct netid *id, char *buf, size_t size)
{
	if (strcmp(id->gw, "-") == 0)
		snprintf(buf, size, "network %s on %s (no gateway)", id->net, id->iface);
	else
		snprintf(buf, size, "gateway %s (%s) on %s, network %s", id->gw,
		         strcmp(id->mac, "?") == 0 ? "MAC unknown" : id->mac, id->iface, id->net);
}
