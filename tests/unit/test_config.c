/* SPDX-License-Identifier: ISC */
/*
 * test_config.c - unit tests for config.c (SPEC.md "Configuration"): the
 * complete example of SPEC.md and a file that sets every key, the defaults
 * of absent keys, each value parser (durations, sizes, rates, booleans,
 * addresses, networks) with its bounds, the "name:LINE: problem" errors
 * for every kind of mistake (several reported together), the line length
 * limit at CONFIG_LINE_MAX and one past, NUL bytes, the limits on
 * listeners, addresses and trusted networks at the limit and one past,
 * config_is_trusted with IPv4, IPv6 and IPv4-mapped IPv6 clients, and
 * reference counting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/util.h"

#define NAME "t.conf"

/* A listener without TLS, so that a file needs no [tls] section. */
#define LISTENER "[listener a]\nlisten = 127.0.0.1:2525\ntls = none\n"

/* Heap blocks a test made, freed by the teardown even when an assertion
 * ended the test early (so that a failing test reports its failure and
 * not a leak as well). */
static void *tracked[64];
static size_t n_tracked;

static void *track(void *p)
{
	assert_true(n_tracked < ARRAY_SIZE(tracked));
	tracked[n_tracked++] = p;
	return p;
}

static int free_tracked(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_tracked; i++)
		free(tracked[i]);
	n_tracked = 0;
	return 0;
}

/* load_ok - a configuration that must load; fails the test with the
 * errors otherwise. */
static struct config *load_ok(const char *text)
{
	char *errors = (char *)"untouched";
	struct config *c = config_load_string(NAME, text, &errors);
	if (c == NULL)
		fail_msg("did not load:\n%s", errors ? (char *)track(errors) : "(no errors)");
	assert_null(errors);
	assert_int_equal(c->refs, 1);
	assert_string_equal(c->path, NAME);
	return c;
}

/* load_err - a configuration that must fail; returns its error text
 * (freed by the teardown). */
static char *load_err(const char *text)
{
	char *errors = NULL;
	struct config *c = config_load_string(NAME, text, &errors);
	if (c != NULL) {
		config_unref(&c);
		fail_msg("loaded, but should not have:\n%s", text);
	}
	assert_non_null(errors);
	track(errors);
	assert_true(strlen(errors) > 0);
	assert_int_equal(errors[strlen(errors) - 1], '\n');
	return errors;
}

/* expect_error - text fails with exactly the one error line want. */
static void expect_error(const char *text, const char *want)
{
	char *e = load_err(text);
	if (strcmp(e, want) != 0)
		fail_msg("for:\n%s\ngot:  %swant: %s", text, e, want);
}

/* expect_error_at - text fails with one error line that starts with
 * "t.conf:LINE: " and contains what. */
static void expect_error_at(const char *text, int line, const char *what)
{
	char *e = load_err(text);
	char prefix[64];
	snprintf(prefix, sizeof(prefix), NAME ":%d: ", line);
	if (strncmp(e, prefix, strlen(prefix)) != 0 || strstr(e, what) == NULL ||
	    strchr(e, '\n') != e + strlen(e) - 1)
		fail_msg("for:\n%s\ngot:  %swant: %s...%s...", text, e, prefix, what);
}

/* --- value parsers ------------------------------------------------------- */

static void test_parse_duration(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		unsigned want;
	} ok[] = {
	    {"0", 0},
	    {"30", 30},
	    {"30s", 30},
	    {"5m", 300},
	    {"4h", 14400},
	    {"5d", 432000},
	    {"1d", 86400},
	    {"007m", 420},
	    {"4294967295", 4294967295u},
	    {"4294967295s", 4294967295u},
	    {"49710d", 4294944000u},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		unsigned v = 12345;
		const char *e = NULL;
		if (config_parse_duration(ok[i].in, &v, &e) != 0)
			fail_msg("'%s' refused: %s", ok[i].in, e);
		assert_int_equal(v, ok[i].want);
	}
	static const char *const bad[] = {
	    "",     "s",   "m",   "5x",         "5M",     "5H",
	    "5D",   "-5",  "+5",  "5 m",        " 5m",    "5m ",
	    "1.5h", "5ms", "5mm", "4294967296", "49711d", "99999999999999999999999s",
	    "0x10", "1e3",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		unsigned v = 12345;
		const char *e = NULL;
		if (config_parse_duration(bad[i], &v, &e) != -1)
			fail_msg("'%s' accepted as %u", bad[i], v);
		assert_string_equal(e, "expected a duration such as 30s, 5m, 4h or 5d");
		assert_int_equal(v, 12345);
	}
}

static void test_parse_size(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t want;
	} ok[] = {
	    {"0", 0},
	    {"1024", 1024},
	    {"512K", 524288},
	    {"512k", 524288},
	    {"50M", 52428800},
	    {"50m", 52428800},
	    {"1G", 1073741824},
	    {"1g", 1073741824},
	    {"18446744073709551615", UINT64_MAX},
	    {"17179869183G", UINT64_C(17179869183) << 30},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = 12345;
		const char *e = NULL;
		if (config_parse_size(ok[i].in, &v, &e) != 0)
			fail_msg("'%s' refused: %s", ok[i].in, e);
		assert_int_equal(v, ok[i].want);
	}
	static const char *const bad[] = {
	    "",
	    "K",
	    "M",
	    "1T",
	    "1KB",
	    "1.5M",
	    "-1",
	    "+1",
	    " 1M",
	    "1M ",
	    "1 M",
	    "18446744073709551616",
	    "17179869184G",
	    "0x10",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 12345;
		const char *e = NULL;
		if (config_parse_size(bad[i], &v, &e) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_string_equal(e, "expected a size such as 512K, 50M or 1G");
		assert_int_equal(v, 12345);
	}
}

static void test_parse_rate(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		unsigned count, seconds;
	} ok[] = {
	    {"500/1h", 500, 3600}, {"5/10m", 5, 600}, {"2000/1d", 2000, 86400},
	    {"0/1h", 0, 3600},     {"1/1", 1, 1},     {"4294967295/1s", 4294967295u, 1},
	    {"10/30s", 10, 30},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		struct config_rate r = {7, 7};
		const char *e = NULL;
		if (config_parse_rate(ok[i].in, &r, &e) != 0)
			fail_msg("'%s' refused: %s", ok[i].in, e);
		assert_int_equal(r.count, ok[i].count);
		assert_int_equal(r.seconds, ok[i].seconds);
	}
	static const char *const bad[] = {
	    "",     "5",      "/1h",           "5/",    "5/0",   "5/0s",   "a/1h", "-1/1h",
	    "5/1x", "5/1h/2", "4294967296/1h", "5 /1h", "5/ 1h", "1.5/1h",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct config_rate r = {7, 7};
		const char *e = NULL;
		if (config_parse_rate(bad[i], &r, &e) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_string_equal(e, "expected a rate COUNT/DURATION such as 500/1h");
		assert_int_equal(r.count, 7);
		assert_int_equal(r.seconds, 7);
	}
}

static void test_parse_bool(void **state)
{
	(void)state;
	static const char *const yes[] = {"yes", "true", "on", "1", "YES", "True", "ON"};
	static const char *const no[] = {"no", "false", "off", "0", "NO", "False", "Off"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		bool v = false;
		const char *e = NULL;
		assert_int_equal(config_parse_bool(yes[i], &v, &e), 0);
		assert_true(v);
		v = true;
		assert_int_equal(config_parse_bool(no[i], &v, &e), 0);
		assert_false(v);
	}
	static const char *const bad[] = {"", "y", "n", "2", "yess", "enable", " yes", "yes "};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		bool v = true;
		const char *e = NULL;
		assert_int_equal(config_parse_bool(bad[i], &v, &e), -1);
		assert_string_equal(e, "expected yes or no");
		assert_true(v);
	}
}

static void test_parse_addr(void **state)
{
	(void)state;
	struct config_addr a;
	const char *e = NULL;
	assert_int_equal(config_parse_addr("0.0.0.0:587", &a, &e), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_string_equal(a.text, "0.0.0.0:587");
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
	assert_int_equal(ntohs(sin->sin_port), 587);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));

	assert_int_equal(config_parse_addr("192.0.2.1:65535", &a, &e), 0);
	sin = (const struct sockaddr_in *)&a.ss;
	assert_int_equal(ntohs(sin->sin_port), 65535);
	assert_int_equal(sin->sin_addr.s_addr, htonl(0xc0000201));
	assert_string_equal(a.text, "192.0.2.1:65535");

	assert_int_equal(config_parse_addr("127.0.0.1:1", &a, &e), 0);
	assert_string_equal(a.text, "127.0.0.1:1");

	assert_int_equal(config_parse_addr("[::1]:2525", &a, &e), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));
	assert_string_equal(a.text, "[::1]:2525");
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;
	assert_int_equal(ntohs(sin6->sin6_port), 2525);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

	assert_int_equal(config_parse_addr("[2001:db8::25]:587", &a, &e), 0);
	sin6 = (const struct sockaddr_in6 *)&a.ss;
	static const unsigned char want6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
	                                        0,    0,    0,    0,    0, 0, 0, 0x25};
	assert_memory_equal(&sin6->sin6_addr, want6, 16);
	assert_string_equal(a.text, "[2001:db8::25]:587");

	assert_int_equal(config_parse_addr("[::]:587", &a, &e), 0);
	assert_string_equal(a.text, "[::]:587");

	static const struct {
		const char *in;
		const char *error;
	} bad[] = {
	    {"127.0.0.1:0", "port must be a number from 1 to 65535"},
	    {"127.0.0.1:65536", "port must be a number from 1 to 65535"},
	    {"127.0.0.1:", "port must be a number from 1 to 65535"},
	    {"127.0.0.1:-1", "port must be a number from 1 to 65535"},
	    {"127.0.0.1:25x", "port must be a number from 1 to 65535"},
	    {"[::1]:0", "port must be a number from 1 to 65535"},
	    {"[::1]:65536", "port must be a number from 1 to 65535"},
	    {"127.0.0.1", "expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"},
	    {"::1:25", "expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"},
	    {"2001:db8::1", "expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"},
	    {"[::1]", "expected [IPv6]:PORT"},
	    {"[::1]25", "expected [IPv6]:PORT"},
	    {"[::1", "expected [IPv6]:PORT"},
	    {":25", "missing or over-long address"},
	    {"[]:25", "missing or over-long address"},
	    {"localhost:25",
	     "not a numeric IPv4 or IPv6 address (host names are not resolved here)"},
	    {"256.0.0.1:25",
	     "not a numeric IPv4 or IPv6 address (host names are not resolved here)"},
	    {"[fe80::1%lo]:25",
	     "not a numeric IPv4 or IPv6 address (host names are not resolved here)"},
	    {"[not-v6]:25",
	     "not a numeric IPv4 or IPv6 address (host names are not resolved here)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		e = NULL;
		if (config_parse_addr(bad[i].in, &a, &e) != -1)
			fail_msg("'%s' accepted as %s", bad[i].in, a.text);
		if (strcmp(e, bad[i].error) != 0)
			fail_msg("'%s': error '%s', want '%s'", bad[i].in, e, bad[i].error);
	}
}

static void test_parse_cidr(void **state)
{
	(void)state;
	struct config_cidr c;
	const char *e = NULL;
	assert_int_equal(config_parse_cidr("127.0.0.0/8", &c, &e), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.addr, "\x7f\0\0\0", 4);
	assert_int_equal(config_parse_cidr("192.0.2.1", &c, &e), 0);
	assert_int_equal(c.prefix, 32);
	assert_memory_equal(c.addr, "\xc0\0\x02\x01", 4);
	assert_int_equal(config_parse_cidr("192.0.2.128/25", &c, &e), 0);
	assert_int_equal(c.prefix, 25);
	assert_int_equal(config_parse_cidr("0.0.0.0/0", &c, &e), 0);
	assert_int_equal(c.prefix, 0);
	assert_int_equal(config_parse_cidr("::1", &c, &e), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(config_parse_cidr("2001:db8::/32", &c, &e), 0);
	assert_int_equal(c.prefix, 32);
	assert_memory_equal(c.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_int_equal(config_parse_cidr("::/0", &c, &e), 0);
	assert_int_equal(config_parse_cidr("fe80::/10", &c, &e), 0);

	static const struct {
		const char *in;
		const char *error;
	} bad[] = {
	    /* host bits set: almost always a typo */
	    {"10.0.0.1/8", "address has bits set beyond the prefix length"},
	    {"192.0.2.64/25", "address has bits set beyond the prefix length"},
	    {"1.0.0.0/0", "address has bits set beyond the prefix length"},
	    {"2001:db8::1/32", "address has bits set beyond the prefix length"},
	    {"fec0::/9", "address has bits set beyond the prefix length"},
	    /* prefix */
	    {"10.0.0.0/33", "bad prefix length"},
	    {"::/129", "bad prefix length"},
	    {"10.0.0.0/", "bad prefix length"},
	    {"10.0.0.0/-1", "bad prefix length"},
	    {"10.0.0.0/8/8", "bad prefix length"},
	    {"10.0.0.0/8x", "bad prefix length"},
	    /* address */
	    {"", "expected a network such as 192.0.2.0/24 or 2001:db8::/32"},
	    {"/8", "expected a network such as 192.0.2.0/24 or 2001:db8::/32"},
	    {"foo/8", "expected a network such as 192.0.2.0/24 or 2001:db8::/32"},
	    {"10.0.0/8", "expected a network such as 192.0.2.0/24 or 2001:db8::/32"},
	    {"localhost", "expected a network such as 192.0.2.0/24 or 2001:db8::/32"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		e = NULL;
		if (config_parse_cidr(bad[i].in, &c, &e) != -1)
			fail_msg("'%s' accepted", bad[i].in);
		if (strcmp(e, bad[i].error) != 0)
			fail_msg("'%s': error '%s', want '%s'", bad[i].in, e, bad[i].error);
	}
}

/* --- whole files --------------------------------------------------------- */

/* SPEC.md's complete example, verbatim. */
static const char spec_example[] =
    "[server]\n"
    "hostname  = relay.example.net   ; banner, EHLO and Received: name\n"
    "state_dir = /var/lib/detour     ; queue and account database live here\n"
    "; user    = detour              ; drop root to this user after binding ports\n"
    "; trusted = 127.0.0.0/8 ::1     ; networks allowed to relay without AUTH (printers, "
    "local apps);\n"
    "                                ; absent or empty: nobody\n"
    "\n"
    "[tls]\n"
    "certificate = /etc/detour/cert.pem\n"
    "private_key = /etc/detour/key.pem\n"
    "\n"
    "[listener submission]\n"
    "listen = 0.0.0.0:587 [::]:587\n"
    "tls    = starttls               ; none | starttls | implicit\n"
    "auth   = required               ; required | optional | off\n"
    "\n"
    "[listener smtps]\n"
    "listen = 0.0.0.0:465 [::]:465\n"
    "tls    = implicit\n"
    "\n"
    "[listener alternate]\n"
    "listen = 0.0.0.0:2525 0.0.0.0:1025 0.0.0.0:8025 0.0.0.0:25\n"
    "tls    = starttls\n"
    "\n"
    "[delivery]\n"
    "; resolver  = 127.0.0.1:5353    ; DNS server(s) for MX look-ups; default: the system's\n"
    "; mx_port   = 25                ; port used on MX hosts (tests point it elsewhere)\n"
    "; smarthost = smtp.upstream.example:587   ; send everything through an upstream relay "
    "instead\n"
    "; smarthost_tls = starttls      ; starttls | implicit | none (none only without "
    "credentials)\n"
    "; smarthost_user = relay@example.net\n"
    "; smarthost_password_file = /etc/detour/upstream.password\n"
    "; smarthost_ca_file = /etc/detour/upstream-ca.pem   ; default: the system's CA store\n"
    "; retry     = 5m 10m 30m 1h 2h 4h   ; then every 4h\n"
    "; max_age   = 5d                ; then bounce\n"
    "; allow_loopback_mx = no       ; tests only: let MX hosts resolve to 127.0.0.0/8 or ::1\n"
    "\n"
    "[limits]\n"
    "; max_message_size   = 50M\n"
    "; max_recipients     = 100      ; per message\n"
    "; max_connections    = 1000     ; in all\n"
    "; max_connections_per_ip = 20\n"
    "; auth_failures      = 5/10m    ; per client address; then AUTH is refused for the "
    "window\n"
    "; account_messages   = 500/1h   ; per account; past it 450 4.7.1\n"
    "; account_recipients = 2000/1d  ; per account\n"
    "; command_timeout    = 5m       ; RFC 5321 4.5.3.2 minimums by default\n"
    "; data_timeout       = 10m\n";

static void test_spec_example(void **state)
{
	(void)state;
	struct config *c = load_ok(spec_example);
	assert_string_equal(c->hostname, "relay.example.net");
	assert_string_equal(c->state_dir, "/var/lib/detour");
	assert_null(c->user);
	assert_int_equal(c->n_trusted, 0);
	assert_string_equal(c->control_socket, "/var/lib/detour/control.sock");
	assert_string_equal(c->certificate, "/etc/detour/cert.pem");
	assert_string_equal(c->private_key, "/etc/detour/key.pem");
	assert_int_equal(c->n_listeners, 3);

	const struct config_listener *l = &c->listeners[0];
	assert_string_equal(l->name, "submission");
	assert_int_equal(l->line, 12);
	assert_int_equal(l->n_addrs, 2);
	assert_string_equal(l->addrs[0].text, "0.0.0.0:587");
	assert_string_equal(l->addrs[1].text, "[::]:587");
	assert_int_equal(l->addrs[1].ss.ss_family, AF_INET6);
	assert_int_equal(l->tls, LISTENER_TLS_STARTTLS);
	assert_int_equal(l->auth, LISTENER_AUTH_REQUIRED);
	assert_false(l->plaintext_auth);

	l = &c->listeners[1];
	assert_string_equal(l->name, "smtps");
	assert_int_equal(l->line, 17);
	assert_int_equal(l->n_addrs, 2);
	assert_string_equal(l->addrs[0].text, "0.0.0.0:465");
	assert_string_equal(l->addrs[1].text, "[::]:465");
	assert_int_equal(l->tls, LISTENER_TLS_IMPLICIT);
	assert_int_equal(l->auth, LISTENER_AUTH_REQUIRED);

	l = &c->listeners[2];
	assert_string_equal(l->name, "alternate");
	assert_int_equal(l->line, 21);
	assert_int_equal(l->n_addrs, 4);
	static const char *const alt[] = {"0.0.0.0:2525", "0.0.0.0:1025", "0.0.0.0:8025",
	                                  "0.0.0.0:25"};
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(l->addrs[i].text, alt[i]);
	assert_int_equal(l->tls, LISTENER_TLS_STARTTLS);

	/* everything under [delivery] and [limits] is commented out: defaults */
	assert_null(c->resolver);
	assert_int_equal(c->mx_port, 25);
	assert_null(c->smarthost);
	assert_int_equal(c->n_retry, 6);
	assert_int_equal(c->max_age, 5 * 86400);
	assert_int_equal(c->max_message_size, 50 * 1024 * 1024);
	config_unref(&c);
	assert_null(c);
}

static void test_every_key(void **state)
{
	(void)state;
	static const char text[] = "[server]\n"
	                           "hostname = mx1.example.net\n"
	                           "state_dir = /srv/detour\n"
	                           "user = root\n"
	                           "trusted = 127.0.0.0/8 ::1 192.0.2.128/25\n"
	                           "control_socket = /run/detour.sock\n"
	                           "shutdown_grace = 1m\n"
	                           "[tls]\n"
	                           "certificate = /etc/c.pem\n"
	                           "private_key = /etc/k.pem\n"
	                           "[listener sub-1]\n"
	                           "listen = 127.0.0.1:2587\n"
	                           "tls = STARTTLS\n"
	                           "auth = optional\n"
	                           "plaintext_auth = yes\n"
	                           "[listener plain_2.x]\n"
	                           "listen = [::1]:2525   127.0.0.2:2525\n"
	                           "tls = none\n"
	                           "auth = off\n"
	                           "plaintext_auth = no\n"
	                           "[delivery]\n"
	                           "resolver = 127.0.0.1:5353 [::1]:53\n"
	                           "mx_port = 2525\n"
	                           "smarthost = smtp.upstream.example:587\n"
	                           "smarthost_tls = implicit\n"
	                           "smarthost_user = relay@example.net\n"
	                           "smarthost_password_file = /etc/detour/upstream.password\n"
	                           "smarthost_ca_file = /etc/detour/upstream-ca.pem\n"
	                           "retry = 1m 90s 2h\n"
	                           "max_age = 2d\n"
	                           "delay_warning = 4h\n"
	                           "allow_loopback_mx = yes\n"
	                           "pause = on\n"
	                           "connect_timeout = 45s\n"
	                           "reply_timeout = 2m\n"
	                           "[limits]\n"
	                           "max_message_size = 10M\n"
	                           "max_recipients = 250\n"
	                           "max_connections = 5000\n"
	                           "max_connections_per_ip = 7\n"
	                           "max_received = 30\n"
	                           "auth_failures = 3/15m\n"
	                           "account_messages = 100/1h\n"
	                           "account_recipients = 0/1d\n"
	                           "auth_failure_delay = 250ms\n"
	                           "command_timeout = 6m\n"
	                           "data_timeout = 20m\n";
	struct config *c = load_ok(text);
	assert_string_equal(c->hostname, "mx1.example.net");
	assert_string_equal(c->state_dir, "/srv/detour");
	assert_string_equal(c->user, "root");
	assert_int_equal(c->n_trusted, 3);
	assert_int_equal(c->trusted[0].family, AF_INET);
	assert_int_equal(c->trusted[0].prefix, 8);
	assert_int_equal(c->trusted[1].family, AF_INET6);
	assert_int_equal(c->trusted[1].prefix, 128);
	assert_int_equal(c->trusted[2].prefix, 25);
	assert_string_equal(c->control_socket, "/run/detour.sock");
	assert_int_equal(c->shutdown_grace, 60);
	assert_string_equal(c->certificate, "/etc/c.pem");
	assert_string_equal(c->private_key, "/etc/k.pem");

	assert_int_equal(c->n_listeners, 2);
	assert_string_equal(c->listeners[0].name, "sub-1");
	assert_int_equal(c->listeners[0].line, 11);
	assert_int_equal(c->listeners[0].n_addrs, 1);
	assert_string_equal(c->listeners[0].addrs[0].text, "127.0.0.1:2587");
	assert_int_equal(c->listeners[0].tls, LISTENER_TLS_STARTTLS);
	assert_int_equal(c->listeners[0].auth, LISTENER_AUTH_OPTIONAL);
	assert_true(c->listeners[0].plaintext_auth);
	assert_string_equal(c->listeners[1].name, "plain_2.x");
	assert_int_equal(c->listeners[1].line, 16);
	assert_int_equal(c->listeners[1].n_addrs, 2);
	assert_string_equal(c->listeners[1].addrs[0].text, "[::1]:2525");
	assert_string_equal(c->listeners[1].addrs[1].text, "127.0.0.2:2525");
	assert_int_equal(c->listeners[1].tls, LISTENER_TLS_NONE);
	assert_int_equal(c->listeners[1].auth, LISTENER_AUTH_OFF);
	assert_false(c->listeners[1].plaintext_auth);

	assert_string_equal(c->resolver, "127.0.0.1:5353 [::1]:53");
	assert_int_equal(c->mx_port, 2525);
	assert_string_equal(c->smarthost, "smtp.upstream.example:587");
	assert_int_equal(c->smarthost_tls, SMARTHOST_TLS_IMPLICIT);
	assert_string_equal(c->smarthost_user, "relay@example.net");
	assert_string_equal(c->smarthost_password_file, "/etc/detour/upstream.password");
	assert_string_equal(c->smarthost_ca_file, "/etc/detour/upstream-ca.pem");
	assert_int_equal(c->n_retry, 3);
	assert_int_equal(c->retry[0], 60);
	assert_int_equal(c->retry[1], 90);
	assert_int_equal(c->retry[2], 7200);
	assert_int_equal(c->max_age, 2 * 86400);
	assert_int_equal(c->delay_warning, 4 * 3600);
	assert_true(c->allow_loopback_mx);
	assert_true(c->pause);
	assert_int_equal(c->connect_timeout, 45);
	assert_int_equal(c->reply_timeout, 120);

	assert_int_equal(c->max_message_size, 10 * 1024 * 1024);
	assert_int_equal(c->max_recipients, 250);
	assert_int_equal(c->max_connections, 5000);
	assert_int_equal(c->max_connections_per_ip, 7);
	assert_int_equal(c->max_received, 30);
	assert_int_equal(c->auth_failures.count, 3);
	assert_int_equal(c->auth_failures.seconds, 900);
	assert_int_equal(c->account_messages.count, 100);
	assert_int_equal(c->account_messages.seconds, 3600);
	assert_int_equal(c->account_recipients.count, 0);
	assert_int_equal(c->account_recipients.seconds, 86400);
	assert_int_equal(c->auth_failure_delay_ms, 250);
	assert_int_equal(c->command_timeout, 360);
	assert_int_equal(c->data_timeout, 1200);
	config_unref(&c);
}

static void test_defaults(void **state)
{
	(void)state;
	struct config *c = load_ok("[listener a]\nlisten = 127.0.0.1:2525\n"
	                           "[tls]\ncertificate = /c\nprivate_key = /k\n");
	char host[256];
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(c->hostname, host[0] ? host : "localhost");
	assert_string_equal(c->state_dir, CONFIG_DEFAULT_STATE_DIR);
	assert_null(c->user);
	assert_int_equal(c->n_trusted, 0);
	assert_string_equal(c->control_socket, CONFIG_DEFAULT_STATE_DIR "/control.sock");
	assert_int_equal(c->shutdown_grace, SERVER_GRACE_DEFAULT);
	/* a listener's defaults: STARTTLS, AUTH required, no AUTH before TLS */
	assert_int_equal(c->listeners[0].tls, LISTENER_TLS_STARTTLS);
	assert_int_equal(c->listeners[0].auth, LISTENER_AUTH_REQUIRED);
	assert_false(c->listeners[0].plaintext_auth);
	assert_null(c->resolver);
	assert_int_equal(c->mx_port, 25);
	assert_null(c->smarthost);
	assert_int_equal(c->smarthost_tls, SMARTHOST_TLS_STARTTLS);
	assert_null(c->smarthost_user);
	assert_null(c->smarthost_password_file);
	assert_null(c->smarthost_ca_file);
	/* SPEC.md: retry = 5m 10m 30m 1h 2h 4h, max_age = 5d */
	static const unsigned retry[] = {300, 600, 1800, 3600, 7200, 14400};
	assert_int_equal(c->n_retry, ARRAY_SIZE(retry));
	for (size_t i = 0; i < ARRAY_SIZE(retry); i++)
		assert_int_equal(c->retry[i], retry[i]);
	assert_int_equal(c->max_age, 432000);
	assert_int_equal(c->delay_warning, 0); /* off, as Postfix's delay_warning_time */
	assert_false(c->allow_loopback_mx);
	assert_false(c->pause);
	assert_int_equal(c->connect_timeout, 30);
	assert_int_equal(c->reply_timeout, 600);
	/* SPEC.md's [limits] comments */
	assert_int_equal(c->max_message_size, 50ULL * 1024 * 1024);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->max_connections, 1000);
	assert_int_equal(c->max_connections_per_ip, 20);
	assert_int_equal(c->max_received, 50);
	assert_int_equal(c->auth_failures.count, 5);
	assert_int_equal(c->auth_failures.seconds, 600);
	assert_int_equal(c->account_messages.count, 500);
	assert_int_equal(c->account_messages.seconds, 3600);
	assert_int_equal(c->account_recipients.count, 2000);
	assert_int_equal(c->account_recipients.seconds, 86400);
	assert_int_equal(c->auth_failure_delay_ms, AUTH_FAILURE_DELAY_DEFAULT_MS);
	assert_int_equal(c->command_timeout, 300);
	assert_int_equal(c->data_timeout, 600);
	/* the control socket follows state_dir */
	config_unref(&c);
	c = load_ok(LISTENER "[server]\nstate_dir = /tmp/st\n");
	assert_string_equal(c->control_socket, "/tmp/st/control.sock");
	config_unref(&c);
	/* "trusted =" empty: nobody */
	c = load_ok(LISTENER "[server]\ntrusted =\n");
	assert_int_equal(c->n_trusted, 0);
	config_unref(&c);
	/* CRLF line ends and inline comments */
	c = load_ok("[server]\r\nhostname = a.example ; the name\r\n"
	            "[listener a]\r\nlisten = 127.0.0.1:2525\r\ntls = none\r\n");
	assert_string_equal(c->hostname, "a.example");
	config_unref(&c);
}

static void test_key_bounds(void **state)
{
	(void)state;
	static const struct {
		const char *section, *key, *value;
		bool ok;
	} cases[] = {
	    {"delivery", "mx_port", "1", true},
	    {"delivery", "mx_port", "65535", true},
	    {"delivery", "mx_port", "0", false},
	    {"delivery", "mx_port", "65536", false},
	    {"delivery", "mx_port", "25a", false},
	    {"delivery", "max_age", "60", true},
	    {"delivery", "max_age", "59", false},
	    {"delivery", "max_age", "365d", true},
	    {"delivery", "max_age", "366d", false},
	    {"delivery", "delay_warning", "0", true},
	    {"delivery", "delay_warning", "365d", true},
	    {"delivery", "delay_warning", "366d", false},
	    {"delivery", "delay_warning", "4x", false},
	    {"delivery", "connect_timeout", "0", false},
	    {"delivery", "connect_timeout", "1h", true},
	    {"delivery", "connect_timeout", "3601", false},
	    {"delivery", "reply_timeout", "1", true},
	    {"delivery", "reply_timeout", "0s", false},
	    {"delivery", "retry", "0", false},
	    {"delivery", "retry", "5m 0s", false},
	    {"delivery", "retry", "5m x", false},
	    {"delivery", "retry", "4h", true},
	    {"delivery", "smarthost", "mx.example:25", true},
	    {"delivery", "smarthost", "mx.example", true},
	    {"delivery", "smarthost", "192.0.2.1:587", true},
	    {"delivery", "smarthost", "[2001:db8::1]:587", true},
	    {"delivery", "smarthost", "mx.example:0", false},
	    {"delivery", "smarthost", "mx.example:65536", false},
	    {"delivery", "smarthost", "bad host!:25", false},
	    {"delivery", "smarthost", "-mx.example", false},
	    {"delivery", "resolver", "127.0.0.1:5353 nope..:53", false},
	    {"delivery", "smarthost_tls", "none", true},
	    {"delivery", "smarthost_tls", "ssl", false},
	    {"delivery", "smarthost_ca_file", "relative/ca.pem", false},
	    {"delivery", "allow_loopback_mx", "maybe", false},
	    {"limits", "max_message_size", "1K", true},
	    {"limits", "max_message_size", "1023", false},
	    {"limits", "max_message_size", "512M", true},
	    {"limits", "max_message_size", "513M", false},
	    {"limits", "max_message_size", "1G", false},
	    {"limits", "max_recipients", "1", true},
	    {"limits", "max_recipients", "0", false},
	    {"limits", "max_recipients", "100000", true},
	    {"limits", "max_recipients", "100001", false},
	    {"limits", "max_connections", "0", false},
	    {"limits", "max_connections", "1000000", true},
	    {"limits", "max_connections", "1000001", false},
	    {"limits", "max_connections_per_ip", "0", false},
	    {"limits", "max_received", "1000", true},
	    {"limits", "max_received", "1001", false},
	    {"limits", "auth_failures", "5", false},
	    {"limits", "auth_failures", "5/0", false},
	    {"limits", "auth_failure_delay", "0", true},
	    {"limits", "auth_failure_delay", "0ms", true},
	    {"limits", "auth_failure_delay", "60000ms", true},
	    {"limits", "auth_failure_delay", "1m", true},
	    {"limits", "auth_failure_delay", "60001ms", false},
	    {"limits", "auth_failure_delay", "61s", false},
	    {"limits", "auth_failure_delay", "ms", false},
	    {"limits", "auth_failure_delay", "-1ms", false},
	    {"limits", "command_timeout", "1d", true},
	    {"limits", "command_timeout", "86401", false},
	    {"limits", "command_timeout", "0", false},
	    {"limits", "data_timeout", "1", true},
	    {"server", "shutdown_grace", "0", true},
	    {"server", "shutdown_grace", "1h", true},
	    {"server", "shutdown_grace", "3601", false},
	    {"server", "hostname", "-bad.example", false},
	    {"server", "hostname", "a..b", false},
	    {"server", "hostname", "", false},
	    {"server", "state_dir", "var/lib/detour", false},
	    {"server", "user", "no-such-user-detour-test", false},
	    {"server", "trusted", "10.0.0.1/8", false},
	    {"server", "trusted", "127.0.0.1 nonsense", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = xasprintf(LISTENER "[%s]\n%s = %s\n", cases[i].section, cases[i].key,
		                       cases[i].value);
		char *errors = NULL;
		struct config *c = config_load_string(NAME, text, &errors);
		if (cases[i].ok && c == NULL)
			fail_msg("[%s] %s = %s refused: %s", cases[i].section, cases[i].key,
			         cases[i].value, errors);
		if (!cases[i].ok) {
			if (c != NULL)
				fail_msg("[%s] %s = %s accepted", cases[i].section, cases[i].key,
				         cases[i].value);
			/* one error, on line 5, naming the key */
			char prefix[128];
			snprintf(prefix, sizeof(prefix), NAME ":5: %s: ", cases[i].key);
			if (strncmp(errors, prefix, strlen(prefix)) != 0)
				fail_msg("[%s] %s = %s: got '%s', want '%s...'", cases[i].section,
				         cases[i].key, cases[i].value, errors, prefix);
		}
		config_unref(&c);
		free(errors);
		free(text);
	}
}

static void test_error_messages(void **state)
{
	(void)state;
	/* unknown section: one error, and its keys are not reported again */
	expect_error(LISTENER "[sever]\nhostname = x.example\nfoo = 1\n",
	             NAME ":4: unknown section [sever] (expected server, tls, listener NAME, "
	                  "delivery, limits)\n");
	/* unknown key, naming its section */
	expect_error(LISTENER "[server]\nhostnme = x.example\n",
	             NAME ":5: unknown key 'hostnme' in [server]\n");
	expect_error(LISTENER "[limits]\nretry = 5m\n",
	             NAME ":5: unknown key 'retry' in [limits]\n");
	expect_error("[listener a]\nlisten = 127.0.0.1:2525\ntls = none\nhostname = x.example\n",
	             NAME ":4: unknown key 'hostname' in [listener]\n");
	/* duplicate key */
	expect_error(LISTENER "[server]\nhostname = a.example\nhostname = b.example\n",
	             NAME ":6: hostname: given twice in this section\n");
	expect_error("[listener a]\nlisten = 127.0.0.1:2525\ntls = none\nlisten = 127.0.0.1:2526\n",
	             NAME ":4: listen: given twice in this section\n");
	/* the same key in two sections of different listeners is fine */
	struct config *c = load_ok(LISTENER "[listener b]\nlisten = 127.0.0.1:2526\ntls = none\n");
	config_unref(&c);
	/* duplicate section */
	expect_error(LISTENER "[server]\nhostname = a.example\n[server]\nstate_dir = /x\n",
	             NAME ":6: section [server] appears twice\n");
	/* duplicate listener name */
	expect_error(LISTENER "[listener a]\nlisten = 127.0.0.1:2526\n",
	             NAME ":4: listener 'a' is defined twice (first at line 1)\n");
	/* listener names */
	expect_error(LISTENER "[listener]\n",
	             NAME ":4: [listener] needs a name: [listener NAME]\n");
	expect_error(LISTENER "[listener b!]\n",
	             NAME ":4: listener name 'b!': use letters, digits, '-', '_', '.'\n");
	expect_error(LISTENER "[listener b c]\n",
	             NAME ":4: listener name 'b c': use letters, digits, '-', '_', '.'\n");
	expect_error(LISTENER "[listeners]\n",
	             NAME ":4: unknown section [listeners] (expected server, tls, listener NAME, "
	                  "delivery, limits)\n");
	/* malformed section headers */
	expect_error(LISTENER "[server\nhostname = a.example\n",
	             NAME ":4: malformed section header\n");
	expect_error(LISTENER "[server] x\n", NAME ":4: malformed section header\n");
	expect_error(LISTENER "[server]]\n", NAME ":4: malformed section header\n");
	/* a comment after a header is fine */
	c = load_ok(LISTENER "[server] ; the server\nhostname = a.example\n");
	assert_string_equal(c->hostname, "a.example");
	config_unref(&c);
	/* a key before any section */
	expect_error("hostname = a.example\n" LISTENER,
	             NAME ":1: 'hostname' is outside of any section\n");
	/* a line that is not key = value */
	expect_error(LISTENER "[server]\nhostname a.example\n",
	             NAME ":5: expected 'key = value'\n");
	/* a bad value names the key and the value */
	expect_error(LISTENER "[limits]\nmax_recipients = many\n",
	             NAME ":5: max_recipients: 'many': expected a number from 1 to 100000\n");
	expect_error(LISTENER "[limits]\ncommand_timeout = 5x\n",
	             NAME ":5: command_timeout: '5x': expected a duration such as 30s, 5m, 4h "
	                  "or 5d\n");
	expect_error(LISTENER "[limits]\nauth_failures = 5\n", NAME
	             ":5: auth_failures: '5': expected a rate COUNT/DURATION such as 500/1h\n");
	expect_error(LISTENER "[limits]\nmax_message_size = 2G\n",
	             NAME ":5: max_message_size: must be between 1K and 512M\n");
	expect_error(LISTENER "[server]\nstate_dir = var/lib\n",
	             NAME ":5: state_dir: 'var/lib' is not an absolute path\n");
	expect_error("[listener a]\nlisten = 127.0.0.1:2525\ntls = maybe\n",
	             NAME ":3: tls: 'maybe': expected none, starttls or implicit\n");
	expect_error("[listener a]\nlisten = 127.0.0.1:2525\ntls = none\nauth = sometimes\n",
	             NAME ":4: auth: 'sometimes': expected required, optional or off\n");
	expect_error("[listener a]\nlisten = 127.0.0.1:2525\ntls = none\nplaintext_auth = 2\n",
	             NAME ":4: plaintext_auth: '2': expected yes or no\n");
	/* ports 0 and 65536 */
	expect_error("[listener a]\nlisten = 127.0.0.1:0\ntls = none\n",
	             NAME ":2: listen: '127.0.0.1:0': port must be a number from 1 to 65535\n");
	expect_error("[listener a]\nlisten = [::1]:65536\ntls = none\n",
	             NAME ":2: listen: '[::1]:65536': port must be a number from 1 to 65535\n");
	expect_error("[listener a]\nlisten =\ntls = none\n", NAME ":2: listen: no address given\n");
	expect_error("[listener a]\ntls = none\n",
	             NAME ":1: listener 'a' has no 'listen' addresses\n");
	/* no listener at all */
	expect_error("[server]\nhostname = a.example\n",
	             NAME ": no [listener NAME] section: detourd would accept nothing\n");
	expect_error("", NAME ": no [listener NAME] section: detourd would accept nothing\n");
}

/* The same IPv6 address written two ways is still the same address: the
 * second bind would fail at start-up instead of here, with file:line. */
static void test_same_address_other_spelling(void **state)
{
	(void)state;
	static const char *const spellings[][2] = {
	    {"[::1]:25", "[0:0::1]:25"},
	    {"[::1]:25", "[0:0:0:0:0:0:0:1]:25"},
	    {"[2001:db8::1]:587", "[2001:DB8::1]:587"},
	    {"[2001:db8::1]:587", "[2001:db8:0::1]:587"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(spellings); i++) {
		char *text = track(xasprintf("[listener a]\nlisten = %s\ntls = none\n"
		                             "[listener b]\nlisten = %s\ntls = none\n",
		                             spellings[i][0], spellings[i][1]));
		/* named at the second listener's listen line */
		expect_error_at(text, 5, "is already used by listener 'a'");
	}
}

/* Each bad retry interval gets its own reason, also after another one. */
static void test_retry_messages(void **state)
{
	(void)state;
	expect_error(LISTENER "[delivery]\nretry =\n", NAME ":5: retry: no interval given\n");
	expect_error(LISTENER "[delivery]\nretry = 0\n",
	             NAME ":5: retry: '0': must be longer than 0s\n");
	expect_error(LISTENER "[delivery]\nretry = 5q\n",
	             NAME ":5: retry: '5q': expected a duration such as 30s, 5m, 4h or 5d\n");
	expect_error(LISTENER "[delivery]\nretry = 5q 0s 1m\n",
	             NAME ":5: retry: '5q': expected a duration such as 30s, 5m, 4h or 5d\n" NAME
	                  ":5: retry: '0s': must be longer than 0s\n");
}

static void test_same_address_twice(void **state)
{
	(void)state;
	/* in two listeners: reported at the second listener's listen line */
	expect_error(LISTENER "[listener b]\nlisten = 127.0.0.2:25 127.0.0.1:2525\ntls = none\n",
	             NAME ":5: listener 'b': 127.0.0.1:2525 is already used by listener 'a'\n");
	/* in one listener */
	expect_error("[listener a]\nlisten = 127.0.0.1:25 127.0.0.1:25\ntls = none\n",
	             NAME ":2: listener 'a': 127.0.0.1:25 is already used by listener 'a'\n");
	/* the same port on different addresses is fine */
	struct config *c = load_ok("[listener a]\nlisten = 127.0.0.1:25 [::1]:25 127.0.0.2:25\n"
	                           "tls = none\n");
	assert_int_equal(c->listeners[0].n_addrs, 3);
	config_unref(&c);
}

/* The errors that involve several keys must still name a line, as SPEC.md
 * asks of every configuration error ("a message naming file, line and
 * problem"): the listener that needs TLS, the key that needs another. */
static void test_tls_listener_without_certificate(void **state)
{
	(void)state;
	/* a TLS listener (tls defaults to starttls) without [tls] */
	expect_error_at("[server]\nhostname = a.example\n"
	                "[listener a]\nlisten = 127.0.0.1:2525\n",
	                3, "certificate");
	/* [tls] with only one of its two keys */
	expect_error_at("[listener a]\nlisten = 127.0.0.1:2525\ntls = implicit\n"
	                "[tls]\ncertificate = /c.pem\n",
	                1, "private_key");
}

static void test_smarthost_user_without_password(void **state)
{
	(void)state;
	expect_error_at(LISTENER "[delivery]\nsmarthost = up.example:587\n"
	                         "smarthost_user = relay@example.net\n",
	                6, "smarthost_password_file");
}

static void test_smarthost_tls_none_with_credentials(void **state)
{
	(void)state;
	char *e = load_err(LISTENER "[delivery]\nsmarthost = up.example:587\n"
	                            "smarthost_tls = none\n"
	                            "smarthost_user = relay@example.net\n"
	                            "smarthost_password_file = /etc/pw\n");
	if (strncmp(e, NAME ":6: ", strlen(NAME ":6: ")) != 0 &&
	    strncmp(e, NAME ":7: ", strlen(NAME ":7: ")) != 0)
		fail_msg("smarthost_tls = none with credentials: got '%s', want it at line 6 "
		         "(smarthost_tls) or 7 (smarthost_user)",
		         e);
	assert_non_null(strstr(e, "none"));
}

static void test_cross_key_errors_text(void **state)
{
	(void)state;
	/* what the three messages say, whatever line they name */
	char *e = load_err("[listener a]\nlisten = 127.0.0.1:2525\n");
	assert_non_null(strstr(e, "listener 'a' uses TLS (tls = starttls or implicit), so [tls] "
	                          "needs 'certificate' and 'private_key'\n"));
	e = load_err(LISTENER "[delivery]\nsmarthost_user = u\n");
	assert_non_null(strstr(e, "smarthost_user needs smarthost_password_file\n"));
	e = load_err(LISTENER "[delivery]\nsmarthost_tls = none\nsmarthost_user = u\n"
	                      "smarthost_password_file = /p\n");
	assert_non_null(strstr(e, "smarthost_tls = none cannot be used with credentials: they "
	                          "would travel in plaintext\n"));
	/* and their absence when all is in place */
	struct config *c = load_ok("[listener a]\nlisten = 127.0.0.1:2525\ntls = implicit\n"
	                           "[tls]\ncertificate = /c\nprivate_key = /k\n"
	                           "[delivery]\nsmarthost_tls = none\nsmarthost = up.example\n");
	config_unref(&c);
}

static void test_several_errors_together(void **state)
{
	(void)state;
	char *e = load_err("[server]\n"
	                   "hostname = -bad\n"    /* 2 */
	                   "colour = blue\n"      /* 3 */
	                   "[limits]\n"           /* 4 */
	                   "max_recipients = 0\n" /* 5 */
	                   "[nope]\n"             /* 6 */
	                   "x = 1\n"              /* 7: inside the unknown section */
	                   "[listener a]\n"       /* 8 */
	                   "listen = 127.0.0.1:99999\n" /* 9 */);
	assert_string_equal(e, NAME
	                    ":2: hostname: '-bad' is not a valid host name\n" NAME
	                    ":3: unknown key 'colour' in [server]\n" NAME
	                    ":5: max_recipients: '0': expected a number from 1 to 100000\n" NAME
	                    ":6: unknown section [nope] (expected server, tls, listener NAME, "
	                    "delivery, limits)\n" NAME
	                    ":9: listen: '127.0.0.1:99999': port must be a number from 1 to "
	                    "65535\n");
}

/* line_of - "resolver = 127.0.0.1:5353 <spaces> 127.0.0.2:5353" of exactly
 * len characters, without its line end. */
static char *line_of(size_t len)
{
	static const char head[] = "resolver = 127.0.0.1:5353";
	static const char tail[] = "127.0.0.2:5353";
	char *s = xmalloc(len + 1);
	size_t h = strlen(head), t = strlen(tail);
	assert_true(len > h + t + 1);
	memcpy(s, head, h);
	memset(s + h, ' ', len - h - t);
	memcpy(s + len - t, tail, t);
	s[len] = '\0';
	return track(s);
}

static void test_line_length_limit(void **state)
{
	(void)state;
	/* exactly CONFIG_LINE_MAX characters: accepted, the value whole */
	char *line = line_of(CONFIG_LINE_MAX);
	char *text = track(xasprintf(LISTENER "[delivery]\n%s\nmx_port = 2525\n", line));
	struct config *c = load_ok(text);
	assert_string_equal(c->resolver, line + strlen("resolver = "));
	assert_int_equal(c->mx_port, 2525);
	config_unref(&c);
	/* the same as the last line, without a line end */
	text = track(xasprintf(LISTENER "[delivery]\n%s", line));
	c = load_ok(text);
	assert_string_equal(c->resolver, line + strlen("resolver = "));
	config_unref(&c);
	/* one more: refused, and the line's content is not used */
	line = line_of(CONFIG_LINE_MAX + 1);
	text = track(xasprintf(LISTENER "[delivery]\n%s\nmx_port = 2525\n", line));
	expect_error(text, NAME ":5: line longer than 1024 characters\n");
	/* far longer: still one error, and the line count stays right */
	line = line_of(10000);
	text = track(xasprintf(LISTENER "[delivery]\n%s\nmx_port = 0\n", line));
	expect_error(text, NAME ":5: line longer than 1024 characters\n" NAME
	                        ":6: mx_port: '0': expected a number from 1 to 65535\n");
	/* a comment line at the limit and past it */
	char comment[CONFIG_LINE_MAX + 2];
	memset(comment, 'c', sizeof(comment));
	comment[0] = ';';
	comment[CONFIG_LINE_MAX] = '\0';
	text = track(xasprintf(LISTENER "%s\n", comment));
	c = load_ok(text);
	config_unref(&c);
	comment[CONFIG_LINE_MAX] = 'c';
	comment[CONFIG_LINE_MAX + 1] = '\0';
	text = track(xasprintf(LISTENER "%s\n", comment));
	expect_error(text, NAME ":4: line longer than 1024 characters\n");
}

static void test_line_length_limit_crlf(void **state)
{
	(void)state;
	/* The limit is on the line's characters; the line end, LF or CRLF,
	 * is not one of them (the same file must load on either). */
	char *line = line_of(CONFIG_LINE_MAX);
	char *text = track(xasprintf("[listener a]\r\nlisten = 127.0.0.1:2525\r\ntls = none\r\n"
	                             "[delivery]\r\n%s\r\nmx_port = 2525\r\n",
	                             line));
	struct config *c = load_ok(text);
	assert_string_equal(c->resolver, line + strlen("resolver = "));
	config_unref(&c);
	line = line_of(CONFIG_LINE_MAX + 1);
	text = track(xasprintf("[listener a]\r\nlisten = 127.0.0.1:2525\r\ntls = none\r\n"
	                       "[delivery]\r\n%s\r\n",
	                       line));
	expect_error(text, NAME ":5: line longer than 1024 characters\n");
}

/* load_file_err - write data (which may hold NULs) to a temporary file and
 * load it; returns the errors (freed by the teardown), with the path in
 * path_r. */
static char *load_file_err(const void *data, size_t len, char path_r[64])
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path_r, 64, "%s/detour-conf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path_r);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	char *errors = NULL;
	struct config *c = config_load(path_r, &errors);
	unlink(path_r);
	if (c != NULL) {
		config_unref(&c);
		fail_msg("%s loaded", path_r);
	}
	assert_non_null(errors);
	return track(errors);
}

static void test_nul_byte(void **state)
{
	(void)state;
	static const char data[] = LISTENER "[server]\nhostname = a.ex\0ample\n";
	char path[64], want[256];
	char *e = load_file_err(data, sizeof(data) - 1, path);
	snprintf(want, sizeof(want), "%s:5: NUL byte in line\n", path);
	assert_string_equal(e, want);
	/* a NUL on a comment line is refused as well */
	static const char data2[] = "; comment \0 here\n" LISTENER;
	e = load_file_err(data2, sizeof(data2) - 1, path);
	snprintf(want, sizeof(want), "%s:1: NUL byte in line\n", path);
	assert_string_equal(e, want);
}

static void test_load_file(void **state)
{
	(void)state;
	/* the same text from a file gives the same result, named by path */
	char path[64];
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/detour-conf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, spec_example, strlen(spec_example)),
	                 (ssize_t)strlen(spec_example));
	close(fd);
	char *errors = NULL;
	struct config *c = config_load(path, &errors);
	assert_non_null(c);
	assert_null(errors);
	assert_string_equal(c->path, path);
	assert_int_equal(c->n_listeners, 3);
	config_unref(&c);
	unlink(path);
	/* a missing file */
	c = config_load(path, &errors);
	assert_null(c);
	char want[128];
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory\n", path);
	assert_string_equal(errors, want);
	free(errors);
}

static void test_count_limits(void **state)
{
	(void)state;
	/* CONFIG_LISTEN_ADDRS_MAX addresses in one listener, and one more */
	char buf[4096];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "[listener a]\ntls = none\nlisten =");
	for (int i = 0; i < CONFIG_LISTEN_ADDRS_MAX; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " 127.0.0.1:%d", 1000 + i);
	struct config *c = load_ok(buf);
	assert_int_equal(c->listeners[0].n_addrs, CONFIG_LISTEN_ADDRS_MAX);
	config_unref(&c);
	snprintf(buf + o, sizeof(buf) - o, " 127.0.0.1:999");
	char want[128];
	snprintf(want, sizeof(want), NAME ":3: listen: more than %d addresses\n",
	         CONFIG_LISTEN_ADDRS_MAX);
	expect_error(buf, want);

	/* CONFIG_TRUSTED_MAX networks, and one more */
	o = (size_t)snprintf(buf, sizeof(buf), LISTENER "[server]\ntrusted =");
	for (int i = 0; i < CONFIG_TRUSTED_MAX; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " 10.0.%d.0/24", i);
	c = load_ok(buf);
	assert_int_equal(c->n_trusted, CONFIG_TRUSTED_MAX);
	config_unref(&c);
	snprintf(buf + o, sizeof(buf) - o, " 10.1.0.0/16");
	snprintf(want, sizeof(want), NAME ":5: trusted: more than %d networks\n",
	         CONFIG_TRUSTED_MAX);
	expect_error(buf, want);

	/* CONFIG_LISTENERS_MAX listeners, and one more */
	char *text = xmalloc(64 * (CONFIG_LISTENERS_MAX + 2));
	o = 0;
	for (int i = 0; i < CONFIG_LISTENERS_MAX; i++)
		o += (size_t)sprintf(
		    text + o, "[listener l%d]\nlisten = 127.0.0.1:%d\ntls = none\n", i, 2000 + i);
	c = load_ok(text);
	assert_int_equal(c->n_listeners, CONFIG_LISTENERS_MAX);
	assert_string_equal(c->listeners[CONFIG_LISTENERS_MAX - 1].name, "l63");
	config_unref(&c);
	sprintf(text + o, "[listener extra]\nlisten = 127.0.0.1:1999\n");
	snprintf(want, sizeof(want), NAME ":%d: more than %d listeners\n",
	         3 * CONFIG_LISTENERS_MAX + 1, CONFIG_LISTENERS_MAX);
	expect_error(text, want);
	free(text);
}

/* --- trusted networks ---------------------------------------------------- */

static bool trusted4(const struct config *c, const char *ip)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(25)};
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return config_is_trusted(c, (const struct sockaddr *)&sin);
}

static bool trusted6(const struct config *c, const char *ip)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(25)};
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	return config_is_trusted(c, (const struct sockaddr *)&sin6);
}

static void test_is_trusted(void **state)
{
	(void)state;
	struct config *c = load_ok(LISTENER "[server]\ntrusted = 127.0.0.0/8 ::1 192.0.2.128/25 "
	                                    "2001:db8:8000::/33 198.51.100.7\n");
	assert_true(trusted4(c, "127.0.0.1"));
	assert_true(trusted4(c, "127.255.255.255"));
	assert_false(trusted4(c, "128.0.0.1"));
	assert_false(trusted4(c, "126.255.255.255"));
	assert_true(trusted4(c, "192.0.2.128"));
	assert_true(trusted4(c, "192.0.2.255"));
	assert_false(trusted4(c, "192.0.2.127"));
	assert_true(trusted4(c, "198.51.100.7"));
	assert_false(trusted4(c, "198.51.100.6"));
	assert_false(trusted4(c, "198.51.100.8"));
	assert_true(trusted6(c, "::1"));
	assert_false(trusted6(c, "::2"));
	assert_false(trusted6(c, "::"));
	assert_true(trusted6(c, "2001:db8:8000::1"));
	assert_true(trusted6(c, "2001:db8:ffff:ffff::1"));
	assert_false(trusted6(c, "2001:db8:7fff::1"));
	assert_false(trusted6(c, "2001:db9::"));
	/* IPv4-mapped IPv6 clients (a dual-stack socket) match IPv4 networks */
	assert_true(trusted6(c, "::ffff:127.0.0.1"));
	assert_true(trusted6(c, "::ffff:192.0.2.200"));
	assert_false(trusted6(c, "::ffff:192.0.2.100"));
	assert_false(trusted6(c, "::ffff:10.0.0.1"));
	/* but an IPv4 network is not an IPv6 one otherwise */
	assert_false(trusted6(c, "::127.0.0.1"));
	assert_false(trusted6(c, "64:ff9b::127.0.0.1"));
	/* other families are never trusted */
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	assert_false(config_is_trusted(c, (const struct sockaddr *)&sun));
	config_unref(&c);

	/* no trusted key: nobody, not even loopback */
	c = load_ok(LISTENER);
	assert_false(trusted4(c, "127.0.0.1"));
	assert_false(trusted6(c, "::1"));
	assert_false(trusted6(c, "::ffff:127.0.0.1"));
	config_unref(&c);

	/* everything */
	c = load_ok(LISTENER "[server]\ntrusted = 0.0.0.0/0 ::/0\n");
	assert_true(trusted4(c, "203.0.113.9"));
	assert_true(trusted6(c, "2001:db8::9"));
	assert_true(trusted6(c, "::ffff:203.0.113.9"));
	config_unref(&c);
}

static void test_ref_unref(void **state)
{
	(void)state;
	struct config *c = load_ok(LISTENER);
	struct config *r = config_ref(c);
	assert_ptr_equal(r, c);
	assert_int_equal(c->refs, 2);
	config_unref(&r);
	assert_null(r);
	/* still alive through the first reference (ASan would see a use
	 * after free otherwise) */
	assert_int_equal(c->refs, 1);
	assert_string_equal(c->listeners[0].name, "a");
	config_unref(&c);
	assert_null(c);
	config_unref(&c); /* NULL is fine */
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_parse_duration, free_tracked),
	    cmocka_unit_test_teardown(test_parse_size, free_tracked),
	    cmocka_unit_test_teardown(test_parse_rate, free_tracked),
	    cmocka_unit_test_teardown(test_parse_bool, free_tracked),
	    cmocka_unit_test_teardown(test_parse_addr, free_tracked),
	    cmocka_unit_test_teardown(test_parse_cidr, free_tracked),
	    cmocka_unit_test_teardown(test_spec_example, free_tracked),
	    cmocka_unit_test_teardown(test_every_key, free_tracked),
	    cmocka_unit_test_teardown(test_defaults, free_tracked),
	    cmocka_unit_test_teardown(test_key_bounds, free_tracked),
	    cmocka_unit_test_teardown(test_error_messages, free_tracked),
	    cmocka_unit_test_teardown(test_retry_messages, free_tracked),
	    cmocka_unit_test_teardown(test_same_address_twice, free_tracked),
	    cmocka_unit_test_teardown(test_same_address_other_spelling, free_tracked),
	    cmocka_unit_test_teardown(test_tls_listener_without_certificate, free_tracked),
	    cmocka_unit_test_teardown(test_smarthost_user_without_password, free_tracked),
	    cmocka_unit_test_teardown(test_smarthost_tls_none_with_credentials, free_tracked),
	    cmocka_unit_test_teardown(test_cross_key_errors_text, free_tracked),
	    cmocka_unit_test_teardown(test_several_errors_together, free_tracked),
	    cmocka_unit_test_teardown(test_line_length_limit, free_tracked),
	    cmocka_unit_test_teardown(test_line_length_limit_crlf, free_tracked),
	    cmocka_unit_test_teardown(test_nul_byte, free_tracked),
	    cmocka_unit_test_teardown(test_load_file, free_tracked),
	    cmocka_unit_test_teardown(test_count_limits, free_tracked),
	    cmocka_unit_test_teardown(test_is_trusted, free_tracked),
	    cmocka_unit_test_teardown(test_ref_unref, free_tracked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
