/* SPDX-License-Identifier: ISC */
/* smtp_client.c - see smtp_client.h */
#include "smtp/smtp_client.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_sasl.h"

/*
 * One state per thing awaited. Inside a transaction (ST_TXN) the phase says
 * which reply comes next; with PIPELINING the commands of every later phase
 * are already sent, without it each reply triggers the next command. The
 * replies of a pipelined group come back in the order of the commands (RFC
 * 2920 3.1), so a phase and a recipient cursor are all the matching needs.
 */
enum client_state {
	ST_GREETING,   /* connected, waiting for the 220 */
	ST_EHLO,       /* EHLO sent */
	ST_HELO,       /* HELO sent after EHLO was refused */
	ST_STARTTLS,   /* STARTTLS sent */
	ST_TLS,        /* the caller runs the handshake */
	ST_AUTH_PLAIN, /* AUTH PLAIN with its initial response sent */
	ST_AUTH_LOGIN, /* AUTH LOGIN sent: a 334 asks for the user name */
	ST_AUTH_USER,  /* user name sent: a 334 asks for the password */
	ST_AUTH_PASS,  /* password sent */
	ST_IDLE,       /* ready for a message or QUIT */
	ST_TXN,        /* replies to RSET, MAIL, RCPT, DATA */
	ST_BODY,       /* the caller sends the body */
	ST_DOT,        /* the body was sent: the reply to the end of data */
	ST_QUIT,       /* QUIT sent */
	ST_DONE,
	ST_FAILED,
};

enum txn_phase { P_RSET, P_MAIL, P_RCPT, P_DATA };

/* Where each recipient of the current message stands. */
enum rcpt_state {
	R_WAITING,  /* to be sent in the next transaction */
	R_SENT,     /* RCPT sent in this transaction, no reply yet */
	R_ACCEPTED, /* 2xx to RCPT; the end of data decides */
	R_CARRY,    /* "too many recipients": maybe again in the next transaction */
	R_FINAL,    /* results[i] is final */
};

struct smtp_client {
	enum client_state state;
	enum txn_phase phase;

	char ehlo_name[SMTP_HELO_MAX + 1];
	enum smtp_client_tls tls;
	bool has_auth;
	char user[SASL_USER_MAX + 1];
	char password[SASL_PASSWORD_MAX + 1];

	struct smtp_client_info info;
	struct smtp_client_result error;

	char *out;
	size_t out_len, out_cap;

	/* The message in progress (NULL when idle) and its transaction. */
	const struct smtp_client_message *msg;
	struct smtp_client_result *results;
	unsigned char *rstate; /* enum rcpt_state per recipient */
	size_t *txn;           /* recipients of the current transaction, in order */
	size_t rcap;           /* entries allocated in rstate and txn */
	size_t txn_n;          /* recipients in the transaction */
	size_t txn_k;          /* the next RCPT reply belongs to txn[txn_k] */
	size_t naccepted;      /* 2xx replies to RCPT in this transaction */
	bool mail_ok;          /* 2xx to MAIL in this transaction */
	bool dummy_dot;        /* "." sent only to leave the data phase */
	bool need_rset;        /* a transaction may still be open on the server */

	struct smtp_replyparse parser; /* large: last */
};

/* copy_text - copy s[0..len) into dst (size octets), cut to fit. */
static void copy_text(char *dst, size_t size, const char *s, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static enum smtp_client_status status_of(int code)
{
	switch (code / 100) {
	case 2:
		return SMTP_CLIENT_OK;
	case 5:
		return SMTP_CLIENT_PERMFAIL;
	default:
		return SMTP_CLIENT_TEMPFAIL;
	}
}

/* result_reply - a result that is the remote's reply, kept raw and cut to
 * SMTP_REPLYLINE_MAX - 1 octets. */
static void result_reply(struct smtp_client_result *res, enum smtp_client_status status,
                         enum smtp_client_reason reason, const struct smtp_parsed_reply *r)
{
	res->status = status;
	res->reason = reason;
	res->remote = true;
	res->code = r->code;
	memcpy(res->enhanced, r->enhanced, sizeof(res->enhanced));
	copy_text(res->text, sizeof(res->text), r->text, r->text_len);
}

/* result_local - a result detour writes itself. */
static void result_local(struct smtp_client_result *res, enum smtp_client_status status,
                         enum smtp_client_reason reason, int code, const char *enhanced,
                         const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static void result_local(struct smtp_client_result *res, enum smtp_client_status status,
                         enum smtp_client_reason reason, int code, const char *enhanced,
                         const char *fmt, va_list ap)
{
	res->status = status;
	res->reason = reason;
	res->remote = false;
	res->code = code;
	str_copy(res->enhanced, enhanced, sizeof(res->enhanced));
	/* Cut to fit when remote text is quoted in it. */
	if (vsnprintf(res->text, sizeof(res->text), fmt, ap) < 0)
		res->text[0] = '\0';
}

/* ---- output ---- */

static void out_append(struct smtp_client *c, const char *s, size_t n)
{
	if (c->out_cap - c->out_len < n) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		while (cap - c->out_len < n)
			cap *= 2;
		c->out = xrealloc(c->out, cap);
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
}

/* out_line - one line and its CRLF; max is the limit with the CRLF. */
static void out_line(struct smtp_client *c, const char *s, size_t n, size_t max)
{
	assert(n + 2 <= max);
	assert(memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL);
	out_append(c, s, n);
	out_append(c, "\r\n", 2);
}

/* A command line being built; `overflow` when it went past 512 octets. */
struct cmdline {
	char buf[SMTP_CMDLINE_MAX];
	size_t len;
	bool overflow;
};

static void cmd_addf(struct cmdline *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_addf(struct cmdline *l, const char *fmt, ...)
{
	va_list ap;
	/* RFC 5321 4.5.3.1.4: 512 octets with the CRLF. */
	size_t room = SMTP_CMDLINE_MAX - 2 - l->len;

	if (l->overflow)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->len, room + 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > room) {
		l->overflow = true;
		return;
	}
	l->len += (size_t)n;
}

static void out_cmdline(struct smtp_client *c, const struct cmdline *l)
{
	assert(!l->overflow);
	out_line(c, l->buf, l->len, SMTP_CMDLINE_MAX);
}

/* out_cmd - a command whose arguments are known to fit. */
static void out_cmd(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_cmd(struct smtp_client *c, const char *fmt, ...)
{
	struct cmdline l = {.len = 0};
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(l.buf, sizeof(l.buf) - 1, fmt, ap);
	va_end(ap);
	assert(n >= 0 && (size_t)n + 2 <= SMTP_CMDLINE_MAX);
	l.len = (size_t)n;
	out_cmdline(c, &l);
}

/* ---- naming where we are, for error texts ---- */

/* stage - what the client waits for, for error texts: "unexpected %s",
 * "malformed %s", "timeout while waiting for the %s". */
static const char *stage(const struct smtp_client *c)
{
	switch (c->state) {
	case ST_GREETING:
		return "greeting";
	case ST_EHLO:
		return "reply to EHLO";
	case ST_HELO:
		return "reply to HELO";
	case ST_STARTTLS:
		return "reply to STARTTLS";
	case ST_TLS:
		return "TLS handshake";
	case ST_AUTH_PLAIN:
	case ST_AUTH_LOGIN:
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
		return "reply to AUTH";
	case ST_IDLE:
		return "reply (while idle)";
	case ST_TXN:
		switch (c->phase) {
		case P_RSET:
			return "reply to RSET";
		case P_MAIL:
			return "reply to MAIL FROM";
		case P_RCPT:
			return "reply to RCPT TO";
		case P_DATA:
			return "reply to DATA";
		}
		break;
	case ST_BODY:
		return "reply (while sending the message body)";
	case ST_DOT:
		return "reply to the end of data";
	case ST_QUIT:
		return "reply to QUIT";
	case ST_DONE:
	case ST_FAILED:
		break;
	}
	return "reply";
}

/* set_state - every change of state. DONE and FAILED are final: nothing
 * the server or the caller does afterwards moves the client again. */
static void set_state(struct smtp_client *c, enum client_state state)
{
	assert(c->state != ST_DONE && c->state != ST_FAILED);
	c->state = state;
}

/* ---- ending a message, or the connection ---- */

static void message_done(struct smtp_client *c)
{
	c->msg = NULL;
	c->results = NULL;
	set_state(c, ST_IDLE);
}

/*
 * fail - the connection is over. Every recipient not answered yet gets the
 * error as a TEMPFAIL: whatever went wrong, it was with this connection, not
 * with them (and after the end of data the message may or may not have been
 * taken: trying again risks a duplicate, never a loss). quit sends a last
 * QUIT when the server is known to be reading commands.
 */
static void fail(struct smtp_client *c, const struct smtp_client_result *err, bool quit)
{
	c->error = *err;
	if (c->msg != NULL) {
		for (size_t i = 0; i < c->msg->nrcpts; i++) {
			if (c->rstate[i] == R_FINAL)
				continue;
			c->results[i] = *err;
			c->results[i].status = SMTP_CLIENT_TEMPFAIL;
			c->rstate[i] = R_FINAL;
		}
		c->msg = NULL;
		c->results = NULL;
	}
	if (quit)
		out_cmd(c, "QUIT");
	set_state(c, ST_FAILED);
}

static void fail_reply(struct smtp_client *c, enum smtp_client_status status,
                       enum smtp_client_reason reason, const struct smtp_parsed_reply *r, bool quit)
{
	struct smtp_client_result err;

	result_reply(&err, status, reason, r);
	fail(c, &err, quit);
}

static void fail_local(struct smtp_client *c, enum smtp_client_reason reason, int code,
                       const char *enhanced, bool quit, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void fail_local(struct smtp_client *c, enum smtp_client_reason reason, int code,
                       const char *enhanced, bool quit, const char *fmt, ...)
{
	struct smtp_client_result err;
	va_list ap;

	va_start(ap, fmt);
	result_local(&err, code / 100 == 5 ? SMTP_CLIENT_PERMFAIL : SMTP_CLIENT_TEMPFAIL, reason,
	             code, enhanced, fmt, ap);
	va_end(ap);
	fail(c, &err, quit);
}

/* fail_unexpected - a well-formed reply that has no place here. After a 3xx
 * the server waits for data or a SASL response, so a QUIT would be read as
 * such: it is only sent after other codes. */
static void fail_unexpected(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	fail_local(c, SMTP_CLIENT_R_PROTOCOL, 451, "4.5.0", r->code / 100 != 3,
	           "unexpected %s: %d%s%s %s", stage(c), r->code, r->enhanced[0] ? " " : "",
	           r->enhanced, r->text);
}

/* ---- EHLO ---- */

/* parse_size - RFC 1870 4: "SIZE" [SP number]; 0 (no limit) when absent or
 * not a number that fits. */
static uint64_t parse_size(const char *s, size_t len)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

/* parse_auth - the mechanisms of "AUTH mech mech..." (RFC 4954 3); the
 * older "AUTH=mech mech" form is read the same way. */
static unsigned parse_auth(const char *s, size_t len)
{
	unsigned mechs = 0;
	size_t i = 0;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (mem_ieq(s + start, i - start, "PLAIN"))
			mechs |= SMTP_CLIENT_AUTH_PLAIN;
		else if (mem_ieq(s + start, i - start, "LOGIN"))
			mechs |= SMTP_CLIENT_AUTH_LOGIN;
	}
	return mechs;
}

/* parse_ehlo - RFC 5321 4.1.1.1: the first line is the server's name, each
 * later line "keyword [SP params]". Unknown keywords are ignored. */
static void parse_ehlo(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	struct smtp_client_info *info = &c->info;
	static const struct {
		const char *name;
		unsigned bit;
	} keywords[] = {
	    {"PIPELINING", SMTP_CLIENT_EXT_PIPELINING},
	    {"SIZE", SMTP_CLIENT_EXT_SIZE},
	    {"8BITMIME", SMTP_CLIENT_EXT_8BITMIME},
	    {"SMTPUTF8", SMTP_CLIENT_EXT_SMTPUTF8},
	    {"DSN", SMTP_CLIENT_EXT_DSN},
	    {"STARTTLS", SMTP_CLIENT_EXT_STARTTLS},
	    {"AUTH", SMTP_CLIENT_EXT_AUTH},
	    {"CHUNKING", SMTP_CLIENT_EXT_CHUNKING},
	    {"ENHANCEDSTATUSCODES", SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES},
	};
	size_t len;
	const char *s = smtp_replyparse_line(r, 0, &len);

	copy_text(info->ehlo_line, sizeof(info->ehlo_line), s, len);
	info->extensions = 0;
	info->size_limit = 0;
	info->auth_mechs = 0;
	for (size_t i = 1; i < r->nlines; i++) {
		s = smtp_replyparse_line(r, i, &len);
		size_t k = 0;
		while (k < len && s[k] != ' ' && s[k] != '=')
			k++;
		const char *arg = k < len ? s + k + 1 : s + len;
		size_t arg_len = k < len ? len - k - 1 : 0;
		for (size_t j = 0; j < ARRAY_SIZE(keywords); j++) {
			if (!mem_ieq(s, k, keywords[j].name))
				continue;
			info->extensions |= keywords[j].bit;
			if (keywords[j].bit == SMTP_CLIENT_EXT_SIZE)
				info->size_limit = parse_size(arg, arg_len);
			else if (keywords[j].bit == SMTP_CLIENT_EXT_AUTH)
				info->auth_mechs |= parse_auth(arg, arg_len);
		}
	}
	if (!info->tls && (info->extensions & SMTP_CLIENT_EXT_STARTTLS))
		info->starttls_offered = true;
}

/* ---- after the greeting: TLS, AUTH ---- */

static void start_auth(struct smtp_client *c)
{
	/* Credentials never travel in plaintext: a server that did not get
	 * to TLS (STARTTLS stripped by a middlebox, say) gets none. */
	if (!c->info.tls) {
		fail_local(c, SMTP_CLIENT_R_AUTH_PLAINTEXT, 451, "4.7.10", true,
		           "refusing to send credentials without TLS");
		return;
	}
	if (c->info.auth_mechs & SMTP_CLIENT_AUTH_PLAIN) {
		/* RFC 4616 2: [authzid] NUL authcid NUL passwd, with the
		 * response in the command (RFC 4954 4). */
		unsigned char raw[1 + SASL_USER_MAX + 1 + SASL_PASSWORD_MAX];
		char b64[4 * ((sizeof(raw) + 2) / 3) + 1];
		size_t ulen = strlen(c->user), plen = strlen(c->password);
		raw[0] = '\0';
		memcpy(raw + 1, c->user, ulen);
		raw[1 + ulen] = '\0';
		memcpy(raw + 2 + ulen, c->password, plen);
		long n = base64_encode(raw, 2 + ulen + plen, b64, sizeof(b64));
		assert(n > 0);
		assert(11 + (size_t)n + 2 <= SMTP_AUTHLINE_MAX);
		out_append(c, "AUTH PLAIN ", 11);
		out_line(c, b64, (size_t)n, SMTP_AUTHLINE_MAX);
		explicit_bzero(raw, sizeof(raw));
		explicit_bzero(b64, sizeof(b64));
		set_state(c, ST_AUTH_PLAIN);
	} else if (c->info.auth_mechs & SMTP_CLIENT_AUTH_LOGIN) {
		out_cmd(c, "AUTH LOGIN");
		set_state(c, ST_AUTH_LOGIN);
	} else {
		fail_local(c, SMTP_CLIENT_R_AUTH_UNAVAILABLE, 451, "4.7.0", true, "%s",
		           (c->info.extensions & SMTP_CLIENT_EXT_AUTH)
		               ? "the server offers neither AUTH PLAIN nor AUTH LOGIN"
		               : "the server does not offer AUTH");
	}
}

/* after_tls - STARTTLS is done, refused or not to be used. */
static void after_tls(struct smtp_client *c)
{
	if (!c->info.tls && c->tls == SMTP_CLIENT_TLS_REQUIRED) {
		fail_local(c, SMTP_CLIENT_R_TLS_REQUIRED, 451, "4.7.10", true,
		           "TLS required but STARTTLS not offered");
		return;
	}
	if (c->has_auth && !c->info.authenticated) {
		start_auth(c);
		return;
	}
	set_state(c, ST_IDLE);
}

/* after_hello - EHLO or HELO was accepted. */
static void after_hello(struct smtp_client *c)
{
	if (!c->info.tls && c->tls != SMTP_CLIENT_TLS_NONE &&
	    (c->info.extensions & SMTP_CLIENT_EXT_STARTTLS)) {
		out_cmd(c, "STARTTLS");
		set_state(c, ST_STARTTLS);
		return;
	}
	after_tls(c);
}

static void send_ehlo(struct smtp_client *c)
{
	out_cmd(c, "EHLO %s", c->ehlo_name);
	set_state(c, ST_EHLO);
}

static void auth_login_field(struct smtp_client *c, const char *field)
{
	char b64[4 * ((SASL_PASSWORD_MAX + 2) / 3) + 1];
	long n = base64_encode((const unsigned char *)field, strlen(field), b64, sizeof(b64));

	assert(n >= 0);
	out_line(c, b64, (size_t)n, SMTP_AUTHLINE_MAX);
	explicit_bzero(b64, sizeof(b64));
}

static void on_auth_reply(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	int klass = r->code / 100;

	if (klass == 4 || klass == 5) {
		/* RFC 4954 6: 535 means the credentials are wrong; trying
		 * them again will not help. 454 and other 4xx: later. */
		fail_reply(c, status_of(r->code), SMTP_CLIENT_R_AUTH_FAILED, r, true);
		return;
	}
	switch (c->state) {
	case ST_AUTH_LOGIN:
	case ST_AUTH_USER:
		if (r->code != 334) {
			fail_unexpected(c, r);
			return;
		}
		/* The prompts ("Username:", "Password:") are not read:
		 * the order is fixed. */
		auth_login_field(c, c->state == ST_AUTH_LOGIN ? c->user : c->password);
		set_state(c, c->state == ST_AUTH_LOGIN ? ST_AUTH_USER : ST_AUTH_PASS);
		return;
	default:
		if (klass != 2) {
			fail_unexpected(c, r);
			return;
		}
		c->info.authenticated = true;
		set_state(c, ST_IDLE);
		return;
	}
}

/* ---- transactions ---- */

static void rcpt_final(struct smtp_client *c, size_t i, const struct smtp_parsed_reply *r)
{
	result_reply(&c->results[i], status_of(r->code), SMTP_CLIENT_R_REPLY, r);
	c->rstate[i] = R_FINAL;
}

static void rcpt_local(struct smtp_client *c, size_t i, enum smtp_client_reason reason, int code,
                       const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void rcpt_local(struct smtp_client *c, size_t i, enum smtp_client_reason reason, int code,
                       const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	result_local(&c->results[i], status_of(code), reason, code, enhanced, fmt, ap);
	va_end(ap);
	c->rstate[i] = R_FINAL;
}

/* is_too_many - RFC 5321 4.5.3.1.10: 452 is the reply to one RCPT too
 * many; RFC 3463 3.6 gives it 4.5.3. A 452 with another enhanced code
 * (4.3.1, no room) is an ordinary temporary failure. */
static bool is_too_many(const struct smtp_parsed_reply *r)
{
	if (strcmp(r->enhanced, "4.5.3") == 0)
		return r->code / 100 == 4;
	return r->code == 452 && r->enhanced[0] == '\0';
}

static void emit_mail(struct smtp_client *c)
{
	const struct smtp_client_message *m = c->msg;
	unsigned ext = c->info.extensions;
	struct cmdline l = {.len = 0};

	cmd_addf(&l, "MAIL FROM:<%s>", m->reverse_path);
	if (ext & SMTP_CLIENT_EXT_SIZE)
		cmd_addf(&l, " SIZE=%llu", (unsigned long long)m->size);
	/* RFC 6531 3.4: SMTPUTF8 implies 8-bit content. A body that is 8-bit
	 * without the extension is sent as it is, undeclared, as most MTAs
	 * do (RFC 6152 3 would have it downgraded). */
	if ((m->body_8bit || m->smtputf8) && (ext & SMTP_CLIENT_EXT_8BITMIME))
		cmd_addf(&l, " BODY=8BITMIME");
	if (m->smtputf8)
		cmd_addf(&l, " SMTPUTF8"); /* send() checked it is offered */
	if (ext & SMTP_CLIENT_EXT_DSN) {
		/* RFC 3461 4.3, 4.4 */
		if (m->ret == SMTP_RET_FULL)
			cmd_addf(&l, " RET=FULL");
		else if (m->ret == SMTP_RET_HDRS)
			cmd_addf(&l, " RET=HDRS");
		char envid[SMTP_ENVID_MAX + 1];
		if (m->envid != NULL && m->envid[0] != '\0' &&
		    smtp_xtext_encode(m->envid, strlen(m->envid), envid, sizeof(envid)) > 0)
			cmd_addf(&l, " ENVID=%s", envid);
	}
	/* The reverse-path is at most SMTP_PATH_MAX and every parameter is
	 * bounded: the longest line is about 440 octets. */
	out_cmdline(c, &l);
	c->need_rset = true;
}

static bool atext_word(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
	}
	return true;
}

/* rcpt_line - "RCPT TO:<addr>" with NOTIFY and ORCPT when DSN is offered
 * (RFC 3461 4.1, 4.2). ORCPT is optional information: it is left out when
 * it cannot be encoded within its limit or the 512-octet line. */
static void rcpt_line(const struct smtp_client *c, const struct smtp_client_rcpt *rc,
                      struct cmdline *l)
{
	cmd_addf(l, "RCPT TO:<%s>", rc->address);
	if (!(c->info.extensions & SMTP_CLIENT_EXT_DSN))
		return;
	if (rc->notify & SMTP_NOTIFY_NEVER) {
		cmd_addf(l, " NOTIFY=NEVER");
	} else if (rc->notify != 0) {
		const char *sep = " NOTIFY=";
		if (rc->notify & SMTP_NOTIFY_SUCCESS) {
			cmd_addf(l, "%sSUCCESS", sep);
			sep = ",";
		}
		if (rc->notify & SMTP_NOTIFY_FAILURE) {
			cmd_addf(l, "%sFAILURE", sep);
			sep = ",";
		}
		if (rc->notify & SMTP_NOTIFY_DELAY)
			cmd_addf(l, "%sDELAY", sep);
	}
	const char *semi = rc->orcpt != NULL ? strchr(rc->orcpt, ';') : NULL;
	if (semi == NULL || !atext_word(rc->orcpt, (size_t)(semi - rc->orcpt)))
		return;
	char orcpt[SMTP_ORCPT_MAX + 1];
	size_t type_len = (size_t)(semi - rc->orcpt);
	if (type_len + 1 >= sizeof(orcpt))
		return;
	memcpy(orcpt, rc->orcpt, type_len + 1);
	int n = smtp_xtext_encode(semi + 1, strlen(semi + 1), orcpt + type_len + 1,
	                          sizeof(orcpt) - type_len - 1);
	if (n <= 0)
		return;
	struct cmdline with = *l;
	cmd_addf(&with, " ORCPT=%s", orcpt);
	if (!with.overflow)
		*l = with;
}

static void emit_rcpt(struct smtp_client *c, size_t k)
{
	struct cmdline l = {.len = 0};

	rcpt_line(c, &c->msg->rcpts[c->txn[k]], &l);
	out_cmdline(c, &l);
}

/* txn_begin - a transaction for every recipient still waiting. */
static void txn_begin(struct smtp_client *c)
{
	bool pipelining = (c->info.extensions & SMTP_CLIENT_EXT_PIPELINING) != 0;

	c->txn_n = 0;
	for (size_t i = 0; i < c->msg->nrcpts; i++) {
		if (c->rstate[i] != R_WAITING)
			continue;
		c->txn[c->txn_n++] = i;
		c->rstate[i] = R_SENT;
	}
	assert(c->txn_n > 0);
	c->txn_k = 0;
	c->naccepted = 0;
	c->mail_ok = false;
	c->dummy_dot = false;
	set_state(c, ST_TXN);
	if (c->need_rset) {
		/* RFC 5321 4.1.1.5: an earlier transaction may still be open
		 * (its MAIL was taken but it never reached the end of data). */
		out_cmd(c, "RSET");
		c->phase = P_RSET;
		if (!pipelining)
			return;
	} else {
		c->phase = P_MAIL;
	}
	emit_mail(c);
	if (!pipelining)
		return;
	/* RFC 2920 3.1: RSET, MAIL and RCPT may be pipelined, and DATA ends
	 * the group. */
	for (size_t k = 0; k < c->txn_n; k++)
		emit_rcpt(c, k);
	out_cmd(c, "DATA");
}

/* txn_end - the transaction is over: carry the "too many recipients" ones
 * into a new one, or finish the message. */
static void txn_end(struct smtp_client *c)
{
	bool again = false;

	for (size_t k = 0; k < c->txn_n; k++) {
		size_t i = c->txn[k];
		if (c->rstate[i] == R_CARRY) {
			if (c->naccepted > 0) {
				c->rstate[i] = R_WAITING;
				memset(&c->results[i], 0, sizeof(c->results[i]));
				again = true;
			} else {
				c->rstate[i] = R_FINAL; /* keeps the 452 */
			}
		}
		assert(c->rstate[i] == R_FINAL || c->rstate[i] == R_WAITING);
	}
	if (again)
		txn_begin(c);
	else
		message_done(c);
}

/* end_rcpts - every RCPT reply is in. */
static void end_rcpts(struct smtp_client *c, bool pipelining)
{
	c->phase = P_DATA;
	if (pipelining)
		return; /* DATA was sent with the rest */
	if (c->naccepted > 0)
		out_cmd(c, "DATA");
	else
		txn_end(c);
}

static void on_txn_reply(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	bool pipelining = (c->info.extensions & SMTP_CLIENT_EXT_PIPELINING) != 0;
	int klass = r->code / 100;

	switch (c->phase) {
	case P_RSET:
		if (klass != 2) {
			fail_unexpected(c, r);
			return;
		}
		c->phase = P_MAIL;
		if (!pipelining)
			emit_mail(c);
		return;
	case P_MAIL:
		if (klass == 3) {
			fail_unexpected(c, r);
			return;
		}
		c->mail_ok = klass == 2;
		if (!c->mail_ok)
			for (size_t k = 0; k < c->txn_n; k++)
				rcpt_final(c, c->txn[k], r);
		c->phase = P_RCPT;
		if (pipelining)
			return;
		if (c->mail_ok)
			emit_rcpt(c, 0);
		else
			txn_end(c);
		return;
	case P_RCPT: {
		size_t i = c->txn[c->txn_k];
		/* After a failed MAIL the pipelined RCPT replies (503) say
		 * nothing more: each recipient has MAIL's reply. */
		if (c->mail_ok) {
			if (klass == 3) {
				fail_unexpected(c, r);
				return;
			}
			if (klass == 2) {
				c->rstate[i] = R_ACCEPTED;
				c->naccepted++;
			} else if (is_too_many(r)) {
				result_reply(&c->results[i], SMTP_CLIENT_TEMPFAIL,
				             SMTP_CLIENT_R_REPLY, r);
				c->rstate[i] = R_CARRY;
			} else {
				rcpt_final(c, i, r);
			}
		}
		c->txn_k++;
		if (c->txn_k < c->txn_n) {
			if (!pipelining)
				emit_rcpt(c, c->txn_k);
			return;
		}
		end_rcpts(c, pipelining);
		return;
	}
	case P_DATA:
		if (r->code == 354) {
			if (c->naccepted > 0) {
				set_state(c, ST_BODY);
			} else {
				/* RFC 2920 3.1 says a server refuses DATA
				 * when no RCPT succeeded; this one did not.
				 * Only an empty message leaves the data
				 * phase cleanly; its reply is ignored. */
				out_line(c, ".", 1, SMTP_CMDLINE_MAX);
				c->dummy_dot = true;
				set_state(c, ST_DOT);
			}
			return;
		}
		if (klass == 2 || klass == 3) {
			fail_unexpected(c, r);
			return;
		}
		for (size_t k = 0; k < c->txn_n; k++)
			if (c->rstate[c->txn[k]] == R_ACCEPTED)
				rcpt_final(c, c->txn[k], r);
		txn_end(c);
		return;
	}
}

static void on_dot_reply(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	if (r->code / 100 == 3) {
		fail_unexpected(c, r);
		return;
	}
	/* RFC 5321 4.1.1.4: the reply to the end of data is the result of
	 * every recipient RCPT accepted; the transaction is over either way. */
	if (!c->dummy_dot)
		for (size_t k = 0; k < c->txn_n; k++)
			if (c->rstate[c->txn[k]] == R_ACCEPTED)
				rcpt_final(c, c->txn[k], r);
	c->need_rset = false;
	txn_end(c);
}

/* ---- replies ---- */

static void on_reply(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	int klass = r->code / 100;

	if (c->state == ST_QUIT) {
		/* RFC 5321 4.1.1.10: whatever the reply, the session is over. */
		set_state(c, ST_DONE);
		return;
	}
	if (r->code == 421) {
		/* RFC 5321 3.8: the server is closing the connection. */
		fail_reply(c, SMTP_CLIENT_TEMPFAIL, SMTP_CLIENT_R_CLOSING, r, false);
		return;
	}
	switch (c->state) {
	case ST_GREETING:
		/* RFC 5321 3.1, 4.3.1: 220, or 554 (then QUIT). */
		if (klass == 3) {
			fail_unexpected(c, r);
			return;
		}
		if (klass != 2) {
			fail_reply(c, status_of(r->code), SMTP_CLIENT_R_GREETING, r, true);
			return;
		}
		copy_text(c->info.greeting, sizeof(c->info.greeting), r->text, r->text_len);
		send_ehlo(c);
		return;
	case ST_EHLO:
		if (klass == 2) {
			c->info.used_helo = false;
			parse_ehlo(c, r);
			after_hello(c);
		} else if (klass == 5) {
			/* RFC 5321 3.2: a server that does not know EHLO
			 * still knows HELO; no extension then. */
			out_cmd(c, "HELO %s", c->ehlo_name);
			set_state(c, ST_HELO);
		} else if (klass == 4) {
			fail_reply(c, SMTP_CLIENT_TEMPFAIL, SMTP_CLIENT_R_HELO, r, true);
		} else {
			fail_unexpected(c, r);
		}
		return;
	case ST_HELO:
		if (klass == 3) {
			fail_unexpected(c, r);
			return;
		}
		if (klass != 2) {
			fail_reply(c, status_of(r->code), SMTP_CLIENT_R_HELO, r, true);
			return;
		}
		copy_text(c->info.ehlo_line, sizeof(c->info.ehlo_line), r->text, r->text_len);
		c->info.extensions = 0;
		c->info.size_limit = 0;
		c->info.auth_mechs = 0;
		c->info.used_helo = true;
		after_hello(c);
		return;
	case ST_STARTTLS:
		if (r->code == 220) {
			/* RFC 3207 4: the handshake starts now; the feed loop
			 * refuses any byte that came after this reply. */
			set_state(c, ST_TLS);
			return;
		}
		if (klass == 2 || klass == 3) {
			fail_unexpected(c, r);
			return;
		}
		/* RFC 3207 4: after 454 (or a 5xx) the session goes on as
		 * it was, if the client so decides. */
		if (c->tls == SMTP_CLIENT_TLS_REQUIRED)
			fail_reply(c, SMTP_CLIENT_TEMPFAIL, SMTP_CLIENT_R_TLS_REQUIRED, r, true);
		else
			after_tls(c);
		return;
	case ST_AUTH_PLAIN:
	case ST_AUTH_LOGIN:
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
		on_auth_reply(c, r);
		return;
	case ST_TXN:
		on_txn_reply(c, r);
		return;
	case ST_DOT:
		on_dot_reply(c, r);
		return;
	case ST_IDLE:
	case ST_BODY:
		/* Nothing was asked. A QUIT is still understood while idle. */
		fail_local(c, SMTP_CLIENT_R_PROTOCOL, 451, "4.5.0", c->state == ST_IDLE,
		           "unexpected %s: %d%s%s %s", stage(c), r->code, r->enhanced[0] ? " " : "",
		           r->enhanced, r->text);
		return;
	case ST_TLS:
	case ST_QUIT:
	case ST_DONE:
	case ST_FAILED:
		break;
	}
	assert(!"reply in a state that takes none");
}

/* ---- public ---- */

static bool ehlo_name_valid(const char *s)
{
	size_t n = s != NULL ? strnlen(s, SMTP_HELO_MAX + 1) : 0;

	if (n == 0 || n > SMTP_HELO_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
			return false;
	return true;
}

struct smtp_client *smtp_client_new(const struct smtp_client_config *config)
{
	struct smtp_client *c;

	if (!ehlo_name_valid(config->ehlo_name))
		return NULL;
	if ((config->auth_user == NULL) != (config->auth_password == NULL))
		return NULL;
	if (config->auth_user != NULL &&
	    (config->auth_user[0] == '\0' ||
	     strnlen(config->auth_user, SASL_USER_MAX + 1) > SASL_USER_MAX ||
	     strnlen(config->auth_password, SASL_PASSWORD_MAX + 1) > SASL_PASSWORD_MAX))
		return NULL;

	c = xcalloc(1, sizeof(*c));
	str_copy(c->ehlo_name, config->ehlo_name, sizeof(c->ehlo_name));
	c->tls = config->tls;
	c->info.tls = config->implicit_tls;
	if (config->auth_user != NULL) {
		c->has_auth = true;
		str_copy(c->user, config->auth_user, sizeof(c->user));
		str_copy(c->password, config->auth_password, sizeof(c->password));
	}
	smtp_replyparse_init(&c->parser);
	c->state = ST_GREETING;
	return c;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	if (c->out != NULL) {
		explicit_bzero(c->out, c->out_cap);
		free(c->out);
	}
	free(c->rstate);
	free(c->txn);
	explicit_bzero(c->user, sizeof(c->user));
	explicit_bzero(c->password, sizeof(c->password));
	free(c);
	*cp = NULL;
}

enum smtp_client_want smtp_client_want(const struct smtp_client *c)
{
	switch (c->state) {
	case ST_TLS:
		return SMTP_CLIENT_WANT_TLS;
	case ST_BODY:
		return SMTP_CLIENT_WANT_BODY;
	case ST_IDLE:
		return SMTP_CLIENT_WANT_MESSAGE;
	case ST_DONE:
		return SMTP_CLIENT_WANT_DONE;
	case ST_FAILED:
		return SMTP_CLIENT_WANT_FAILED;
	default:
		return SMTP_CLIENT_WANT_REPLY;
	}
}

const char *smtp_client_output(const struct smtp_client *c, size_t *len_r)
{
	*len_r = c->out_len;
	return c->out != NULL ? c->out : "";
}

void smtp_client_output_consume(struct smtp_client *c, size_t n)
{
	assert(n <= c->out_len);
	if (n == 0)
		return;
	memmove(c->out, c->out + n, c->out_len - n);
	c->out_len -= n;
	/* What was sent may have been AUTH: leave no copy behind. */
	explicit_bzero(c->out + c->out_len, n);
}

void smtp_client_feed(struct smtp_client *c, const char *buf, size_t len)
{
	while (len > 0 && c->state != ST_DONE && c->state != ST_FAILED) {
		if (c->state == ST_TLS) {
			/* RFC 3207 4.2: nothing the server said before the
			 * handshake may be read after it (CVE-2011-0411). */
			fail_local(c, SMTP_CLIENT_R_PROTOCOL, 451, "4.5.0", false,
			           "the server sent data before the TLS handshake");
			return;
		}
		size_t used;
		const struct smtp_parsed_reply *r;
		enum smtp_replyparse_result res =
		    smtp_replyparse_feed(&c->parser, buf, len, &used, &r);
		buf += used;
		len -= used;
		if (res == SMTP_REPLYPARSE_MORE)
			return;
		if (res == SMTP_REPLYPARSE_MALFORMED) {
			if (c->state == ST_QUIT) {
				set_state(c, ST_DONE);
				return;
			}
			fail_local(c, SMTP_CLIENT_R_PROTOCOL, 451, "4.5.0", false,
			           "malformed %s: %s", stage(c),
			           smtp_replyparse_error_text(c->parser.error));
			return;
		}
		on_reply(c, r);
	}
}

void smtp_client_event(struct smtp_client *c, enum smtp_client_event event)
{
	bool lost = event == SMTP_CLIENT_EV_LOST;
	enum smtp_client_reason reason = lost ? SMTP_CLIENT_R_LOST : SMTP_CLIENT_R_TIMEOUT;
	const char *what = lost ? "connection lost" : "timeout";

	switch (c->state) {
	case ST_DONE:
	case ST_FAILED:
		return;
	case ST_QUIT:
		set_state(c, ST_DONE);
		return;
	case ST_DOT:
		/* RFC 5321 6.1: the server may have taken the message. We
		 * cannot know; sending it again is a duplicate at worst,
		 * dropping it a loss. */
		fail_local(c, reason, 451, "4.4.2", false,
		           "%s after end of data; delivery status unknown, will retry", what);
		return;
	case ST_BODY:
		fail_local(c, reason, 451, "4.4.2", false, "%s while sending the message body",
		           what);
		return;
	case ST_TLS:
		fail_local(c, reason, 451, "4.4.2", false, "%s during the TLS handshake", what);
		return;
	case ST_IDLE:
		fail_local(c, reason, 451, "4.4.2", false, "%s while idle", what);
		return;
	default:
		fail_local(c, reason, 451, "4.4.2", false, "%s while waiting for the %s", what,
		           stage(c));
		return;
	}
}

void smtp_client_tls_done(struct smtp_client *c, bool ok)
{
	assert(c->state == ST_TLS);
	if (!ok) {
		fail_local(c, SMTP_CLIENT_R_TLS_FAILED, 451, "4.7.5", false,
		           "TLS handshake failed");
		return;
	}
	/* The handshake ran on the socket after our output was written. */
	assert(c->out_len == 0);
	/* RFC 3207 4.2: discard all knowledge obtained from the server
	 * before TLS, and start again with EHLO. */
	c->info.tls = true;
	c->info.extensions = 0;
	c->info.size_limit = 0;
	c->info.auth_mechs = 0;
	c->info.ehlo_line[0] = '\0';
	c->info.used_helo = false;
	smtp_replyparse_init(&c->parser);
	send_ehlo(c);
}

/* sendable - can this mailbox go between angle brackets? The same parser
 * that accepted it from our clients (so it holds no '>', CR or LF that
 * would end the command early), and the RFC 5321 4.5.3.1.3 length. */
static bool sendable(const char *s, unsigned flags)
{
	struct smtp_addr addr;
	size_t n = s != NULL ? strnlen(s, SMTP_PATH_MAX + 1) : SMTP_PATH_MAX + 1;

	if (n > SMTP_PATH_MAX)
		return false;
	return smtp_addr_parse_mailbox(s, n, flags | SMTP_ADDR_ALLOW_UTF8, &addr) == SMTP_ADDR_OK;
}

void smtp_client_send(struct smtp_client *c, const struct smtp_client_message *msg,
                      struct smtp_client_result *results_r)
{
	size_t n = msg->nrcpts;
	const struct smtp_client_info *info = &c->info;

	assert(c->state == ST_IDLE);
	assert(n > 0);
	if (n > c->rcap) {
		c->rstate = xreallocarray(c->rstate, n, sizeof(*c->rstate));
		c->txn = xreallocarray(c->txn, n, sizeof(*c->txn));
		c->rcap = n;
	}
	c->msg = msg;
	c->results = results_r;
	for (size_t i = 0; i < n; i++) {
		memset(&results_r[i], 0, sizeof(results_r[i]));
		c->rstate[i] = R_WAITING;
	}

	/* Refusals for the whole message, before a byte is sent. */
	if (msg->smtputf8 && !(info->extensions & SMTP_CLIENT_EXT_SMTPUTF8)) {
		/* RFC 6531 3.2: without the extension there is no way to
		 * send a message that needs it. */
		for (size_t i = 0; i < n; i++)
			rcpt_local(c, i, SMTP_CLIENT_R_SMTPUTF8, 554, "5.6.7",
			           "SMTPUTF8 not supported by the next hop");
		message_done(c);
		return;
	}
	if ((info->extensions & SMTP_CLIENT_EXT_SIZE) && info->size_limit > 0 &&
	    msg->size > info->size_limit) {
		/* RFC 1870 6.1: no point sending what will be refused. */
		for (size_t i = 0; i < n; i++)
			rcpt_local(c, i, SMTP_CLIENT_R_SIZE, 552, "5.3.4",
			           "message size %llu exceeds the next hop's limit of %llu octets",
			           (unsigned long long)msg->size,
			           (unsigned long long)info->size_limit);
		message_done(c);
		return;
	}
	if (msg->reverse_path == NULL ||
	    (msg->reverse_path[0] != '\0' && !sendable(msg->reverse_path, 0))) {
		for (size_t i = 0; i < n; i++)
			rcpt_local(c, i, SMTP_CLIENT_R_ENVELOPE, 553, "5.1.7",
			           "sender address cannot be sent: invalid syntax or too long");
		message_done(c);
		return;
	}

	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (sendable(msg->rcpts[i].address, SMTP_ADDR_ALLOW_POSTMASTER))
			any = true;
		else
			rcpt_local(c, i, SMTP_CLIENT_R_ENVELOPE, 553, "5.1.3",
			           "recipient address cannot be sent: invalid syntax or too long");
	}
	if (!any) {
		message_done(c);
		return;
	}
	txn_begin(c);
}

void smtp_client_body_sent(struct smtp_client *c)
{
	assert(c->state == ST_BODY);
	set_state(c, ST_DOT);
}

void smtp_client_quit(struct smtp_client *c)
{
	assert(c->state == ST_IDLE);
	out_cmd(c, "QUIT");
	set_state(c, ST_QUIT);
}

const struct smtp_client_result *smtp_client_error(const struct smtp_client *c)
{
	return c->state == ST_FAILED ? &c->error : NULL;
}

const struct smtp_client_info *smtp_client_info(const struct smtp_client *c)
{
	return &c->info;
}

unsigned smtp_client_timeout(const struct smtp_client *c)
{
	/* RFC 5321 4.5.3.2.1-6 */
	switch (c->state) {
	case ST_TLS:
		return TLS_HANDSHAKE_TIMEOUT;
	case ST_TXN:
		return c->phase == P_DATA ? 2 * 60 : 5 * 60;
	case ST_BODY:
		return 3 * 60;
	case ST_DOT:
		return 10 * 60;
	case ST_IDLE:
	case ST_DONE:
	case ST_FAILED:
		return 0;
	default:
		return 5 * 60;
	}
}

const char *smtp_client_reason_name(enum smtp_client_reason reason)
{
	switch (reason) {
	case SMTP_CLIENT_R_NONE:
		return "none";
	case SMTP_CLIENT_R_REPLY:
		return "reply";
	case SMTP_CLIENT_R_GREETING:
		return "greeting";
	case SMTP_CLIENT_R_HELO:
		return "helo";
	case SMTP_CLIENT_R_CLOSING:
		return "closing";
	case SMTP_CLIENT_R_PROTOCOL:
		return "protocol";
	case SMTP_CLIENT_R_LOST:
		return "lost";
	case SMTP_CLIENT_R_TIMEOUT:
		return "timeout";
	case SMTP_CLIENT_R_TLS_REQUIRED:
		return "tls_required";
	case SMTP_CLIENT_R_TLS_FAILED:
		return "tls_failed";
	case SMTP_CLIENT_R_AUTH_PLAINTEXT:
		return "auth_plaintext";
	case SMTP_CLIENT_R_AUTH_UNAVAILABLE:
		return "auth_unavailable";
	case SMTP_CLIENT_R_AUTH_FAILED:
		return "auth_failed";
	case SMTP_CLIENT_R_SMTPUTF8:
		return "smtputf8";
	case SMTP_CLIENT_R_SIZE:
		return "size";
	case SMTP_CLIENT_R_ENVELOPE:
		return "envelope";
	}
	return "unknown";
}
