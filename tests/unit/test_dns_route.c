/* SPDX-License-Identifier: ISC */
/* test_dns_route.c - unit tests for dns_route.c: the routing rules, fed with
 * made-up DNS answers (no network) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "dns/dns_route.h"

/* ------------------------------------------------------------------ */
/* Fixtures: answers built from strings */

#define ADDRS_PER_HOST 40

struct host_answer {
	const char *name;
	struct dns_result r;
	struct sockaddr_storage addrs[ADDRS_PER_HOST];
};

struct world {
	struct dns_mx mx[DNS_MX_MAX + 8];
	struct dns_result mx_result;
	struct host_answer hosts[64];
	size_t n_hosts;
	unsigned lookups; /* address answers asked for */
	char asked[64][DNS_NAME_MAX + 1];
};

static struct sockaddr_storage ip(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

/* ip_text - the address of a target, without the port. */
static const char *ip_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	if (ss->ss_family == AF_INET6)
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf,
		                 (socklen_t)size);
	return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf,
	                 (socklen_t)size);
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->mx_result.status = DNS_NODATA;
	w->mx_result.reason = "no MX records";
	w->mx_result.mx = w->mx;
	return w;
}

static void world_mx(struct world *w, unsigned pref, const char *host)
{
	w->mx_result.status = DNS_OK;
	w->mx_result.reason = "ok";
	w->mx[w->mx_result.n_mx].preference = pref;
	w->mx[w->mx_result.n_mx].host = host;
	w->mx_result.n_mx++;
}

/* world_host - host answers with status; addresses follow, NULL-ended. */
static void world_host(struct world *w, const char *name, enum dns_status status, ...)
{
	struct host_answer *h = &w->hosts[w->n_hosts++];
	va_list ap;
	const char *a;

	h->name = name;
	h->r.status = status;
	h->r.reason = status == DNS_OK ? "ok" : status == DNS_TEMPFAIL ? "SERVFAIL" : "negative";
	h->r.name = name;
	h->r.addrs = h->addrs;
	va_start(ap, status);
	while ((a = va_arg(ap, const char *)) != NULL)
		h->addrs[h->r.n_addrs++] = ip(a);
	va_end(ap);
}

static const struct dns_result *world_addr_for(void *arg, const char *host)
{
	struct world *w = arg;
	snprintf(w->asked[w->lookups % 64], sizeof(w->asked[0]), "%s", host);
	w->lookups++;
	for (size_t i = 0; i < w->n_hosts; i++)
		if (strcasecmp(w->hosts[i].name, host) == 0)
			return &w->hosts[i].r;
	return NULL; /* NXDOMAIN */
}

/* A deterministic generator: xorshift32 from a seed. */
static uint32_t xorshift(void *arg)
{
	uint32_t *s = arg;
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static uint32_t always_zero(void *arg)
{
	return 0;
}

static struct dns_route_policy policy(void)
{
	struct dns_route_policy p;
	memset(&p, 0, sizeof(p));
	p.our_hostname = "relay.test";
	p.port = 2525;
	p.random = always_zero;
	return p;
}

static void decide(struct world *w, const struct dns_route_policy *p, const char *domain,
                   struct dns_route *route)
{
	dns_route_decide(p, domain, &w->mx_result, world_addr_for, w, route);
}

/* expect_targets - the route is OK with exactly these "host=addr" targets. */
static void expect_targets(const struct dns_route *route, ...)
{
	va_list ap;
	const char *want;
	size_t i = 0;
	char buf[INET6_ADDRSTRLEN], got[DNS_NAME_MAX + INET6_ADDRSTRLEN + 2];

	assert_int_equal(route->status, DNS_ROUTE_OK);
	assert_string_equal(route->code, "");
	va_start(ap, route);
	while ((want = va_arg(ap, const char *)) != NULL) {
		assert_true(i < route->n_targets);
		snprintf(got, sizeof(got), "%s=%s", route->targets[i].host,
		         ip_text(&route->targets[i].addr, buf, sizeof(buf)));
		assert_string_equal(got, want);
		i++;
	}
	va_end(ap);
	assert_int_equal(route->n_targets, i);
}

static void expect_failure(const struct dns_route *route, enum dns_route_status status,
                           const char *code, const char *text_part)
{
	assert_int_equal(route->status, status);
	assert_string_equal(route->code, code);
	assert_int_equal(route->n_targets, 0);
	if (strstr(route->text, text_part) == NULL)
		fail_msg("text \"%s\" lacks \"%s\"", route->text, text_part);
}

/* ------------------------------------------------------------------ */

static void test_preference_order(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 20, "b.example");
	world_mx(w, 10, "a.example");
	world_mx(w, 30, "c.example");
	world_host(w, "a.example", DNS_OK, "192.0.2.1", NULL);
	world_host(w, "b.example", DNS_OK, "2001:db8::2", "192.0.2.2", NULL);
	world_host(w, "c.example", DNS_OK, "192.0.2.3", NULL);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "a.example=192.0.2.1", "b.example=2001:db8::2",
	               "b.example=192.0.2.2", "c.example=192.0.2.3", NULL);
	assert_false(route.implicit_mx);
	assert_int_equal(route.targets[0].preference, 10);
	assert_int_equal(route.targets[3].preference, 30);
	free(w);
}

static void test_port_and_length(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 10, "a.example");
	world_host(w, "a.example", DNS_OK, "2001:db8::1", "192.0.2.1", NULL);
	decide(w, &p, "example.org", &route);
	assert_int_equal(route.n_targets, 2);
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&route.targets[0].addr;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&route.targets[1].addr;
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 2525);
	assert_int_equal(route.targets[0].addr_len, sizeof(struct sockaddr_in6));
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 2525);
	assert_int_equal(route.targets[1].addr_len, sizeof(struct sockaddr_in));
	free(w);
}

/* RFC 5321 5.1: equal preferences in random order, from the caller's
 * generator, so a fixed seed gives a fixed order. */
static void test_equal_preferences_shuffled(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;
	unsigned first[3] = {0, 0, 0};

	world_mx(w, 10, "a.example");
	world_mx(w, 10, "b.example");
	world_mx(w, 10, "c.example");
	world_mx(w, 20, "d.example");
	world_host(w, "a.example", DNS_OK, "192.0.2.1", NULL);
	world_host(w, "b.example", DNS_OK, "192.0.2.2", NULL);
	world_host(w, "c.example", DNS_OK, "192.0.2.3", NULL);
	world_host(w, "d.example", DNS_OK, "192.0.2.4", NULL);

	/* A generator that always says 0: Fisher-Yates swaps the last of
	 * the run with the first, then the new last with the first. */
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "b.example=192.0.2.2", "c.example=192.0.2.3", "a.example=192.0.2.1",
	               "d.example=192.0.2.4", NULL);

	/* The same seed gives the same order twice. */
	uint32_t seed = 12345;
	struct dns_route again;
	p.random = xorshift;
	p.random_arg = &seed;
	decide(w, &p, "example.org", &route);
	seed = 12345;
	decide(w, &p, "example.org", &again);
	assert_int_equal(route.n_targets, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(route.targets[i].host, again.targets[i].host);

	/* Over many draws every equal host comes first sometimes, and the
	 * less preferred one always comes last. */
	seed = 1;
	for (int i = 0; i < 300; i++) {
		decide(w, &p, "example.org", &route);
		assert_int_equal(route.n_targets, 4);
		assert_string_equal(route.targets[3].host, "d.example");
		first[route.targets[0].host[0] - 'a']++;
	}
	for (size_t i = 0; i < 3; i++)
		assert_true(first[i] > 50);
	free(w);
}

/* RFC 5321 5.1: no MX records: the domain is its own MX, preference 0. */
static void test_implicit_mx(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_host(w, "example.org", DNS_OK, "192.0.2.7", NULL);
	decide(w, &p, "example.org.", &route);
	expect_targets(&route, "example.org=192.0.2.7", NULL);
	assert_true(route.implicit_mx);
	assert_int_equal(route.targets[0].preference, 0);
	free(w);
}

static void test_implicit_mx_without_address(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_host(w, "example.org", DNS_NODATA, NULL);
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.4", "no MX and no address records");
	assert_true(route.implicit_mx);

	/* ...but a temporary failure of that look-up is temporary. */
	w->n_hosts = 0;
	world_host(w, "example.org", DNS_TEMPFAIL, NULL);
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_TEMPFAIL, "4.4.3", "SERVFAIL");
	free(w);
}

/* RFC 7505: a null MX refuses mail; no address is even looked up. */
static void test_null_mx(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 0, ".");
	w->mx_result.null_mx = true;
	decide(w, &p, "nomail.example", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.10",
	               "recipient domain does not accept mail");
	assert_int_equal(w->lookups, 0);
	free(w);
}

/* Records whose exchange is "." cannot be used: alone they mean no mail
 * (whatever their preference), beside others they are left out. */
static void test_root_exchange(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 10, ".");
	decide(w, &p, "nomail.example", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.10", "null MX");
	assert_int_equal(w->lookups, 0);

	world_mx(w, 20, "mx.example");
	world_host(w, "mx.example", DNS_OK, "192.0.2.9", NULL);
	decide(w, &p, "mixed.example", &route);
	expect_targets(&route, "mx.example=192.0.2.9", NULL);
	assert_int_equal(w->lookups, 1);
	free(w);
}

static void test_nxdomain(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	w->mx_result.status = DNS_NXDOMAIN;
	decide(w, &p, "nosuch.example", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.2",
	               "domain does not exist: nosuch.example");
	assert_int_equal(w->lookups, 0);

	w->mx_result.status = DNS_BADNAME;
	decide(w, &p, "bad\r\nname", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.2", "not a valid domain name: bad??name");
	free(w);
}

static void test_servfail(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	w->mx_result.status = DNS_TEMPFAIL;
	w->mx_result.reason = "timeout";
	decide(w, &p, "slow.example", &route);
	expect_failure(&route, DNS_ROUTE_TEMPFAIL, "4.4.3", "MX slow.example: timeout");
	assert_int_equal(w->lookups, 0);
	free(w);
}

/* An MX host that does not resolve is skipped; none resolving is
 * temporary (the zone may be changing). */
static void test_unresolvable_hosts(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 10, "gone.example");
	world_mx(w, 20, "empty.example");
	world_mx(w, 30, "ok.example");
	world_host(w, "empty.example", DNS_NODATA, NULL);
	world_host(w, "ok.example", DNS_OK, "192.0.2.30", NULL);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "ok.example=192.0.2.30", NULL);

	w->n_hosts = 1; /* ok.example gone too */
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_TEMPFAIL, "4.4.4", "no MX host of example.org resolves");

	world_host(w, "gone.example", DNS_TEMPFAIL, NULL);
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_TEMPFAIL, "4.4.3", "MX host gone.example: SERVFAIL");
	free(w);
}

static void test_loopback_refused(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 10, "lo.example");
	world_mx(w, 20, "ok.example");
	world_host(w, "lo.example", DNS_OK, "::1", "127.0.0.1", "127.1.2.3", "::ffff:127.0.0.1",
	           "0.0.0.0", "::", NULL);
	world_host(w, "ok.example", DNS_OK, "192.0.2.1", NULL);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "ok.example=192.0.2.1", NULL);

	/* Only loopback: permanent, it can never be the recipient's. */
	w->mx_result.n_mx = 1;
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.4", "loopback");
	free(w);
}

static void test_loopback_allowed(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	p.allow_loopback_mx = true;
	world_mx(w, 10, "lo.example");
	world_host(w, "lo.example", DNS_OK, "::1", "127.0.0.1", "127.1.2.3", "::ffff:127.0.0.1",
	           "0.0.0.0", "::", "0.1.2.3", "::ffff:0.0.0.0", NULL);
	decide(w, &p, "example.org", &route);
	/* The unspecified addresses stay refused: never a real peer. The
	 * IPv4-mapped form of 127.0.0.1 is the same address: tried once. */
	expect_targets(&route, "lo.example=::1", "lo.example=127.0.0.1", "lo.example=127.1.2.3",
	               NULL);
	free(w);
}

/* RFC 5321 5.1: when we are an MX, only more preferred hosts are used. */
static void test_self_by_name(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 10, "a.example");
	world_mx(w, 20, "RELAY.test.");
	world_mx(w, 20, "b.example");
	world_mx(w, 30, "c.example");
	world_host(w, "a.example", DNS_OK, "192.0.2.1", NULL);
	world_host(w, "b.example", DNS_OK, "192.0.2.2", NULL);
	world_host(w, "c.example", DNS_OK, "192.0.2.3", NULL);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "a.example=192.0.2.1", NULL);
	/* relay.test itself is never looked up */
	for (unsigned i = 0; i < w->lookups; i++)
		assert_string_not_equal(w->asked[i], "RELAY.test.");

	/* We are the best MX: a loop. */
	w->mx[0].preference = 20;
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.6",
	               "mail loop: MX points back to this relay");
	free(w);
}

static void test_self_implicit(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_host(w, "relay.test", DNS_OK, "192.0.2.1", NULL);
	decide(w, &p, "relay.test", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.6", "mail loop");
	free(w);
}

static void test_self_by_address(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;
	struct sockaddr_storage ours[2] = {ip("2001:db8::25"), ip("192.0.2.25")};

	p.our_addrs = ours;
	p.n_our_addrs = 2;
	world_mx(w, 10, "a.example");
	world_mx(w, 20, "alias-of-us.example");
	world_mx(w, 30, "c.example");
	world_host(w, "a.example", DNS_OK, "192.0.2.1", NULL);
	/* an IPv4-mapped form of our address is ours too */
	world_host(w, "alias-of-us.example", DNS_OK, "::ffff:192.0.2.25", NULL);
	world_host(w, "c.example", DNS_OK, "192.0.2.3", NULL);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "a.example=192.0.2.1", NULL);

	/* More preferred hosts exist but do not resolve: try later, it is
	 * not a loop. */
	w->hosts[0].r.status = DNS_TEMPFAIL;
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_TEMPFAIL, "4.4.3", "a.example");

	/* We are the most preferred: a loop, naming the host. */
	w->mx[0].preference = 40;
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.6", "alias-of-us.example");

	/* Our address with a port: us only when that port is mx_port. */
	((struct sockaddr_in *)&ours[1])->sin_port = htons(25);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "alias-of-us.example=::ffff:192.0.2.25", "c.example=192.0.2.3",
	               NULL);
	p.port = 25;
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.6", "alias-of-us.example");
	free(w);
}

/* At most DNS_ROUTE_TARGETS_MAX addresses, at the limit and past it. */
static void test_target_bound(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;
	char text[ADDRS_PER_HOST][32];

	world_mx(w, 10, "many.example");
	world_host(w, "many.example", DNS_OK, NULL);
	struct host_answer *h = &w->hosts[0];
	for (size_t i = 0; i < DNS_ROUTE_TARGETS_MAX; i++) {
		snprintf(text[i], sizeof(text[i]), "192.0.2.%zu", i + 1);
		h->addrs[h->r.n_addrs++] = ip(text[i]);
	}
	decide(w, &p, "example.org", &route);
	assert_int_equal(route.status, DNS_ROUTE_OK);
	assert_int_equal(route.n_targets, DNS_ROUTE_TARGETS_MAX);

	h->addrs[h->r.n_addrs++] = ip("192.0.2.200");
	decide(w, &p, "example.org", &route);
	assert_int_equal(route.n_targets, DNS_ROUTE_TARGETS_MAX);
	char buf[INET6_ADDRSTRLEN];
	assert_string_equal(
	    ip_text(&route.targets[DNS_ROUTE_TARGETS_MAX - 1].addr, buf, sizeof(buf)),
	    "192.0.2.10");
	free(w);
}

/* Hosts: at most DNS_ROUTE_HOSTS_MAX looked up, the most preferred. */
static void test_host_bound(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;
	static char names[DNS_MX_MAX][32];

	for (unsigned i = 0; i < DNS_MX_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "mx%u.example", i);
		world_mx(w, 100 - i, names[i]); /* mx31 most preferred */
		world_host(w, names[i], DNS_NODATA, NULL);
	}
	decide(w, &p, "example.org", &route);
	expect_failure(&route, DNS_ROUTE_TEMPFAIL, "4.4.4", "resolves");
	assert_int_equal(w->lookups, DNS_ROUTE_HOSTS_MAX);
	assert_string_equal(w->asked[0], "mx31.example");
	assert_string_equal(w->asked[DNS_ROUTE_HOSTS_MAX - 1], "mx22.example");
	free(w);
}

/* Two names for one address are tried once; one name listed twice is
 * looked up once. */
static void test_duplicates(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;

	world_mx(w, 10, "a.example");
	world_mx(w, 20, "b.example");
	world_mx(w, 30, "A.example.");
	world_host(w, "a.example", DNS_OK, "192.0.2.1", NULL);
	world_host(w, "b.example", DNS_OK, "192.0.2.1", "192.0.2.2", NULL);
	decide(w, &p, "example.org", &route);
	expect_targets(&route, "a.example=192.0.2.1", "b.example=192.0.2.2", NULL);
	assert_int_equal(w->lookups, 2);
	free(w);
}

/* RFC 5321 4.1.3 address literals route without DNS. */
static void test_address_literals(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;
	struct sockaddr_storage ours[1] = {ip("192.0.2.25")};

	decide(w, &p, "[192.0.2.1]", &route);
	expect_targets(&route, "192.0.2.1=192.0.2.1", NULL);
	decide(w, &p, "[ipv6:2001:db8::1]", &route);
	expect_targets(&route, "2001:db8::1=2001:db8::1", NULL);
	assert_int_equal(w->lookups, 0);

	decide(w, &p, "[127.0.0.1]", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.4", "loopback");
	decide(w, &p, "[192.0.2.300]", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.2", "[192.0.2.300]");
	decide(w, &p, "[IPv6:192.0.2.1]", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.2", "address literal");
	decide(w, &p, "[]", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.2", "address literal");
	decide(w, &p, "[192.0.2.1", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.1.2", "address literal");

	p.our_addrs = ours;
	p.n_our_addrs = 1;
	decide(w, &p, "[192.0.2.25]", &route);
	expect_failure(&route, DNS_ROUTE_PERMFAIL, "5.4.6", "mail loop");
	assert_int_equal(w->lookups, 0);
	free(w);
}

static void test_address_helpers(void **state)
{
	static const struct {
		const char *ip;
		bool refused, refused_when_allowed;
	} cases[] = {
	    {"127.0.0.1", true, false},
	    {"127.255.255.254", true, false},
	    {"::1", true, false},
	    {"::ffff:127.0.0.2", true, false},
	    {"0.0.0.0", true, true},
	    {"0.255.0.1", true, true},
	    {"::", true, true},
	    {"::ffff:0.0.0.0", true, true},
	    {"192.0.2.1", false, false},
	    {"2001:db8::1", false, false},
	    {"128.0.0.1", false, false},
	    {"::2", false, false},
	    {"::ffff:192.0.2.1", false, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = ip(cases[i].ip);
		if (dns_route_addr_refused(&ss, false) != cases[i].refused ||
		    dns_route_addr_refused(&ss, true) != cases[i].refused_when_allowed)
			fail_msg("%s", cases[i].ip);
	}
	struct sockaddr_storage a = ip("192.0.2.1"), b = ip("::ffff:192.0.2.1"),
	                        c = ip("2001:db8::1"), d = ip("2001:db8::1"), e = ip("192.0.2.2");
	((struct sockaddr_in *)&a)->sin_port = htons(25); /* ports do not matter */
	assert_true(dns_route_addr_equal(&a, &b));
	assert_true(dns_route_addr_equal(&b, &a));
	assert_true(dns_route_addr_equal(&c, &d));
	assert_false(dns_route_addr_equal(&a, &e));
	assert_false(dns_route_addr_equal(&a, &c));
	assert_false(dns_route_addr_equal(&c, &b));
}

/* The steps one by one, as dns_route_start uses them. */
static void test_steps(void **state)
{
	struct world *w = world_new();
	struct dns_route_policy p = policy();
	struct dns_route route;
	struct dns_route_plan plan;
	struct dns_route_outcome out[2];

	world_mx(w, 5, "x.example");
	world_mx(w, 7, "y.example");
	assert_true(dns_route_plan(&p, "example.org", &w->mx_result, &plan, &route));
	assert_int_equal(plan.n_hosts, 2);
	assert_string_equal(plan.hosts[0].name, "x.example");
	assert_string_equal(plan.hosts[1].name, "y.example");
	world_host(w, "x.example", DNS_OK, "127.0.0.1", "192.0.2.8", NULL);
	world_host(w, "y.example", DNS_NXDOMAIN, NULL);
	dns_route_host_outcome(&p, &w->hosts[0].r, &out[0]);
	dns_route_host_outcome(&p, &w->hosts[1].r, &out[1]);
	assert_int_equal(out[0].n_addrs, 1);
	assert_int_equal(out[0].n_refused, 1);
	assert_false(out[0].self);
	assert_int_equal(out[1].status, DNS_NXDOMAIN);
	dns_route_finish(&p, &plan, out, &route);
	expect_targets(&route, "x.example=192.0.2.8", NULL);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_preference_order),
	    cmocka_unit_test(test_port_and_length),
	    cmocka_unit_test(test_equal_preferences_shuffled),
	    cmocka_unit_test(test_implicit_mx),
	    cmocka_unit_test(test_implicit_mx_without_address),
	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_root_exchange),
	    cmocka_unit_test(test_nxdomain),
	    cmocka_unit_test(test_servfail),
	    cmocka_unit_test(test_unresolvable_hosts),
	    cmocka_unit_test(test_loopback_refused),
	    cmocka_unit_test(test_loopback_allowed),
	    cmocka_unit_test(test_self_by_name),
	    cmocka_unit_test(test_self_implicit),
	    cmocka_unit_test(test_self_by_address),
	    cmocka_unit_test(test_target_bound),
	    cmocka_unit_test(test_host_bound),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_address_literals),
	    cmocka_unit_test(test_address_helpers),
	    cmocka_unit_test(test_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
