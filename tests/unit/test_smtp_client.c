/* SPDX-License-Identifier: ISC */
/*
 * test_smtp_client.c - unit tests for smtp_client.c: scripted dialogues.
 * Each test feeds the server's replies and checks the exact bytes the client
 * sends, its wants and the per-recipient results. Every dialogue runs twice:
 * with each server write fed whole, and fed one byte at a time.
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

#include "lib/limits.h"
#include "smtp/smtp_client.h"

static const bool WHOLE = false;
static const bool BYTES = true;

#define EHLO_NAME "client.example.net"
#define GREETING  "220 mx.example.org ESMTP ready\r\n"

/* One dialogue: the client and how server writes are fed. */
struct dlg {
	struct smtp_client *c;
	bool bytewise;
};

static struct dlg dlg_new(void **state, const struct smtp_client_config *cfg)
{
	struct dlg d = {smtp_client_new(cfg), *(const bool *)*state};
	assert_non_null(d.c);
	return d;
}

static void dlg_free(struct dlg *d)
{
	smtp_client_free(&d->c);
	assert_null(d->c);
}

static struct smtp_client_config config_plain(void)
{
	struct smtp_client_config cfg = {.ehlo_name = EHLO_NAME, .tls = SMTP_CLIENT_TLS_NONE};
	return cfg;
}

/* server - the server writes s; each call to feed gets a heap copy of
 * exactly its bytes. */
static void server(struct dlg *d, const char *s)
{
	size_t len = strlen(s);
	size_t step = d->bytewise ? 1 : len;

	for (size_t pos = 0; pos < len; pos += step) {
		size_t n = len - pos < step ? len - pos : step;
		char *piece = malloc(n);
		memcpy(piece, s + pos, n);
		smtp_client_feed(d->c, piece, n);
		free(piece);
	}
}

/* sent - the client's output must be exactly want; it is then drained. Every
 * line is checked against the RFC 5321 limits on the way. */
static void sent(struct dlg *d, const char *want)
{
	size_t len;
	const char *out = smtp_client_output(d->c, &len);

	if (len != strlen(want) || memcmp(out, want, len) != 0)
		fail_msg("client sent \"%.*s\"\nwanted      \"%s\"", (int)len, out, want);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\r') {
			assert_true(i + 1 < len && out[i + 1] == '\n');
		} else if (out[i] == '\n') {
			assert_true(i > 0 && out[i - 1] == '\r');
			size_t line = i + 1 - start;
			/* RFC 5321 4.5.3.1.4: commands 512 octets; SASL lines
			 * (RFC 4954 4) up to 12288 */
			static const char *const verbs[] = {"EHLO", "HELO", "MAIL", "RCPT",
			                                    "DATA", "RSET", "QUIT", "STARTTLS"};
			size_t max = SMTP_AUTHLINE_MAX;
			for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
				if (strncmp(out + start, verbs[v], strlen(verbs[v])) == 0)
					max = SMTP_CMDLINE_MAX;
			assert_true(line <= max);
			start = i + 1;
		}
	}
	assert_int_equal(start, len); /* whole lines only */
	smtp_client_output_consume(d->c, len);
	out = smtp_client_output(d->c, &len);
	assert_int_equal(len, 0);
}

static void nothing_sent(struct dlg *d)
{
	sent(d, "");
}

static void want(struct dlg *d, enum smtp_client_want w)
{
	enum smtp_client_want got = smtp_client_want(d->c);
	if (got != w)
		fail_msg("want %d, expected %d", (int)got, (int)w);
}

/* hello - greeting and EHLO, answered with ehlo_reply. */
static void hello(struct dlg *d, const char *ehlo_reply)
{
	want(d, SMTP_CLIENT_WANT_REPLY);
	nothing_sent(d);
	server(d, GREETING);
	sent(d, "EHLO " EHLO_NAME "\r\n");
	want(d, SMTP_CLIENT_WANT_REPLY);
	server(d, ehlo_reply);
}

/* body - the caller streams the body and reports it. */
static void body(struct dlg *d)
{
	want(d, SMTP_CLIENT_WANT_BODY);
	nothing_sent(d);
	smtp_client_body_sent(d->c);
	want(d, SMTP_CLIENT_WANT_REPLY);
}

static void quit(struct dlg *d)
{
	want(d, SMTP_CLIENT_WANT_MESSAGE);
	smtp_client_quit(d->c);
	sent(d, "QUIT\r\n");
	want(d, SMTP_CLIENT_WANT_REPLY);
	server(d, "221 2.0.0 Bye\r\n");
	want(d, SMTP_CLIENT_WANT_DONE);
	assert_null(smtp_client_error(d->c));
}

static void check_result(const struct smtp_client_result *r, enum smtp_client_status status,
                         int code, const char *enhanced, const char *text)
{
	if (r->status != status || r->code != code || strcmp(r->enhanced, enhanced) != 0 ||
	    strcmp(r->text, text) != 0)
		fail_msg("result %d %d %s \"%s\", wanted %d %d %s \"%s\"", (int)r->status, r->code,
		         r->enhanced, r->text, (int)status, code, enhanced, text);
}

/* A message to rcpt1..rcptN@example.org. */
#define RCPTS_MAX 8
struct msg {
	struct smtp_client_message m;
	struct smtp_client_rcpt r[RCPTS_MAX];
	char addr[RCPTS_MAX][64];
	struct smtp_client_result res[RCPTS_MAX];
};

static void msg_init(struct msg *x, size_t n)
{
	memset(x, 0, sizeof(*x));
	for (size_t i = 0; i < n; i++) {
		snprintf(x->addr[i], sizeof(x->addr[i]), "rcpt%zu@example.org", i + 1);
		x->r[i].address = x->addr[i];
	}
	x->m.reverse_path = "sender@example.net";
	x->m.rcpts = x->r;
	x->m.nrcpts = n;
	x->m.size = 1234;
}

static void send_msg(struct dlg *d, struct msg *x)
{
	want(d, SMTP_CLIENT_WANT_MESSAGE);
	smtp_client_send(d->c, &x->m, x->res);
}

#define EHLO_BASIC "250-mx.example.org\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PIPE                                                                                  \
	"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"            \
	"250 ENHANCEDSTATUSCODES\r\n"

/* ---- plain delivery ---- */

static void test_plain_delivery(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	assert_int_equal(smtp_client_timeout(d.c), 300);
	hello(&d, EHLO_BASIC);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	const struct smtp_client_info *info = smtp_client_info(d.c);
	assert_string_equal(info->greeting, "mx.example.org ESMTP ready");
	assert_string_equal(info->ehlo_line, "mx.example.org");
	assert_int_equal(info->extensions,
	                 SMTP_CLIENT_EXT_8BITMIME | SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES);
	assert_false(info->tls);
	assert_false(info->used_helo);
	assert_int_equal(smtp_client_timeout(d.c), 0);

	msg_init(&x, 1);
	send_msg(&d, &x);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_PENDING);
	/* no SIZE offered: no SIZE=; one command per reply */
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	want(&d, SMTP_CLIENT_WANT_REPLY);
	server(&d, "250 2.1.0 Sender ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 2.1.5 Recipient ok\r\n");
	sent(&d, "DATA\r\n");
	assert_int_equal(smtp_client_timeout(d.c), 120);
	server(&d, "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(smtp_client_timeout(d.c), 180);
	body(&d);
	assert_int_equal(smtp_client_timeout(d.c), 600);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_PENDING);
	server(&d, "250 2.0.0 Ok: queued as 4Xyz\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "2.0.0", "Ok: queued as 4Xyz");
	assert_true(x.res[0].remote);
	assert_int_equal(x.res[0].reason, SMTP_CLIENT_R_REPLY);
	quit(&d);
	dlg_free(&d);
}

/* The null reverse-path of a bounce, and a multi-line final reply. */
static void test_null_sender(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "250 mx.example.org\r\n");
	msg_init(&x, 1);
	x.m.reverse_path = "";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	body(&d);
	server(&d, "250-2.0.0 Ok\r\n250 2.0.0 queued as 1\r\n");
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "2.0.0", "Ok queued as 1");
	quit(&d);
	dlg_free(&d);
}

/* ---- pipelining ---- */

static void test_pipelined(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	assert_int_equal(smtp_client_info(d.c)->size_limit, 10240000);
	msg_init(&x, 3);
	send_msg(&d, &x);
	/* RFC 2920: MAIL, every RCPT and DATA in one write */
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "RCPT TO:<rcpt3@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 mailbox busy\r\n"
	           "550 5.1.1 no such user\r\n354 go ahead\r\n");
	nothing_sent(&d);
	/* RCPT failures are final at once */
	check_result(&x.res[1], SMTP_CLIENT_TEMPFAIL, 450, "4.2.0", "mailbox busy");
	check_result(&x.res[2], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "no such user");
	assert_int_equal(x.res[0].status, SMTP_CLIENT_PENDING);
	body(&d);
	server(&d, "250 2.0.0 queued\r\n");
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "2.0.0", "queued");
	check_result(&x.res[1], SMTP_CLIENT_TEMPFAIL, 450, "4.2.0", "mailbox busy");
	check_result(&x.res[2], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "no such user");
	quit(&d);
	dlg_free(&d);
}

/* The same dialogue, one command at a time. */
static void test_unpipelined_mixed(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "250-mx.example.org\r\n250 SIZE 10240000\r\n");
	msg_init(&x, 3);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n");
	server(&d, "250 2.1.0 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 2.1.5 ok\r\n");
	sent(&d, "RCPT TO:<rcpt2@example.org>\r\n");
	server(&d, "450 4.2.0 mailbox busy\r\n");
	sent(&d, "RCPT TO:<rcpt3@example.org>\r\n");
	server(&d, "550 5.1.1 no such user\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go ahead\r\n");
	body(&d);
	server(&d, "554 5.7.1 spam\r\n");
	check_result(&x.res[0], SMTP_CLIENT_PERMFAIL, 554, "5.7.1", "spam");
	check_result(&x.res[1], SMTP_CLIENT_TEMPFAIL, 450, "4.2.0", "mailbox busy");
	check_result(&x.res[2], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "no such user");
	/* the end of data closed the transaction: no RSET before the next */
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	body(&d);
	server(&d, "451 4.3.0 try later\r\n");
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 451, "4.3.0", "try later");
	quit(&d);
	dlg_free(&d);
}

/* ---- too many recipients (RFC 5321 4.5.3.1.10) ---- */

static void test_too_many_pipelined(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 5);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "RCPT TO:<rcpt3@example.org>\r\n"
	         "RCPT TO:<rcpt4@example.org>\r\n"
	         "RCPT TO:<rcpt5@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n250 ok\r\n452 4.5.3 Too many recipients\r\n"
	           "452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n"
	           "354 go\r\n");
	body(&d);
	server(&d, "250 2.0.0 queued as A\r\n");
	/* 3 to 5 were not failed: a second transaction carries them */
	want(&d, SMTP_CLIENT_WANT_REPLY);
	for (size_t i = 2; i < 5; i++)
		assert_int_equal(x.res[i].status, SMTP_CLIENT_PENDING);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt3@example.org>\r\n"
	         "RCPT TO:<rcpt4@example.org>\r\n"
	         "RCPT TO:<rcpt5@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	body(&d);
	server(&d, "250 2.0.0 queued as B\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	for (size_t i = 0; i < 2; i++)
		check_result(&x.res[i], SMTP_CLIENT_OK, 250, "2.0.0", "queued as A");
	for (size_t i = 2; i < 5; i++)
		check_result(&x.res[i], SMTP_CLIENT_OK, 250, "2.0.0", "queued as B");
	quit(&d);
	dlg_free(&d);
}

/* 452 to recipient 3 of 5 without pipelining: 3..5 go again. A plain 452
 * (no enhanced code) counts too. */
static void test_too_many_unpipelined(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "250 mx.example.org\r\n");
	msg_init(&x, 5);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt2@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt3@example.org>\r\n");
	server(&d, "452 Too many recipients\r\n");
	sent(&d, "RCPT TO:<rcpt4@example.org>\r\n");
	server(&d, "452 Too many recipients\r\n");
	sent(&d, "RCPT TO:<rcpt5@example.org>\r\n");
	server(&d, "452 Too many recipients\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	body(&d);
	server(&d, "250 queued as A\r\n");
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt3@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt4@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt5@example.org>\r\n");
	server(&d, "550 5.1.1 unknown\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	body(&d);
	server(&d, "250 queued as B\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "", "queued as A");
	check_result(&x.res[1], SMTP_CLIENT_OK, 250, "", "queued as A");
	check_result(&x.res[2], SMTP_CLIENT_OK, 250, "", "queued as B");
	check_result(&x.res[3], SMTP_CLIENT_OK, 250, "", "queued as B");
	check_result(&x.res[4], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "unknown");
	quit(&d);
	dlg_free(&d);
}

/* When no recipient was accepted a 452 is final (or this would loop), and
 * a 452 with another enhanced code is an ordinary temporary failure. The
 * transaction was left open (DATA refused): RSET before the next one. */
static void test_too_many_none_accepted(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n452 4.5.3 Too many\r\n452 4.3.1 No room\r\n"
	           "554 5.5.1 No valid recipients\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	nothing_sent(&d);
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 452, "4.5.3", "Too many");
	check_result(&x.res[1], SMTP_CLIENT_TEMPFAIL, 452, "4.3.1", "No room");

	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "RSET\r\n"
	         "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	body(&d);
	server(&d, "250 ok\r\n");
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "", "ok");
	quit(&d);
	dlg_free(&d);
}

/* ---- failed MAIL, failed DATA, all recipients refused ---- */

static void test_mail_refused_pipelined(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
	           "503 5.5.1 need RCPT\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	for (size_t i = 0; i < 2; i++)
		check_result(&x.res[i], SMTP_CLIENT_PERMFAIL, 550, "5.7.1", "sender refused");
	quit(&d);
	dlg_free(&d);
}

static void test_mail_refused_unpipelined(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_BASIC);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "451 4.7.1 greylisted\r\n");
	/* no RCPT after a failed MAIL */
	nothing_sent(&d);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	for (size_t i = 0; i < 2; i++)
		check_result(&x.res[i], SMTP_CLIENT_TEMPFAIL, 451, "4.7.1", "greylisted");
	/* next message: RSET first, then MAIL once it is answered */
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "RSET\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "550 5.1.1 unknown\r\n");
	/* nobody accepted: no DATA */
	nothing_sent(&d);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	check_result(&x.res[0], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "unknown");
	quit(&d);
	dlg_free(&d);
}

/* A server that answers DATA with 354 although every RCPT failed gets an
 * empty message, and its reply changes nothing. */
static void test_all_refused_but_354(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n550 5.1.1 unknown\r\n450 4.2.1 later\r\n354 go\r\n");
	sent(&d, ".\r\n");
	want(&d, SMTP_CLIENT_WANT_REPLY);
	server(&d, "250 2.0.0 queued (nothing)\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	check_result(&x.res[0], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "unknown");
	check_result(&x.res[1], SMTP_CLIENT_TEMPFAIL, 450, "4.2.1", "later");
	/* the end of data closed the transaction */
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "DATA\r\n");
	dlg_free(&d);
}

static void test_data_refused(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n451 4.3.0 try later\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 451, "4.3.0", "try later");
	check_result(&x.res[1], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "unknown");
	quit(&d);
	dlg_free(&d);
}

/* ---- EHLO / HELO ---- */

static void test_helo_fallback(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "502 5.5.1 Command not implemented\r\n");
	sent(&d, "HELO " EHLO_NAME "\r\n");
	want(&d, SMTP_CLIENT_WANT_REPLY);
	server(&d, "250 mx.example.org\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	const struct smtp_client_info *info = smtp_client_info(d.c);
	assert_true(info->used_helo);
	assert_int_equal(info->extensions, 0);
	assert_string_equal(info->ehlo_line, "mx.example.org");
	/* no extension: no parameter, one command at a time */
	msg_init(&x, 2);
	x.m.body_8bit = true;
	x.m.envid = "abc";
	x.m.ret = SMTP_RET_HDRS;
	x.r[0].notify = SMTP_NOTIFY_FAILURE;
	x.r[0].orcpt = "rfc822;rcpt1@example.org";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	dlg_free(&d);
}

static void test_helo_refused(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "500 5.5.1 what\r\n");
	sent(&d, "HELO " EHLO_NAME "\r\n");
	server(&d, "550 5.7.1 go away\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_PERMFAIL, 550, "5.7.1", "go away");
	assert_int_equal(e->reason, SMTP_CLIENT_R_HELO);
	assert_true(e->remote);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	/* a 4xx to EHLO is not a reason to try HELO */
	d = dlg_new(state, &cfg);
	hello(&d, "451 4.3.0 busy\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	check_result(smtp_client_error(d.c), SMTP_CLIENT_TEMPFAIL, 451, "4.3.0", "busy");
	sent(&d, "QUIT\r\n");
	dlg_free(&d);
}

static void test_greeting_refused(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);

	server(&d, "554-5.3.2 No SMTP service here\r\n554 5.3.2 Go away\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_PERMFAIL, 554, "5.3.2", "No SMTP service here Go away");
	assert_int_equal(e->reason, SMTP_CLIENT_R_GREETING);
	sent(&d, "QUIT\r\n");
	/* nothing more is read */
	server(&d, "221 bye\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	dlg_free(&d);

	d = dlg_new(state, &cfg);
	server(&d, "450 4.3.2 busy\r\n");
	check_result(smtp_client_error(d.c), SMTP_CLIENT_TEMPFAIL, 450, "4.3.2", "busy");
	dlg_free(&d);

	d = dlg_new(state, &cfg);
	server(&d, "421 4.7.0 too many connections\r\n");
	e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_TEMPFAIL, 421, "4.7.0", "too many connections");
	assert_int_equal(e->reason, SMTP_CLIENT_R_CLOSING);
	nothing_sent(&d); /* the server is closing: no QUIT */
	dlg_free(&d);
}

/* EHLO keywords: case, parameters, the old "AUTH=" form, SIZE without a
 * number. */
static void test_ehlo_keywords(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org Hello\r\n250-pipelining\r\n250-SIZE\r\n250-8BITMIME\r\n"
	          "250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-AUTH=LOGIN\r\n"
	          "250-AUTH CRAM-MD5 plain\r\n250-CHUNKING\r\n250-XFOO bar\r\n"
	          "250 ENHANCEDSTATUSCODES\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE); /* TLS NONE: STARTTLS not used */
	const struct smtp_client_info *info = smtp_client_info(d.c);
	assert_int_equal(info->extensions, SMTP_CLIENT_EXT_PIPELINING | SMTP_CLIENT_EXT_SIZE |
	                                       SMTP_CLIENT_EXT_8BITMIME | SMTP_CLIENT_EXT_SMTPUTF8 |
	                                       SMTP_CLIENT_EXT_DSN | SMTP_CLIENT_EXT_STARTTLS |
	                                       SMTP_CLIENT_EXT_AUTH | SMTP_CLIENT_EXT_CHUNKING |
	                                       SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES);
	assert_int_equal(info->size_limit, 0);
	assert_int_equal(info->auth_mechs, SMTP_CLIENT_AUTH_PLAIN | SMTP_CLIENT_AUTH_LOGIN);
	assert_true(info->starttls_offered);
	assert_string_equal(info->ehlo_line, "mx.example.org Hello");
	dlg_free(&d);
}

/* ---- STARTTLS (RFC 3207) ---- */

static void test_starttls_opportunistic(void **state)
{
	struct smtp_client_config cfg = config_plain();
	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "250-mx.example.org\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 PIPELINING\r\n");
	sent(&d, "STARTTLS\r\n");
	want(&d, SMTP_CLIENT_WANT_REPLY);
	server(&d, "220 2.0.0 Ready to start TLS\r\n");
	want(&d, SMTP_CLIENT_WANT_TLS);
	assert_int_equal(smtp_client_timeout(d.c), TLS_HANDSHAKE_TIMEOUT);
	nothing_sent(&d);
	smtp_client_tls_done(d.c, true);
	/* everything from before TLS is forgotten */
	const struct smtp_client_info *info = smtp_client_info(d.c);
	assert_true(info->tls);
	assert_int_equal(info->extensions, 0);
	assert_int_equal(info->size_limit, 0);
	sent(&d, "EHLO " EHLO_NAME "\r\n");
	server(&d, "250-mx.example.org\r\n250 8BITMIME\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_int_equal(info->extensions, SMTP_CLIENT_EXT_8BITMIME);
	assert_true(info->starttls_offered);
	/* the SIZE 1000 said in plaintext does not count */
	msg_init(&x, 1);
	x.m.size = 5000;
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	dlg_free(&d);
}

static void test_starttls_absent(void **state)
{
	struct smtp_client_config cfg = config_plain();
	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, EHLO_PIPE);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	nothing_sent(&d);
	assert_false(smtp_client_info(d.c)->tls);
	assert_false(smtp_client_info(d.c)->starttls_offered);
	quit(&d);
	dlg_free(&d);

	/* offered but refused: go on in plaintext */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 STARTTLS\r\n");
	sent(&d, "STARTTLS\r\n");
	server(&d, "454 4.7.0 TLS not available\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_false(smtp_client_info(d.c)->tls);
	quit(&d);
	dlg_free(&d);
}

static void test_starttls_required(void **state)
{
	struct smtp_client_config cfg = config_plain();
	cfg.tls = SMTP_CLIENT_TLS_REQUIRED;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, EHLO_PIPE);
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_TEMPFAIL, 451, "4.7.10",
	             "TLS required but STARTTLS not offered");
	assert_int_equal(e->reason, SMTP_CLIENT_R_TLS_REQUIRED);
	assert_false(e->remote);
	assert_string_equal(smtp_client_reason_name(e->reason), "tls_required");
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	/* refused: a temporary failure whatever the code */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 STARTTLS\r\n");
	sent(&d, "STARTTLS\r\n");
	server(&d, "502 5.5.1 not today\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_TEMPFAIL, 502, "5.5.1", "not today");
	assert_int_equal(e->reason, SMTP_CLIENT_R_TLS_REQUIRED);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	/* HELO fallback: no extension, so no STARTTLS */
	d = dlg_new(state, &cfg);
	hello(&d, "500 what\r\n");
	sent(&d, "HELO " EHLO_NAME "\r\n");
	server(&d, "250 ok\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_TLS_REQUIRED);
	dlg_free(&d);

	/* implicit TLS satisfies it, and STARTTLS is never sent inside TLS */
	cfg.implicit_tls = true;
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 STARTTLS\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	nothing_sent(&d);
	assert_true(smtp_client_info(d.c)->tls);
	dlg_free(&d);
}

/* Bytes after the 220 to STARTTLS were sent before the handshake: they
 * must not be read as if they came through TLS (CVE-2011-0411). */
static void test_starttls_injection(void **state)
{
	struct smtp_client_config cfg = config_plain();
	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 STARTTLS\r\n");
	sent(&d, "STARTTLS\r\n");
	server(&d, "220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	assert_int_equal(e->status, SMTP_CLIENT_TEMPFAIL);
	assert_int_equal(e->reason, SMTP_CLIENT_R_PROTOCOL);
	nothing_sent(&d);
	dlg_free(&d);
}

static void test_tls_failed(void **state)
{
	struct smtp_client_config cfg = config_plain();
	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 STARTTLS\r\n");
	sent(&d, "STARTTLS\r\n");
	server(&d, "220 go ahead\r\n");
	smtp_client_tls_done(d.c, false);
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_TEMPFAIL, 451, "4.7.5", "TLS handshake failed");
	assert_int_equal(e->reason, SMTP_CLIENT_R_TLS_FAILED);
	nothing_sent(&d);
	dlg_free(&d);
}

/* ---- AUTH (RFC 4954) ---- */

static struct smtp_client_config config_auth(void)
{
	struct smtp_client_config cfg = config_plain();
	cfg.auth_user = "user@example.net";
	cfg.auth_password = "secret";
	return cfg;
}

/* base64("\0user@example.net\0secret") */
#define PLAIN_IR "AHVzZXJAZXhhbXBsZS5uZXQAc2VjcmV0"

static void test_auth_plain_implicit_tls(void **state)
{
	struct smtp_client_config cfg = config_auth();
	cfg.implicit_tls = true;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 AUTH LOGIN PLAIN\r\n");
	/* PLAIN preferred, with the initial response */
	sent(&d, "AUTH PLAIN " PLAIN_IR "\r\n");
	want(&d, SMTP_CLIENT_WANT_REPLY);
	server(&d, "235 2.7.0 Authentication successful\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_true(smtp_client_info(d.c)->authenticated);
	quit(&d);
	dlg_free(&d);
}

static void test_auth_login(void **state)
{
	struct smtp_client_config cfg = config_auth();
	cfg.implicit_tls = true;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 AUTH LOGIN CRAM-MD5\r\n");
	sent(&d, "AUTH LOGIN\r\n");
	server(&d, "334 VXNlcm5hbWU6\r\n");
	sent(&d, "dXNlckBleGFtcGxlLm5ldA==\r\n");
	server(&d, "334 UGFzc3dvcmQ6\r\n");
	sent(&d, "c2VjcmV0\r\n");
	server(&d, "235 2.7.0 ok\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_true(smtp_client_info(d.c)->authenticated);
	dlg_free(&d);
}

/* STARTTLS first, AUTH only after it, from the second EHLO's list. */
static void test_auth_after_starttls(void **state)
{
	struct smtp_client_config cfg = config_auth();
	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n");
	sent(&d, "STARTTLS\r\n");
	server(&d, "220 go ahead\r\n");
	smtp_client_tls_done(d.c, true);
	sent(&d, "EHLO " EHLO_NAME "\r\n");
	server(&d, "250-mx.example.org\r\n250 AUTH LOGIN\r\n");
	sent(&d, "AUTH LOGIN\r\n");
	server(&d, "334 VXNlcm5hbWU6\r\n");
	sent(&d, "dXNlckBleGFtcGxlLm5ldA==\r\n");
	server(&d, "334 UGFzc3dvcmQ6\r\n");
	sent(&d, "c2VjcmV0\r\n");
	server(&d, "235 ok\r\n");
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	dlg_free(&d);
}

/* Never credentials in plaintext. */
static void test_auth_refused_in_plaintext(void **state)
{
	struct smtp_client_config cfg = config_auth();
	cfg.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 AUTH PLAIN LOGIN\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	assert_int_equal(e->status, SMTP_CLIENT_TEMPFAIL);
	assert_int_equal(e->reason, SMTP_CLIENT_R_AUTH_PLAINTEXT);
	sent(&d, "QUIT\r\n"); /* and no AUTH */
	dlg_free(&d);

	/* STARTTLS refused: still no AUTH */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
	sent(&d, "STARTTLS\r\n");
	server(&d, "454 4.7.0 no TLS now\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_AUTH_PLAINTEXT);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	/* TLS NONE with credentials: never */
	cfg.tls = SMTP_CLIENT_TLS_NONE;
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_AUTH_PLAINTEXT);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);
}

static void test_auth_failed(void **state)
{
	struct smtp_client_config cfg = config_auth();
	cfg.implicit_tls = true;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 AUTH PLAIN\r\n");
	sent(&d, "AUTH PLAIN " PLAIN_IR "\r\n");
	server(&d, "535 5.7.8 Authentication credentials invalid\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_PERMFAIL, 535, "5.7.8", "Authentication credentials invalid");
	assert_int_equal(e->reason, SMTP_CLIENT_R_AUTH_FAILED);
	assert_string_equal(smtp_client_reason_name(e->reason), "auth_failed");
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	/* 454: temporary; in the middle of LOGIN too */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 AUTH LOGIN\r\n");
	sent(&d, "AUTH LOGIN\r\n");
	server(&d, "334 VXNlcm5hbWU6\r\n");
	sent(&d, "dXNlckBleGFtcGxlLm5ldA==\r\n");
	server(&d, "454 4.7.0 Temporary authentication failure\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	e = smtp_client_error(d.c);
	assert_int_equal(e->status, SMTP_CLIENT_TEMPFAIL);
	assert_int_equal(e->reason, SMTP_CLIENT_R_AUTH_FAILED);
	dlg_free(&d);

	/* a 334 to PLAIN with its initial response: out of step, no QUIT
	 * (it would be read as a SASL response) */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 AUTH PLAIN\r\n");
	sent(&d, "AUTH PLAIN " PLAIN_IR "\r\n");
	server(&d, "334 \r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_PROTOCOL);
	nothing_sent(&d);
	dlg_free(&d);
}

static void test_auth_unavailable(void **state)
{
	struct smtp_client_config cfg = config_auth();
	cfg.implicit_tls = true;
	struct dlg d = dlg_new(state, &cfg);

	hello(&d, "250-mx.example.org\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_AUTH_UNAVAILABLE);
	assert_int_equal(smtp_client_error(d.c)->status, SMTP_CLIENT_TEMPFAIL);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	d = dlg_new(state, &cfg);
	hello(&d, "250 mx.example.org\r\n");
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_AUTH_UNAVAILABLE);
	dlg_free(&d);
}

/* ---- refusals before a byte is sent ---- */

static void test_smtputf8(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 2);
	x.m.smtputf8 = true;
	send_msg(&d, &x);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	nothing_sent(&d); /* no MAIL */
	for (size_t i = 0; i < 2; i++) {
		check_result(&x.res[i], SMTP_CLIENT_PERMFAIL, 554, "5.6.7",
		             "SMTPUTF8 not supported by the next hop");
		assert_int_equal(x.res[i].reason, SMTP_CLIENT_R_SMTPUTF8);
		assert_false(x.res[i].remote);
	}
	quit(&d);
	dlg_free(&d);

	/* offered: SMTPUTF8 and BODY=8BITMIME (RFC 6531 3.4) */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
	msg_init(&x, 1);
	x.m.smtputf8 = true;
	x.r[0].address = "j\xc3\xb6rg@b\xc3\xbc"
	                 "cher.example";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> BODY=8BITMIME SMTPUTF8\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<j\xc3\xb6rg@b\xc3\xbc"
	         "cher.example>\r\n");
	dlg_free(&d);
}

static void test_size_limit(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "250-mx.example.org\r\n250 SIZE 1000\r\n");
	msg_init(&x, 2);
	x.m.size = 1001;
	send_msg(&d, &x);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	nothing_sent(&d);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(x.res[i].status, SMTP_CLIENT_PERMFAIL);
		assert_int_equal(x.res[i].code, 552);
		assert_string_equal(x.res[i].enhanced, "5.3.4");
		assert_int_equal(x.res[i].reason, SMTP_CLIENT_R_SIZE);
	}
	/* at the limit: sent */
	msg_init(&x, 1);
	x.m.size = 1000;
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1000\r\n");
	dlg_free(&d);

	/* SIZE 0: no limit */
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 SIZE 0\r\n");
	msg_init(&x, 1);
	x.m.size = 99999999999ULL;
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=99999999999\r\n");
	dlg_free(&d);
}

/* Addresses that cannot be sent: never on the wire. */
static void test_bad_addresses(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;
	char longaddr[SMTP_PATH_MAX + 16];

	memset(longaddr, 'a', sizeof(longaddr));
	longaddr[64] = '@';
	longaddr[sizeof(longaddr) - 1] = '\0'; /* past SMTP_PATH_MAX octets */

	hello(&d, EHLO_PIPE);
	msg_init(&x, 4);
	x.r[0].address = "a@b.org> NOTIFY=NEVER";
	x.r[1].address = "x@y.org\r\nRSET";
	x.r[3].address = "";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt3@example.org>\r\n"
	         "DATA\r\n");
	for (size_t i = 0; i < 4; i += i == 1 ? 2 : 1) {
		assert_int_equal(x.res[i].status, SMTP_CLIENT_PERMFAIL);
		assert_string_equal(x.res[i].enhanced, "5.1.3");
		assert_int_equal(x.res[i].reason, SMTP_CLIENT_R_ENVELOPE);
	}
	server(&d, "250 ok\r\n250 ok\r\n354 go\r\n");
	body(&d);
	server(&d, "250 ok\r\n");
	check_result(&x.res[2], SMTP_CLIENT_OK, 250, "", "ok");
	assert_int_equal(x.res[0].status, SMTP_CLIENT_PERMFAIL);

	/* a bad sender: every recipient, nothing sent */
	msg_init(&x, 2);
	x.m.reverse_path = "a@b.org>\r\nRCPT TO:<c@d.org";
	send_msg(&d, &x);
	nothing_sent(&d);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_string_equal(x.res[0].enhanced, "5.1.7");
	assert_string_equal(x.res[1].enhanced, "5.1.7");

	/* every recipient bad, one too long */
	msg_init(&x, 2);
	x.r[0].address = longaddr;
	x.r[1].address = "no-at-sign";
	send_msg(&d, &x);
	nothing_sent(&d);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_PERMFAIL);
	assert_int_equal(x.res[1].status, SMTP_CLIENT_PERMFAIL);
	/* Postmaster without a domain is fine (RFC 5321 4.1.1.3) */
	msg_init(&x, 1);
	x.r[0].address = "Postmaster";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<Postmaster>\r\n"
	         "DATA\r\n");
	dlg_free(&d);
}

/* ---- DSN (RFC 3461) ---- */

static void test_dsn_params(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, "250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 DSN\r\n");
	msg_init(&x, 3);
	x.m.body_8bit = true;
	x.m.ret = SMTP_RET_HDRS;
	x.m.envid = "id with space+=";
	x.r[0].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
	x.r[0].orcpt = "rfc822;a+b=c@example.org";
	x.r[1].notify = SMTP_NOTIFY_NEVER;
	x.r[2].notify = SMTP_NOTIFY_DELAY;
	x.r[2].orcpt = "utf-8;caf\xc3\xa9@example.org";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> BODY=8BITMIME RET=HDRS "
	         "ENVID=id+20with+20space+2B+3D\r\n"
	         "RCPT TO:<rcpt1@example.org> NOTIFY=SUCCESS,FAILURE,DELAY "
	         "ORCPT=rfc822;a+2Bb+3Dc@example.org\r\n"
	         "RCPT TO:<rcpt2@example.org> NOTIFY=NEVER\r\n"
	         "RCPT TO:<rcpt3@example.org> NOTIFY=DELAY ORCPT=utf-8;caf+C3+A9@example.org\r\n"
	         "DATA\r\n");
	dlg_free(&d);

	/* ORCPT and ENVID that do not fit their limits are left out; the
	 * RCPT line never passes 512 octets */
	char big[400];
	memset(big, ' ', sizeof(big));
	memcpy(big, "rfc822;", 7);
	big[sizeof(big) - 1] = '\0';
	char envid[80];
	memset(envid, '+', sizeof(envid));
	envid[sizeof(envid) - 1] = '\0';
	/* a 250-octet address */
	char addr[251];
	memset(addr, 'a', 64);
	addr[64] = '@';
	for (size_t i = 65; i < 250; i++)
		addr[i] = (i - 65) % 60 == 59 ? '.' : 'b';
	addr[246] = '.';
	memcpy(addr + 247, "org", 4);
	char orcpt[300];
	snprintf(orcpt, sizeof(orcpt), "rfc822;%s", addr);
	d = dlg_new(state, &cfg);
	hello(&d, "250-mx.example.org\r\n250 DSN\r\n");
	msg_init(&x, 3);
	x.m.envid = envid;
	x.r[0].orcpt = big;
	x.r[1].address = addr;
	x.r[1].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
	x.r[1].orcpt = orcpt;
	x.r[2].orcpt = "bad type;x@example.org";
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	char line[1024];
	snprintf(line, sizeof(line), "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=%s\r\n", addr,
	         orcpt);
	if (strlen(line) > SMTP_CMDLINE_MAX)
		snprintf(line, sizeof(line), "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE,DELAY\r\n", addr);
	assert_true(strlen(line) <= SMTP_CMDLINE_MAX);
	sent(&d, line);
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt3@example.org>\r\n");
	dlg_free(&d);
}

/* ---- the connection fails ---- */

static void test_421_mid_transaction(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 3);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "RCPT TO:<rcpt3@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n421 4.3.2 Shutting down\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	nothing_sent(&d);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_TEMPFAIL, 421, "4.3.2", "Shutting down");
	assert_int_equal(e->reason, SMTP_CLIENT_R_CLOSING);
	/* accepted but not delivered: temporary; the 550 stays */
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 421, "4.3.2", "Shutting down");
	check_result(&x.res[1], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "unknown");
	check_result(&x.res[2], SMTP_CLIENT_TEMPFAIL, 421, "4.3.2", "Shutting down");
	/* nothing more happens */
	server(&d, "250 ok\r\n");
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_CLOSING);
	dlg_free(&d);

	/* unpipelined, as the reply to RCPT */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "421 4.4.2 timeout\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	nothing_sent(&d);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_TEMPFAIL);
	assert_int_equal(x.res[1].status, SMTP_CLIENT_TEMPFAIL);
	dlg_free(&d);
}

static void test_lost_after_dot(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 2);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n");
	body(&d);
	server(&d, "250 2.0.0 que"); /* half a reply */
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	want(&d, SMTP_CLIENT_WANT_FAILED);
	nothing_sent(&d);
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 451, "4.4.2",
	             "connection lost after end of data; delivery status unknown, will retry");
	assert_int_equal(x.res[0].reason, SMTP_CLIENT_R_LOST);
	check_result(&x.res[1], SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "unknown");
	dlg_free(&d);

	/* a timeout there: the same */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	body(&d);
	smtp_client_event(d.c, SMTP_CLIENT_EV_TIMEOUT);
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 451, "4.4.2",
	             "timeout after end of data; delivery status unknown, will retry");
	assert_int_equal(x.res[0].reason, SMTP_CLIENT_R_TIMEOUT);
	dlg_free(&d);
}

static void test_lost_elsewhere(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;

	smtp_client_event(d.c, SMTP_CLIENT_EV_TIMEOUT);
	check_result(smtp_client_error(d.c), SMTP_CLIENT_TEMPFAIL, 451, "4.4.2",
	             "timeout while waiting for the greeting");
	dlg_free(&d);

	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 451, "4.4.2",
	             "connection lost while waiting for the reply to RCPT TO");
	dlg_free(&d);

	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	want(&d, SMTP_CLIENT_WANT_BODY);
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	check_result(&x.res[0], SMTP_CLIENT_TEMPFAIL, 451, "4.4.2",
	             "connection lost while sending the message body");
	dlg_free(&d);

	/* closed while idle: nothing pending, the connection is gone */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_LOST);
	dlg_free(&d);

	/* after QUIT, losing the connection is the normal end */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	smtp_client_quit(d.c);
	sent(&d, "QUIT\r\n");
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	want(&d, SMTP_CLIENT_WANT_DONE);
	dlg_free(&d);
}

/* Malformed replies in the middle of a transaction: a temporary failure
 * of the connection, every pending recipient TEMPFAIL, no crash. */
static void test_malformed_replies(void **state)
{
	struct smtp_client_config cfg = config_plain();
	char *cases[5];
	cases[0] = strdup("250-ok\r\n251 mixed\r\n");
	cases[1] = strdup("250 ok\n");
	cases[2] = malloc(SMTP_REPLYLINE_MAX + 2);
	memset(cases[2], 'x', SMTP_REPLYLINE_MAX + 1);
	memcpy(cases[2], "250 ", 4);
	memcpy(cases[2] + SMTP_REPLYLINE_MAX + 1 - 2, "\r\n", 3); /* 513 octets */
	cases[3] = malloc((SMTP_REPLY_LINES_MAX + 1) * 8 + 1);
	cases[3][0] = '\0';
	for (size_t i = 0; i < SMTP_REPLY_LINES_MAX + 1; i++)
		strcat(cases[3], i == SMTP_REPLY_LINES_MAX ? "250 ok\r\n" : "250-ok\r\n");
	cases[4] = strdup("250 a\rb\r\n");

	for (size_t k = 0; k < 5; k++) {
		struct dlg d = dlg_new(state, &cfg);
		struct msg x;
		hello(&d, EHLO_PIPE);
		msg_init(&x, 2);
		send_msg(&d, &x);
		sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
		         "RCPT TO:<rcpt1@example.org>\r\n"
		         "RCPT TO:<rcpt2@example.org>\r\n"
		         "DATA\r\n");
		server(&d, "250 ok\r\n");
		server(&d, cases[k]);
		want(&d, SMTP_CLIENT_WANT_FAILED);
		const struct smtp_client_result *e = smtp_client_error(d.c);
		assert_int_equal(e->status, SMTP_CLIENT_TEMPFAIL);
		assert_int_equal(e->reason, SMTP_CLIENT_R_PROTOCOL);
		assert_false(e->remote);
		assert_true(strncmp(e->text, "malformed reply to RCPT TO: ", 28) == 0);
		assert_int_equal(x.res[0].status, SMTP_CLIENT_TEMPFAIL);
		assert_int_equal(x.res[1].status, SMTP_CLIENT_TEMPFAIL);
		nothing_sent(&d); /* out of step: no QUIT */
		dlg_free(&d);
		free(cases[k]);
	}

	/* a malformed greeting */
	struct dlg d = dlg_new(state, &cfg);
	server(&d, "220-a\r\n220 b\n");
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_PROTOCOL);
	dlg_free(&d);

	/* a 100-line EHLO reply is fine */
	d = dlg_new(state, &cfg);
	char *ehlo = malloc(SMTP_REPLY_LINES_MAX * 16 + 1);
	ehlo[0] = '\0';
	for (size_t i = 0; i + 1 < SMTP_REPLY_LINES_MAX; i++)
		strcat(ehlo, "250-X-FOO\r\n");
	strcat(ehlo, "250 PIPELINING\r\n");
	hello(&d, ehlo);
	want(&d, SMTP_CLIENT_WANT_MESSAGE);
	assert_int_equal(smtp_client_info(d.c)->extensions, SMTP_CLIENT_EXT_PIPELINING);
	free(ehlo);
	dlg_free(&d);
}

/* Unexpected codes where others were due. */
static void test_unexpected_codes(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct msg x;

	/* 3xx to MAIL: the server may wait for data; no QUIT */
	struct dlg d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "354 go\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	const struct smtp_client_result *e = smtp_client_error(d.c);
	check_result(e, SMTP_CLIENT_TEMPFAIL, 451, "4.5.0",
	             "unexpected reply to MAIL FROM: 354 go");
	assert_int_equal(e->reason, SMTP_CLIENT_R_PROTOCOL);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_TEMPFAIL);
	nothing_sent(&d);
	dlg_free(&d);

	/* 250 to DATA: QUIT is still understood */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "250 2.0.0 what\r\n");
	check_result(smtp_client_error(d.c), SMTP_CLIENT_TEMPFAIL, 451, "4.5.0",
	             "unexpected reply to DATA: 250 2.0.0 what");
	assert_int_equal(x.res[0].status, SMTP_CLIENT_TEMPFAIL);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);

	/* 3xx to the end of data: status unknown, temporary */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	body(&d);
	server(&d, "354 again\r\n");
	assert_int_equal(x.res[0].status, SMTP_CLIENT_TEMPFAIL);
	assert_int_equal(x.res[0].reason, SMTP_CLIENT_R_PROTOCOL);
	dlg_free(&d);

	/* a reply nobody asked for while idle; a 421 while idle */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	server(&d, "250 surprise\r\n");
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_PROTOCOL);
	sent(&d, "QUIT\r\n");
	dlg_free(&d);
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	server(&d, "421 4.4.2 idle too long\r\n");
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_CLOSING);
	nothing_sent(&d);
	dlg_free(&d);

	/* the server speaks while the body is being sent */
	d = dlg_new(state, &cfg);
	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "RCPT TO:<rcpt1@example.org>\r\n");
	server(&d, "250 ok\r\n");
	sent(&d, "DATA\r\n");
	server(&d, "354 go\r\n");
	server(&d, "554 5.3.4 too big\r\n");
	want(&d, SMTP_CLIENT_WANT_FAILED);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_TEMPFAIL);
	nothing_sent(&d); /* a QUIT would be read as message data */
	dlg_free(&d);

	/* a 1xx is not a reply at all */
	d = dlg_new(state, &cfg);
	server(&d, "120 wait\r\n");
	assert_int_equal(smtp_client_error(d.c)->reason, SMTP_CLIENT_R_PROTOCOL);
	dlg_free(&d);
}

/* ---- connection reuse ---- */

static void test_second_message(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x, y;

	hello(&d, EHLO_PIPE);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net> SIZE=1234\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n354 go\r\n");
	body(&d);
	server(&d, "250 2.0.0 queued as A\r\n");
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "2.0.0", "queued as A");

	msg_init(&y, 2);
	y.m.reverse_path = "other@example.net";
	y.m.size = 42;
	send_msg(&d, &y);
	sent(&d, "MAIL FROM:<other@example.net> SIZE=42\r\n"
	         "RCPT TO:<rcpt1@example.org>\r\n"
	         "RCPT TO:<rcpt2@example.org>\r\n"
	         "DATA\r\n");
	server(&d, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	body(&d);
	server(&d, "250 2.0.0 queued as B\r\n");
	check_result(&y.res[0], SMTP_CLIENT_OK, 250, "2.0.0", "queued as B");
	check_result(&y.res[1], SMTP_CLIENT_OK, 250, "2.0.0", "queued as B");
	/* the first message's results are untouched */
	check_result(&x.res[0], SMTP_CLIENT_OK, 250, "2.0.0", "queued as A");
	quit(&d);
	dlg_free(&d);
}

/* A remote text longer than a result holds is cut, raw. */
static void test_long_text_bounded(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct dlg d = dlg_new(state, &cfg);
	struct msg x;
	char *reply = malloc(10 * 200 + 1);

	hello(&d, EHLO_BASIC);
	msg_init(&x, 1);
	send_msg(&d, &x);
	sent(&d, "MAIL FROM:<sender@example.net>\r\n");
	reply[0] = '\0';
	for (int i = 0; i < 10; i++) {
		char line[200];
		snprintf(line, sizeof(line), "550%c5.7.1 %0180d\r\n", i == 9 ? ' ' : '-', i);
		strcat(reply, line);
	}
	server(&d, reply);
	assert_int_equal(x.res[0].status, SMTP_CLIENT_PERMFAIL);
	assert_int_equal(strlen(x.res[0].text), SMTP_REPLYLINE_MAX - 1);
	free(reply);
	dlg_free(&d);
}

static void test_config(void **state)
{
	struct smtp_client_config cfg = config_plain();
	struct smtp_client *c;
	char long_name[SMTP_HELO_MAX + 2];

	cfg.ehlo_name = "";
	assert_null(smtp_client_new(&cfg));
	cfg.ehlo_name = "a b";
	assert_null(smtp_client_new(&cfg));
	cfg.ehlo_name = "a\r\nMAIL";
	assert_null(smtp_client_new(&cfg));
	memset(long_name, 'a', sizeof(long_name));
	long_name[SMTP_HELO_MAX + 1] = '\0';
	cfg.ehlo_name = long_name;
	assert_null(smtp_client_new(&cfg));
	long_name[SMTP_HELO_MAX] = '\0';
	c = smtp_client_new(&cfg);
	assert_non_null(c);
	smtp_client_free(&c);
	assert_null(c);
	smtp_client_free(&c); /* NULL is fine */

	cfg = config_plain();
	cfg.ehlo_name = "[192.0.2.1]";
	c = smtp_client_new(&cfg);
	assert_non_null(c);
	smtp_client_free(&c);
	cfg.auth_user = "u";
	assert_null(smtp_client_new(&cfg)); /* no password */
	cfg.auth_password = "";
	c = smtp_client_new(&cfg);
	assert_non_null(c);
	smtp_client_free(&c);
	cfg.auth_user = "";
	assert_null(smtp_client_new(&cfg));

	for (int r = SMTP_CLIENT_R_NONE; r <= SMTP_CLIENT_R_ENVELOPE; r++)
		assert_string_not_equal(smtp_client_reason_name((enum smtp_client_reason)r),
		                        "unknown");
}

/* ---- random servers ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A random server: it answers what it was sent, mostly sensibly. */
#define EHLO_ALL                                                                                   \
	"250-mx\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-PIPELINING\r\n250-DSN\r\n"          \
	"250-SIZE 2000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
#define FIFO_MAX 64
struct fake_server {
	const char *fifo[FIFO_MAX]; /* the sensible reply to each command, in order */
	size_t head, n;
	int sasl; /* base64 lines since AUTH LOGIN */
};

static void fake_push(struct fake_server *f, const char *reply)
{
	assert_true(f->n < FIFO_MAX);
	f->fifo[(f->head + f->n++) % FIFO_MAX] = reply;
}

/* sensible - a plausible reply to one command line. */
static const char *sensible(struct fake_server *f, const char *line, size_t len, uint64_t *seed)
{
	static const char *const ehlos[] = {
	    "250-mx\r\n250 PIPELINING\r\n",
	    EHLO_ALL,
	    "250-mx\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n",
	    "250 mx\r\n",
	};
	static const char *const rcpts[] = {"250 ok\r\n",       "250 ok\r\n",
	                                    "250 ok\r\n",       "452 4.5.3 too many\r\n",
	                                    "550 5.1.1 no\r\n", "450 4.2.0 later\r\n"};
	static const char *const dots[] = {"250 2.0.0 queued\r\n", "250 2.0.0 queued\r\n",
	                                   "451 4.3.0 later\r\n", "554 5.7.1 spam\r\n"};
	uint64_t r = rnd(seed);

	if (strncmp(line, "EHLO", 4) == 0)
		return ehlos[r % 4];
	if (strncmp(line, "STARTTLS", 8) == 0)
		return "220 go\r\n";
	if (strncmp(line, "AUTH LOGIN", 10) == 0) {
		f->sasl = 0;
		return "334 VXNlcm5hbWU6\r\n";
	}
	if (strncmp(line, "AUTH", 4) == 0)
		return "235 2.7.0 ok\r\n";
	if (strncmp(line, "RCPT", 4) == 0)
		return rcpts[r % 6];
	if (strncmp(line, "DATA", 4) == 0)
		return "354 go\r\n";
	if (strncmp(line, "QUIT", 4) == 0)
		return "221 bye\r\n";
	if (len == 1 && line[0] == '.')
		return dots[r % 4];
	if (strncmp(line, "MAIL", 4) == 0 || strncmp(line, "RSET", 4) == 0 ||
	    strncmp(line, "HELO", 4) == 0)
		return r % 10 ? "250 ok\r\n" : "550 5.7.1 no\r\n";
	/* a SASL response to AUTH LOGIN */
	return ++f->sasl == 1 ? "334 UGFzc3dvcmQ6\r\n" : "235 ok\r\n";
}

/* check_output - whatever happens: whole CRLF lines, within the limits, and
 * AUTH only inside TLS. Drains the output into the fake server. */
static void check_output(struct smtp_client *c, struct fake_server *f, uint64_t *seed)
{
	size_t len;
	const char *out = smtp_client_output(c, &len);
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\r')
			assert_true(i + 1 < len && out[i + 1] == '\n');
		if (out[i] != '\n')
			continue;
		assert_true(i > 0 && out[i - 1] == '\r');
		assert_true(i + 1 - start <= SMTP_AUTHLINE_MAX);
		if (strncmp(out + start, "AUTH", 4) == 0)
			assert_true(smtp_client_info(c)->tls);
		if (strncmp(out + start, "AUTH", 4) != 0 && i + 1 - start > SMTP_CMDLINE_MAX)
			/* only SASL responses may be longer; they are base64 */
			for (size_t k = start; k + 2 <= i; k++)
				assert_non_null(
				    strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				           "0123456789+/=",
				           out[k]));
		fake_push(f, sensible(f, out + start, i - 1 - start, seed));
		start = i + 1;
	}
	assert_int_equal(start, len);
	smtp_client_output_consume(c, len);
}

static void check_result_sane(const struct smtp_client_result *r)
{
	assert_true(r->status == SMTP_CLIENT_OK || r->status == SMTP_CLIENT_TEMPFAIL ||
	            r->status == SMTP_CLIENT_PERMFAIL);
	assert_true(strlen(r->text) < SMTP_REPLYLINE_MAX);
	assert_null(strchr(r->text, '\r'));
	assert_null(strchr(r->text, '\n'));
	assert_true(strlen(r->enhanced) <= SMTP_ENHCODE_MAX);
	if (r->status == SMTP_CLIENT_OK)
		assert_true(r->remote && r->code / 100 == 2);
}

/*
 * A server that mostly answers what it was asked, and now and then says
 * anything at all, in any pieces; connections that drop and time out.
 * Whatever happens the client never crashes, only sends well-formed lines,
 * never sends AUTH in plaintext, always ends, and leaves no recipient
 * PENDING once a message is over.
 */
static void test_random_servers(void **state)
{
	static const char *const noise[] = {
	    "220 ok\r\n",
	    "250 ok\r\n",
	    "354 go\r\n",
	    "421 4.3.2 bye\r\n",
	    "452 full\r\n",
	    "454 4.7.0 no tls\r\n",
	    "500 5.5.1 what\r\n",
	    "535 5.7.8 no\r\n",
	    "334 x\r\n",
	    "250 bad\n",
	    "25",
	    "\r\n",
	    "250-a\r\n251 b\r\n",
	    "250 a\rb\r\n",
	};
	static const char *const addrs[] = {"a@example.org", "b@example.org", "c@example.org",
	                                    "d@example.org", "bad>@x",        "Postmaster"};
	uint64_t seed = 0x853c49e6748fea9bULL;
	size_t messages = 0, delivered = 0, done = 0, failed = 0;

	for (int iter = 0; iter < 3000; iter++) {
		struct smtp_client_config cfg = config_plain();
		cfg.tls = (enum smtp_client_tls)(rnd(&seed) % 3);
		cfg.implicit_tls = rnd(&seed) % 4 == 0;
		if (rnd(&seed) % 2) {
			cfg.auth_user = "user@example.net";
			cfg.auth_password = "secret";
		}
		struct dlg d = {smtp_client_new(&cfg), rnd(&seed) % 2 == 0};
		struct fake_server f = {.n = 0};
		struct smtp_client_rcpt rcpts[6];
		struct smtp_client_message m;
		struct smtp_client_result res[6];
		bool in_flight = false;
		int step;

		fake_push(&f, rnd(&seed) % 20 ? "220 mx ESMTP\r\n" : "554 5.3.2 go away\r\n");
		for (step = 0; step < 200; step++) {
			check_output(d.c, &f, &seed);
			enum smtp_client_want w = smtp_client_want(d.c);
			if (in_flight &&
			    (w == SMTP_CLIENT_WANT_MESSAGE || w == SMTP_CLIENT_WANT_DONE ||
			     w == SMTP_CLIENT_WANT_FAILED)) {
				for (size_t i = 0; i < m.nrcpts; i++) {
					check_result_sane(&res[i]);
					delivered += res[i].status == SMTP_CLIENT_OK;
				}
				in_flight = false;
			}
			if (w == SMTP_CLIENT_WANT_DONE || w == SMTP_CLIENT_WANT_FAILED) {
				if (w == SMTP_CLIENT_WANT_FAILED)
					check_result_sane(smtp_client_error(d.c));
				else
					assert_null(smtp_client_error(d.c));
				done += w == SMTP_CLIENT_WANT_DONE;
				failed += w == SMTP_CLIENT_WANT_FAILED;
				break;
			}
			if (rnd(&seed) % 100 == 0) {
				smtp_client_event(d.c, rnd(&seed) % 2 ? SMTP_CLIENT_EV_LOST
				                                      : SMTP_CLIENT_EV_TIMEOUT);
				continue;
			}
			switch (w) {
			case SMTP_CLIENT_WANT_REPLY: {
				char buf[4096];
				buf[0] = '\0';
				size_t n = f.n == 0 ? 1 : 1 + rnd(&seed) % f.n;
				for (size_t k = 0; k < n; k++) {
					const char *r = NULL;
					if (f.n > 0) {
						r = f.fifo[f.head];
						f.head = (f.head + 1) % FIFO_MAX;
						f.n--;
					}
					if (r == NULL || rnd(&seed) % 30 == 0)
						r = noise[rnd(&seed) %
						          (sizeof(noise) / sizeof(noise[0]))];
					strcat(buf, r);
				}
				server(&d, buf);
				break;
			}
			case SMTP_CLIENT_WANT_TLS:
				smtp_client_tls_done(d.c, rnd(&seed) % 10 != 0);
				break;
			case SMTP_CLIENT_WANT_BODY:
				smtp_client_body_sent(d.c);
				fake_push(&f, sensible(&f, ".", 1, &seed));
				break;
			case SMTP_CLIENT_WANT_MESSAGE:
				if (rnd(&seed) % 5 == 0) {
					smtp_client_quit(d.c);
					break;
				}
				memset(&m, 0, sizeof(m));
				m.nrcpts = 1 + rnd(&seed) % 6;
				for (size_t i = 0; i < m.nrcpts; i++) {
					rcpts[i].address =
					    addrs[rnd(&seed) % (sizeof(addrs) / sizeof(addrs[0]))];
					rcpts[i].notify = (unsigned)(rnd(&seed) % 16);
					rcpts[i].orcpt =
					    rnd(&seed) % 2 ? "rfc822;x+y@example.org" : NULL;
				}
				m.rcpts = rcpts;
				m.reverse_path = rnd(&seed) % 4 ? "s@example.net" : "";
				m.size = rnd(&seed) % 3000;
				m.smtputf8 = rnd(&seed) % 8 == 0;
				m.body_8bit = rnd(&seed) % 2;
				m.ret = (enum smtp_ret)(rnd(&seed) % 3);
				m.envid = rnd(&seed) % 2 ? "env id" : NULL;
				smtp_client_send(d.c, &m, res);
				in_flight = true;
				messages++;
				break;
			default:
				break;
			}
		}
		if (step == 200) {
			/* still talking: it must end when told */
			smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
			enum smtp_client_want w = smtp_client_want(d.c);
			assert_true(w == SMTP_CLIENT_WANT_DONE || w == SMTP_CLIENT_WANT_FAILED);
			if (in_flight)
				for (size_t i = 0; i < m.nrcpts; i++)
					check_result_sane(&res[i]);
		}
		smtp_client_free(&d.c);
	}
	print_message("# %zu messages, %zu delivered, %zu done, %zu failed\n", messages, delivered,
	              done, failed);
	/* the random servers reach the interesting places */
	assert_true(messages > 1000);
	assert_true(delivered > 500);
	assert_true(done > 100);
	assert_true(failed > 100);
}

#define BOTH(f)                                                                                    \
	cmocka_unit_test_prestate(f, (void *)&WHOLE), cmocka_unit_test_prestate(f, (void *)&BYTES)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(test_plain_delivery),
	    BOTH(test_null_sender),
	    BOTH(test_pipelined),
	    BOTH(test_unpipelined_mixed),
	    BOTH(test_too_many_pipelined),
	    BOTH(test_too_many_unpipelined),
	    BOTH(test_too_many_none_accepted),
	    BOTH(test_mail_refused_pipelined),
	    BOTH(test_mail_refused_unpipelined),
	    BOTH(test_all_refused_but_354),
	    BOTH(test_data_refused),
	    BOTH(test_helo_fallback),
	    BOTH(test_helo_refused),
	    BOTH(test_greeting_refused),
	    BOTH(test_ehlo_keywords),
	    BOTH(test_starttls_opportunistic),
	    BOTH(test_starttls_absent),
	    BOTH(test_starttls_required),
	    BOTH(test_starttls_injection),
	    BOTH(test_tls_failed),
	    BOTH(test_auth_plain_implicit_tls),
	    BOTH(test_auth_login),
	    BOTH(test_auth_after_starttls),
	    BOTH(test_auth_refused_in_plaintext),
	    BOTH(test_auth_failed),
	    BOTH(test_auth_unavailable),
	    BOTH(test_smtputf8),
	    BOTH(test_size_limit),
	    BOTH(test_bad_addresses),
	    BOTH(test_dsn_params),
	    BOTH(test_421_mid_transaction),
	    BOTH(test_lost_after_dot),
	    BOTH(test_lost_elsewhere),
	    BOTH(test_malformed_replies),
	    BOTH(test_unexpected_codes),
	    BOTH(test_second_message),
	    BOTH(test_long_text_bounded),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_random_servers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
