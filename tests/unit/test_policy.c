/* SPDX-License-Identifier: ISC */
/*
 * test_policy.c - unit tests for policy.c (SPEC.md "Never an open relay"):
 * the MAIL and RCPT decisions for trusted, authenticated and anonymous
 * clients under each listener auth mode, the null sender, Postmaster, and
 * which sender addresses an account may use (its own, "@domain" patterns,
 * exact patterns; local parts exact, domains case-insensitive; quoted local
 * parts that contain '@'). Addresses go through the real path parser, as
 * they do in a session.
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

#include "server/policy.h"

#define NO_REPLY ((enum smtp_reply_id) - 1)

/* path - parse "<...>" as MAIL FROM or RCPT TO would. */
static struct smtp_addr path(const char *s)
{
	struct smtp_addr a;
	size_t consumed = 0;
	enum smtp_addr_result r = smtp_addr_parse_path(
	    s, strlen(s), SMTP_ADDR_ALLOW_NULL | SMTP_ADDR_ALLOW_POSTMASTER | SMTP_ADDR_ALLOW_UTF8,
	    &a, &consumed);
	if (r != SMTP_ADDR_OK)
		fail_msg("test address %s does not parse: %d", s, (int)r);
	return a;
}

static const char *const alice_patterns[] = {"@example.org", "sales@example.com"};

static struct policy_client client(bool trusted, enum listener_auth auth, const char *account)
{
	struct policy_client c = {
	    .trusted = trusted,
	    .auth = auth,
	    .account = account,
	    .senders = account ? alice_patterns : NULL,
	    .n_senders = account ? 2 : 0,
	};
	return c;
}

/* mail - policy_mail's answer; *reply_r is NO_REPLY when it accepts. */
static bool mail(const struct policy_client *c, const char *sender, enum smtp_reply_id *reply_r)
{
	struct smtp_addr a = path(sender);
	*reply_r = NO_REPLY;
	bool ok = policy_mail(c, &a, reply_r);
	if (ok)
		assert_int_equal(*reply_r, NO_REPLY);
	return ok;
}

static bool rcpt(const struct policy_client *c, const char *to, enum smtp_reply_id *reply_r)
{
	struct smtp_addr a = path(to);
	*reply_r = NO_REPLY;
	bool ok = policy_rcpt(c, &a, reply_r);
	if (ok)
		assert_int_equal(*reply_r, NO_REPLY);
	return ok;
}

static void test_anonymous(void **state)
{
	(void)state;
	enum smtp_reply_id r;
	/* auth = required: 530 at MAIL already (RFC 4954 6) */
	struct policy_client c = client(false, LISTENER_AUTH_REQUIRED, NULL);
	assert_false(mail(&c, "<x@example.org>", &r));
	assert_int_equal(r, SMTP_R_AUTH_REQUIRED);
	assert_false(mail(&c, "<>", &r));
	assert_int_equal(r, SMTP_R_AUTH_REQUIRED);
	assert_false(rcpt(&c, "<bob@example.com>", &r));
	assert_int_equal(r, SMTP_R_AUTH_REQUIRED);
	assert_int_equal(smtp_reply_get(r)->code, 530);

	/* auth = optional and off: MAIL passes, RCPT is refused with 550 5.7.1 */
	static const enum listener_auth modes[] = {LISTENER_AUTH_OPTIONAL, LISTENER_AUTH_OFF};
	for (size_t i = 0; i < 2; i++) {
		c = client(false, modes[i], NULL);
		assert_true(mail(&c, "<x@example.org>", &r));
		assert_true(mail(&c, "<>", &r));
		assert_false(rcpt(&c, "<bob@example.com>", &r));
		assert_int_equal(r, SMTP_R_RELAY_DENIED);
		assert_int_equal(smtp_reply_get(r)->code, 550);
		assert_string_equal(smtp_reply_get(r)->enh, "5.7.1");
		assert_false(rcpt(&c, "<x@example.org>", &r));
		assert_int_equal(r, SMTP_R_RELAY_DENIED);
	}
}

static void test_trusted(void **state)
{
	(void)state;
	enum smtp_reply_id r;
	static const enum listener_auth modes[] = {LISTENER_AUTH_REQUIRED, LISTENER_AUTH_OPTIONAL,
	                                           LISTENER_AUTH_OFF};
	for (size_t i = 0; i < 3; i++) {
		struct policy_client c = client(true, modes[i], NULL);
		/* any sender, including the null sender (bounces from local MTAs) */
		assert_true(mail(&c, "<anyone@anywhere.example>", &r));
		assert_true(mail(&c, "<>", &r));
		assert_true(rcpt(&c, "<bob@example.com>", &r));
		/* trusted and authenticated: not limited to the account's senders */
		c = client(true, modes[i], "alice@example.org");
		assert_true(mail(&c, "<anyone@anywhere.example>", &r));
		assert_true(mail(&c, "<>", &r));
		assert_true(rcpt(&c, "<bob@example.com>", &r));
	}
}

static void test_authenticated(void **state)
{
	(void)state;
	enum smtp_reply_id r;
	static const enum listener_auth modes[] = {LISTENER_AUTH_REQUIRED, LISTENER_AUTH_OPTIONAL,
	                                           LISTENER_AUTH_OFF};
	for (size_t i = 0; i < 3; i++) {
		struct policy_client c = client(false, modes[i], "alice@example.org");
		assert_true(mail(&c, "<alice@example.org>", &r));
		assert_true(mail(&c, "<alice@EXAMPLE.org>", &r));
		assert_true(mail(&c, "<other@example.org>", &r)); /* @example.org */
		assert_true(mail(&c, "<sales@example.com>", &r)); /* exact pattern */
		assert_true(mail(&c, "<sales@Example.COM>", &r));
		assert_false(mail(&c, "<Sales@example.com>", &r)); /* local part exact */
		assert_int_equal(r, SMTP_R_SENDER_DENIED);
		assert_false(mail(&c, "<info@example.com>", &r));
		assert_int_equal(r, SMTP_R_SENDER_DENIED);
		assert_int_equal(smtp_reply_get(r)->code, 553);
		assert_string_equal(smtp_reply_get(r)->enh, "5.7.1");
		assert_false(mail(&c, "<x@sub.example.org>", &r)); /* not a subdomain match */
		assert_int_equal(r, SMTP_R_SENDER_DENIED);
		/* the null sender is for trusted clients only */
		assert_false(mail(&c, "<>", &r));
		assert_int_equal(r, SMTP_R_NULL_SENDER_DENIED);
		assert_int_equal(smtp_reply_get(r)->code, 553);
		/* any recipient */
		assert_true(rcpt(&c, "<bob@example.com>", &r));
		assert_true(rcpt(&c, "<carol@[192.0.2.1]>", &r));
		assert_true(rcpt(&c, "<carol@[IPv6:2001:db8::1]>", &r));
		/* a general address literal: valid syntax, nowhere to deliver */
		assert_false(rcpt(&c, "<carol@[x-tag:stuff]>", &r));
		assert_int_equal(r, SMTP_R_GENERAL_LITERAL);
		assert_int_equal(smtp_reply_get(r)->code, 553);
		assert_string_equal(smtp_reply_get(r)->enh, "5.1.3");
	}
	/* an account with no extra patterns may use only itself */
	struct policy_client c = {.auth = LISTENER_AUTH_REQUIRED, .account = "bob@example.net"};
	assert_true(mail(&c, "<bob@example.net>", &r));
	assert_false(mail(&c, "<bob2@example.net>", &r));
	assert_int_equal(r, SMTP_R_SENDER_DENIED);
}

static void test_postmaster_refused(void **state)
{
	(void)state;
	enum smtp_reply_id r;
	/* "<Postmaster>" without a domain names a local mailbox, which this
	 * relay has none of: refused for everyone, trusted or not. */
	struct policy_client cs[] = {
	    client(true, LISTENER_AUTH_OFF, NULL),
	    client(false, LISTENER_AUTH_REQUIRED, "alice@example.org"),
	    client(false, LISTENER_AUTH_OPTIONAL, NULL),
	};
	for (size_t i = 0; i < 3; i++) {
		assert_false(rcpt(&cs[i], "<Postmaster>", &r));
		assert_int_equal(r, SMTP_R_NO_MAILBOXES);
		assert_false(rcpt(&cs[i], "<POSTMASTER>", &r));
		assert_int_equal(r, SMTP_R_NO_MAILBOXES);
	}
	/* a general literal: 553 5.1.3 for those who may relay, while an
	 * untrusted client hears only that it may not relay */
	assert_false(rcpt(&cs[0], "<x@[x-tag:stuff]>", &r));
	assert_int_equal(r, SMTP_R_GENERAL_LITERAL);
	assert_false(rcpt(&cs[1], "<x@[x-tag:stuff]>", &r));
	assert_int_equal(r, SMTP_R_GENERAL_LITERAL);
	assert_false(rcpt(&cs[2], "<x@[x-tag:stuff]>", &r));
	assert_int_equal(r, SMTP_R_RELAY_DENIED);
	/* postmaster at a domain is an ordinary relay recipient */
	assert_true(rcpt(&cs[0], "<postmaster@example.com>", &r));
	assert_true(rcpt(&cs[1], "<postmaster@example.com>", &r));
	assert_false(rcpt(&cs[2], "<postmaster@example.com>", &r));
	assert_int_equal(r, SMTP_R_RELAY_DENIED);
}

static void test_sender_matches(void **state)
{
	(void)state;
	static const char *const none[] = {NULL};
	/* own address: local part exact, domain case-insensitive */
	assert_true(policy_sender_matches("alice@example.org", "alice@example.org", none, 0));
	assert_true(policy_sender_matches("alice@EXAMPLE.ORG", "alice@example.org", none, 0));
	assert_true(policy_sender_matches("alice@example.org", "alice@Example.Org", none, 0));
	assert_false(policy_sender_matches("Alice@example.org", "alice@example.org", none, 0));
	assert_false(policy_sender_matches("alice@example.org", "ALICE@example.org", none, 0));
	assert_false(policy_sender_matches("alice@example.org.evil", "alice@example.org", none, 0));
	assert_false(policy_sender_matches("alic@example.org", "alice@example.org", none, 0));
	assert_false(policy_sender_matches("alicee@example.org", "alice@example.org", none, 0));
	assert_false(policy_sender_matches("alice@example.or", "alice@example.org", none, 0));
	assert_false(policy_sender_matches("alice", "alice", none, 0)); /* no domain */
	assert_false(policy_sender_matches("", "alice@example.org", none, 0));
	assert_false(policy_sender_matches("alice@example.org", NULL, none, 0));

	/* "@domain" patterns: the whole domain, any case, nothing else */
	static const char *const dom[] = {"@Example.COM"};
	assert_true(policy_sender_matches("x@example.com", NULL, dom, 1));
	assert_true(policy_sender_matches("X.Y+z@EXAMPLE.com", NULL, dom, 1));
	assert_false(policy_sender_matches("x@sub.example.com", NULL, dom, 1));
	assert_false(policy_sender_matches("x@example.com.evil", NULL, dom, 1));
	assert_false(policy_sender_matches("x@xexample.com", NULL, dom, 1));
	assert_false(policy_sender_matches("example.com", NULL, dom, 1));

	/* exact patterns */
	static const char *const exact[] = {"a@x.example", "b@Y.example"};
	assert_true(policy_sender_matches("a@x.example", NULL, exact, 2));
	assert_true(policy_sender_matches("b@y.EXAMPLE", NULL, exact, 2));
	assert_false(policy_sender_matches("A@x.example", NULL, exact, 2));
	assert_false(policy_sender_matches("a@y.example", NULL, exact, 2));
	/* only the first n patterns count */
	assert_false(policy_sender_matches("b@y.example", NULL, exact, 1));

	/* quoted local parts may contain '@': the domain follows the last one */
	static const char *const quoted[] = {"\"a@b\"@example.net"};
	assert_true(policy_sender_matches("\"a@b\"@example.net", NULL, quoted, 1));
	assert_true(policy_sender_matches("\"a@b\"@EXAMPLE.net", NULL, quoted, 1));
	assert_false(policy_sender_matches("\"a@B\"@example.net", NULL, quoted, 1));
	assert_false(policy_sender_matches("a@b@example.net", NULL, quoted, 1));
	assert_true(policy_sender_matches("\"x@evil.example\"@example.net", NULL,
	                                  (const char *const[]){"@example.net"}, 1));
	assert_false(policy_sender_matches("\"x@example.net\"@evil.example", NULL,
	                                   (const char *const[]){"@example.net"}, 1));
	assert_true(
	    policy_sender_matches("\"me@home\"@example.org", "\"me@home\"@Example.org", none, 0));
	assert_false(policy_sender_matches("\"me@home\"@example.org", "me@home", none, 0));
}

static void test_mail_with_quoted_sender(void **state)
{
	(void)state;
	enum smtp_reply_id r;
	/* the parsed mailbox keeps its quotes, and the policy splits at the
	 * last '@': "alice@example.org"@evil.example is not alice */
	struct policy_client c = client(false, LISTENER_AUTH_REQUIRED, "alice@example.org");
	assert_false(mail(&c, "<\"alice@example.org\"@evil.example>", &r));
	assert_int_equal(r, SMTP_R_SENDER_DENIED);
	assert_true(mail(&c, "<\"any@thing\"@example.org>", &r)); /* @example.org pattern */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_anonymous),      cmocka_unit_test(test_trusted),
	    cmocka_unit_test(test_authenticated),  cmocka_unit_test(test_postmaster_refused),
	    cmocka_unit_test(test_sender_matches), cmocka_unit_test(test_mail_with_quoted_sender),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
