/* SPDX-License-Identifier: ISC */
/*
 * netid.h - which network this machine is on, as far as reaching a relay is
 * concerned: the identity `detour send` files the port that worked under.
 *
 * The network identity (detour(1), NETWORK IDENTITY) is three things:
 *   gw   the gateway of the route the kernel would use to reach the relay
 *        (longest prefix match in /proc/net/route or /proc/net/ipv6_route;
 *        "-" when the relay is on the local link);
 *   mac  that gateway's hardware address, from /proc/net/arp ("?" when the
 *        neighbour is not known yet, or for IPv6);
 *   net  the local network the source address belongs to: the address the
 *        kernel picks for the relay (a UDP connect(2): no packet is sent),
 *        masked with the prefix of its interface's on-link route ("/64" for
 *        IPv6), so that a new DHCP lease on the same network is still the
 *        same network.
 * Two home routers both at 192.168.1.1 differ by their MAC; a laptop moving
 * between home and office changes all three; the interface name is left
 * out, so cable and Wi-Fi on the same network count as one. A relay on
 * this machine (127.0.0.0/8, ::1) is the network "loopback" everywhere.
 *
 * Owns: reading those kernel tables (pure parsers, tested on text) and
 * putting the identity together. Does not own: what is remembered per
 * network (portmem.c). Reads /proc only; any thread.
 */
#ifndef DETOUR_CMD_NETID_H
#define DETOUR_CMD_NETID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define NETID_ADDR_MAX  64 /* an address, or a network with "/prefix" */
#define NETID_MAC_MAX   18 /* "aa:bb:cc:dd:ee:ff" */
#define NETID_IFACE_MAX 16

struct netid {
	char gw[NETID_ADDR_MAX];     /* "10.0.0.1", or "-" */
	char mac[NETID_MAC_MAX];     /* "aa:bb:cc:dd:ee:ff", or "?" */
	char net[NETID_ADDR_MAX];    /* "192.168.1.0/24" */
	char iface[NETID_IFACE_MAX]; /* for messages only */
};

/* netid_route4 - the route /proc/net/route (text) gives for dst (network
 * order): its interface and gateway (0 when on-link). -1 when none. */
int netid_route4(const char *text, struct in_addr dst, char iface_r[NETID_IFACE_MAX],
                 struct in_addr *gw_r);

/* netid_subnet4 - the on-link network of iface that holds src, as
 * "a.b.c.d/len", from /proc/net/route; src/32 when there is none. */
void netid_subnet4(const char *text, const char *iface, struct in_addr src, char *net_r,
                   size_t size);

/* netid_arp - the hardware address /proc/net/arp (text) knows for ip on
 * iface (complete entries only). -1 when unknown. */
int netid_arp(const char *text, struct in_addr ip, const char *iface, char mac_r[NETID_MAC_MAX]);

/* netid_route6 - the same as netid_route4 for /proc/net/ipv6_route; gw is
 * :: when on-link. */
int netid_route6(const char *text, const struct in6_addr *dst, char iface_r[NETID_IFACE_MAX],
                 struct in6_addr *gw_r);

/* netid_get - the identity of the network used to reach addr. Never fails:
 * what cannot be found reads "?". */
void netid_get(const struct sockaddr *addr, socklen_t addrlen, struct netid *id_r);

/* netid_describe - "gateway 10.0.0.1 (aa:bb:..) on eth0, network 10.0.0.0/24". */
void netid_describe(const struct netid *id, char *buf, size_t size);

#endif
