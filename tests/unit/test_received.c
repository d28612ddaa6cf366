/* SPDX-License-Identifier: ISC */
/*
 * test_received.c - unit tests for received.c: the exact text of the
 * Received: header we add (RFC 5321 4.4, with the protocol names of
 * RFC 3848 and RFC 6531), its size bound, and the counter of Received:
 * headers used for loop detection, fed whole, one byte at a time and split
 * at every position.
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

#include "server/received.h"

/* 1700000000 is Tue, 14 Nov 2023 22:13:20 UTC. */
#define WHEN ((time_t)1700000000)
#define DATE "Tue, 14 Nov 2023 22:13:20 +0000"
#define QID  "0123456789ABCDEF"

static struct received_info base_info(void)
{
	struct received_info ri = {
	    .helo = "laptop.example.org",
	    .client_addr = "192.0.2.7",
	    .hostname = "relay.example.net",
	    .qid = QID,
	    .esmtp = true,
	    .when = WHEN,
	};
	return ri;
}

static void check_format(const struct received_info *ri, const char *want)
{
	char out[2048];
	memset(out, 'Z', sizeof(out));
	size_t n = received_format(ri, out, sizeof(out));
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_format_plain_ipv4(void **state)
{
	(void)state;
	struct received_info ri = base_info();
	check_format(&ri, "Received: from laptop.example.org ([192.0.2.7])\r\n"
	                  "\tby relay.example.net (detour) with ESMTP id " QID ";\r\n"
	                  "\t" DATE "\r\n");
	ri.esmtp = false;
	check_format(&ri, "Received: from laptop.example.org ([192.0.2.7])\r\n"
	                  "\tby relay.example.net (detour) with SMTP id " QID ";\r\n"
	                  "\t" DATE "\r\n");
}

static void test_format_ipv6(void **state)
{
	(void)state;
	struct received_info ri = base_info();
	ri.client_addr = "2001:db8::1";
	check_format(&ri, "Received: from laptop.example.org ([IPv6:2001:db8::1])\r\n"
	                  "\tby relay.example.net (detour) with ESMTP id " QID ";\r\n"
	                  "\t" DATE "\r\n");
	ri.client_addr = "::1";
	check_format(&ri, "Received: from laptop.example.org ([IPv6:::1])\r\n"
	                  "\tby relay.example.net (detour) with ESMTP id " QID ";\r\n"
	                  "\t" DATE "\r\n");
}

static void test_format_tls_auth_for(void **state)
{
	(void)state;
	struct received_info ri = base_info();
	ri.tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384";
	ri.account = "alice@example.org";
	ri.authenticated = true;
	ri.for_rcpt = "bob@example.com";
	check_format(&ri, "Received: from laptop.example.org ([192.0.2.7])\r\n"
	                  "\tby relay.example.net (detour) with ESMTPSA id " QID "\r\n"
	                  "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
	                  "\t(authenticated as alice@example.org)\r\n"
	                  "\tfor <bob@example.com>;\r\n"
	                  "\t" DATE "\r\n");
	/* several recipients: no "for" clause */
	ri.for_rcpt = NULL;
	check_format(&ri, "Received: from laptop.example.org ([192.0.2.7])\r\n"
	                  "\tby relay.example.net (detour) with ESMTPSA id " QID "\r\n"
	                  "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
	                  "\t(authenticated as alice@example.org)"
	                  ";\r\n"
	                  "\t" DATE "\r\n");
	/* TLS only */
	ri.account = NULL;
	ri.authenticated = false;
	check_format(&ri, "Received: from laptop.example.org ([192.0.2.7])\r\n"
	                  "\tby relay.example.net (detour) with ESMTPS id " QID "\r\n"
	                  "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384);\r\n"
	                  "\t" DATE "\r\n");
	/* authenticated without TLS, one recipient */
	ri.tls = NULL;
	ri.account = "alice@example.org";
	ri.authenticated = true;
	ri.for_rcpt = "bob@example.com";
	check_format(&ri, "Received: from laptop.example.org ([192.0.2.7])\r\n"
	                  "\tby relay.example.net (detour) with ESMTPA id " QID "\r\n"
	                  "\t(authenticated as alice@example.org)\r\n"
	                  "\tfor <bob@example.com>;\r\n"
	                  "\t" DATE "\r\n");
}

static void test_protocol_names(void **state)
{
	(void)state;
	static const struct {
		bool esmtp, tls, auth, utf8;
		const char *name;
	} cases[] = {
	    {false, false, false, false, "SMTP"},
	    {false, true, true, true, "SMTP"}, /* HELO: nothing else applies */
	    {true, false, false, false, "ESMTP"},
	    {true, true, false, false, "ESMTPS"},
	    {true, false, true, false, "ESMTPA"},
	    {true, true, true, false, "ESMTPSA"},
	    {true, false, false, true, "UTF8SMTP"},
	    {true, true, false, true, "UTF8SMTPS"},
	    {true, false, true, true, "UTF8SMTPA"},
	    {true, true, true, true, "UTF8SMTPSA"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct received_info ri = base_info();
		ri.esmtp = cases[i].esmtp;
		ri.tls = cases[i].tls ? "TLSv1.3" : NULL;
		ri.authenticated = cases[i].auth;
		ri.account = cases[i].auth ? "a@b.c" : NULL;
		ri.smtputf8 = cases[i].utf8;
		assert_string_equal(received_protocol(&ri), cases[i].name);
		char out[1024], with[64];
		assert_true(received_format(&ri, out, sizeof(out)) > 0);
		snprintf(with, sizeof(with), " with %s id ", cases[i].name);
		assert_non_null(strstr(out, with));
	}
}

static void test_format_fits(void **state)
{
	(void)state;
	struct received_info ri = base_info();
	char full[1024];
	size_t n = received_format(&ri, full, sizeof(full));
	assert_true(n > 0);
	/* n + 1 bytes (for the NUL) fit exactly; n do not */
	char *exact = malloc(n + 1);
	assert_non_null(exact);
	assert_int_equal(received_format(&ri, exact, n + 1), n);
	assert_string_equal(exact, full);
	free(exact);
	char *small = malloc(n);
	assert_non_null(small);
	assert_int_equal(received_format(&ri, small, n), 0);
	free(small);
	char one[1];
	assert_int_equal(received_format(&ri, one, 1), 0);
	/* a long HELO (the 255-octet maximum) still fits a 1 KiB buffer */
	char helo[256];
	memset(helo, 'h', 255);
	helo[255] = '\0';
	ri.helo = helo;
	n = received_format(&ri, full, sizeof(full));
	assert_true(n > 255);
	assert_int_equal(strlen(full), n);
	assert_non_null(strstr(full, helo));
	/* the header ends with CRLF and every line but the first is folded */
	assert_int_equal(full[n - 2], '\r');
	assert_int_equal(full[n - 1], '\n');
	for (const char *p = full; (p = strstr(p, "\r\n")) != NULL && p[2] != '\0'; p += 2)
		assert_int_equal(p[2], '\t');
}

/* --- the counter ------------------------------------------------------ */

/* count - feed msg whole, one byte at a time, and split at every position;
 * all must agree. */
static unsigned count(const char *msg)
{
	size_t len = strlen(msg);
	struct received_counter rc;
	received_counter_init(&rc);
	received_counter_feed(&rc, msg, len);
	unsigned whole = rc.count;

	received_counter_init(&rc);
	for (size_t i = 0; i < len; i++)
		received_counter_feed(&rc, msg + i, 1);
	if (rc.count != whole)
		fail_msg("byte by byte: %u, whole: %u", rc.count, whole);

	for (size_t cut = 0; cut <= len; cut++) {
		received_counter_init(&rc);
		received_counter_feed(&rc, msg, cut);
		received_counter_feed(&rc, msg + cut, 0);
		received_counter_feed(&rc, msg + cut, len - cut);
		if (rc.count != whole)
			fail_msg("split at %zu: %u, whole: %u", cut, rc.count, whole);
	}
	return whole;
}

static void test_counter_basic(void **state)
{
	(void)state;
	assert_int_equal(count(""), 0);
	assert_int_equal(count("Subject: hi\r\n\r\nbody\r\n"), 0);
	assert_int_equal(count("Received: from a\r\n\r\nbody\r\n"), 1);
	assert_int_equal(count("Received: from a\r\nReceived: from b\r\n"
	                       "Subject: x\r\nReceived: from c\r\n\r\nbody\r\n"),
	                 3);
	/* the header name is case-insensitive (RFC 5322 1.2.2) */
	assert_int_equal(count("RECEIVED: a\r\nreceived: b\r\nReCeIvEd: c\r\n\r\n"), 3);
	/* LF-only line ends count the same */
	assert_int_equal(count("Received: a\nReceived: b\n\nReceived: body\n"), 2);
	/* a header that is only the name */
	assert_int_equal(count("Received:\r\n\r\n"), 1);
}

static void test_counter_not_counted(void **state)
{
	(void)state;
	/* other header names that contain or resemble it */
	assert_int_equal(count("X-Received: by 10.0.0.1\r\n\r\n"), 0);
	assert_int_equal(count("ARC-Received: x\r\n\r\n"), 0);
	assert_int_equal(count("Received-SPF: pass\r\n\r\n"), 0);
	assert_int_equal(count("Receive: x\r\n\r\n"), 0);
	assert_int_equal(count("Receivedx: x\r\n\r\n"), 0);
	/* a folded continuation line is part of the previous header */
	assert_int_equal(count("Subject: one\r\n Received: two\r\n\tReceived: three\r\n\r\n"), 0);
	assert_int_equal(count("Received: from a\r\n by b; Received: c\r\n\r\n"), 1);
	/* in the middle of a line */
	assert_int_equal(count("Subject: Received: x\r\n\r\n"), 0);
}

static void test_counter_stops_at_body(void **state)
{
	(void)state;
	/* everything after the first empty line is body */
	assert_int_equal(count("Subject: x\r\n\r\nReceived: a\r\nReceived: b\r\n"), 0);
	assert_int_equal(count("\r\nReceived: a\r\n"), 0);
	assert_int_equal(count("\nReceived: a\n"), 0);
	assert_int_equal(count("Received: a\r\n\r\n\r\nReceived: b\r\n"), 1);
	struct received_counter rc;
	received_counter_init(&rc);
	received_counter_feed(&rc, "Received: a\r\n\r\n", 15);
	assert_true(rc.done);
	assert_int_equal(rc.count, 1);
	received_counter_feed(&rc, "Received: b\r\n", 13);
	assert_int_equal(rc.count, 1);
	/* without an empty line, all of it is header section */
	received_counter_init(&rc);
	received_counter_feed(&rc, "Received: a\r\nReceived: b", 24);
	assert_false(rc.done);
	assert_int_equal(rc.count, 2);
}

static void test_counter_many(void **state)
{
	(void)state;
	/* 60 of them, as a mail loop would pile up, fed in odd pieces */
	static char msg[60 * 40 + 64];
	size_t len = 0;
	for (int i = 0; i < 60; i++)
		len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s: from hop%d by x\r\n",
		                        i % 2 ? "Received" : "received", i);
	len += (size_t)snprintf(msg + len, sizeof(msg) - len, "\r\nReceived: no\r\n");
	assert_int_equal(count(msg), 60);
	struct received_counter rc;
	received_counter_init(&rc);
	for (size_t off = 0, step = 1; off < len; off += step, step = step % 7 + 1)
		received_counter_feed(&rc, msg + off, off + step <= len ? step : len - off);
	assert_int_equal(rc.count, 60);
	assert_true(rc.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_plain_ipv4),
	    cmocka_unit_test(test_format_ipv6),
	    cmocka_unit_test(test_format_tls_auth_for),
	    cmocka_unit_test(test_protocol_names),
	    cmocka_unit_test(test_format_fits),
	    cmocka_unit_test(test_counter_basic),
	    cmocka_unit_test(test_counter_not_counted),
	    cmocka_unit_test(test_counter_stops_at_body),
	    cmocka_unit_test(test_counter_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
