/* SPDX-License-Identifier: ISC */
/*
 * test_smtp_sasl.c - unit tests for smtp_sasl.c: SASL PLAIN (RFC 4616)
 * with an empty, equal or different authorization identity, missing NULs,
 * empty and over-long user names and passwords at SASL_USER_MAX and
 * SASL_PASSWORD_MAX and one past, "=" (empty response) and "*" (cancel,
 * RFC 4954 4), bad base64; and the fields of AUTH LOGIN.
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

#include "lib/base64.h"
#include "lib/limits.h"
#include "smtp/smtp_sasl.h"

#define BIG (SMTP_AUTHLINE_MAX + 16)

/* b64 - base64 of raw[0..len) in a static buffer. */
static const char *b64(const void *raw, size_t len)
{
	static char out[4 * (BIG / 3 + 2)];
	long n = base64_encode(raw, len, out, sizeof(out));
	assert_true(n >= 0);
	return out;
}

/* plain - decode the PLAIN response authzid NUL user NUL pass (lengths
 * given, so that NULs may be placed anywhere). */
static enum sasl_result plain_raw(const char *raw, size_t len, struct sasl_credentials *cred)
{
	const char *enc = b64(raw, len);
	memset(cred, 'Q', sizeof(*cred));
	return sasl_plain_decode(enc, strlen(enc), cred);
}

static enum sasl_result plain(const char *authz, const char *user, const char *pass,
                              struct sasl_credentials *cred)
{
	static char raw[BIG];
	size_t a = strlen(authz), u = strlen(user), p = strlen(pass);
	assert_true(a + u + p + 2 <= sizeof(raw));
	memcpy(raw, authz, a);
	raw[a] = '\0';
	memcpy(raw + a + 1, user, u);
	raw[a + 1 + u] = '\0';
	memcpy(raw + a + u + 2, pass, p);
	return plain_raw(raw, a + u + p + 2, cred);
}

static void test_plain_ok(void **state)
{
	(void)state;
	struct sasl_credentials c;
	/* RFC 4616 4's example, without an authorization identity */
	assert_int_equal(plain("", "tim", "tanstaaftanstaaf", &c), SASL_OK);
	assert_string_equal(c.user, "tim");
	assert_string_equal(c.password, "tanstaaftanstaaf");
	/* the same literally: "\0tim\0tanstaaftanstaaf" */
	static const char lit[] = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
	memset(&c, 'Q', sizeof(c));
	assert_int_equal(sasl_plain_decode(lit, strlen(lit), &c), SASL_OK);
	assert_string_equal(c.user, "tim");
	assert_string_equal(c.password, "tanstaaftanstaaf");
	/* an authorization identity equal to the user */
	assert_int_equal(plain("alice@example.org", "alice@example.org", "s3cret pass", &c),
	                 SASL_OK);
	assert_string_equal(c.user, "alice@example.org");
	assert_string_equal(c.password, "s3cret pass");
	/* UTF-8 passwords are bytes like any other */
	assert_int_equal(plain("", "bob", "p\xc3\xa4ss", &c), SASL_OK);
	assert_string_equal(c.password, "p\xc3\xa4ss");
}

static void test_plain_other_authzid(void **state)
{
	(void)state;
	struct sasl_credentials c;
	/* acting for another account is refused */
	assert_int_equal(plain("bob@example.org", "alice@example.org", "pw", &c), SASL_AUTHZID);
	assert_int_equal(plain("Alice@example.org", "alice@example.org", "pw", &c), SASL_AUTHZID);
	assert_int_equal(plain("alice@example.or", "alice@example.org", "pw", &c), SASL_AUTHZID);
	assert_int_equal(plain("alice@example.orgx", "alice@example.org", "pw", &c),
	                 SASL_AUTHZID);
}

static void test_plain_malformed(void **state)
{
	(void)state;
	struct sasl_credentials c;
	/* no NUL at all, one NUL only */
	assert_int_equal(plain_raw("timpassword", 11, &c), SASL_MALFORMED);
	assert_int_equal(plain_raw("tim\0password", 12, &c), SASL_MALFORMED);
	assert_int_equal(plain_raw("\0timpassword", 12, &c), SASL_MALFORMED);
	/* a third NUL: inside the password */
	assert_int_equal(plain_raw("\0tim\0pass\0word", 14, &c), SASL_MALFORMED);
	assert_int_equal(plain_raw("\0tim\0password\0", 14, &c), SASL_MALFORMED);
	/* empty user, empty password, both */
	assert_int_equal(plain("", "", "pw", &c), SASL_MALFORMED);
	assert_int_equal(plain("", "tim", "", &c), SASL_MALFORMED);
	assert_int_equal(plain("", "", "", &c), SASL_MALFORMED);
	assert_int_equal(plain_raw("\0\0", 2, &c), SASL_MALFORMED);
	/* CR or LF in any field */
	assert_int_equal(plain("", "tim\r\nRSET", "pw", &c), SASL_MALFORMED);
	assert_int_equal(plain("", "tim", "pw\n", &c), SASL_MALFORMED);
	assert_int_equal(plain("tim\r", "tim\r", "pw", &c), SASL_MALFORMED);
	/* nothing is copied out of a refused response */
	memset(&c, 'Q', sizeof(c));
	assert_int_equal(sasl_plain_decode(b64("\0tim\0", 5), 8, &c), SASL_MALFORMED);
	assert_int_equal(c.user[0], 'Q');
	assert_int_equal(c.password[0], 'Q');
}

static void test_plain_special(void **state)
{
	(void)state;
	struct sasl_credentials c;
	/* "*" cancels; "=" is an empty response, which PLAIN cannot use */
	assert_int_equal(sasl_plain_decode("*", 1, &c), SASL_CANCELLED);
	assert_int_equal(sasl_plain_decode("=", 1, &c), SASL_MALFORMED);
	/* only as the whole response */
	assert_int_equal(sasl_plain_decode("**", 2, &c), SASL_BAD_BASE64);
	assert_int_equal(sasl_plain_decode("*AAA", 4, &c), SASL_BAD_BASE64);
	/* bad base64 */
	assert_int_equal(sasl_plain_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWF", 27, &c), SASL_BAD_BASE64);
	assert_int_equal(sasl_plain_decode("AHRpbQB0YW5zdGFhZnRhbnN0YW!m", 28, &c),
	                 SASL_BAD_BASE64);
	assert_int_equal(sasl_plain_decode("AHRpbQB0 YW5zdGFhZnRhbnN0YWFm", 29, &c),
	                 SASL_BAD_BASE64);
	/* "\0a\0b" encodes as AGEAYg==; AGEAYh== has pad bits set */
	assert_int_equal(sasl_plain_decode("AGEAYg==", 8, &c), SASL_OK);
	assert_int_equal(sasl_plain_decode("AGEAYh==", 8, &c), SASL_BAD_BASE64);
	assert_int_equal(sasl_plain_decode("", 0, &c), SASL_MALFORMED);
}

static void test_plain_limits(void **state)
{
	(void)state;
	struct sasl_credentials c;
	static char user[SASL_USER_MAX + 2], pass[SASL_PASSWORD_MAX + 2];
	memset(user, 'u', sizeof(user) - 1);
	memset(pass, 'p', sizeof(pass) - 1);
	/* at the limits */
	user[SASL_USER_MAX] = '\0';
	pass[SASL_PASSWORD_MAX] = '\0';
	assert_int_equal(plain("", user, pass, &c), SASL_OK);
	assert_int_equal(strlen(c.user), SASL_USER_MAX);
	assert_int_equal(strlen(c.password), SASL_PASSWORD_MAX);
	assert_string_equal(c.user, user);
	assert_string_equal(c.password, pass);
	/* with an equal authzid, the line is longer but still fine */
	assert_int_equal(plain(user, user, pass, &c), SASL_OK);
	/* one past the user limit */
	user[SASL_USER_MAX] = 'u';
	user[SASL_USER_MAX + 1] = '\0';
	assert_int_equal(plain("", user, "pw", &c), SASL_MALFORMED);
	user[SASL_USER_MAX] = '\0';
	/* one past the password limit */
	pass[SASL_PASSWORD_MAX] = 'p';
	pass[SASL_PASSWORD_MAX + 1] = '\0';
	assert_int_equal(plain("", "tim", pass, &c), SASL_MALFORMED);
	/* an AUTH line's worth of base64 decodes; more is refused, not
	 * overflowed */
	static char huge[BIG];
	memset(huge, 'x', sizeof(huge));
	huge[0] = '\0';
	huge[5] = '\0';
	assert_int_equal(plain_raw(huge, sizeof(huge), &c), SASL_BAD_BASE64);
	assert_int_equal(plain_raw(huge, SMTP_AUTHLINE_MAX / 4 * 3, &c), SASL_MALFORMED);
}

static enum sasl_result login(const char *raw, size_t len, char *out, size_t size)
{
	const char *enc = b64(raw, len);
	return sasl_login_decode(enc, strlen(enc), out, size);
}

static void test_login(void **state)
{
	(void)state;
	char out[SASL_USER_MAX + 1];
	/* "dGlt" is "tim"; RFC 4954's example prompts are the server's side */
	memset(out, 'Q', sizeof(out));
	assert_int_equal(sasl_login_decode("dGlt", 4, out, sizeof(out)), SASL_OK);
	assert_string_equal(out, "tim");
	assert_int_equal(login("alice@example.org", 17, out, sizeof(out)), SASL_OK);
	assert_string_equal(out, "alice@example.org");
	assert_int_equal(login("pass word!", 10, out, sizeof(out)), SASL_OK);
	assert_string_equal(out, "pass word!");
	/* cancel, empty, bad base64 */
	assert_int_equal(sasl_login_decode("*", 1, out, sizeof(out)), SASL_CANCELLED);
	assert_int_equal(sasl_login_decode("=", 1, out, sizeof(out)), SASL_MALFORMED);
	assert_int_equal(sasl_login_decode("", 0, out, sizeof(out)), SASL_MALFORMED);
	assert_int_equal(sasl_login_decode("dGl", 3, out, sizeof(out)), SASL_BAD_BASE64);
	assert_int_equal(sasl_login_decode("dG!t", 4, out, sizeof(out)), SASL_BAD_BASE64);
	/* NUL, CR, LF inside a field */
	assert_int_equal(login("ti\0m", 4, out, sizeof(out)), SASL_MALFORMED);
	assert_int_equal(login("tim\r\n", 5, out, sizeof(out)), SASL_MALFORMED);
	assert_int_equal(login("\ntim", 4, out, sizeof(out)), SASL_MALFORMED);
}

static void test_login_limits(void **state)
{
	(void)state;
	/* the field must fit out with its NUL: size - 1 bytes at most */
	static char user[SASL_USER_MAX + 1], out[SASL_USER_MAX + 1];
	memset(user, 'u', sizeof(user));
	memset(out, 'Q', sizeof(out));
	assert_int_equal(login(user, SASL_USER_MAX, out, SASL_USER_MAX + 1), SASL_OK);
	assert_int_equal(strlen(out), SASL_USER_MAX);
	memset(out, 'Q', sizeof(out));
	assert_int_equal(login(user, SASL_USER_MAX + 1, out, SASL_USER_MAX + 1), SASL_MALFORMED);
	assert_int_equal(out[0], 'Q');
	static char pass[SASL_PASSWORD_MAX + 1], pout[SASL_PASSWORD_MAX + 1];
	memset(pass, 'p', sizeof(pass));
	assert_int_equal(login(pass, SASL_PASSWORD_MAX, pout, sizeof(pout)), SASL_OK);
	assert_int_equal(strlen(pout), SASL_PASSWORD_MAX);
	assert_int_equal(login(pass, SASL_PASSWORD_MAX + 1, pout, sizeof(pout)), SASL_MALFORMED);
	/* a tiny buffer */
	char two[2];
	assert_int_equal(login("a", 1, two, sizeof(two)), SASL_OK);
	assert_string_equal(two, "a");
	assert_int_equal(login("ab", 2, two, sizeof(two)), SASL_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_ok),        cmocka_unit_test(test_plain_other_authzid),
	    cmocka_unit_test(test_plain_malformed), cmocka_unit_test(test_plain_special),
	    cmocka_unit_test(test_plain_limits),    cmocka_unit_test(test_login),
	    cmocka_unit_test(test_login_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
