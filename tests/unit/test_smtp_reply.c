/* SPDX-License-Identifier: ISC */
/* test_smtp_reply.c - the reply table against SPEC.md and RFC 5321/3463 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/limits.h"
#include "smtp/smtp_reply.h"

struct expect {
	enum smtp_reply_id id;
	const char *name;
	int code;
	const char *enh;
};

/* SPEC.md, "Reply codes the tests hold it to", row by row. */
static const struct expect spec_rows[] = {
    /* relay attempt without AUTH on an auth = required listener */
    {SMTP_R_AUTH_REQUIRED, "AUTH_REQUIRED", 530, "5.7.0"},
    /* relay attempt without AUTH elsewhere (not trusted) */
    {SMTP_R_RELAY_DENIED, "RELAY_DENIED", 550, "5.7.1"},
    /* AUTH before TLS where plaintext AUTH is not allowed */
    {SMTP_R_AUTH_NEEDS_TLS, "AUTH_NEEDS_TLS", 538, "5.7.11"},
    /* wrong user name or password */
    {SMTP_R_AUTH_FAILED, "AUTH_FAILED", 535, "5.7.8"},
    /* MAIL FROM an address the account may not use */
    {SMTP_R_SENDER_DENIED, "SENDER_DENIED", 553, "5.7.1"},
    /* message larger than max_message_size (at DATA, or declared in SIZE=) */
    {SMTP_R_TOO_BIG, "TOO_BIG", 552, "5.3.4"},
    {SMTP_R_SIZE_DECLARED, "SIZE_DECLARED", 552, "5.3.4"},
    /* more recipients than max_recipients */
    {SMTP_R_TOO_MANY_RCPTS, "TOO_MANY_RCPTS", 452, "4.5.3"},
    /* command line longer than 512 octets (AUTH lines: 12,288) */
    {SMTP_R_LINE_TOO_LONG, "LINE_TOO_LONG", 500, "5.5.2"},
    /* rate limit reached: 450 4.7.1 (SPEC also allows 451 4.7.1) */
    {SMTP_R_RATE_LIMITED, "RATE_LIMITED", 450, "4.7.1"},
};

/* What the parsers return must match what their headers promise. */
static const struct expect parser_rows[] = {
    /* smtp_params.h: 555 unknown or not advertised, 501 syntax or
     * duplicate, BINARYMIME 555 (RFC 5321 4.1.1.11, RFC 3030) */
    {SMTP_R_PARAM_UNKNOWN, "PARAM_UNKNOWN", 555, "5.5.4"},
    {SMTP_R_PARAM_SYNTAX, "PARAM_SYNTAX", 501, "5.5.4"},
    {SMTP_R_PARAM_DUPLICATE, "PARAM_DUPLICATE", 501, "5.5.4"},
    {SMTP_R_BODY_BINARY, "BODY_BINARY", 555, "5.5.4"},
    /* command-line discipline */
    {SMTP_R_CMD_BARE_LF, "CMD_BARE_LF", 500, "5.5.2"},
    {SMTP_R_CMD_BARE_CR, "CMD_BARE_CR", 500, "5.5.2"},
    {SMTP_R_CMD_NUL, "CMD_NUL", 500, "5.5.2"},
    {SMTP_R_CMD_UNKNOWN, "CMD_UNKNOWN", 500, "5.5.1"},
    /* addresses (RFC 3463 3.2: 5.1.3 bad destination syntax, 5.1.7 bad
     * sender syntax; RFC 6531 3.7.4.1 5.6.7) */
    {SMTP_R_MAIL_SYNTAX, "MAIL_SYNTAX", 501, "5.1.7"},
    {SMTP_R_RCPT_SYNTAX, "RCPT_SYNTAX", 501, "5.1.3"},
    {SMTP_R_SOURCE_ROUTE, "SOURCE_ROUTE", 553, "5.1.3"},
    {SMTP_R_NEEDS_SMTPUTF8, "NEEDS_SMTPUTF8", 553, "5.6.7"},
    /* closing replies are 421 (RFC 5321 3.8) */
    {SMTP_R_SHUTDOWN, "SHUTDOWN", 421, "4.3.2"},
    {SMTP_R_TIMEOUT, "TIMEOUT", 421, "4.4.2"},
    {SMTP_R_TOO_MANY_ERRORS, "TOO_MANY_ERRORS", 421, "4.7.0"},
    {SMTP_R_HTTP, "HTTP", 421, "4.7.0"},
    {SMTP_R_TOO_MANY_CONNECTIONS, "TOO_MANY_CONNECTIONS", 421, "4.7.0"},
    /* the 354 of DATA carries no enhanced code (RFC 2034 3) */
    {SMTP_R_DATA_GO, "DATA_GO", 354, ""},
    {SMTP_R_OK, "OK", 250, "2.0.0"},
    {SMTP_R_BYE, "BYE", 221, "2.0.0"},
};

static void check_rows(const struct expect *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct smtp_reply *r = smtp_reply_get(rows[i].id);
		assert_non_null(r);
		if (r->code != rows[i].code || strcmp(r->enh, rows[i].enh) != 0)
			fail_msg("%s: %d %s, want %d %s", rows[i].name, r->code, r->enh,
			         rows[i].code, rows[i].enh);
	}
}

static void test_spec_table(void **state)
{
	(void)state;
	check_rows(spec_rows, sizeof(spec_rows) / sizeof(spec_rows[0]));
}

static void test_parser_replies(void **state)
{
	(void)state;
	check_rows(parser_rows, sizeof(parser_rows) / sizeof(parser_rows[0]));
}

/* SPEC.md: bare LF or CR in the data gets a 5xx and the message is not
 * queued; the other refusals of message data are permanent as well. */
static void test_data_refusals_permanent(void **state)
{
	(void)state;
	static const enum smtp_reply_id ids[] = {SMTP_R_DATA_BARE_LF, SMTP_R_DATA_BARE_CR,
	                                         SMTP_R_DATA_NUL, SMTP_R_DATA_LONG_LINE,
	                                         SMTP_R_DATA_NOT_TERMINATED};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const struct smtp_reply *r = smtp_reply_get(ids[i]);
		assert_int_equal(r->code / 100, 5);
		assert_int_equal(r->enh[0], '5');
	}
}

/* number - a 1..3 digit number at *p, advancing it (RFC 3463 2). */
static bool number(const char **p)
{
	int n = 0;
	while (**p >= '0' && **p <= '9') {
		(*p)++;
		n++;
	}
	return n >= 1 && n <= 3;
}

/*
 * Every row: a valid reply code (RFC 5321 4.2: first digit 2..5, second
 * 0..5), an enhanced code of the form class.subject.detail whose class is
 * the first digit (RFC 3463 2, 3.1: classes 2, 4, 5 only; none on 3xx), and
 * one line of printable ASCII that fits in a reply line.
 */
static void test_every_row_well_formed(void **state)
{
	(void)state;
	for (int id = 0; id < SMTP_R_COUNT; id++) {
		const struct smtp_reply *r = smtp_reply_get((enum smtp_reply_id)id);
		int first = r->code / 100, second = r->code / 10 % 10;
		if (r->code < 200 || r->code > 599 || second > 5)
			fail_msg("reply %d: code %d", id, r->code);
		assert_non_null(r->enh);
		assert_non_null(r->text);
		if (first == 3) {
			if (r->enh[0] != '\0')
				fail_msg("reply %d: 3xx with enhanced code %s", id, r->enh);
		} else {
			const char *p = r->enh;
			if (p[0] != '0' + first || p[1] != '.')
				fail_msg("reply %d: %d with enhanced code \"%s\"", id, r->code,
				         r->enh);
			p += 2;
			if (!number(&p) || *p++ != '.' || !number(&p) || *p != '\0')
				fail_msg("reply %d: malformed enhanced code \"%s\"", id, r->enh);
		}
		size_t len = strlen(r->text);
		if (len == 0)
			fail_msg("reply %d: empty text", id);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)r->text[i];
			if (c < 32 || c > 126)
				fail_msg("reply %d: octet %#x in text", id, c);
		}
		assert_null(strchr(r->text, '\r'));
		assert_null(strchr(r->text, '\n'));
		/* "NNN X.Y.ZZZ text" CRLF within RFC 5321 4.5.3.1.5 */
		size_t line = 4 + (r->enh[0] ? strlen(r->enh) + 1 : 0) + len + 2;
		if (line > SMTP_REPLYLINE_MAX)
			fail_msg("reply %d: %zu octets", id, line);
	}
}

/* Every id maps to its own row: the table has no holes. */
static void test_no_holes(void **state)
{
	(void)state;
	for (int id = 0; id < SMTP_R_COUNT; id++) {
		const struct smtp_reply *r = smtp_reply_get((enum smtp_reply_id)id);
		assert_true(r->code != 0);
		assert_ptr_equal(r, smtp_reply_get((enum smtp_reply_id)id));
		if (id > 0)
			assert_ptr_not_equal(r, smtp_reply_get((enum smtp_reply_id)(id - 1)));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_table),
	    cmocka_unit_test(test_parser_replies),
	    cmocka_unit_test(test_data_refusals_permanent),
	    cmocka_unit_test(test_every_row_well_formed),
	    cmocka_unit_test(test_no_holes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
