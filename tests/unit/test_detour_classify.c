/* SPDX-License-Identifier: ISC */
/*
 * test_detour_classify.c - unit tests for the rules of `detour probe`
 * (src/cmd/detour/classify.c): each sign of blocking and interception on
 * its own, the whole network of the integration tests in pure form, and
 * --repeat's "throttled".
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

#include "cmd/detour/classify.c"
#include "cmd/detour/common.c"
#include "cmd/detour/tlsinfo.c"

#define HOST "relay.example.net"
#define FP_A                                                                                       \
	"AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:"  \
	"AA:AA:AA"
#define FP_B                                                                                       \
	"BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:"  \
	"BB:BB:BB"

static struct probe_obs refused(unsigned port)
{
	struct probe_obs o = {.port = port, .connect = PROBE_CONNECT_REFUSED};
	return o;
}

static struct probe_obs dropped(unsigned port)
{
	struct probe_obs o = {.port = port, .connect = PROBE_CONNECT_TIMEOUT};
	return o;
}

/* genuine - the relay itself, STARTTLS with a verified certificate. */
static struct probe_obs genuine(unsigned port, const char *fp)
{
	struct probe_obs o = {.port = port, .connect = PROBE_CONNECT_OK, .greeting_code = 220};
	str_copy(o.greeting, HOST " ESMTP detour", sizeof(o.greeting));
	str_copy(o.ehlo, HOST " greets you", sizeof(o.ehlo));
	str_copy(o.keywords, "PIPELINING\nSIZE 52428800\nSTARTTLS\nENHANCEDSTATUSCODES",
	         sizeof(o.keywords));
	str_copy(o.tls_ehlo, HOST " greets you", sizeof(o.tls_ehlo));
	o.starttls_offered = true;
	o.tls_mode = PROBE_TLS_STARTTLS;
	o.tls.up = true;
	str_copy(o.tls.version, "TLSv1.3", sizeof(o.tls.version));
	o.tls.has_cert = true;
	str_copy(o.tls.names, HOST, sizeof(o.tls.names));
	str_copy(o.tls.sha256, fp, sizeof(o.tls.sha256));
	o.tls.chain_ok = true;
	o.tls.name_ok = true;
	str_copy(o.auth, "PLAIN LOGIN", sizeof(o.auth));
	return o;
}

static struct probe_obs implicit(unsigned port, const char *fp)
{
	struct probe_obs o = genuine(port, fp);
	o.implicit_expected = true;
	o.tls_mode = PROBE_TLS_IMPLICIT;
	o.starttls_offered = false;
	str_copy(o.keywords, "PIPELINING\nAUTH PLAIN LOGIN", sizeof(o.keywords));
	o.tls_ehlo[0] = '\0';
	return o;
}

/* impostor - another server: its own name, no STARTTLS, AUTH in clear. */
static struct probe_obs impostor(unsigned port)
{
	struct probe_obs o = {.port = port, .connect = PROBE_CONNECT_OK, .greeting_code = 220};
	str_copy(o.greeting, "mx.provider.example ESMTP Postfix", sizeof(o.greeting));
	str_copy(o.ehlo, "mx.provider.example", sizeof(o.ehlo));
	str_copy(o.keywords, "PIPELINING\nAUTH PLAIN LOGIN\n8BITMIME", sizeof(o.keywords));
	str_copy(o.auth, "PLAIN LOGIN", sizeof(o.auth));
	return o;
}

/* masked - Cisco's "fixup smtp" in front of the relay. */
static struct probe_obs masked(unsigned port)
{
	struct probe_obs o = {.port = port, .connect = PROBE_CONNECT_OK, .greeting_code = 220};
	str_copy(o.greeting, "****************************************0*0*0*2******0*0*00",
	         sizeof(o.greeting));
	str_copy(o.ehlo, HOST " greets you", sizeof(o.ehlo));
	str_copy(o.keywords, "PIPELINING\nXXXXXXXB\nXXXXXXXA\nENHANCEDSTATUSCODES",
	         sizeof(o.keywords));
	return o;
}

static void classify(const char *host, struct probe_obs *obs, size_t n, struct probe_verdict *v)
{
	classify_ports(host, 10, obs, n, v);
}

static void expect(const struct probe_verdict *v, enum probe_result r, bool usable,
                   const char *needle)
{
	if (v->result != r || v->usable != usable ||
	    (needle != NULL && strstr(v->detail, needle) == NULL))
		fail_msg("expected %s%s with \"%s\", got %s%s: %s", classify_result_name(r),
		         usable ? " (usable)" : "", needle ? needle : "",
		         classify_result_name(v->result), v->usable ? " (usable)" : "", v->detail);
}

static void test_masked(void **state)
{
	(void)state;
	assert_true(classify_masked("****************************************"));
	assert_true(classify_masked("****"));
	assert_true(classify_masked("***0*0*00"));
	assert_true(classify_masked("0*0*0*2******0*0*00"));
	assert_true(classify_masked("***"));
	assert_false(classify_masked("**"));
	assert_false(classify_masked("a.example ** b c d"));
	assert_false(classify_masked(HOST " ESMTP ready"));
	assert_false(classify_masked("mx.example.org ESMTP *** no UCE ***"));
	assert_false(classify_masked(""));
}

static void test_mangled_keywords(void **state)
{
	(void)state;
	char which[64];
	assert_true(
	    classify_mangled_keywords("PIPELINING\nXXXXXXXA\nSIZE 10", which, sizeof(which)));
	assert_string_equal(which, "XXXXXXXA");
	assert_true(classify_mangled_keywords("XXXXXXXB\nXXXXXXXA", which, sizeof(which)));
	assert_string_equal(which, "XXXXXXXB, XXXXXXXA");
	assert_true(classify_mangled_keywords("XXXA", which, sizeof(which)));
	assert_true(classify_mangled_keywords("XXXX", which, sizeof(which)));
	assert_true(classify_mangled_keywords("8BITMIME\n****", which, sizeof(which)));
	assert_false(classify_mangled_keywords("XXA", which, sizeof(which)));
	assert_false(
	    classify_mangled_keywords("XCLIENT NAME ADDR\nXFORWARD NAME", which, sizeof(which)));
	assert_false(
	    classify_mangled_keywords("PIPELINING\nSTARTTLS\nAUTH PLAIN", which, sizeof(which)));
	assert_false(classify_mangled_keywords("", which, sizeof(which)));
	/* what does not fit is cut, but still found */
	char small[6];
	assert_true(classify_mangled_keywords("XXXXXXXA", small, sizeof(small)));
	assert_string_equal(small, "");
}

static void test_names(void **state)
{
	(void)state;
	char name[64];
	classify_server_name("  relay.example.net. ESMTP", name, sizeof(name));
	assert_string_equal(name, "relay.example.net");
	classify_server_name("", name, sizeof(name));
	assert_string_equal(name, "");
	classify_server_name("averyveryverylongname", name, 5);
	assert_string_equal(name, "aver");

	assert_true(classify_name_related("relay.example.net", "relay.example.net"));
	assert_true(classify_name_related("RELAY.Example.NET ESMTP", "relay.example.net"));
	assert_true(classify_name_related("mx2.example.net", "relay.example.net"));
	assert_true(classify_name_related("example.net", "relay.example.net"));
	assert_false(classify_name_related("mx.provider.example", "relay.example.net"));
	assert_false(classify_name_related("relay", "relay.example.net"));
	assert_true(classify_name_related("mail.shop.co.uk", "smtp.shop.co.uk"));
	assert_false(classify_name_related("mail.other.co.uk", "smtp.shop.co.uk"));
	assert_true(classify_name_related("[192.0.2.1]", "192.0.2.1"));
	assert_true(classify_name_related("192.0.2.1", "192.0.2.1"));
	assert_true(classify_name_related("[IPv6:2001:db8::1]", "2001:db8::1"));
	assert_false(classify_name_related("[192.0.2.10]", "192.0.2.1"));
	assert_false(classify_name_related("relay.example.net", "192.0.2.1"));
}

/* The integration tests' network, in pure form. */
static void test_the_provider_network(void **state)
{
	(void)state;
	struct probe_obs obs[] = {refused(25),    dropped(465), genuine(587, FP_A),
	                          impostor(2525), masked(1025), genuine(8025, FP_A)};
	struct probe_verdict v[ARRAY_SIZE(obs)];
	classify(HOST, obs, ARRAY_SIZE(obs), v);
	expect(&v[0], PROBE_REFUSED, false, "connection refused");
	expect(&v[1], PROBE_BLOCKED, false, "no answer within 10s");
	expect(&v[2], PROBE_OK, true, "STARTTLS TLSv1.3, certificate verified; AUTH PLAIN LOGIN");
	expect(&v[3], PROBE_INTERCEPTED, false, "no STARTTLS here, but ports 587, 8025 offer it");
	expect(&v[3], PROBE_INTERCEPTED, false,
	       "the greeting names another server (mx.provider.example)");
	expect(&v[4], PROBE_INTERCEPTED, false, "the greeting is masked");
	expect(&v[4], PROBE_INTERCEPTED, false, "XXXXXXXB, XXXXXXXA");
	expect(&v[5], PROBE_OK, true, NULL);
}

static void test_certificates(void **state)
{
	(void)state;
	/* one port shows another certificate than the other two: inspected */
	struct probe_obs obs[] = {genuine(587, FP_A), genuine(2525, FP_A), genuine(8025, FP_B)};
	struct probe_verdict v[3];
	classify(HOST, obs, 3, v);
	expect(&v[0], PROBE_OK, true, NULL);
	expect(&v[1], PROBE_OK, true, NULL);
	expect(&v[2], PROBE_INTERCEPTED, false, "differs from the one on ports 587, 2525");

	/* two ports, two certificates, both fine: no majority, no verdict */
	struct probe_obs two[] = {genuine(587, FP_A), genuine(8025, FP_B)};
	classify(HOST, two, 2, v);
	expect(&v[0], PROBE_OK, true, NULL);
	expect(&v[1], PROBE_OK, true, NULL);

	/* a certificate for another name */
	struct probe_obs other[] = {genuine(587, FP_A), genuine(465, FP_B)};
	str_copy(other[1].tls.names, "mitm.provider.example", sizeof(other[1].tls.names));
	other[1].tls.name_ok = false;
	classify(HOST, other, 2, v);
	expect(&v[0], PROBE_OK, true, NULL);
	expect(&v[1], PROBE_INTERCEPTED, false,
	       "the certificate is for mitm.provider.example, not " HOST);

	/* self-signed everywhere: ok and usable, but said */
	struct probe_obs self[] = {genuine(587, FP_A), genuine(8025, FP_A)};
	for (int i = 0; i < 2; i++) {
		self[i].tls.chain_ok = false;
		str_copy(self[i].tls.chain_error, "self-signed certificate",
		         sizeof(self[i].tls.chain_error));
	}
	classify(HOST, self, 2, v);
	expect(&v[0], PROBE_OK, true, "certificate NOT trusted");
	expect(&v[0], PROBE_OK, true, "self-signed certificate");
}

static void test_tls_missing(void **state)
{
	(void)state;
	/* nobody has TLS: ok, but not usable for a password */
	struct probe_obs plain[] = {genuine(25, FP_A), genuine(587, FP_A)};
	for (int i = 0; i < 2; i++) {
		plain[i].tls.up = false;
		plain[i].starttls_offered = false;
		plain[i].tls_mode = PROBE_TLS_NONE;
		plain[i].tls_ehlo[0] = '\0';
		plain[i].tls.has_cert = false;
	}
	struct probe_verdict v[2];
	classify(HOST, plain, 2, v);
	expect(&v[0], PROBE_OK, false, "no TLS: a password would travel in clear");

	/* STARTTLS offered but broken here, working elsewhere */
	struct probe_obs broken[] = {genuine(587, FP_A), genuine(2525, FP_A)};
	broken[1].tls.up = false;
	broken[1].tls.has_cert = false;
	broken[1].tls_mode = PROBE_TLS_NONE;
	str_copy(broken[1].tls_error, "TLS handshake failed: wrong version number",
	         sizeof(broken[1].tls_error));
	classify(HOST, broken, 2, v);
	expect(&v[1], PROBE_INTERCEPTED, false, "STARTTLS is offered but the TLS handshake fails");

	/* plaintext where implicit TLS is expected */
	struct probe_obs imp[] = {genuine(587, FP_A), genuine(465, FP_A)};
	imp[1].implicit_expected = true;
	imp[1].tls.up = false;
	imp[1].tls.has_cert = false;
	imp[1].starttls_offered = false;
	imp[1].tls_mode = PROBE_TLS_NONE;
	classify(HOST, imp, 2, v);
	expect(&v[1], PROBE_INTERCEPTED, false, "a plaintext server answers where TLS is expected");

	/* implicit TLS working */
	struct probe_obs good[] = {implicit(465, FP_A), genuine(587, FP_A)};
	classify(HOST, good, 2, v);
	expect(&v[0], PROBE_OK, true, "implicit TLS TLSv1.3");
}

static void test_silent_and_refusing_servers(void **state)
{
	(void)state;
	struct probe_obs obs[] = {genuine(587, FP_A), genuine(2525, FP_A), genuine(25, FP_A)};
	/* connects, says nothing */
	memset(&obs[1], 0, sizeof(obs[1]));
	obs[1].port = 2525;
	obs[1].connect = PROBE_CONNECT_OK;
	obs[1].silent = true;
	/* an answer refusing service */
	obs[2].greeting_code = 554;
	str_copy(obs[2].greeting, HOST " no SMTP service here", sizeof(obs[2].greeting));
	obs[2].tls.up = false;
	obs[2].tls.has_cert = false;
	obs[2].tls_mode = PROBE_TLS_NONE;
	obs[2].starttls_offered = false;
	struct probe_verdict v[3];
	classify(HOST, obs, 3, v);
	expect(&v[1], PROBE_BLOCKED, false, "opens but nothing answers");
	expect(&v[2], PROBE_REFUSED, false, "the server refuses service: 554");

	struct probe_obs un = {.port = 25, .connect = PROBE_CONNECT_UNREACHABLE};
	str_copy(un.connect_error, "No route to host", sizeof(un.connect_error));
	classify(HOST, &un, 1, v);
	expect(&v[0], PROBE_REFUSED, false, "No route to host: the network turns it away");
	struct probe_obs er = {.port = 25, .connect = PROBE_CONNECT_ERROR};
	str_copy(er.connect_error, "Network is down", sizeof(er.connect_error));
	classify(HOST, &er, 1, v);
	expect(&v[0], PROBE_BLOCKED, false, "cannot connect: Network is down");
}

static void test_names_across_ports(void **state)
{
	(void)state;
	/* an address as HOST: names are compared with the verified ports' */
	struct probe_obs obs[] = {genuine(587, FP_A), impostor(25)};
	struct probe_verdict v[2];
	obs[0].tls.names[0] = '\0';
	classify("192.0.2.1", obs, 2, v);
	expect(&v[0], PROBE_OK, true, NULL);
	expect(&v[1], PROBE_INTERCEPTED, false, "than 192.0.2.1's (" HOST ")");

	/* an address as HOST, one port alone, no TLS: nothing to compare */
	struct probe_obs alone = impostor(25);
	classify("192.0.2.1", &alone, 1, v);
	expect(&v[0], PROBE_OK, false, NULL);

	/* a name as HOST, one port alone, another name: intercepted */
	classify(HOST, &alone, 1, v);
	expect(&v[0], PROBE_INTERCEPTED, false, "names another server (mx.provider.example), not");

	/* every port agrees on a name that is not HOST's (a CNAME to a
	 * hoster): the consensus is believed */
	struct probe_obs cname[] = {impostor(25), impostor(587)};
	classify(HOST, cname, 2, v);
	expect(&v[0], PROBE_OK, false, NULL);
	expect(&v[1], PROBE_OK, false, NULL);

	/* a verified certificate for HOST outweighs an odd banner */
	struct probe_obs odd = genuine(587, FP_A);
	str_copy(odd.greeting, "internal-name.local ESMTP", sizeof(odd.greeting));
	classify(HOST, &odd, 1, v);
	expect(&v[0], PROBE_OK, true, NULL);
}

static void test_repeat(void **state)
{
	(void)state;
	struct probe_verdict ok = {.result = PROBE_OK, .usable = true, .detail = "fine"};
	struct probe_verdict blocked = {.result = PROBE_BLOCKED, .detail = "no answer"};
	struct probe_verdict refused_v = {.result = PROBE_REFUSED, .detail = "refused"};
	struct probe_verdict inter = {.result = PROBE_INTERCEPTED, .detail = "masked"};
	struct probe_verdict v;

	struct probe_verdict same[] = {ok, ok, ok};
	classify_repeat(same, 3, &v);
	expect(&v, PROBE_OK, true, "fine");

	struct probe_verdict some[] = {ok, blocked, blocked};
	classify_repeat(some, 3, &v);
	expect(&v, PROBE_THROTTLED, false, "answered 1 of 3 attempts; the others were blocked");

	struct probe_verdict late[] = {refused_v, ok};
	classify_repeat(late, 2, &v);
	expect(&v, PROBE_THROTTLED, false, "answered 1 of 2");

	struct probe_verdict flaky[] = {ok, inter, ok};
	classify_repeat(flaky, 3, &v);
	expect(&v, PROBE_INTERCEPTED, false, "intercepted in 1 of 3 attempts: masked");

	struct probe_verdict never[] = {blocked, blocked};
	classify_repeat(never, 2, &v);
	expect(&v, PROBE_BLOCKED, false, "no answer");

	struct probe_verdict one[] = {ok};
	classify_repeat(one, 1, &v);
	expect(&v, PROBE_OK, true, NULL);
}

static void test_hostile_text_is_made_printable(void **state)
{
	(void)state;
	struct probe_obs o = impostor(25);
	str_copy(o.greeting, "evil\x1b[31m.example\x07 hi", sizeof(o.greeting));
	struct probe_verdict v;
	classify(HOST, &o, 1, &v);
	expect(&v, PROBE_INTERCEPTED, false, "evil?[31m.example?");
	for (const char *p = v.detail; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_masked),
	    cmocka_unit_test(test_mangled_keywords),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_the_provider_network),
	    cmocka_unit_test(test_certificates),
	    cmocka_unit_test(test_tls_missing),
	    cmocka_unit_test(test_silent_and_refusing_servers),
	    cmocka_unit_test(test_names_across_ports),
	    cmocka_unit_test(test_repeat),
	    cmocka_unit_test(test_hostile_text_is_made_printable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
