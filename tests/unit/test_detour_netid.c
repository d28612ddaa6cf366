/* SPDX-License-Identifier: ISC */
/*
 * test_detour_netid.c - unit tests for the network identity
 * (src/cmd/detour/netid.c: the kernel's route and ARP tables, as text) and
 * the per-network port memory (src/cmd/detour/portmem.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cmd/detour/common.c"
#include "cmd/detour/netid.c"
#include "cmd/detour/portmem.c"

/* /proc/net/route prints each address as the host integer whose memory is
 * the address: these tables are written for a little-endian machine. */
static const char ROUTE[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    "eth0\t00000000\t01000A0A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n"
    "eth0\t00000A0A\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n"
    "eth0\t00000A0A\t00000000\t0001\t0\t0\t100\t00F0FFFF\t0\t0\t0\n"
    "tun0\t0000100A\t00000000\t0001\t0\t0\t50\t0000FFFF\t0\t0\t0\n"
    "eth0\t00C80A0A\t00000000\t0201\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

static const char ARP[] =
    "IP address       HW type     Flags       HW address            Mask     Device\n"
    "192.168.1.1      0x1         0x2         AA:BB:CC:DD:EE:01     *        wlan0\n"
    "10.10.0.1        0x1         0x0         00:00:00:00:00:00     *        eth0\n"
    "10.10.0.9        0x1         0x2         aa:bb:cc:dd:ee:09     *        eth0\n";

static struct in_addr ip4(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static bool little_endian(void)
{
	uint32_t one = 1;
	return *(unsigned char *)&one == 1;
}

static void test_route4(void **state)
{
	(void)state;
	if (!little_endian())
		skip();
	char iface[NETID_IFACE_MAX];
	struct in_addr gw;
	char gws[INET_ADDRSTRLEN];
	/* the default route with the lowest metric */
	assert_int_equal(netid_route4(ROUTE, ip4("198.51.100.7"), iface, &gw), 0);
	assert_string_equal(iface, "eth0");
	inet_ntop(AF_INET, &gw, gws, sizeof(gws));
	assert_string_equal(gws, "10.10.0.1");
	/* a longer prefix wins over the default route: on-link */
	assert_int_equal(netid_route4(ROUTE, ip4("10.16.3.4"), iface, &gw), 0);
	assert_string_equal(iface, "tun0");
	assert_int_equal(gw.s_addr, 0);
	assert_int_equal(netid_route4(ROUTE, ip4("192.168.1.77"), iface, &gw), 0);
	assert_string_equal(iface, "wlan0");
	/* a reject route is skipped: the default route is used instead */
	assert_int_equal(netid_route4(ROUTE, ip4("10.10.200.1"), iface, &gw), 0);
	assert_string_equal(iface, "eth0");
	/* no route at all */
	const char only_link[] = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
	                         "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\n";
	assert_int_equal(netid_route4(only_link, ip4("8.8.8.8"), iface, &gw), -1);
	assert_int_equal(netid_route4("", ip4("8.8.8.8"), iface, &gw), -1);
	assert_int_equal(netid_route4("title\ngarbage line\n", ip4("8.8.8.8"), iface, &gw), -1);
}

static void test_subnet4(void **state)
{
	(void)state;
	if (!little_endian())
		skip();
	char net[NETID_ADDR_MAX];
	netid_subnet4(ROUTE, "wlan0", ip4("192.168.1.23"), net, sizeof(net));
	assert_string_equal(net, "192.168.1.0/24");
	/* the longest on-link prefix holding the address */
	netid_subnet4(ROUTE, "eth0", ip4("10.10.3.3"), net, sizeof(net));
	assert_string_equal(net, "10.10.0.0/20");
	netid_subnet4(ROUTE, "eth0", ip4("10.10.99.3"), net, sizeof(net));
	assert_string_equal(net, "10.10.0.0/16");
	/* nothing on-link: the address itself */
	netid_subnet4(ROUTE, "ppp0", ip4("100.64.1.2"), net, sizeof(net));
	assert_string_equal(net, "100.64.1.2/32");
}

static void test_arp(void **state)
{
	(void)state;
	char mac[NETID_MAC_MAX];
	assert_int_equal(netid_arp(ARP, ip4("192.168.1.1"), "wlan0", mac), 0);
	assert_string_equal(mac, "aa:bb:cc:dd:ee:01");
	/* incomplete entries and other interfaces do not count */
	assert_int_equal(netid_arp(ARP, ip4("10.10.0.1"), "eth0", mac), -1);
	assert_int_equal(netid_arp(ARP, ip4("192.168.1.1"), "eth0", mac), -1);
	assert_int_equal(netid_arp(ARP, ip4("10.10.0.9"), NULL, mac), 0);
	assert_string_equal(mac, "aa:bb:cc:dd:ee:09");
	assert_int_equal(netid_arp(ARP, ip4("10.0.0.1"), NULL, mac), -1);
	assert_int_equal(netid_arp("", ip4("10.0.0.1"), NULL, mac), -1);
}

static void test_route6(void **state)
{
	(void)state;
	static const char ROUTE6[] =
	    "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 "
	    "00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n"
	    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
	    "fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n"
	    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
	    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
	struct in6_addr dst, gw;
	char iface[NETID_IFACE_MAX], gws[INET6_ADDRSTRLEN];
	inet_pton(AF_INET6, "2001:db8:1::5", &dst);
	assert_int_equal(netid_route6(ROUTE6, &dst, iface, &gw), 0);
	assert_string_equal(iface, "eth0");
	inet_ntop(AF_INET6, &gw, gws, sizeof(gws));
	assert_string_equal(gws, "fe80::1");
	inet_pton(AF_INET6, "2001:db8::5", &dst);
	assert_int_equal(netid_route6(ROUTE6, &dst, iface, &gw), 0);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&gw));
	assert_int_equal(netid_route6("", &dst, iface, &gw), -1);
}

static void test_describe_and_get(void **state)
{
	(void)state;
	struct netid id = {"10.0.0.1", "aa:bb:cc:dd:ee:ff", "10.0.0.0/24", "eth0"};
	char buf[200];
	netid_describe(&id, buf, sizeof(buf));
	assert_string_equal(buf,
	                    "gateway 10.0.0.1 (aa:bb:cc:dd:ee:ff) on eth0, network 10.0.0.0/24");
	struct netid link = {"-", "-", "192.168.5.0/24", "eth1"};
	netid_describe(&link, buf, sizeof(buf));
	assert_string_equal(buf, "network 192.168.5.0/24 on eth1 (no gateway)");
	/* a relay on this machine is the same network wherever it goes */
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	netid_get((struct sockaddr *)&lo, sizeof(lo), &id);
	assert_string_equal(id.net, "loopback");
	assert_string_equal(id.gw, "-");
}

static struct netid net(const char *gw, const char *mac, const char *n)
{
	struct netid id;
	str_copy(id.gw, gw, sizeof(id.gw));
	str_copy(id.mac, mac, sizeof(id.mac));
	str_copy(id.net, n, sizeof(id.net));
	str_copy(id.iface, "eth0", sizeof(id.iface));
	return id;
}

static void test_portmem_roundtrip(void **state)
{
	(void)state;
	struct portmem pm = {0};
	struct netid home = net("192.168.1.1", "aa:bb:cc:dd:ee:01", "192.168.1.0/24");
	struct netid office = net("10.0.0.1", "aa:bb:cc:dd:ee:02", "10.0.0.0/16");
	struct portmem_entry *e = portmem_touch(&pm, &home, "relay.example.net", 1000);
	portmem_set_winner(e, 587, false, 1000);
	portmem_mark_intercepted(e, 2525, 1000);
	portmem_mark_intercepted(e, 1025, 1001);
	e = portmem_touch(&pm, &office, "relay.example.net", 2000);
	portmem_set_winner(e, 465, true, 2000);
	char *text = portmem_format(&pm);
	assert_non_null(strstr(text, "gw=192.168.1.1 mac=aa:bb:cc:dd:ee:01 net=192.168.1.0/24 "
	                             "host=relay.example.net port=587 tls=starttls when=1000 "
	                             "intercepted=2525@1000,1025@1001\n"));
	assert_non_null(strstr(text, "port=465 tls=implicit when=2000\n"));
	struct portmem back;
	portmem_parse(text, &back);
	free(text);
	assert_int_equal(back.n, 2);
	struct portmem_entry *h = portmem_find(&back, &home, "RELAY.example.net");
	assert_non_null(h);
	assert_int_equal(h->port, 587);
	assert_false(h->implicit);
	assert_true(portmem_is_intercepted(h, 2525, 1000 + 3600));
	assert_false(portmem_is_intercepted(h, 2525, 1000 + DETOUR_INTERCEPTED_TTL));
	assert_false(portmem_is_intercepted(h, 587, 1000));
	struct portmem_entry *o = portmem_find(&back, &office, "relay.example.net");
	assert_non_null(o);
	assert_int_equal(o->port, 465);
	assert_true(o->implicit);
	assert_null(portmem_find(&back, &home, "other.example.net"));
	portmem_free(&back);
	portmem_free(&pm);
}

static void test_portmem_matching(void **state)
{
	(void)state;
	struct portmem pm = {0};
	struct netid a = net("192.168.1.1", "aa:bb:cc:dd:ee:01", "192.168.1.0/24");
	struct portmem_entry *e = portmem_touch(&pm, &a, "r.example", 10);
	portmem_set_winner(e, 587, false, 10);
	/* another router at the same address: another network */
	struct netid b = net("192.168.1.1", "aa:bb:cc:dd:ee:99", "192.168.1.0/24");
	assert_null(portmem_find(&pm, &b, "r.example"));
	/* the MAC not known yet (nothing sent to the gateway so far) */
	struct netid unknown = net("192.168.1.1", "?", "192.168.1.0/24");
	assert_ptr_equal(portmem_find(&pm, &unknown, "r.example"), &pm.e[0]);
	/* another subnet, same gateway and MAC */
	struct netid c = net("192.168.1.1", "aa:bb:cc:dd:ee:01", "192.168.2.0/24");
	assert_null(portmem_find(&pm, &c, "r.example"));
	/* an entry saved without a MAC learns it */
	struct portmem pm2 = {0};
	e = portmem_touch(&pm2, &unknown, "r.example", 5);
	assert_string_equal(e->id.mac, "?");
	e = portmem_touch(&pm2, &a, "r.example", 6);
	assert_int_equal(pm2.n, 1);
	assert_string_equal(e->id.mac, "aa:bb:cc:dd:ee:01");
	/* a winner clears its own intercepted mark; a mark clears a winner */
	portmem_mark_intercepted(e, 587, 6);
	portmem_set_winner(e, 587, false, 7);
	assert_false(portmem_is_intercepted(e, 587, 7));
	portmem_mark_intercepted(e, 587, 8);
	assert_int_equal(e->port, 0);
	portmem_free(&pm2);
	portmem_free(&pm);
}

static void test_portmem_limits(void **state)
{
	(void)state;
	struct portmem pm = {0};
	/* PORTMEM_ENTRIES_MAX networks, then one more: the oldest goes */
	for (int i = 0; i <= PORTMEM_ENTRIES_MAX; i++) {
		char gw[32];
		snprintf(gw, sizeof(gw), "10.%d.%d.1", i / 256, i % 256);
		struct netid id = net(gw, "?", "10.0.0.0/8");
		portmem_touch(&pm, &id, "r.example", 100 + i);
	}
	assert_int_equal(pm.n, PORTMEM_ENTRIES_MAX);
	struct netid first = net("10.0.0.1", "?", "10.0.0.0/8");
	assert_null(portmem_find(&pm, &first, "r.example"));
	struct netid second = net("10.0.1.1", "?", "10.0.0.0/8");
	assert_non_null(portmem_find(&pm, &second, "r.example"));
	/* intercepted marks: at most DETOUR_PORTS_MAX, the oldest replaced */
	struct portmem_entry *e = &pm.e[0];
	for (unsigned p = 1; p <= DETOUR_PORTS_MAX + 1; p++)
		portmem_mark_intercepted(e, p, 1000 + p);
	assert_int_equal(e->nintercepted, DETOUR_PORTS_MAX);
	assert_false(portmem_is_intercepted(e, 1, 1100));
	assert_true(portmem_is_intercepted(e, DETOUR_PORTS_MAX + 1, 1100));
	portmem_free(&pm);

	/* malformed lines are skipped; the good ones kept */
	const char *text = "# comment\n"
	                   "gw=1.1.1.1 mac=? net=1.1.1.0/24 host=a.example port=587 tls=starttls "
	                   "when=5\n"
	                   "gw=1.1.1.1 mac=? net=1.1.1.0/24 port=587\n" /* no host */
	                   "gw=2.2.2.2 mac=? net=2.2.2.0/24 host=b.example port=99999\n"
	                   "garbage\n"
	                   "gw=3.3.3.3 mac=? net=3.3.3.0/24 host=c.example port=25 future=yes\n"
	                   "gw=4.4.4.4 mac=? net=4.4.4.0/24 host=d.example intercepted=1@x\n";
	portmem_parse(text, &pm);
	assert_int_equal(pm.n, 2);
	assert_string_equal(pm.e[0].host, "a.example");
	assert_string_equal(pm.e[1].host, "c.example");
	portmem_free(&pm);

	/* a line at PORTMEM_LINE_MAX - 1 octets is read, longer ones not */
	char line[PORTMEM_LINE_MAX + 2];
	const char *head = "gw=1.1.1.1 mac=? net=1.1.1.0/24 host=a.example when=1 pad=";
	size_t hl = strlen(head);
	memcpy(line, head, hl);
	memset(line + hl, 'x', PORTMEM_LINE_MAX - 1 - hl);
	line[PORTMEM_LINE_MAX - 1] = '\0';
	portmem_parse(line, &pm);
	assert_int_equal(pm.n, 1);
	portmem_free(&pm);
	line[PORTMEM_LINE_MAX - 1] = 'x';
	line[PORTMEM_LINE_MAX] = '\0';
	portmem_parse(line, &pm);
	assert_int_equal(pm.n, 0);
	portmem_free(&pm);
}

static void test_portmem_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/detour-portmem-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/networks", dir);
	struct portmem pm;
	assert_int_equal(portmem_load(path, &pm), 0); /* missing: empty */
	assert_int_equal(pm.n, 0);
	struct netid id = net("10.0.0.1", "aa:bb:cc:dd:ee:ff", "10.0.0.0/24");
	portmem_set_winner(portmem_touch(&pm, &id, "r.example", 42), 8025, false, 42);
	assert_int_equal(portmem_save(path, &pm), 0);
	portmem_free(&pm);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(portmem_load(path, &pm), 0);
	assert_int_equal(pm.n, 1);
	assert_int_equal(pm.e[0].port, 8025);
	portmem_free(&pm);
	unlink(path);
	rmdir(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_route4),
	    cmocka_unit_test(test_subnet4),
	    cmocka_unit_test(test_arp),
	    cmocka_unit_test(test_route6),
	    cmocka_unit_test(test_describe_and_get),
	    cmocka_unit_test(test_portmem_roundtrip),
	    cmocka_unit_test(test_portmem_matching),
	    cmocka_unit_test(test_portmem_limits),
	    cmocka_unit_test(test_portmem_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
