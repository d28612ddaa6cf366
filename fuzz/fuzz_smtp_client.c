/* SPDX-License-Identifier: ISC */
/*
 * fuzz_smtp_client.c - the SMTP client state machine (src/smtp/smtp_client.c)
 * sending one message (sometimes two) to a hostile server: the fuzz input is
 * everything the server says, with connection events mixed in.
 *
 * Input: four header bytes, then the script.
 *   byte 0: bits 0-1 TLS policy (none, opportunistic, required,
 *           opportunistic), bit 2 implicit TLS, bit 3 AUTH credentials,
 *           bit 4 feed the server's bytes one at a time, bit 5 a second
 *           message on the same connection;
 *   byte 1: message: bit 0 8-bit body, bit 1 SMTPUTF8, bits 2-3 RET,
 *           bit 4 ENVID, bit 5 a size larger than most SIZE limits,
 *           bit 6 null reverse-path, bit 7 an unsendable reverse-path;
 *   byte 2: bits 0-2 recipients - 1, bits 3-7 which of the sample
 *           recipients (with NOTIFY, ORCPT, unsendable ones) they are;
 *   byte 3: bit 0 the body is sent only at FF 'D', bit 1 the driver stays
 *           idle until FF 'M' (so that server bytes and events can arrive
 *           while the body is being sent or the client is idle).
 *   Script: server bytes, with 0xFF as an escape: FF FF a 0xFF byte,
 *   FF 'L' connection lost, FF 'T' timeout, FF 'S' TLS handshake done,
 *   FF 'F' handshake failed (S and F only count while the client wants
 *   TLS), FF 'D' the body is sent, FF 'M' send the next message (or QUIT),
 *   FF '|' hand the bytes so far to the client now (a read boundary).
 * With FUZZ_TRACE=1 (fuzz_trace) the dialogue is printed to stderr
 * (C: what the client sent, S: what it was fed, E: events and wants).
 * The driver behaves as delivery does: it drains the output after every
 * call, sends the body when asked, sends the message(s) when idle, then
 * QUIT; at the end of the script the connection is lost.
 * Properties:
 *   - output is whole CRLF lines, no bare CR or LF, no NUL; commands at
 *     most SMTP_CMDLINE_MAX octets, AUTH lines at most SMTP_AUTHLINE_MAX;
 *   - no AUTH and no credential before TLS is up (implicit, or after a
 *     successful handshake), and the password never in clear text at all;
 *   - no MAIL, RCPT or DATA in plaintext when TLS is required, nor before
 *     a successful AUTH when credentials are configured; STARTTLS only
 *     when the policy allows it and TLS is not up yet;
 *   - nothing is sent between a STARTTLS accepted and the handshake;
 *   - without PIPELINING, one command per reply (or other call) at most;
 *   - after DONE or FAILED nothing more is sent, whatever comes;
 *   - it terminates: after the script and a lost connection the client is
 *     DONE or FAILED, and the driver loop is bounded;
 *   - every recipient ends with a final result (never PENDING), with text
 *     free of CR, LF and NUL; a remote result's status follows its code's
 *     class; OK only after the body was sent; a connection error is
 *     TEMPFAIL or a remote 5xx.
 */
#include <stdbool.h>

#include "lib/base64.h"
#include "lib/limits.h"
#include "smtp/smtp_client.h"
#include "fuzz.h"

#define USER     "fuzz-user@example.org"
#define PASSWORD "Pa55-w0rd-SECRET"

/* The lines AUTH LOGIN sends, base64 of USER and PASSWORD (set once). */
static char *b64_user, *b64_pass;

static char *b64(const char *s)
{
	size_t n = strlen(s), need = 4 * ((n + 2) / 3) + 1;
	char *e = xmalloc(need);
	if (base64_encode((const unsigned char *)s, n, e, need) < 0)
		abort();
	return e;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	b64_user = b64(USER);
	b64_pass = b64(PASSWORD);
	return 0;
}

/* show - print octets for FUZZ_TRACE, escaping what is not printable. */
static void show(const char *tag, const char *s, size_t n)
{
	if (!fuzz_trace())
		return;
	fprintf(stderr, "%s ", tag);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			fprintf(stderr, "\\n\n%s%s", i + 1 < n ? tag : "", i + 1 < n ? " " : "");
		else if (c == '\r')
			fputs("\\r", stderr);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	if (n == 0 || s[n - 1] != '\n')
		fputc('\n', stderr);
}

/* The driver's view of the connection. */
struct drv {
	struct smtp_client *c;
	bool tls;       /* TLS is up: implicit, or a handshake succeeded */
	bool body_sent; /* smtp_client_body_sent was called at least once */
	bool ended;     /* DONE or FAILED was seen */
	bool quit_sent;
	int messages_left;
	bool hold_body, hold_idle; /* wait for FF 'D' / FF 'M' */
	bool go_body, go_idle;     /* ... which came */
	const struct smtp_client_message *msg;
	struct smtp_client_result *results;
	bool in_message;
	bool bytewise;
	enum smtp_client_tls tls_policy;
	bool has_auth;
	const char *b64_user, *b64_pass; /* the AUTH LOGIN lines; NULL without credentials */
};

static const struct smtp_client_rcpt sample_rcpts[] = {
    {"alice@example.org", 0, NULL},
    {"bob@example.net", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822;bob@example.net"},
    {"postmaster", SMTP_NOTIFY_NEVER, NULL},
    {"carol@[192.0.2.7]", SMTP_NOTIFY_DELAY, "rfc822;x+y=z\r\n@example.org"},
    {"\"quoted local\"@example.com", 0, "utf-8;caf\xc3\xa9@example.org"},
    {"d\xc3\xa9@\xc3\xa9xample.org", SMTP_NOTIFY_FAILURE, "bad type;x@y"},
    {"evil>\r\nRCPT TO:<x@y>", 0, NULL},
    {"", 0, NULL},
    {"dave@example.org", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY,
     "rfc822;very-long-original-recipient-address-that-goes-on-and-on-and-on-and-on-and-on-"
     "and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on@"
     "example.org"},
    {"erin@example.org", 0, "rfc822;erin@example.org"},
    {"frank@sub.example.org", 0, NULL},
};
#define N_SAMPLES ARRAY_SIZE(sample_rcpts)

static bool is_verb(const char *line, size_t n, const char *verb)
{
	size_t k = strlen(verb);
	return n >= k && memcmp(line, verb, k) == 0 && (n == k || line[k] == ' ');
}

/* drain - take the client's output after one call, and check it. */
static void drain(struct drv *d, const char *call)
{
	size_t len;
	const char *out = smtp_client_output(d->c, &len);
	enum smtp_client_want w = smtp_client_want(d->c);
	const struct smtp_client_info *info = smtp_client_info(d->c);
	bool pipelining = info->extensions & SMTP_CLIENT_EXT_PIPELINING;
	size_t lines = 0, start = 0;

	if (len == 0)
		return;
	show("C:", out, len);
	FUZZ_CHECK(!d->ended, "%zu octets sent after DONE/FAILED (%s)", len, call);
	FUZZ_CHECK(w != SMTP_CLIENT_WANT_TLS || d->tls,
	           "\"%.*s\" queued while the TLS handshake should run", (int)len, out);
	FUZZ_CHECK(!memchr(out, '\0', len), "NUL in output");
	FUZZ_CHECK(memmem(out, len, PASSWORD, strlen(PASSWORD)) == NULL, "password in clear text");
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\r')
			FUZZ_CHECK(i + 1 < len && out[i + 1] == '\n', "bare CR in output");
		if (out[i] != '\n')
			continue;
		FUZZ_CHECK(i > start && out[i - 1] == '\r', "bare LF in output");
		const char *line = out + start;
		size_t n = i - 1 - start; /* without CRLF */
		static const char *const verbs[] = {"EHLO", "HELO", "MAIL",     "RCPT", "DATA",
		                                    "RSET", "QUIT", "STARTTLS", "."};
		bool command = false;
		for (size_t v = 0; v < ARRAY_SIZE(verbs); v++)
			command |= is_verb(line, n, verbs[v]);
		bool auth = is_verb(line, n, "AUTH");
		if (command) {
			FUZZ_CHECK(n + 2 <= SMTP_CMDLINE_MAX, "command of %zu octets", n + 2);
		} else {
			/* AUTH and the AUTH LOGIN responses: credentials. */
			FUZZ_CHECK(d->tls, "\"%.*s\" sent before TLS", (int)n, line);
			bool plain = auth && n > 11 && memcmp(line, "AUTH PLAIN ", 11) == 0;
			FUZZ_CHECK(n + 2 <= (plain || !auth ? SMTP_AUTHLINE_MAX : SMTP_CMDLINE_MAX),
			           "AUTH line of %zu octets", n + 2);
			if (!auth)
				FUZZ_CHECK((d->b64_user && strlen(d->b64_user) == n &&
				            memcmp(line, d->b64_user, n) == 0) ||
				               (d->b64_pass && strlen(d->b64_pass) == n &&
				                memcmp(line, d->b64_pass, n) == 0),
				           "unknown line \"%.*s\"", (int)n, line);
		}
		if (!d->tls)
			FUZZ_CHECK(!auth && (!d->b64_pass ||
			                     !memmem(line, n, d->b64_pass, strlen(d->b64_pass))),
			           "credentials before TLS");
		if (is_verb(line, n, "STARTTLS"))
			FUZZ_CHECK(!d->tls && d->tls_policy != SMTP_CLIENT_TLS_NONE,
			           "STARTTLS inside TLS or against the policy");
		if (is_verb(line, n, "MAIL") || is_verb(line, n, "RCPT") ||
		    is_verb(line, n, "DATA")) {
			/* RFC 3207 / 8314: a required TLS is not optional for
			 * the message; configured credentials are used first. */
			FUZZ_CHECK(d->tls || d->tls_policy != SMTP_CLIENT_TLS_REQUIRED,
			           "\"%.*s\" in plaintext although TLS is required", (int)n, line);
			FUZZ_CHECK(!d->has_auth || (d->tls && info->authenticated),
			           "\"%.*s\" sent without the configured AUTH", (int)n, line);
		}
		lines++;
		start = i + 1;
	}
	FUZZ_CHECK(start == len, "output ends inside a line");
	/* RFC 2920: without PIPELINING, one command and then its reply. A
	 * failure adds a QUIT after the last command of a call. A feed of
	 * several replies at once may answer each; one octet completes one
	 * reply at most. */
	bool single = strcmp(call, "feed") != 0 || d->bytewise;
	FUZZ_CHECK(pipelining || !single || lines <= 1 ||
	               (lines == 2 && len >= 6 && memcmp(out + len - 6, "QUIT\r\n", 6) == 0),
	           "%zu commands at once without PIPELINING (%s): \"%.*s\"", lines, call, (int)len,
	           out);
	smtp_client_output_consume(d->c, len);
	FUZZ_CHECK((smtp_client_output(d->c, &len), len == 0), "output not consumed");
}

static void check_result(const struct smtp_client_result *r, bool connection)
{
	FUZZ_CHECK(r->status != SMTP_CLIENT_PENDING, "a result still PENDING");
	FUZZ_CHECK(r->status <= SMTP_CLIENT_PERMFAIL, "status %d", (int)r->status);
	size_t n = strnlen(r->text, sizeof(r->text));
	FUZZ_CHECK(n < sizeof(r->text), "text not terminated");
	FUZZ_CHECK(!memchr(r->text, '\r', n) && !memchr(r->text, '\n', n), "CR/LF in text");
	FUZZ_CHECK(strnlen(r->enhanced, sizeof(r->enhanced)) < sizeof(r->enhanced),
	           "enhanced not terminated");
	FUZZ_CHECK(smtp_client_reason_name(r->reason) != NULL, "reason name");
	if (r->remote) {
		FUZZ_CHECK(r->code >= 200 && r->code <= 599, "remote code %d", r->code);
		enum smtp_client_status want = r->code / 100 == 2   ? SMTP_CLIENT_OK
		                               : r->code / 100 == 5 ? SMTP_CLIENT_PERMFAIL
		                                                    : SMTP_CLIENT_TEMPFAIL;
		/* A failure of the connection makes its recipients TEMPFAIL
		 * whatever the reply that caused it said. */
		if (!connection && r->reason != SMTP_CLIENT_R_TLS_REQUIRED &&
		    r->reason != SMTP_CLIENT_R_CLOSING)
			FUZZ_CHECK(r->status == want || r->status == SMTP_CLIENT_TEMPFAIL,
			           "status %d for remote %d (reason %d)", (int)r->status, r->code,
			           (int)r->reason);
	}
}

/* message_over - the message in progress is finished: check its results. */
static void message_over(struct drv *d)
{
	if (!d->in_message)
		return;
	for (size_t i = 0; i < d->msg->nrcpts; i++) {
		const struct smtp_client_result *r = &d->results[i];
		check_result(r, false);
		FUZZ_CHECK(r->status != SMTP_CLIENT_OK || (r->remote && d->body_sent),
		           "recipient %zu OK without the body sent (code %d)", i, r->code);
	}
	d->in_message = false;
}

/* settle - act on what the client wants until it waits for the server. */
static void settle(struct drv *d)
{
	for (int guard = 0;; guard++) {
		FUZZ_CHECK(guard < 16, "the driver loop does not end");
		drain(d, "settle");
		enum smtp_client_want w = smtp_client_want(d->c);
		unsigned t = smtp_client_timeout(d->c);
		if (fuzz_trace())
			fprintf(stderr, "E: want %d\n", (int)w);
		bool waits = w == SMTP_CLIENT_WANT_REPLY || w == SMTP_CLIENT_WANT_TLS ||
		             w == SMTP_CLIENT_WANT_BODY;
		FUZZ_CHECK(waits ? t > 0 && t <= 600 : t == 0, "timeout %u for want %d", t, (int)w);
		FUZZ_CHECK((smtp_client_error(d->c) != NULL) == (w == SMTP_CLIENT_WANT_FAILED),
		           "error iff FAILED");
		switch (w) {
		case SMTP_CLIENT_WANT_MESSAGE:
			message_over(d);
			if (d->hold_idle && !d->go_idle)
				return;
			d->go_idle = false;
			if (d->messages_left > 0) {
				d->messages_left--;
				d->in_message = true;
				smtp_client_send(d->c, d->msg, d->results);
				drain(d, "send");
			} else {
				FUZZ_CHECK(!d->quit_sent, "idle again after QUIT");
				d->quit_sent = true;
				smtp_client_quit(d->c);
				drain(d, "quit");
			}
			continue;
		case SMTP_CLIENT_WANT_BODY: {
			if (d->hold_body && !d->go_body)
				return;
			d->go_body = false;
			/* The caller streams the body itself. */
			d->body_sent = true;
			smtp_client_body_sent(d->c);
			drain(d, "body_sent");
			continue;
		}
		case SMTP_CLIENT_WANT_DONE:
		case SMTP_CLIENT_WANT_FAILED:
			if (!d->ended) {
				message_over(d);
				if (w == SMTP_CLIENT_WANT_FAILED) {
					const struct smtp_client_result *e =
					    smtp_client_error(d->c);
					check_result(e, true);
					FUZZ_CHECK(e->status == SMTP_CLIENT_TEMPFAIL ||
					               (e->remote && e->code / 100 == 5),
					           "connection PERMFAIL without a remote 5xx");
				}
				d->ended = true;
			}
			return;
		default:
			return;
		}
	}
}

static void feed(struct drv *d, const char *s, size_t n)
{
	size_t step = d->bytewise ? 1 : n;
	for (size_t pos = 0; pos < n; pos += step) {
		size_t k = n - pos < step ? n - pos : step;
		char *p = fuzz_dup(s + pos, k);
		if (!d->bytewise)
			show("S:", p, k);
		smtp_client_feed(d->c, p, k);
		free(p);
		drain(d, "feed");
		settle(d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4 || size > 65536)
		return 0;
	uint8_t h0 = data[0], h1 = data[1], h2 = data[2];
	static const enum smtp_client_tls tls_modes[] = {
	    SMTP_CLIENT_TLS_NONE, SMTP_CLIENT_TLS_OPPORTUNISTIC, SMTP_CLIENT_TLS_REQUIRED,
	    SMTP_CLIENT_TLS_OPPORTUNISTIC};
	struct smtp_client_config cfg = {
	    .ehlo_name = "client.example.net",
	    .tls = tls_modes[h0 & 3],
	    .implicit_tls = (h0 & 4) != 0,
	    .auth_user = (h0 & 8) ? USER : NULL,
	    .auth_password = (h0 & 8) ? PASSWORD : NULL,
	};
	struct drv d = {
	    .tls = cfg.implicit_tls,
	    .messages_left = (h0 & 0x20) ? 2 : 1,
	    .bytewise = (h0 & 0x10) != 0,
	    .hold_body = (data[3] & 1) != 0,
	    .hold_idle = (data[3] & 2) != 0,
	    .tls_policy = cfg.tls,
	    .has_auth = cfg.auth_user != NULL,
	};
	if (h0 & 8) {
		d.b64_user = b64_user;
		d.b64_pass = b64_pass;
	}

	size_t nrcpts = (size_t)(h2 & 7) + 1;
	struct smtp_client_rcpt rcpts[8];
	for (size_t i = 0; i < nrcpts; i++)
		rcpts[i] = sample_rcpts[((h2 >> 3) + i * 3) % N_SAMPLES];
	static const enum smtp_ret rets[] = {SMTP_RET_UNSPECIFIED, SMTP_RET_FULL, SMTP_RET_HDRS,
	                                     SMTP_RET_UNSPECIFIED};
	struct smtp_client_message msg = {
	    .reverse_path = (h1 & 0x80)   ? "bad path>@example.org"
	                    : (h1 & 0x40) ? ""
	                                  : "sender@example.org",
	    .rcpts = rcpts,
	    .nrcpts = nrcpts,
	    .size = (h1 & 0x20) ? 123456789 : 1234,
	    .body_8bit = h1 & 1,
	    .smtputf8 = (h1 & 2) != 0,
	    .ret = rets[(h1 >> 2) & 3],
	    .envid = (h1 & 0x10) ? "env+id=with\x01odd\xff octets" : NULL,
	};
	struct smtp_client_result results[8];
	memset(results, 0, sizeof(results));
	d.msg = &msg;
	d.results = results;

	d.c = smtp_client_new(&cfg);
	FUZZ_CHECK(d.c != NULL, "valid configuration refused");
	FUZZ_CHECK(smtp_client_want(d.c) == SMTP_CLIENT_WANT_REPLY, "does not wait for greeting");
	drain(&d, "new");

	const uint8_t *s = data + 4;
	size_t n = size - 4;
	char *pending = xmalloc(n);
	size_t np = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != 0xff || i + 1 == n) {
			pending[np++] = (char)s[i];
			continue;
		}
		uint8_t op = s[++i];
		if (op == 0xff) {
			pending[np++] = (char)0xff;
			continue;
		}
		feed(&d, pending, np);
		np = 0;
		enum smtp_client_want w = smtp_client_want(d.c);
		if (fuzz_trace())
			fprintf(stderr, "E: event '%c'\n", op);
		switch (op) {
		case 'L':
		case 'T':
			smtp_client_event(d.c,
			                  op == 'L' ? SMTP_CLIENT_EV_LOST : SMTP_CLIENT_EV_TIMEOUT);
			drain(&d, "event");
			settle(&d);
			break;
		case 'S':
		case 'F':
			if (w != SMTP_CLIENT_WANT_TLS)
				break;
			if (op == 'S')
				d.tls = true;
			smtp_client_tls_done(d.c, op == 'S');
			drain(&d, "tls_done");
			settle(&d);
			break;
		case 'D':
			d.go_body = w == SMTP_CLIENT_WANT_BODY;
			settle(&d);
			break;
		case 'M':
			d.go_idle = w == SMTP_CLIENT_WANT_MESSAGE;
			settle(&d);
			break;
		default:
			break;
		}
	}
	feed(&d, pending, np);
	free(pending);

	/* The server goes away: whatever the state, the client ends. A body
	 * or an idle wait that was held stays so: the loss comes first. */
	smtp_client_event(d.c, SMTP_CLIENT_EV_LOST);
	drain(&d, "lost");
	settle(&d);
	enum smtp_client_want w = smtp_client_want(d.c);
	FUZZ_CHECK(w == SMTP_CLIENT_WANT_DONE || w == SMTP_CLIENT_WANT_FAILED,
	           "still %d after the connection was lost", (int)w);
	FUZZ_CHECK(!d.in_message, "message not finished");
	if (fuzz_trace()) {
		for (size_t i = 0; i < nrcpts; i++)
			fprintf(stderr, "E: rcpt %zu <%s>: status %d reason %s %d %s %s\n", i,
			        rcpts[i].address, (int)results[i].status,
			        smtp_client_reason_name(results[i].reason), results[i].code,
			        results[i].enhanced, results[i].text);
		const struct smtp_client_result *e = smtp_client_error(d.c);
		if (e != NULL)
			fprintf(stderr, "E: error: %s %d %s %s\n",
			        smtp_client_reason_name(e->reason), e->code, e->enhanced, e->text);
	}

	/* Anything more changes nothing. */
	smtp_client_feed(d.c, "250 ok\r\n", 8);
	smtp_client_event(d.c, SMTP_CLIENT_EV_TIMEOUT);
	FUZZ_CHECK(smtp_client_want(d.c) == w, "moved after the end");
	drain(&d, "after the end");

	smtp_client_free(&d.c);
	FUZZ_CHECK(d.c == NULL, "free left the pointer");
	return 0;
}
