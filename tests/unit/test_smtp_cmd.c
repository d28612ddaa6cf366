/* SPDX-License-Identifier: ISC */
/* test_smtp_cmd.c - unit tests for smtp_cmd.c: line scanning and verbs */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/limits.h"
#include "smtp/smtp_cmd.h"

/* Table rows carry their length so that NUL bytes can be part of them. */
#define S(lit) lit, sizeof(lit) - 1

struct scan_case {
	const char *in;
	size_t len;
	size_t max;
	enum smtp_line_result result;
	size_t line_len; /* checked unless PARTIAL or TOO_LONG */
	size_t consumed; /* checked unless PARTIAL or TOO_LONG */
};

static const struct scan_case scan_cases[] = {
    {S("EHLO x\r\n"), 512, SMTP_LINE_OK, 6, 8},
    {S("\r\n"), 512, SMTP_LINE_OK, 0, 2},
    {S("QUIT\r\nNOOP\r\n"), 512, SMTP_LINE_OK, 4, 6}, /* only the first line */
    {S(""), 512, SMTP_LINE_PARTIAL, 0, 0},
    {S("EHLO x"), 512, SMTP_LINE_PARTIAL, 0, 0},
    {S("EHLO x\r"), 512, SMTP_LINE_PARTIAL, 0, 0},
    {S("\r"), 512, SMTP_LINE_PARTIAL, 0, 0},
    /* bare LF: the line ends at that LF and is consumed through it */
    {S("EHLO x\n"), 512, SMTP_LINE_BARE_LF, 6, 7},
    {S("\n"), 512, SMTP_LINE_BARE_LF, 0, 1},
    {S("\nQUIT\r\n"), 512, SMTP_LINE_BARE_LF, 0, 1},
    {S("a\rb\n"), 512, SMTP_LINE_BARE_LF, 3, 4}, /* first LF decides */
    {S("a\nb\r\n"), 512, SMTP_LINE_BARE_LF, 1, 2},
    {S("a\0b\n"), 512, SMTP_LINE_BARE_LF, 3, 4},
    /* bare CR inside a CRLF line */
    {S("a\rb\r\n"), 512, SMTP_LINE_BARE_CR, 3, 5},
    {S("a\r\r\n"), 512, SMTP_LINE_BARE_CR, 2, 4},
    {S("\r\r\n"), 512, SMTP_LINE_BARE_CR, 1, 3},
    {S("\rQUIT\r\nNOOP\r\n"), 512, SMTP_LINE_BARE_CR, 5, 7},
    /* NUL */
    {S("a\0b\r\n"), 512, SMTP_LINE_NUL, 3, 5},
    {S("\0\r\n"), 512, SMTP_LINE_NUL, 1, 3},
    /* precedence: bare CR before NUL, whatever the order in the line */
    {S("a\0\rb\r\n"), 512, SMTP_LINE_BARE_CR, 4, 6},
    {S("a\rb\0\r\n"), 512, SMTP_LINE_BARE_CR, 4, 6},
    /* limits with a small max: 8 octets + CRLF = 10 is the longest line */
    {S("12345678\r\n"), 10, SMTP_LINE_OK, 8, 10},
    {S("123456789\r\n"), 10, SMTP_LINE_TOO_LONG, 0, 0},
    {S("123456789\r"), 10, SMTP_LINE_TOO_LONG, 0, 0},
    {S("123456789"), 10, SMTP_LINE_PARTIAL, 0, 0},
    {S("1234567890"), 10, SMTP_LINE_TOO_LONG, 0, 0},
    {S("12345678901234\n"), 10, SMTP_LINE_TOO_LONG, 0, 0},
    {S("123456789\n"), 10, SMTP_LINE_BARE_LF, 9, 10},
    {S("1234567\r\n"), 10, SMTP_LINE_OK, 7, 9},
};

static void test_line_scan_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scan_cases) / sizeof(scan_cases[0]); i++) {
		const struct scan_case *c = &scan_cases[i];
		size_t line_len = 9999, consumed = 9999;
		/* a heap copy of exactly len bytes lets ASan catch overreads */
		char *buf = malloc(c->len ? c->len : 1);
		memcpy(buf, c->in, c->len);
		enum smtp_line_result r = smtp_line_scan(buf, c->len, c->max, &line_len, &consumed);
		if (r != c->result)
			fail_msg("case %zu: result %d, want %d", i, r, c->result);
		if (r != SMTP_LINE_PARTIAL && r != SMTP_LINE_TOO_LONG) {
			if (line_len != c->line_len || consumed != c->consumed)
				fail_msg("case %zu: line_len %zu consumed %zu, want %zu %zu", i,
				         line_len, consumed, c->line_len, c->consumed);
		} else {
			assert_int_equal(consumed, 9999); /* nothing consumed */
		}
		free(buf);
	}
}

/* scan_limit - a line of n octets of text plus CRLF, scanned with max. */
static enum smtp_line_result scan_limit(size_t n, size_t max)
{
	char *buf = malloc(n + 2);
	size_t line_len = 0, consumed = 0;
	memset(buf, 'x', n);
	buf[n] = '\r';
	buf[n + 1] = '\n';
	enum smtp_line_result r = smtp_line_scan(buf, n + 2, max, &line_len, &consumed);
	if (r == SMTP_LINE_OK) {
		assert_int_equal(line_len, n);
		assert_int_equal(consumed, n + 2);
	}
	free(buf);
	return r;
}

static void test_line_scan_limits(void **state)
{
	(void)state;
	/* RFC 5321 4.5.3.1.4: 512 octets including CRLF */
	assert_int_equal(scan_limit(SMTP_CMDLINE_MAX - 2, SMTP_CMDLINE_MAX), SMTP_LINE_OK);
	assert_int_equal(scan_limit(SMTP_CMDLINE_MAX - 1, SMTP_CMDLINE_MAX), SMTP_LINE_TOO_LONG);
	/* RFC 4954 4: 12288 for AUTH exchanges */
	assert_int_equal(scan_limit(SMTP_AUTHLINE_MAX - 2, SMTP_AUTHLINE_MAX), SMTP_LINE_OK);
	assert_int_equal(scan_limit(SMTP_AUTHLINE_MAX - 1, SMTP_AUTHLINE_MAX), SMTP_LINE_TOO_LONG);
	assert_int_equal(scan_limit(SMTP_AUTHLINE_MAX - 1, SMTP_CMDLINE_MAX), SMTP_LINE_TOO_LONG);
	assert_int_equal(scan_limit(0, 2), SMTP_LINE_OK);
	assert_int_equal(scan_limit(1, 2), SMTP_LINE_TOO_LONG);
}

/* A partial buffer of max-1 octets waits; at max octets without LF it is
 * too long, never sooner. */
static void test_line_scan_partial_until_max(void **state)
{
	(void)state;
	char buf[SMTP_CMDLINE_MAX + 1];
	size_t line_len, consumed;
	memset(buf, 'a', sizeof(buf));
	for (size_t n = 0; n < SMTP_CMDLINE_MAX; n++)
		assert_int_equal(smtp_line_scan(buf, n, SMTP_CMDLINE_MAX, &line_len, &consumed),
		                 SMTP_LINE_PARTIAL);
	assert_int_equal(
	    smtp_line_scan(buf, SMTP_CMDLINE_MAX, SMTP_CMDLINE_MAX, &line_len, &consumed),
	    SMTP_LINE_TOO_LONG);
	assert_int_equal(smtp_line_scan(buf, sizeof(buf), SMTP_CMDLINE_MAX, &line_len, &consumed),
	                 SMTP_LINE_TOO_LONG);
}

/*
 * A session-like reader: bytes arrive in pieces and are appended to a
 * buffer; complete lines are taken off the front. Every result except
 * PARTIAL is recorded as "result:line|". TOO_LONG ends the stream (what
 * the session does next is not this module's business).
 */
struct reader {
	char buf[4096];
	size_t have;
	char log[4096];
	size_t log_len;
	int stopped;
};

static void reader_drain(struct reader *rd, size_t max)
{
	while (!rd->stopped) {
		size_t line_len = 0, consumed = 0;
		enum smtp_line_result r =
		    smtp_line_scan(rd->buf, rd->have, max, &line_len, &consumed);
		if (r == SMTP_LINE_PARTIAL)
			return;
		int n = snprintf(rd->log + rd->log_len, sizeof(rd->log) - rd->log_len, "%d:", r);
		rd->log_len += (size_t)n;
		if (r == SMTP_LINE_TOO_LONG) {
			rd->stopped = 1;
			return;
		}
		assert_true(consumed <= rd->have);
		assert_true(line_len < consumed);
		memcpy(rd->log + rd->log_len, rd->buf, line_len);
		rd->log_len += line_len;
		rd->log[rd->log_len++] = '|';
		memmove(rd->buf, rd->buf + consumed, rd->have - consumed);
		rd->have -= consumed;
	}
}

static void reader_feed(struct reader *rd, const char *p, size_t n, size_t max)
{
	assert_true(rd->have + n <= sizeof(rd->buf));
	memcpy(rd->buf + rd->have, p, n);
	rd->have += n;
	reader_drain(rd, max);
}

/* Streams mixing every kind of line; each is read whole, one byte at a
 * time, and split in two at every position, and the logs must agree. */
static const struct {
	const char *in;
	size_t len;
	size_t max;
} streams[] = {
    {S("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"), 512},
    {S("A\nB\r\nC\rD\r\nE\0F\r\n\r\n\n\r\r\nG\r\n"), 512},
    {S("\r\n\r\n\r\r\n\n\n\r\n"), 512},
    {S("12345678\r\n123\r\n1234567\n12345678\r\n123456789\r\nX\r\n"), 10},
    {S("ok\r\n\r\r\r\n\0\0\r\nend\r\npartial"), 512},
};

static void test_line_scan_trickle(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		struct reader *whole = calloc(1, sizeof(*whole));
		struct reader *bytes = calloc(1, sizeof(*bytes));
		reader_feed(whole, streams[i].in, streams[i].len, streams[i].max);
		for (size_t k = 0; k < streams[i].len; k++)
			reader_feed(bytes, streams[i].in + k, 1, streams[i].max);
		assert_int_equal(whole->log_len, bytes->log_len);
		assert_memory_equal(whole->log, bytes->log, whole->log_len);
		assert_int_equal(whole->have, bytes->have);
		for (size_t cut = 0; cut <= streams[i].len; cut++) {
			struct reader *two = calloc(1, sizeof(*two));
			reader_feed(two, streams[i].in, cut, streams[i].max);
			reader_feed(two, streams[i].in + cut, streams[i].len - cut, streams[i].max);
			assert_int_equal(whole->log_len, two->log_len);
			assert_memory_equal(whole->log, two->log, whole->log_len);
			free(two);
		}
		free(whole);
		free(bytes);
	}
}

/* The expected log of one stream, to be sure the reader agrees with the
 * table above and not only with itself. */
static void test_line_scan_stream_log(void **state)
{
	(void)state;
	struct reader *rd = calloc(1, sizeof(*rd));
	reader_feed(rd, streams[1].in, streams[1].len, streams[1].max);
	char want[128];
	int n = snprintf(want, sizeof(want), "%d:A|%d:B|%d:C\rD|%d:E", SMTP_LINE_BARE_LF,
	                 SMTP_LINE_OK, SMTP_LINE_BARE_CR, SMTP_LINE_NUL);
	assert_memory_equal(rd->log, want, (size_t)n);
	assert_int_equal(rd->log[n], '\0');
	assert_int_equal(rd->log[n + 1], 'F');
	free(rd);
}

struct parse_case {
	const char *line;
	enum smtp_verb verb;
	const char *arg;
	int malformed;
};

static const struct parse_case parse_cases[] = {
    {"EHLO example.org", SMTP_VERB_EHLO, "example.org", 0},
    {"ehlo example.org", SMTP_VERB_EHLO, "example.org", 0},
    {"HeLo example.org", SMTP_VERB_HELO, "example.org", 0},
    {"EHLO", SMTP_VERB_EHLO, "", 0},
    {"EHLO ", SMTP_VERB_EHLO, "", 0},
    {"EHLO   ", SMTP_VERB_EHLO, "", 0},
    {"EHLO x   ", SMTP_VERB_EHLO, "x", 0},
    {"EHLO  x", SMTP_VERB_EHLO, " x", 0}, /* only one SP belongs to the verb */
    {"EHLOX", SMTP_VERB_UNKNOWN, "", 0},
    {"EHLO\tx", SMTP_VERB_UNKNOWN, "", 0},
    {"MAIL FROM:<a@b>", SMTP_VERB_MAIL, "<a@b>", 0},
    {"mail from:<a@b>", SMTP_VERB_MAIL, "<a@b>", 0},
    {"Mail From:<a@b> SIZE=10  ", SMTP_VERB_MAIL, "<a@b> SIZE=10", 0},
    {"MAIL FROM: <a@b>", SMTP_VERB_MAIL, " <a@b>", 0},
    {"MAIL FROM:", SMTP_VERB_MAIL, "", 0},
    {"MAIL FROM:<>", SMTP_VERB_MAIL, "<>", 0},
    {"MAIL TO:<x>", SMTP_VERB_MAIL, "TO:<x>", 1},
    {"MAIL", SMTP_VERB_MAIL, "", 1},
    {"MAIL ", SMTP_VERB_MAIL, "", 1},
    {"MAIL FROM :<a@b>", SMTP_VERB_MAIL, "FROM :<a@b>", 1},
    {"MAIL FROM", SMTP_VERB_MAIL, "FROM", 1},
    {"MAIL  FROM:<a@b>", SMTP_VERB_MAIL, " FROM:<a@b>", 1},
    {"MAILFROM:<a@b>", SMTP_VERB_UNKNOWN, "", 0},
    {"RCPT TO:<a@b>", SMTP_VERB_RCPT, "<a@b>", 0},
    {"rcpt to:<a@b> NOTIFY=NEVER", SMTP_VERB_RCPT, "<a@b> NOTIFY=NEVER", 0},
    {"RCPT TO:", SMTP_VERB_RCPT, "", 0},
    {"RCPT FROM:<a@b>", SMTP_VERB_RCPT, "FROM:<a@b>", 1},
    {"RCPT", SMTP_VERB_RCPT, "", 1},
    {"RCPT T0:<a@b>", SMTP_VERB_RCPT, "T0:<a@b>", 1},
    {"DATA", SMTP_VERB_DATA, "", 0},
    {"data", SMTP_VERB_DATA, "", 0},
    {"DATA x", SMTP_VERB_DATA, "x", 0},
    {"BDAT 100 LAST", SMTP_VERB_BDAT, "100 LAST", 0},
    {"RSET", SMTP_VERB_RSET, "", 0},
    {"NOOP hello there", SMTP_VERB_NOOP, "hello there", 0},
    {"QUIT", SMTP_VERB_QUIT, "", 0},
    {"VRFY user", SMTP_VERB_VRFY, "user", 0},
    {"EXPN list", SMTP_VERB_EXPN, "list", 0},
    {"HELP", SMTP_VERB_HELP, "", 0},
    {"STARTTLS", SMTP_VERB_STARTTLS, "", 0},
    {"StartTLS", SMTP_VERB_STARTTLS, "", 0},
    {"AUTH PLAIN AGEAYg==", SMTP_VERB_AUTH, "PLAIN AGEAYg==", 0},
    {"GET / HTTP/1.1", SMTP_VERB_HTTP, "/ HTTP/1.1", 0},
    {"POST /form HTTP/1.0", SMTP_VERB_HTTP, "/form HTTP/1.0", 0},
    {"HEAD / HTTP/1.1", SMTP_VERB_HTTP, "/ HTTP/1.1", 0},
    {"PUT /x HTTP/1.1", SMTP_VERB_HTTP, "/x HTTP/1.1", 0},
    {"DELETE /x HTTP/1.1", SMTP_VERB_HTTP, "/x HTTP/1.1", 0},
    {"CONNECT relay:25 HTTP/1.1", SMTP_VERB_HTTP, "relay:25 HTTP/1.1", 0},
    {"OPTIONS * HTTP/1.1", SMTP_VERB_HTTP, "* HTTP/1.1", 0},
    {"TRACE / HTTP/1.1", SMTP_VERB_HTTP, "/ HTTP/1.1", 0},
    {"PATCH / HTTP/1.1", SMTP_VERB_HTTP, "/ HTTP/1.1", 0},
    {"get / HTTP/1.1", SMTP_VERB_HTTP, "/ HTTP/1.1", 0},
    {"GET ", SMTP_VERB_HTTP, "", 0},
    {"GET", SMTP_VERB_UNKNOWN, "", 0},
    {"POST", SMTP_VERB_UNKNOWN, "", 0},
    {"GETX /", SMTP_VERB_UNKNOWN, "/", 0},
    {"", SMTP_VERB_UNKNOWN, "", 0},
    {" ", SMTP_VERB_UNKNOWN, "", 0},
    {" EHLO x", SMTP_VERB_UNKNOWN, "EHLO x", 0},
    {"XYZZY", SMTP_VERB_UNKNOWN, "", 0},
    {"XYZZY plugh", SMTP_VERB_UNKNOWN, "plugh", 0},
    {"HEL", SMTP_VERB_UNKNOWN, "", 0},
    {"HELOO x", SMTP_VERB_UNKNOWN, "x", 0},
    {"STARTTLSX", SMTP_VERB_UNKNOWN, "", 0},
};

static void check_parse(const struct parse_case *c, size_t i)
{
	size_t len = strlen(c->line);
	char *line = malloc(len ? len : 1); /* exact size: overreads are caught */
	struct smtp_cmd cmd;
	memcpy(line, c->line, len);
	memset(&cmd, 0x55, sizeof(cmd));
	smtp_cmd_parse(line, len, &cmd);
	if (cmd.verb != c->verb)
		fail_msg("case %zu \"%s\": verb %s, want %s", i, c->line, smtp_verb_name(cmd.verb),
		         smtp_verb_name(c->verb));
	if (cmd.malformed != c->malformed)
		fail_msg("case %zu \"%s\": malformed %d", i, c->line, cmd.malformed);
	assert_non_null(cmd.arg);
	assert_true(cmd.arg >= line && cmd.arg + cmd.arg_len <= line + len);
	/* the argument of UNKNOWN is informational only; check the rest */
	if (cmd.arg_len != strlen(c->arg) || memcmp(cmd.arg, c->arg, cmd.arg_len) != 0)
		fail_msg("case %zu \"%s\": arg \"%.*s\", want \"%s\"", i, c->line, (int)cmd.arg_len,
		         cmd.arg, c->arg);
	free(line);
}

static void test_cmd_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++)
		check_parse(&parse_cases[i], i);
}

/* A NUL inside the verb does not match anything (the line scanner refuses
 * such lines first, but the parser must not be fooled either). */
static void test_cmd_parse_nul(void **state)
{
	(void)state;
	struct smtp_cmd cmd;
	smtp_cmd_parse("QU\0IT", 5, &cmd);
	assert_int_equal(cmd.verb, SMTP_VERB_UNKNOWN);
	smtp_cmd_parse("QUIT\0", 5, &cmd);
	assert_int_equal(cmd.verb, SMTP_VERB_UNKNOWN);
	smtp_cmd_parse("NOOP \0", 6, &cmd);
	assert_int_equal(cmd.verb, SMTP_VERB_NOOP);
	assert_int_equal(cmd.arg_len, 1);
}

/* Pipelined commands arriving one byte at a time give the same verbs and
 * arguments as the same bytes arriving at once (RFC 2920). */
static void test_cmd_pipeline_trickle(void **state)
{
	(void)state;
	static const char in[] = "EHLO client.example\r\nMAIL FROM:<a@b.example> SIZE=100\r\n"
	                         "RCPT TO:<c@d.example>\r\nrcpt to:<e@f.example>\r\nDATA\r\n";
	static const enum smtp_verb want[] = {SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	                                      SMTP_VERB_RCPT, SMTP_VERB_DATA};
	static const char *const want_arg[] = {"client.example", "<a@b.example> SIZE=100",
	                                       "<c@d.example>", "<e@f.example>", ""};
	for (int mode = 0; mode < 2; mode++) {
		char buf[256];
		size_t have = 0, fed = 0, n = 0;
		while (fed < sizeof(in) - 1) {
			size_t step = mode == 0 ? sizeof(in) - 1 : 1;
			memcpy(buf + have, in + fed, step);
			have += step;
			fed += step;
			for (;;) {
				size_t line_len, consumed;
				enum smtp_line_result r = smtp_line_scan(
				    buf, have, SMTP_CMDLINE_MAX, &line_len, &consumed);
				if (r == SMTP_LINE_PARTIAL)
					break;
				assert_int_equal(r, SMTP_LINE_OK);
				struct smtp_cmd cmd;
				smtp_cmd_parse(buf, line_len, &cmd);
				assert_true(n < 5);
				assert_int_equal(cmd.verb, want[n]);
				assert_int_equal(cmd.malformed, 0);
				assert_int_equal(cmd.arg_len, strlen(want_arg[n]));
				assert_memory_equal(cmd.arg, want_arg[n], cmd.arg_len);
				n++;
				memmove(buf, buf + consumed, have - consumed);
				have -= consumed;
			}
		}
		assert_int_equal(n, 5);
		assert_int_equal(have, 0);
	}
}

static void test_verb_names(void **state)
{
	(void)state;
	static const struct {
		enum smtp_verb verb;
		const char *name;
	} names[] = {
	    {SMTP_VERB_UNKNOWN, "UNKNOWN"}, {SMTP_VERB_HELO, "HELO"},
	    {SMTP_VERB_EHLO, "EHLO"},       {SMTP_VERB_MAIL, "MAIL"},
	    {SMTP_VERB_RCPT, "RCPT"},       {SMTP_VERB_DATA, "DATA"},
	    {SMTP_VERB_BDAT, "BDAT"},       {SMTP_VERB_RSET, "RSET"},
	    {SMTP_VERB_NOOP, "NOOP"},       {SMTP_VERB_QUIT, "QUIT"},
	    {SMTP_VERB_VRFY, "VRFY"},       {SMTP_VERB_EXPN, "EXPN"},
	    {SMTP_VERB_HELP, "HELP"},       {SMTP_VERB_STARTTLS, "STARTTLS"},
	    {SMTP_VERB_AUTH, "AUTH"},       {SMTP_VERB_HTTP, "HTTP"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(smtp_verb_name(names[i].verb), names[i].name);
	assert_string_equal(smtp_verb_name((enum smtp_verb)999), "UNKNOWN");
	/* every name parses back to its verb (the round trip the logs rely on) */
	for (size_t i = 1; i < sizeof(names) / sizeof(names[0]) - 1; i++) {
		struct smtp_cmd cmd;
		const char *name = names[i].name;
		smtp_cmd_parse(name, strlen(name), &cmd);
		assert_int_equal(cmd.verb, names[i].verb);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_scan_table),
	    cmocka_unit_test(test_line_scan_limits),
	    cmocka_unit_test(test_line_scan_partial_until_max),
	    cmocka_unit_test(test_line_scan_trickle),
	    cmocka_unit_test(test_line_scan_stream_log),
	    cmocka_unit_test(test_cmd_parse_table),
	    cmocka_unit_test(test_cmd_parse_nul),
	    cmocka_unit_test(test_cmd_pipeline_trickle),
	    cmocka_unit_test(test_verb_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
