/* SPDX-License-Identifier: ISC */
/* test_smtp_params.c - unit tests for smtp_params.c: ESMTP parameters, xtext */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/limits.h"
#include "smtp/smtp_params.h"

#define S(lit) lit, sizeof(lit) - 1

/* A result code for "parsed": -1 never names a reply. */
#define OK (-1)

struct mail_case {
	const char *in;
	size_t len;
	unsigned ext;
	int want; /* OK or the smtp_reply_id of the refusal */
	/* checked when OK */
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	const char *envid;
	const char *auth; /* NULL: has_auth false */
};

/* A refused row: only the reply is checked. */
#define MBAD(in, ext, err)                                                                         \
	{                                                                                          \
		S(in), ext, err, false, 0, 0, false, 0, "", NULL                                   \
	}

static const struct mail_case mail_cases[] = {
    {S(""), SMTP_EXT_ALL, OK, false, 0, SMTP_BODY_UNSPECIFIED, false, SMTP_RET_UNSPECIFIED, "",
     NULL},
    {S("   "), SMTP_EXT_ALL, OK, false, 0, SMTP_BODY_UNSPECIFIED, false, SMTP_RET_UNSPECIFIED, "",
     NULL},
    {S(" SIZE=1000"), SMTP_EXT_ALL, OK, true, 1000, 0, false, 0, "", NULL},
    {S("  size=1000  "), SMTP_EXT_ALL, OK, true, 1000, 0, false, 0, "", NULL},
    {S(" SIZE=0"), SMTP_EXT_SIZE, OK, true, 0, 0, false, 0, "", NULL},
    /* RFC 1870 6: 1*20DIGIT; beyond 64 bits the size saturates (it is
     * larger than any limit, which the session answers with 552) */
    {S(" SIZE=18446744073709551615"), SMTP_EXT_ALL, OK, true, UINT64_MAX, 0, false, 0, "", NULL},
    {S(" SIZE=18446744073709551616"), SMTP_EXT_ALL, OK, true, UINT64_MAX, 0, false, 0, "", NULL},
    {S(" SIZE=99999999999999999999"), SMTP_EXT_ALL, OK, true, UINT64_MAX, 0, false, 0, "", NULL},
    {S(" SIZE=00000000000000000001"), SMTP_EXT_ALL, OK, true, 1, 0, false, 0, "", NULL},
    MBAD(" SIZE=000000000000000000001", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=-1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=+1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=1k", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=0x10", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=1 SIZE=2", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" SIZE=1 size=1", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" SIZE=1 SIZE=x", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" SIZE=1", SMTP_EXT_ALL & ~SMTP_EXT_SIZE, SMTP_R_PARAM_UNKNOWN),
    /* BODY (RFC 6152 2, RFC 3030 3) */
    {S(" BODY=7BIT"), SMTP_EXT_ALL, OK, false, 0, SMTP_BODY_7BIT, false, 0, "", NULL},
    {S(" body=8bitmime"), SMTP_EXT_8BITMIME, OK, false, 0, SMTP_BODY_8BITMIME, false, 0, "", NULL},
    MBAD(" BODY=BINARYMIME", SMTP_EXT_ALL, SMTP_R_BODY_BINARY),
    MBAD(" Body=BinaryMime", SMTP_EXT_ALL, SMTP_R_BODY_BINARY),
    MBAD(" BODY=8BIT", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" BODY=7BIT8BITMIME", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" BODY=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" BODY", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" BODY=7BIT BODY=7BIT", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" BODY=7BIT", SMTP_EXT_ALL & ~SMTP_EXT_8BITMIME, SMTP_R_PARAM_UNKNOWN),
    MBAD(" BODY=BINARYMIME", SMTP_EXT_ALL & ~SMTP_EXT_8BITMIME, SMTP_R_PARAM_UNKNOWN),
    /* SMTPUTF8 (RFC 6531 3.4) */
    {S(" SMTPUTF8"), SMTP_EXT_ALL, OK, false, 0, 0, true, 0, "", NULL},
    {S(" smtputf8"), SMTP_EXT_SMTPUTF8, OK, false, 0, 0, true, 0, "", NULL},
    MBAD(" SMTPUTF8=yes", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SMTPUTF8=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SMTPUTF8 SMTPUTF8", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" SMTPUTF8", SMTP_EXT_ALL & ~SMTP_EXT_SMTPUTF8, SMTP_R_PARAM_UNKNOWN),
    /* RET and ENVID (RFC 3461 4.3, 4.4) */
    {S(" RET=FULL"), SMTP_EXT_ALL, OK, false, 0, 0, false, SMTP_RET_FULL, "", NULL},
    {S(" ret=hdrs"), SMTP_EXT_DSN, OK, false, 0, 0, false, SMTP_RET_HDRS, "", NULL},
    MBAD(" RET=BOTH", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" RET", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" RET=FULL RET=HDRS", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" RET=FULL", SMTP_EXT_ALL & ~SMTP_EXT_DSN, SMTP_R_PARAM_UNKNOWN),
    {S(" ENVID=QQ314159"), SMTP_EXT_ALL, OK, false, 0, 0, false, 0, "QQ314159", NULL},
    {S(" ENVID=abc+2Bdef+3Dx+20y"), SMTP_EXT_ALL, OK, false, 0, 0, false, 0, "abc+def=x y", NULL},
    MBAD(" ENVID=a+0D+0ARCPT", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+00", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+0A", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+7F", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+09", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+2b", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+2", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a+ZZ", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=a ENVID=b", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" ENVID=a", SMTP_EXT_ALL & ~SMTP_EXT_DSN, SMTP_R_PARAM_UNKNOWN),
    /* AUTH (RFC 4954 5) */
    {S(" AUTH=<>"), SMTP_EXT_ALL, OK, false, 0, 0, false, 0, "", "<>"},
    {S(" AUTH=user+2Btag@example.org"), SMTP_EXT_AUTH, OK, false, 0, 0, false, 0, "",
     "user+tag@example.org"},
    MBAD(" AUTH=a+0Db@c", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" AUTH=a+00b@c", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" AUTH=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" AUTH", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" AUTH=<> AUTH=<>", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    MBAD(" AUTH=<>", SMTP_EXT_ALL & ~SMTP_EXT_AUTH, SMTP_R_PARAM_UNKNOWN),
    /* RCPT's parameters and strangers are unknown to MAIL */
    MBAD(" NOTIFY=NEVER", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" ORCPT=rfc822;a@b", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" X-FOO=bar", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" XFOO", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" SIZ=1", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" SIZEE=1", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" 8BITMIME", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    /* parameter syntax (RFC 5321 4.1.2) */
    MBAD("SIZE=1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX), /* no SP after the path */
    MBAD(">", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" -FOO=bar", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" FO_O=bar", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" FOO=a=b", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE==1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" =1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" =", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=1\t", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD("\tSIZE=1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=1\x7f", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=1\0", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE=1\r\n", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" ENVID=\xc3\xbc", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" SIZE\x01=1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    /* left to right, the first problem is the answer */
    MBAD(" X-FOO=bar SIZE=x", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    MBAD(" SIZE=x X-FOO", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    MBAD(" BODY=BINARYMIME SIZE=1 SIZE=2", SMTP_EXT_ALL, SMTP_R_BODY_BINARY),
    MBAD(" SIZE=1 SIZE=2 BODY=BINARYMIME", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    /* everything at once */
    {S(" SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1 AUTH=<>"), SMTP_EXT_ALL, OK, true,
     12345, SMTP_BODY_8BITMIME, true, SMTP_RET_HDRS, "id+1", "<>"},
    {S(" auth=a@b  envid=E  ret=full  smtputf8  body=7bit  size=9"), SMTP_EXT_ALL, OK, true, 9,
     SMTP_BODY_7BIT, true, SMTP_RET_FULL, "E", "a@b"},
};

/* check_mail - one row; prints a mismatch and returns 1 for it. */
static int check_mail(const struct mail_case *c, const char *in, size_t len, size_t i)
{
	struct smtp_mail_params m;
	enum smtp_reply_id err = SMTP_R_COUNT;
	memset(&m, 0x77, sizeof(m));
	int r = smtp_params_parse_mail(in, len, c->ext, &m, &err);
	if (c->want != OK) {
		if (r != -1 || (int)err != c->want) {
			print_error("mail case %zu \"%.*s\": r %d err %d, want %d\n", i,
			            (int)c->len, c->in, r, err, c->want);
			return 1;
		}
		/* a refused command leaves nothing usable behind */
		struct smtp_mail_params zero;
		memset(&zero, 0, sizeof(zero));
		if (memcmp(&m, &zero, sizeof(m)) != 0) {
			print_error("mail case %zu: params not cleared\n", i);
			return 1;
		}
		return 0;
	}
	if (r != 0 || m.has_size != c->has_size || m.size != c->size || m.body != c->body ||
	    m.smtputf8 != c->smtputf8 || m.ret != c->ret || strcmp(m.envid, c->envid) != 0 ||
	    m.has_auth != (c->auth != NULL) || strcmp(m.auth, c->auth ? c->auth : "") != 0) {
		print_error("mail case %zu \"%.*s\": r %d err %d size %d/%llu body %d utf8 %d ret "
		            "%d envid \"%s\" auth %d \"%s\"\n",
		            i, (int)c->len, c->in, r, err, m.has_size, (unsigned long long)m.size,
		            m.body, m.smtputf8, m.ret, m.envid, m.has_auth, m.auth);
		return 1;
	}
	return 0;
}

static void test_mail_table(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		const struct mail_case *c = &mail_cases[i];
		char *in = malloc(c->len ? c->len : 1); /* exact size for ASan */
		memcpy(in, c->in, c->len);
		bad += check_mail(c, in, c->len, i);
		free(in);
	}
	assert_int_equal(bad, 0);
}

struct rcpt_case {
	const char *in;
	size_t len;
	unsigned ext;
	int want;
	unsigned notify;
	const char *orcpt;
};

#define RBAD(in, ext, err)                                                                         \
	{                                                                                          \
		S(in), ext, err, 0, ""                                                             \
	}

static const struct rcpt_case rcpt_cases[] = {
    {S(""), SMTP_EXT_ALL, OK, 0, ""},
    {S(" NOTIFY=NEVER"), SMTP_EXT_ALL, OK, SMTP_NOTIFY_NEVER, ""},
    {S(" notify=never"), SMTP_EXT_DSN, OK, SMTP_NOTIFY_NEVER, ""},
    {S(" NOTIFY=SUCCESS"), SMTP_EXT_ALL, OK, SMTP_NOTIFY_SUCCESS, ""},
    {S(" NOTIFY=SUCCESS,FAILURE,DELAY"), SMTP_EXT_ALL, OK,
     SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, ""},
    {S(" NOTIFY=delay,Success"), SMTP_EXT_ALL, OK, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY, ""},
    RBAD(" NOTIFY=NEVER,SUCCESS", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=FAILURE,NEVER", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=NEVER,NEVER", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=SUCCESS,SUCCESS", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=SUCCESS,", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=,SUCCESS", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=SUCCESS,,DELAY", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=,", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=ALWAYS", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=SUCCESSFAILURE", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=NEVER NOTIFY=NEVER", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    RBAD(" NOTIFY=NEVER", SMTP_EXT_ALL & ~SMTP_EXT_DSN, SMTP_R_PARAM_UNKNOWN),
    {S(" ORCPT=rfc822;user@example.org"), SMTP_EXT_ALL, OK, 0, "rfc822;user@example.org"},
    {S(" orcpt=RFC822;user+2Btag@example.org"), SMTP_EXT_ALL, OK, 0, "RFC822;user+tag@example.org"},
    {S(" ORCPT=utf-8;user@example.org"), SMTP_EXT_ALL, OK, 0, "utf-8;user@example.org"},
    {S(" ORCPT=rfc822;a;b"), SMTP_EXT_ALL, OK, 0, "rfc822;a;b"},
    {S(" ORCPT=rfc822;\"a+20b\"@c"), SMTP_EXT_ALL, OK, 0, "rfc822;\"a b\"@c"},
    RBAD(" ORCPT=rfc822;", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=;a@b", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rfc822", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rfc822;a+0D+0Ab", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rfc822;a+00b", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rfc822;a+0d", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rf(c;a", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rf,c;a", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" ORCPT=rfc822;a ORCPT=rfc822;b", SMTP_EXT_ALL, SMTP_R_PARAM_DUPLICATE),
    RBAD(" ORCPT=rfc822;a", SMTP_EXT_ALL & ~SMTP_EXT_DSN, SMTP_R_PARAM_UNKNOWN),
    {S(" NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@b"), SMTP_EXT_ALL, OK,
     SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, "rfc822;a@b"},
    /* MAIL's parameters are unknown to RCPT */
    RBAD(" SIZE=1", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    RBAD(" SMTPUTF8", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    RBAD(" RET=FULL", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    RBAD(" X-FOO", SMTP_EXT_ALL, SMTP_R_PARAM_UNKNOWN),
    RBAD("NOTIFY=NEVER", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" NOTIFY=NEVER\0", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
    RBAD(" _=1", SMTP_EXT_ALL, SMTP_R_PARAM_SYNTAX),
};

static int check_rcpt(const struct rcpt_case *c, const char *in, size_t len, size_t i)
{
	struct smtp_rcpt_params p;
	enum smtp_reply_id err = SMTP_R_COUNT;
	memset(&p, 0x77, sizeof(p));
	int r = smtp_params_parse_rcpt(in, len, c->ext, &p, &err);
	if (c->want != OK) {
		if (r != -1 || (int)err != c->want || p.notify != 0 || p.orcpt[0] != '\0') {
			print_error("rcpt case %zu \"%.*s\": r %d err %d, want %d\n", i,
			            (int)c->len, c->in, r, err, c->want);
			return 1;
		}
		return 0;
	}
	if (r != 0 || p.notify != c->notify || strcmp(p.orcpt, c->orcpt) != 0) {
		print_error("rcpt case %zu \"%.*s\": r %d err %d notify %#x orcpt \"%s\"\n", i,
		            (int)c->len, c->in, r, err, p.notify, p.orcpt);
		return 1;
	}
	return 0;
}

static void test_rcpt_table(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		char *in = malloc(c->len ? c->len : 1);
		memcpy(in, c->in, c->len);
		bad += check_rcpt(c, in, c->len, i);
		free(in);
	}
	assert_int_equal(bad, 0);
}

/*
 * The parameter parsers are not incremental, so "one byte at a time" means:
 * every prefix of every row is parsed from an exact-size buffer (ASan
 * catches a read past it), and a prefix that ends at a parameter boundary
 * of a good row parses too.
 */
static void test_prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		const struct mail_case *c = &mail_cases[i];
		for (size_t k = 0; k <= c->len; k++) {
			struct smtp_mail_params m;
			enum smtp_reply_id err;
			char *in = malloc(k ? k : 1);
			memcpy(in, c->in, k);
			int r = smtp_params_parse_mail(in, k, c->ext, &m, &err);
			if (c->want == OK && (k == c->len || c->in[k] == ' '))
				assert_int_equal(r, 0);
			free(in);
		}
	}
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		for (size_t k = 0; k <= c->len; k++) {
			struct smtp_rcpt_params p;
			enum smtp_reply_id err;
			char *in = malloc(k ? k : 1);
			memcpy(in, c->in, k);
			int r = smtp_params_parse_rcpt(in, k, c->ext, &p, &err);
			if (c->want == OK && (k == c->len || c->in[k] == ' '))
				assert_int_equal(r, 0);
			free(in);
		}
	}
}

/* rep - " KEY=" followed by n copies of unit (a string of u chars). */
static size_t rep(char *buf, const char *key, const char *unit, size_t n)
{
	size_t len = (size_t)sprintf(buf, " %s=", key);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(buf + len, "%s", unit);
	return len;
}

/* Each limit at the limit and one past it. */
static void test_limits(void **state)
{
	(void)state;
	char buf[2048];
	size_t len;
	struct smtp_mail_params m;
	struct smtp_rcpt_params p;
	enum smtp_reply_id err;

	/* RFC 3461 4.4: ENVID at most 100 characters as xtext */
	len = rep(buf, "ENVID", "e", SMTP_ENVID_MAX);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), 0);
	assert_int_equal(strlen(m.envid), SMTP_ENVID_MAX);
	len = rep(buf, "ENVID", "e", SMTP_ENVID_MAX + 1);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), -1);
	assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
	/* counted before decoding: 33 "+41" and one more octet are 100 */
	len = rep(buf, "ENVID", "+41", 33);
	buf[len++] = 'x';
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), 0);
	assert_int_equal(strlen(m.envid), 34);
	len = rep(buf, "ENVID", "+41", 33); /* 101 encoded, 35 decoded */
	buf[len++] = 'x';
	buf[len++] = 'x';
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), -1);
	assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
	len = rep(buf, "ENVID", "+41", 34); /* 102 encoded, 34 decoded */
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), -1);
	assert_int_equal(err, SMTP_R_PARAM_SYNTAX);

	/* RFC 3461 4.2: ORCPT at most 500 characters, "rfc822;" included */
	len = rep(buf, "ORCPT", "rfc822;", 1);
	memset(buf + len, 'o', SMTP_ORCPT_MAX - 7);
	len += SMTP_ORCPT_MAX - 7;
	assert_int_equal(smtp_params_parse_rcpt(buf, len, SMTP_EXT_ALL, &p, &err), 0);
	assert_int_equal(strlen(p.orcpt), SMTP_ORCPT_MAX);
	buf[len++] = 'o';
	assert_int_equal(smtp_params_parse_rcpt(buf, len, SMTP_EXT_ALL, &p, &err), -1);
	assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
	/* counted as sent: 501 characters that decode to fewer are too many */
	memcpy(buf + len - 3, "+41", 3);
	assert_int_equal(smtp_params_parse_rcpt(buf, len, SMTP_EXT_ALL, &p, &err), -1);
	assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
	assert_int_equal(smtp_params_parse_rcpt(buf, len - 1, SMTP_EXT_ALL, &p, &err), -1);
	memcpy(buf + len - 4, "+41", 3);
	assert_int_equal(smtp_params_parse_rcpt(buf, len - 1, SMTP_EXT_ALL, &p, &err), 0);
	assert_int_equal(strlen(p.orcpt), SMTP_ORCPT_MAX - 2);

	/* AUTH= decodes into a path-sized buffer: 256 octets */
	len = rep(buf, "AUTH", "a", SMTP_PATH_MAX);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), 0);
	assert_int_equal(strlen(m.auth), SMTP_PATH_MAX);
	len = rep(buf, "AUTH", "a", SMTP_PATH_MAX + 1);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), -1);
	assert_int_equal(err, SMTP_R_PARAM_SYNTAX);

	/* SIZE: 20 digits, and 2^64-1 (the 20-digit saturating cases are in
	 * the table) */
	len = rep(buf, "SIZE", "9", 19);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), 0);
	assert_true(m.size == 9999999999999999999ULL);
	len = rep(buf, "SIZE", "0", 20);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), 0);
	assert_true(m.has_size && m.size == 0);
	len = rep(buf, "SIZE", "0", 21);
	assert_int_equal(smtp_params_parse_mail(buf, len, SMTP_EXT_ALL, &m, &err), -1);
}

struct xtext_case {
	const char *in;
	size_t len;
	int want; /* decoded length or -1 */
	const char *out;
	size_t out_len;
};

static const struct xtext_case xtext_cases[] = {
    {S(""), 0, S("")},
    {S("abc"), 3, S("abc")},
    {S("+2B"), 1, S("+")},
    {S("+3D"), 1, S("=")},
    {S("a+20b"), 3, S("a b")},
    {S("+41+42"), 2, S("AB")},
    {S("+7E"), 1, S("~")},
    {S("+80"), 1, S("\x80")},
    {S("+FF"), 1, S("\xff")},
    {S("!~<>\"\\;:,"), 9, S("!~<>\"\\;:,")},
    /* control characters: the smuggling guard (RFC 3461 4 allows any
     * octet; detour refuses these in stored envelope fields) */
    {S("+0D"), -1, S("")},
    {S("+0A"), -1, S("")},
    {S("a+0D+0Ab"), -1, S("")},
    {S("+00"), -1, S("")},
    {S("+01"), -1, S("")},
    {S("+09"), -1, S("")},
    {S("+1B"), -1, S("")},
    {S("+1F"), -1, S("")},
    {S("+7F"), -1, S("")},
    /* syntax */
    {S("+2b"), -1, S("")},
    {S("+0d"), -1, S("")},
    {S("+G0"), -1, S("")},
    {S("+2"), -1, S("")},
    {S("+"), -1, S("")},
    {S("a+"), -1, S("")},
    {S("++2B"), -1, S("")},
    {S("a=b"), -1, S("")},
    {S("a b"), -1, S("")},
    {S("a\x7f"), -1, S("")},
    {S("a\x01"), -1, S("")},
    {S("a\r\n"), -1, S("")},
    {S("a\0"), -1, S("")},
    {S("\xc3\xbc"), -1, S("")},
};

static void test_xtext_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
		const struct xtext_case *c = &xtext_cases[i];
		char out[64];
		char *in = malloc(c->len ? c->len : 1);
		memcpy(in, c->in, c->len);
		memset(out, 'Z', sizeof(out));
		int r = smtp_xtext_decode(in, c->len, out, sizeof(out));
		if (r != c->want)
			fail_msg("xtext case %zu: %d, want %d", i, r, c->want);
		if (r >= 0) {
			assert_int_equal((size_t)r, c->out_len);
			assert_memory_equal(out, c->out, c->out_len);
			assert_int_equal(out[r], '\0');
		} else {
			assert_int_equal(out[0], '\0'); /* nothing half-decoded */
		}
		/* every prefix, from an exact buffer */
		for (size_t k = 0; k < c->len; k++)
			(void)smtp_xtext_decode(in, k, out, sizeof(out));
		free(in);
	}
}

/* The output size counts the NUL: exact fit, one short, and nothing. */
static void test_xtext_sizes(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(smtp_xtext_decode("abc", 3, out, 4), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(smtp_xtext_decode("abc", 3, out, 3), -1);
	assert_int_equal(smtp_xtext_decode("a+2Bc", 5, out, 4), 3);
	assert_int_equal(smtp_xtext_decode("a+2Bc", 5, out, 3), -1);
	assert_int_equal(smtp_xtext_decode("", 0, out, 1), 0);
	assert_int_equal(smtp_xtext_decode("", 0, out, 0), -1);
	assert_int_equal(smtp_xtext_decode("a", 1, out, 0), -1);

	assert_int_equal(smtp_xtext_encode("abc", 3, out, 4), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(smtp_xtext_encode("abc", 3, out, 3), -1);
	assert_int_equal(smtp_xtext_encode("a+", 2, out, 5), 4);
	assert_string_equal(out, "a+2B");
	assert_int_equal(smtp_xtext_encode("a+", 2, out, 4), -1);
	assert_int_equal(smtp_xtext_encode("", 0, out, 1), 0);
	assert_int_equal(smtp_xtext_encode("", 0, out, 0), -1);
}

static void test_xtext_encode(void **state)
{
	(void)state;
	char out[128];
	static const char in[] = "a+b=c d\r\n\0\x7f\xff~!";
	int r = smtp_xtext_encode(in, sizeof(in) - 1, out, sizeof(out));
	assert_string_equal(out, "a+2Bb+3Dc+20d+0D+0A+00+7F+FF~!");
	assert_int_equal(r, (int)strlen(out));
}

/* Every single octet survives encode then decode, except the control
 * characters, which decode refuses: what detour relays onward can carry
 * them (xtext can), what it stores from a client cannot. */
static void test_xtext_round_trip(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 256; c++) {
		char one = (char)c, enc[8], dec[8];
		int n = smtp_xtext_encode(&one, 1, enc, sizeof(enc));
		assert_true(n == 1 || n == 3);
		int d = smtp_xtext_decode(enc, (size_t)n, dec, sizeof(dec));
		if (c < 32 || c == 127) {
			assert_int_equal(d, -1);
		} else {
			assert_int_equal(d, 1);
			assert_int_equal((unsigned char)dec[0], c);
		}
		/* every encoded form is itself valid xtext characters */
		for (int i = 0; i < n; i++)
			assert_true(enc[i] >= 33 && enc[i] <= 126 && enc[i] != '=');
	}
	/* a whole printable string */
	char all[95], enc[400], dec[100];
	for (int i = 0; i < 95; i++)
		all[i] = (char)(32 + i);
	int n = smtp_xtext_encode(all, sizeof(all), enc, sizeof(enc));
	assert_true(n > 0);
	assert_int_equal(smtp_xtext_decode(enc, (size_t)n, dec, sizeof(dec)), 95);
	assert_memory_equal(dec, all, sizeof(all));
}

/* The security property, end to end: no encoding of CR, LF or NUL in any
 * xtext-carrying parameter gets into the parsed result. */
static void test_no_smuggling(void **state)
{
	(void)state;
	static const char *const evil[] = {"+0D", "+0A", "+00", "+0D+0A", "+1B", "+7F", "+09"};
	char buf[128];
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		struct smtp_mail_params m;
		struct smtp_rcpt_params p;
		enum smtp_reply_id err;
		int n = snprintf(buf, sizeof(buf), " ENVID=x%sRCPT", evil[i]);
		assert_int_equal(smtp_params_parse_mail(buf, (size_t)n, SMTP_EXT_ALL, &m, &err),
		                 -1);
		assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
		assert_string_equal(m.envid, "");
		n = snprintf(buf, sizeof(buf), " AUTH=a%s@b", evil[i]);
		assert_int_equal(smtp_params_parse_mail(buf, (size_t)n, SMTP_EXT_ALL, &m, &err),
		                 -1);
		assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
		assert_false(m.has_auth);
		n = snprintf(buf, sizeof(buf), " ORCPT=rfc822;a%s@b", evil[i]);
		assert_int_equal(smtp_params_parse_rcpt(buf, (size_t)n, SMTP_EXT_ALL, &p, &err),
		                 -1);
		assert_int_equal(err, SMTP_R_PARAM_SYNTAX);
		assert_string_equal(p.orcpt, "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mail_table),   cmocka_unit_test(test_rcpt_table),
	    cmocka_unit_test(test_prefixes),     cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_xtext_decode), cmocka_unit_test(test_xtext_sizes),
	    cmocka_unit_test(test_xtext_encode), cmocka_unit_test(test_xtext_round_trip),
	    cmocka_unit_test(test_no_smuggling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
