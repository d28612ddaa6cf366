/* SPDX-License-Identifier: ISC */
/*
 * test_dns.c - dns.c and dns_route_start against a real DNS server on
 * loopback: tests/tools/dnsserver.py, started here on a free port and
 * stopped by its PID at the end. No query ever goes to the system's
 * resolver: every struct dns is given the test server's address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dns/dns.h"
#include "dns/dns_route.h"
#include "lib/util.h"

#define PYTHON          "/usr/bin/python3"
#define SERVER_START_MS 10000
#define LOOP_LIMIT_MS   5000

static struct {
	pid_t pid;
	unsigned port;
	bool have_v6;
	char dir[64];
	char zone[128];
	char log[128];
	char resolver[64];
} srv;

/* ------------------------------------------------------------------ */
/* The server */

static const char *zone_json(void)
{
	static char buf[8192];
	size_t n = 0;

	n += (size_t)snprintf(
	    buf + n, sizeof(buf) - n, "%s",
	    "{\n"
	    "\"example.test\": {\"MX\": [[20, \"mx2.example.test\"], [10, \"mx1.example.test\"]],"
	    " \"TTL\": 300},\n"
	    "\"mx1.example.test\": {\"A\": [\"127.0.0.2\"], \"AAAA\": [\"::1\"]},\n"
	    "\"mx2.example.test\": {\"A\": [\"127.0.0.3\", \"127.0.0.4\"]},\n"
	    "\"nullmx.test\": {\"MX\": [[0, \".\"]]},\n"
	    "\"nomx.test\": {\"A\": [\"127.0.0.5\"]},\n"
	    "\"servfail.test\": {\"SERVFAIL\": true},\n"
	    "\"refused.test\": {\"REFUSED\": true},\n"
	    "\"timeout.test\": {\"TIMEOUT\": true},\n"
	    "\"v4only.test\": {\"A\": [\"127.0.0.6\"], \"SERVFAIL\": [\"AAAA\"]},\n"
	    "\"v6only.test\": {\"AAAA\": [\"2001:db8::6\"]},\n"
	    "\"cname.test\": {\"CNAME\": \"mx2.example.test\"},\n"
	    "\"slow.test\": {\"MX\": [[10, \"mx1.example.test\"]], \"DELAY\": 0.3},\n"
	    "\"slow2.test\": {\"MX\": [[10, \"mx1.example.test\"]], \"DELAY\": 0.3},\n"
	    "\"ttl0.test\": {\"MX\": [[10, \"mx1.example.test\"]], \"TTL\": 0},\n"
	    "\"ttlbig.test\": {\"MX\": [[10, \"mx1.example.test\"]], \"TTL\": 7200},\n"
	    "\"loop.test\": {\"MX\": [[10, \"relay.test\"]]},\n"
	    "\"relay.test\": {\"A\": [\"127.0.0.9\"]},\n"
	    "\"c1.test\": {\"MX\": [[1, \"mx1.example.test\"]]},\n"
	    "\"c2.test\": {\"MX\": [[2, \"mx1.example.test\"]]},\n"
	    "\"c3.test\": {\"MX\": [[3, \"mx1.example.test\"]]},\n");
	/* 40 MX records with long names: more than 512 octets over UDP, so
	 * the answer comes truncated and c-ares asks again over TCP. */
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\"big.test\": {\"MX\": [");
	for (int i = 40; i >= 1; i--)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
		                      "[%d, \"a-rather-long-mail-exchanger-name-%02d.big.test\"]%s",
		                      i, i, i > 1 ? ", " : "");
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "]}\n}\n");
	assert_true(n < sizeof(buf));
	return buf;
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 sin6;
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0)
		return false;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	bool ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	close(fd);
	return ok;
}

/* find_server - tests/tools/dnsserver.py: from $DETOUR_TOP, the current
 * folder, or the folders above this program. */
static bool find_server(char *path, size_t size)
{
	const char *top = getenv("DETOUR_TOP");
	char exe[PATH_MAX - 32];

	if (top != NULL) {
		snprintf(path, size, "%s/tests/tools/dnsserver.py", top);
		return access(path, R_OK) == 0;
	}
	snprintf(path, size, "tests/tools/dnsserver.py");
	if (access(path, R_OK) == 0)
		return true;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		return false;
	exe[len] = '\0';
	for (int up = 0; up < 6; up++) {
		char *slash = strrchr(exe, '/');
		if (slash == NULL)
			return false;
		*slash = '\0';
		int n = snprintf(path, size, "%s/tests/tools/dnsserver.py", exe);
		if (n > 0 && (size_t)n < size && access(path, R_OK) == 0)
			return true;
	}
	return false;
}

static int64_t elapsed_since(int64_t start)
{
	return mono_ms() - start;
}

static void stop_server(void)
{
	int status;

	if (srv.pid <= 0)
		return;
	kill(srv.pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
			srv.pid = 0;
			return;
		}
		usleep(50 * 1000);
	}
	kill(srv.pid, SIGKILL);
	waitpid(srv.pid, &status, 0);
	srv.pid = 0;
}

static int start_server(void **state)
{
	char script[PATH_MAX], line[128];
	int out[2];
	size_t len = 0;

	if (!find_server(script, sizeof(script))) {
		fprintf(stderr, "test_dns: tests/tools/dnsserver.py not found (set DETOUR_TOP)\n");
		return -1;
	}
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/test_dns.XXXXXX");
	if (mkdtemp(srv.dir) == NULL)
		return -1;
	snprintf(srv.zone, sizeof(srv.zone), "%s/zone.json", srv.dir);
	snprintf(srv.log, sizeof(srv.log), "%s/queries.log", srv.dir);
	FILE *f = fopen(srv.zone, "w");
	if (f == NULL)
		return -1;
	fputs(zone_json(), f);
	fclose(f);
	srv.have_v6 = have_ipv6_loopback();

	if (pipe2(out, O_CLOEXEC) != 0)
		return -1;
	pid_t parent = getpid();
	srv.pid = fork();
	if (srv.pid < 0)
		return -1;
	if (srv.pid == 0) {
		/* The server must not outlive a test that crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		dup2(out[1], STDOUT_FILENO);
		const char *argv[16] = {"python3", script,        "--port", "0",      "--zone",
		                        srv.zone,  "--query-log", srv.log,  "--bind", "127.0.0.1"};
		int argc = 10;
		if (srv.have_v6) {
			argv[argc++] = "--bind";
			argv[argc++] = "::1";
		}
		argv[argc] = NULL;
		execv(PYTHON, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);

	/* Wait for "ready PORT". */
	int64_t start = mono_ms();
	while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL) {
		int left = SERVER_START_MS - (int)elapsed_since(start);
		struct pollfd p = {.fd = out[0], .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t n = read(out[0], line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	line[len] = '\0';
	if (sscanf(line, "ready %u", &srv.port) != 1 || srv.port == 0) {
		fprintf(stderr, "test_dns: the DNS server did not start: \"%s\"\n", line);
		stop_server();
		return -1;
	}
	snprintf(srv.resolver, sizeof(srv.resolver), "127.0.0.1:%u", srv.port);
	return 0;
}

static int end_server(void **state)
{
	stop_server();
	unlink(srv.zone);
	unlink(srv.log);
	rmdir(srv.dir);
	return 0;
}

/* queries_seen - how many queries for "NAME TYPE" the server received
 * (over UDP and TCP; proto "" for both). */
static unsigned queries_seen(const char *proto, const char *name, const char *type)
{
	char line[512], want[300];
	unsigned count = 0;
	FILE *f = fopen(srv.log, "r");

	if (f == NULL)
		return 0;
	snprintf(want, sizeof(want), " %s %s\n", name, type);
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *sp = strchr(line, ' ');
		if (sp == NULL || strcmp(sp, want) != 0)
			continue;
		if (proto[0] == '\0' || strncmp(line, proto, (size_t)(sp - line)) == 0)
			count++;
	}
	fclose(f);
	return count;
}

/* ------------------------------------------------------------------ */
/* Running the loop */

struct got {
	int calls;
	enum dns_status status;
	char reason[64];
	bool null_mx, cached;
	unsigned ttl;
	size_t n_mx, n_addrs;
	struct dns_mx mx[DNS_MX_MAX];
	char hosts[DNS_MX_MAX][DNS_NAME_MAX + 1];
	struct sockaddr_storage addrs[DNS_ADDRS_MAX];
	struct dns_query *q;
	struct dns **free_dns; /* free this resolver from the callback */
};

static void got_cb(void *arg, const struct dns_result *r)
{
	struct got *g = arg;
	g->calls++;
	g->q = NULL;
	g->status = r->status;
	snprintf(g->reason, sizeof(g->reason), "%s", r->reason);
	g->null_mx = r->null_mx;
	g->cached = r->cached;
	g->ttl = r->ttl;
	g->n_mx = r->n_mx;
	for (size_t i = 0; i < r->n_mx; i++) {
		g->mx[i].preference = r->mx[i].preference;
		snprintf(g->hosts[i], sizeof(g->hosts[i]), "%s", r->mx[i].host);
		g->mx[i].host = g->hosts[i];
	}
	g->n_addrs = r->n_addrs;
	if (r->n_addrs > 0)
		memcpy(g->addrs, r->addrs, r->n_addrs * sizeof(r->addrs[0]));
	if (g->free_dns != NULL)
		dns_free(g->free_dns);
}

static void loop_deadline(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* run_until - run the loop until *done (an int counter reaching want) or
 * ms pass; returns whether it got there. */
static bool run_until(struct event_base *base, const int *done, int want, int ms)
{
	bool timed_out = false;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *ev = evtimer_new(base, loop_deadline, &timed_out);

	evtimer_add(ev, &tv);
	while (*done < want && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
	return *done >= want;
}

/* run_for - run the loop ms milliseconds. */
static void run_for(struct event_base *base, int ms)
{
	int never = 0;
	run_until(base, &never, 1, ms);
}

struct fixture {
	struct event_base *base;
	struct dns *dns;
};

static struct dns *new_dns(struct event_base *base, const char *servers, unsigned timeout_ms,
                           unsigned tries)
{
	const char *error = NULL;
	struct dns_options o = {.timeout_ms = timeout_ms, .tries = tries};
	struct dns *dns = dns_new_with(base, servers, &o, &error);
	if (dns == NULL)
		fail_msg("dns_new: %s", error);
	return dns;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	fx->base = event_base_new();
	fx->dns = new_dns(fx->base, srv.resolver, 2000, 2);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	dns_free(&fx->dns);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

static void lookup_mx(struct fixture *fx, const char *name, struct got *g)
{
	int before = g->calls;
	g->q = dns_lookup_mx(fx->dns, name, got_cb, g);
	assert_non_null(g->q);
	assert_int_equal(g->calls, before); /* never from inside the call */
	assert_true(run_until(fx->base, &g->calls, before + 1, LOOP_LIMIT_MS));
}

static void lookup_addr(struct fixture *fx, const char *name, struct got *g)
{
	int before = g->calls;
	g->q = dns_lookup_addr(fx->dns, name, got_cb, g);
	assert_non_null(g->q);
	assert_int_equal(g->calls, before);
	assert_true(run_until(fx->base, &g->calls, before + 1, LOOP_LIMIT_MS));
}

static const char *addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		assert_int_equal(s6->sin6_port, 0);
		return inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)size);
	}
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(s4->sin_port, 0);
	return inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)size);
}

/* ------------------------------------------------------------------ */
/* Look-ups */

static void test_mx(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	lookup_mx(fx, "Example.TEST.", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_mx, 2);
	assert_int_equal(g.mx[0].preference, 10);
	assert_string_equal(g.mx[0].host, "mx1.example.test");
	assert_int_equal(g.mx[1].preference, 20);
	assert_string_equal(g.mx[1].host, "mx2.example.test");
	assert_false(g.null_mx);
	assert_false(g.cached);
	assert_true(g.ttl > 290 && g.ttl <= 300);
}

static void test_addr_both_families(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	char buf[INET6_ADDRSTRLEN];

	lookup_addr(fx, "mx1.example.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_addrs, 2);
	assert_string_equal(addr_text(&g.addrs[0], buf, sizeof(buf)), "::1");
	assert_string_equal(addr_text(&g.addrs[1], buf, sizeof(buf)), "127.0.0.2");

	lookup_addr(fx, "mx2.example.test", &g); /* A only: AAAA is NODATA */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_addrs, 2);
	assert_string_equal(addr_text(&g.addrs[0], buf, sizeof(buf)), "127.0.0.3");
	assert_string_equal(addr_text(&g.addrs[1], buf, sizeof(buf)), "127.0.0.4");

	lookup_addr(fx, "v6only.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_addrs, 1);
	assert_string_equal(addr_text(&g.addrs[0], buf, sizeof(buf)), "2001:db8::6");

	lookup_addr(fx, "cname.test", &g); /* followed to mx2 */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_addrs, 2);
	assert_string_equal(addr_text(&g.addrs[0], buf, sizeof(buf)), "127.0.0.3");
}

/* One family failing does not hide the other's addresses. */
static void test_addr_partial(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	char buf[INET6_ADDRSTRLEN];

	lookup_addr(fx, "v4only.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_addrs, 1);
	assert_string_equal(addr_text(&g.addrs[0], buf, sizeof(buf)), "127.0.0.6");
	assert_non_null(strstr(g.reason, "partial"));
}

static void test_null_mx(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	lookup_mx(fx, "nullmx.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.null_mx);
	assert_int_equal(g.n_mx, 1);
	assert_int_equal(g.mx[0].preference, 0);
	assert_string_equal(g.mx[0].host, ".");
}

static void test_negative(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	lookup_mx(fx, "nosuch.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	/* RFC 2308 5: the SOA's negative TTL (the server's 60 s) */
	assert_int_equal(g.ttl, 60);
	lookup_addr(fx, "nosuch.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);

	lookup_mx(fx, "nomx.test", &g);
	assert_int_equal(g.status, DNS_NODATA);
	assert_int_equal(g.n_mx, 0);
	lookup_addr(fx, "example.test", &g);
	assert_int_equal(g.status, DNS_NODATA);
	assert_int_equal(g.n_addrs, 0);
}

static void test_servfail_refused(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	lookup_mx(fx, "servfail.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_non_null(strstr(g.reason, "SERVFAIL"));
	/* asked again once (DNS_TRIES_DEFAULT = 2), at once */
	assert_int_equal(queries_seen("", "servfail.test", "MX"), 2);
	lookup_addr(fx, "servfail.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);

	lookup_mx(fx, "refused.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_non_null(strstr(g.reason, "REFUSED"));
}

static void test_timeout(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	dns_free(&fx->dns);
	fx->dns = new_dns(fx->base, srv.resolver, 200, 1);
	int64_t start = mono_ms();
	lookup_mx(fx, "timeout.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_string_equal(g.reason, "timeout");
	int64_t took = elapsed_since(start);
	assert_true(took >= 150 && took < 2000);

	/* Two tries: 200 ms, then 400 ms (c-ares doubles per round). */
	dns_free(&fx->dns);
	fx->dns = new_dns(fx->base, srv.resolver, 200, 2);
	start = mono_ms();
	lookup_addr(fx, "timeout.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	took = elapsed_since(start);
	assert_true(took >= 500 && took < 3000);
}

/* closed_port - a loopback UDP port nobody listens on (just freed). */
static unsigned closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* Nobody listens on the server's port: a temporary failure, quickly. */
static void test_no_server(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	char servers[64];

	snprintf(servers, sizeof(servers), "127.0.0.1:%u", closed_port());

	dns_free(&fx->dns);
	fx->dns = new_dns(fx->base, servers, 500, 1);
	lookup_mx(fx, "example.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
}

static void test_badname(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	struct dns_stats st;
	char longname[DNS_NAME_MAX + 8];
	static const char *const bad[] = {"",         ".",          "a..b",     "bad name.test",
	                                  "-\n.test", "a\\.b.test", "x.test..", "\xc3\xa9.test"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lookup_mx(fx, bad[i], &g);
		assert_int_equal(g.status, DNS_BADNAME);
		lookup_addr(fx, bad[i], &g);
		assert_int_equal(g.status, DNS_BADNAME);
	}
	/* At the length limit and one past it (63-octet labels). */
	memset(longname, 'a', sizeof(longname));
	for (size_t i = 63; i < DNS_NAME_MAX; i += 64)
		longname[i] = '.';
	longname[DNS_NAME_MAX] = '\0';
	assert_true(dns_name_valid(longname));
	longname[DNS_NAME_MAX] = 'a';
	longname[DNS_NAME_MAX + 1] = '\0';
	assert_false(dns_name_valid(longname));
	lookup_mx(fx, longname, &g);
	assert_int_equal(g.status, DNS_BADNAME);
	longname[DNS_NAME_MAX] = '.'; /* a final dot does not count */
	assert_true(dns_name_valid(longname));
	char label[80];
	memset(label, 'b', 64);
	strcpy(label + 64, ".test");
	assert_false(dns_name_valid(label));
	assert_true(dns_name_valid(label + 1));

	dns_get_stats(fx->dns, &st);
	assert_int_equal(st.queries, 0);
}

/* 40 MX records do not fit in 512 octets: TC, then TCP; the 32 most
 * preferred are kept. */
static void test_truncated_over_tcp(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	lookup_mx(fx, "big.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_mx, DNS_MX_MAX);
	for (size_t i = 0; i < g.n_mx; i++) {
		char want[80];
		snprintf(want, sizeof(want), "a-rather-long-mail-exchanger-name-%02zu.big.test",
		         i + 1);
		assert_int_equal(g.mx[i].preference, i + 1);
		assert_string_equal(g.mx[i].host, want);
	}
	assert_int_equal(queries_seen("udp", "big.test", "MX"), 1);
	assert_int_equal(queries_seen("tcp", "big.test", "MX"), 1);
}

static void test_ipv6_server(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	char servers[64];

	if (!srv.have_v6) {
		fprintf(stderr, "# no ::1 here: the IPv6 server address is not tried\n");
		return;
	}
	snprintf(servers, sizeof(servers), "[::1]:%u", srv.port);
	dns_free(&fx->dns);
	fx->dns = new_dns(fx->base, servers, 2000, 1);
	lookup_mx(fx, "example.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n_mx, 2);
}

/* The first server does not answer; the second does. */
static void test_second_server(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	char servers[96];

	snprintf(servers, sizeof(servers), "127.0.0.1:%u 127.0.0.1:%u", closed_port(), srv.port);
	dns_free(&fx->dns);
	fx->dns = new_dns(fx->base, servers, 2000, 1);
	int64_t start = mono_ms();
	lookup_mx(fx, "c3.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_true(elapsed_since(start) < 1900); /* the refusal, not a time-out */
}

static void test_server_syntax(void **state)
{
	struct fixture *fx = *state;
	const char *error;
	struct dns *dns;
	static const char *const good[] = {
	    "127.0.0.1",
	    "127.0.0.1:5353 [::1]:5353",
	    "::1",
	    " 127.0.0.1:53\t[::1] ",
	    "192.0.2.1,192.0.2.2",
	    "[2001:db8::1]:65535",
	    "1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8"};
	static const char *const bad[] = {
	    "",
	    "   ",
	    "localhost",
	    "127.0.0.1:0",
	    "127.0.0.1:65536",
	    "127.0.0.1:",
	    "127.0.0.1:5x",
	    "[::1",
	    "[::1]x",
	    "[127.0.0.1]:53",
	    "300.0.0.1",
	    "1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9"};

	/* Creating a resolver sends nothing: these are never queried. */
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		error = NULL;
		dns = dns_new(fx->base, good[i], &error);
		if (dns == NULL)
			fail_msg("\"%s\": %s", good[i], error);
		dns_free(&dns);
		assert_null(dns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		dns = dns_new(fx->base, bad[i], &error);
		if (dns != NULL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(error);
	}
}

/* ------------------------------------------------------------------ */
/* The cache */

static void test_cache_hit(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	struct dns_stats st;

	lookup_mx(fx, "c1.test", &g);
	assert_false(g.cached);
	assert_int_equal(queries_seen("", "c1.test", "MX"), 1);
	lookup_mx(fx, "C1.test.", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.cached);
	assert_int_equal(g.n_mx, 1);
	assert_string_equal(g.mx[0].host, "mx1.example.test");
	assert_int_equal(queries_seen("", "c1.test", "MX"), 1);

	/* negative answers too */
	lookup_mx(fx, "gone.c1.test", &g);
	lookup_mx(fx, "gone.c1.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_true(g.cached);
	assert_int_equal(queries_seen("", "gone.c1.test", "MX"), 1);

	/* and temporary failures, briefly */
	lookup_mx(fx, "servfail.test", &g);
	unsigned seen = queries_seen("", "servfail.test", "MX");
	lookup_mx(fx, "servfail.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_true(g.cached);
	assert_true(g.ttl <= DNS_TEMPFAIL_TTL);
	assert_int_equal(queries_seen("", "servfail.test", "MX"), seen);

	/* an address look-up is two entries, both cached */
	lookup_addr(fx, "mx1.example.test", &g);
	lookup_addr(fx, "mx1.example.test", &g);
	assert_true(g.cached);
	assert_int_equal(g.n_addrs, 2);

	dns_get_stats(fx->dns, &st);
	assert_int_equal(st.cache_hits, 1 + 1 + 1 + 2);

	/* After a flush it is asked again. */
	dns_cache_flush(fx->dns);
	dns_get_stats(fx->dns, &st);
	assert_int_equal(st.cached, 0);
	lookup_mx(fx, "c1.test", &g);
	assert_false(g.cached);
	assert_int_equal(queries_seen("", "c1.test", "MX"), 2);
}

/* TTLs are kept between DNS_TTL_MIN and DNS_TTL_MAX. */
static void test_ttl_bounds(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};

	lookup_mx(fx, "ttl0.test", &g);
	assert_int_equal(g.ttl, DNS_TTL_MIN);
	lookup_mx(fx, "ttl0.test", &g);
	assert_true(g.cached);
	lookup_mx(fx, "ttlbig.test", &g);
	assert_int_equal(g.ttl, DNS_TTL_MAX);
}

/* Many deliveries to one domain at once: one question. */
static void test_coalesce(void **state)
{
	struct fixture *fx = *state;
	struct got g[50];
	int done = 0;
	struct dns_stats st;

	memset(g, 0, sizeof(g));
	for (size_t i = 0; i < 50; i++)
		g[i].q = dns_lookup_mx(fx->dns, "c2.test", got_cb, &g[i]);
	for (int t = 0; t < 100 && done < 50; t++) {
		run_for(fx->base, 20);
		done = 0;
		for (size_t i = 0; i < 50; i++)
			done += g[i].calls;
	}
	assert_int_equal(done, 50);
	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].status, DNS_OK);
	}
	assert_int_equal(queries_seen("", "c2.test", "MX"), 1);
	dns_get_stats(fx->dns, &st);
	assert_int_equal(st.coalesced, 49);
}

/* The cache is bounded: the least recently used answer goes. */
static void test_cache_bound(void **state)
{
	struct fixture *fx = *state;
	struct got g = {0};
	struct dns_stats st;
	const char *error;
	struct dns_options o = {.timeout_ms = 2000, .tries = 1, .cache_max = 2};

	dns_free(&fx->dns);
	fx->dns = dns_new_with(fx->base, srv.resolver, &o, &error);
	assert_non_null(fx->dns);
	unsigned before = queries_seen("", "c1.test", "MX");
	lookup_mx(fx, "c1.test", &g);
	lookup_mx(fx, "c2.test", &g);
	lookup_mx(fx, "c1.test", &g); /* c1 is now the most recent */
	assert_true(g.cached);
	lookup_mx(fx, "c3.test", &g); /* c2 goes */
	dns_get_stats(fx->dns, &st);
	assert_int_equal(st.cached, 2);
	lookup_mx(fx, "c1.test", &g);
	assert_true(g.cached);
	lookup_mx(fx, "c2.test", &g);
	assert_false(g.cached);
	assert_int_equal(queries_seen("", "c1.test", "MX"), before + 1);

	/* no_cache: nothing kept */
	dns_free(&fx->dns);
	o.no_cache = true;
	fx->dns = dns_new_with(fx->base, srv.resolver, &o, &error);
	lookup_mx(fx, "c1.test", &g);
	lookup_mx(fx, "c1.test", &g);
	assert_false(g.cached);
	dns_get_stats(fx->dns, &st);
	assert_int_equal(st.cached, 0);
	assert_int_equal(st.queries, 2);
}

/* ------------------------------------------------------------------ */
/* Cancelling and freeing */

static void test_cancel(void **state)
{
	struct fixture *fx = *state;
	struct got a = {0}, b = {0}, c = {0};
	struct dns_stats st;

	/* The requester goes away while the (slow) question is in flight. */
	a.q = dns_lookup_mx(fx->dns, "slow.test", got_cb, &a);
	b.q = dns_lookup_mx(fx->dns, "slow.test", got_cb, &b);
	dns_cancel(&a.q);
	assert_null(a.q);
	dns_cancel(&a.q); /* NULL is ignored */
	assert_true(run_until(fx->base, &b.calls, 1, LOOP_LIMIT_MS));
	run_for(fx->base, 50);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.status, DNS_OK);

	/* The answer was still cached. */
	lookup_mx(fx, "slow.test", &c);
	assert_true(c.cached);

	/* Cancel an answer that is ready but not yet delivered. */
	a.q = dns_lookup_mx(fx->dns, "slow.test", got_cb, &a);
	dns_cancel(&a.q);
	run_for(fx->base, 50);
	assert_int_equal(a.calls, 0);

	/* Cancel an address look-up (two questions in flight). */
	a.q = dns_lookup_addr(fx->dns, "slow.test", got_cb, &a);
	dns_cancel(&a.q);
	run_for(fx->base, 500);
	assert_int_equal(a.calls, 0);
	dns_get_stats(fx->dns, &st);
	assert_true(st.queries >= 3);
}

/* dns_free with questions in flight and answers ready: no callback. */
static void test_free_in_flight(void **state)
{
	struct fixture *fx = *state;
	struct got a = {0}, b = {0}, c = {0};

	lookup_mx(fx, "c3.test", &c);
	a.q = dns_lookup_mx(fx->dns, "slow2.test", got_cb, &a);
	b.q = dns_lookup_addr(fx->dns, "timeout.test", got_cb, &b);
	c.q = dns_lookup_mx(fx->dns, "c3.test", got_cb, &c); /* ready: cached */
	dns_free(&fx->dns);
	assert_null(fx->dns);
	run_for(fx->base, 400);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 1);
}

/* A callback frees the resolver: later callbacks do not run. */
static void test_free_from_callback(void **state)
{
	struct fixture *fx = *state;
	struct got a = {0}, b = {0}, c = {0};

	lookup_mx(fx, "c3.test", &c);
	lookup_mx(fx, "c2.test", &c);
	a.free_dns = &fx->dns;
	a.q = dns_lookup_mx(fx->dns, "c3.test", got_cb, &a);
	b.q = dns_lookup_mx(fx->dns, "c2.test", got_cb, &b);
	assert_true(run_until(fx->base, &a.calls, 1, LOOP_LIMIT_MS));
	assert_null(fx->dns);
	run_for(fx->base, 50);
	assert_int_equal(b.calls, 0);
}

/* ------------------------------------------------------------------ */
/* Routes through real look-ups */

struct route_got {
	int calls;
	struct dns_route route;
	struct dns_route_query *rq;
};

static void route_cb(void *arg, const struct dns_route *route)
{
	struct route_got *g = arg;
	g->calls++;
	g->rq = NULL;
	g->route = *route;
}

static uint32_t zero_random(void *arg)
{
	return 0;
}

static struct dns_route_policy route_policy(bool allow_loopback)
{
	struct dns_route_policy p = {
	    .our_hostname = "relay.test",
	    .allow_loopback_mx = allow_loopback,
	    .port = 2525,
	    .random = zero_random,
	};
	return p;
}

static void route(struct fixture *fx, const struct dns_route_policy *p, const char *domain,
                  struct route_got *g)
{
	int before = g->calls;
	g->rq = dns_route_start(fx->dns, p, domain, route_cb, g);
	assert_non_null(g->rq);
	assert_int_equal(g->calls, before);
	assert_true(run_until(fx->base, &g->calls, before + 1, LOOP_LIMIT_MS));
	assert_null(g->rq);
}

static void test_route(void **state)
{
	struct fixture *fx = *state;
	struct dns_route_policy p = route_policy(true);
	struct route_got g = {0};
	char buf[INET6_ADDRSTRLEN];
	static const char *const want[][2] = {{"mx1.example.test", "::1"},
	                                      {"mx1.example.test", "127.0.0.2"},
	                                      {"mx2.example.test", "127.0.0.3"},
	                                      {"mx2.example.test", "127.0.0.4"}};

	route(fx, &p, "example.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_OK);
	assert_int_equal(g.route.n_targets, 4);
	for (size_t i = 0; i < 4; i++) {
		const struct dns_route_target *t = &g.route.targets[i];
		assert_string_equal(t->host, want[i][0]);
		const struct sockaddr_storage *ss = &t->addr;
		const void *a = ss->ss_family == AF_INET6
		                    ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
		                    : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
		assert_string_equal(inet_ntop(ss->ss_family, a, buf, sizeof(buf)), want[i][1]);
		in_port_t port = ss->ss_family == AF_INET6
		                     ? ((const struct sockaddr_in6 *)ss)->sin6_port
		                     : ((const struct sockaddr_in *)ss)->sin_port;
		assert_int_equal(ntohs(port), 2525);
	}

	/* implicit MX */
	route(fx, &p, "nomx.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_OK);
	assert_true(g.route.implicit_mx);
	assert_int_equal(g.route.n_targets, 1);
	assert_string_equal(g.route.targets[0].host, "nomx.test");

	/* Loopback is refused unless allowed. */
	struct dns_route_policy strict = route_policy(false);
	route(fx, &strict, "example.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_PERMFAIL);
	assert_string_equal(g.route.code, "5.4.4");
}

static void test_route_failures(void **state)
{
	struct fixture *fx = *state;
	struct dns_route_policy p = route_policy(true);
	struct route_got g = {0};

	/* RFC 7505: refused at once, without looking up any address. */
	route(fx, &p, "nullmx.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_PERMFAIL);
	assert_string_equal(g.route.code, "5.1.10");
	assert_int_equal(queries_seen("", ".", "A"), 0);
	assert_int_equal(queries_seen("", ".", "AAAA"), 0);

	route(fx, &p, "nosuch.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_PERMFAIL);
	assert_string_equal(g.route.code, "5.1.2");

	route(fx, &p, "servfail.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_TEMPFAIL);
	assert_string_equal(g.route.code, "4.4.3");

	route(fx, &p, "loop.test", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_PERMFAIL);
	assert_string_equal(g.route.code, "5.4.6");
	assert_int_equal(queries_seen("", "relay.test", "A"), 0);

	route(fx, &p, "bad..name", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_PERMFAIL);
	assert_string_equal(g.route.code, "5.1.2");

	route(fx, &p, "[127.0.0.1]", &g);
	assert_int_equal(g.route.status, DNS_ROUTE_OK);
	assert_int_equal(g.route.n_targets, 1);
}

static void test_route_cancel(void **state)
{
	struct fixture *fx = *state;
	struct dns_route_policy p = route_policy(true);
	struct route_got a = {0}, b = {0}, c = {0};

	a.rq = dns_route_start(fx->dns, &p, "slow2.test", route_cb, &a); /* in the MX step */
	b.rq = dns_route_start(fx->dns, &p, "[127.0.0.1]", route_cb, &b);
	dns_route_cancel(&a.rq);
	dns_route_cancel(&b.rq);
	assert_null(a.rq);
	dns_route_cancel(&a.rq);
	run_for(fx->base, 500);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);

	/* In flight when the resolver goes: freed with the route. */
	c.rq = dns_route_start(fx->dns, &p, "timeout.test", route_cb, &c);
	run_for(fx->base, 20);
	dns_route_cancel(&c.rq);
	assert_int_equal(c.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_addr_both_families, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_addr_partial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_mx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_negative, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_servfail_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_badname, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_over_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ipv6_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_syntax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_hit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ttl_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_route, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_route_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_route_cancel, setup, teardown),
	};
	return cmocka_run_group_tests(tests, start_server, end_server);
}
