/* SPDX-License-Identifier: ISC */
/* session.c - see session.h */
#include "server/session.h"
#include "server/session_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/crashpoint.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workers.h"
#include "queue/spool.h"
#include "delivery/delivery.h"
#include "server/auth_check.h"
#include "server/policy.h"
#include "server/ratelimit.h"
#include "server/received.h"
#include "server/server.h"
#include "server/tls.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_params.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_sasl.h"

static const char *const state_names[] = {"greeted", "ready",  "mail", "rcpt", "data",
                                          "bdat",    "commit", "auth", "tls",  "closing"};

/* One scratch buffer for unstuffed message data: the loop is single-threaded
 * and each use is finished before the next. */
#define SCRATCH_IN 65536
static char scratch[SCRATCH_IN + 2];

static void session_free(struct session *s);

/* ---- replies -------------------------------------------------------------- */

/* session_reply_raw - queue one reply line; counts client errors (5xx). */
void session_reply_raw(struct session *s, int code, const char *enh, const char *text, bool more)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	if (enh != NULL && *enh != '\0')
		evbuffer_add_printf(out, "%d%c%s %s\r\n", code, more ? '-' : ' ', enh, text);
	else
		evbuffer_add_printf(out, "%d%c%s\r\n", code, more ? '-' : ' ', text);
	/* Only protocol errors count towards SMTP_ERRORS_MAX; a refusal by
	 * policy (RFC 3463 class X.7.X: relay, sender, authentication) costs
	 * the client nothing it could gain by repeating it. */
	if (code >= 500 && strncmp(enh ? enh : "", "5.7.", 4) != 0)
		s->errors++;
}

void session_reply(struct session *s, enum smtp_reply_id id)
{
	const struct smtp_reply *r = smtp_reply_get(id);
	session_reply_raw(s, r->code, r->enh, r->text, false);
}

void session_replyf(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[SMTP_REPLYLINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	session_reply_raw(s, code, enh, text, false);
}

/* log_reject - one line for every refused command, with what was refused. */
static void log_reject(struct session *s, const char *command, enum smtp_reply_id id,
                       const char *detail)
{
	const struct smtp_reply *r = smtp_reply_get(id);
	struct logline l;
	logline_init(&l, "smtp.reject");
	logline_int(&l, "session", (long long)s->id);
	logline_str(&l, "client", s->client_addr);
	logline_str(&l, "listener", s->listener->name);
	if (s->msg != NULL)
		logline_str(&l, "qid", spool_msg_envelope(s->msg)->qid);
	logline_str(&l, "command", command);
	if (detail != NULL)
		logline_str(&l, "arg", detail);
	logline_fmt(&l, "reply", "%d %s", r->code, r->enh);
	logline_str(&l, "reason", r->text);
	logline_emit(&l, LOG_LEVEL_INFO);
}

void session_reject(struct session *s, const char *command, enum smtp_reply_id id,
                    const char *detail)
{
	log_reject(s, command, id, detail);
	session_reply(s, id);
}

/* ---- state ---------------------------------------------------------------- */

/* session_set_timeouts - RFC 5321 4.5.3.2: commands and data blocks have their own
 * timeouts; the write side uses the command timeout. */
void session_set_timeouts(struct session *s)
{
	unsigned secs =
	    (s->state == SESSION_STATE_DATA || s->state == SESSION_STATE_BDAT)
	        ? s->cfg->data_timeout
	    /* A stalled handshake costs at most the shorter of the two. */
	    : s->state == SESSION_STATE_TLS
	        ? (TLS_HANDSHAKE_TIMEOUT < s->cfg->command_timeout ? TLS_HANDSHAKE_TIMEOUT
	                                                           : s->cfg->command_timeout)
	        : s->cfg->command_timeout;
	struct timeval rtv = {secs, 0}, wtv = {s->cfg->command_timeout, 0};
	bufferevent_set_timeouts(s->bev, &rtv, &wtv);
}

/* session_set_state - the one place where the session changes state. */
void session_set_state(struct session *s, enum session_state next)
{
	if (s->state == next)
		return;
	log_event(LOG_LEVEL_DEBUG, "smtp.state", "session=%llu from=%s to=%s",
	          (unsigned long long)s->id, state_names[s->state], state_names[next]);
	bool data_before = s->state == SESSION_STATE_DATA || s->state == SESSION_STATE_BDAT ||
	                   s->state == SESSION_STATE_TLS;
	bool data_after =
	    next == SESSION_STATE_DATA || next == SESSION_STATE_BDAT || next == SESSION_STATE_TLS;
	s->state = next;
	if (data_before != data_after && next != SESSION_STATE_CLOSING)
		session_set_timeouts(s);
}

/* session_transaction_reset - forget MAIL, RCPTs and any message data (RSET, EHLO,
 * end of a message). Does not change the state. */
void session_transaction_reset(struct session *s)
{
	spool_msg_free(&s->msg);
	memset(&s->mail, 0, sizeof(s->mail));
	s->mail_utf8 = false;
	s->first_rcpt[0] = '\0';
	s->used_bdat = false;
	s->refusal = REFUSE_NONE;
	s->storage_errno = 0;
	s->bdat_remaining = 0;
	s->bdat_last = false;
	s->bdat_discard = false;
}

bool session_in_transaction(const struct session *s)
{
	return s->state == SESSION_STATE_MAIL || s->state == SESSION_STATE_RCPT;
}

static void policy_client_of(const struct session *s, struct policy_client *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->trusted = s->trusted;
	pc->auth = s->listener->auth;
	pc->account = s->account;
	pc->senders = (const char *const *)s->senders;
	pc->n_senders = s->n_senders;
}

/* rate_take - one message or recipient against the account's limit. A
 * refusal is logged once per window, so an abused account cannot flood
 * the log either. */
static bool rate_take(struct session *s, struct ratelimit *rl, struct config_rate rate,
                      const char *kind)
{
	enum ratelimit_verdict v = ratelimit_take(rl, s->account, rate, 1, mono_ms());
	if (v == RATELIMIT_OK)
		return true;
	s->srv->refused_rate++;
	if (v == RATELIMIT_OVER_NEW) {
		struct logline l;
		logline_init(&l, "smtp.rate_limited");
		logline_str(&l, "account", s->account);
		logline_str(&l, "client", s->client_addr);
		logline_str(&l, "kind", kind);
		logline_fmt(&l, "limit", "%u/%us", rate.count, rate.seconds);
		logline_emit(&l, LOG_LEVEL_WARN);
	}
	return false;
}

/* extensions - what EHLO advertised on this session (none after HELO). */
static unsigned extensions(const struct session *s)
{
	if (!s->esmtp)
		return 0;
	/* RFC 4954 5: AUTH= on MAIL is accepted where AUTH is offered. */
	return SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN |
	       SMTP_EXT_CHUNKING | (s->listener->auth != LISTENER_AUTH_OFF ? SMTP_EXT_AUTH : 0);
}

/* ---- commands ------------------------------------------------------------- */

/* helo_valid - EHLO/HELO argument: printable ASCII without spaces. It is only
 * recorded (Received:), never trusted, so any such token is accepted: Windows
 * host names with underscores are common and harmless. */
static bool helo_valid(const char *arg, size_t len)
{
	if (len == 0 || len > SMTP_HELO_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (arg[i] <= ' ' || arg[i] > '~')
			return false;
	return true;
}

static void cmd_helo(struct session *s, const struct smtp_cmd *cmd)
{
	bool ehlo = cmd->verb == SMTP_VERB_EHLO;
	if (!helo_valid(cmd->arg, cmd->arg_len)) {
		session_reject(s, ehlo ? "EHLO" : "HELO", SMTP_R_HELO_SYNTAX, NULL);
		return;
	}
	/* RFC 5321 4.1.4: EHLO in the middle of a session resets it. */
	session_transaction_reset(s);
	memcpy(s->helo, cmd->arg, cmd->arg_len);
	s->helo[cmd->arg_len] = '\0';
	s->esmtp = ehlo;
	session_set_state(s, SESSION_STATE_READY);
	if (!ehlo) {
		session_replyf(s, 250, "", "%s", s->cfg->hostname);
		return;
	}
	char size[48];
	snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)s->cfg->max_message_size);
	const char *lines[12] = {s->cfg->hostname, "PIPELINING",          size,       "8BITMIME",
	                         "SMTPUTF8",       "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"};
	size_t n = 8;
	if (session_starttls_offered(s))
		lines[n++] = "STARTTLS";
	if (session_auth_offered(s))
		lines[n++] = "AUTH PLAIN LOGIN";
	for (size_t i = 0; i < n; i++)
		session_reply_raw(s, 250, "", lines[i], i + 1 < n);
}

static void cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	struct smtp_addr addr;
	size_t used;
	enum smtp_reply_id err;

	if (s->state == SESSION_STATE_GREETED) {
		session_reject(s, "MAIL", SMTP_R_NEED_HELO, NULL);
		return;
	}
	if (s->state != SESSION_STATE_READY) {
		session_reject(s, "MAIL", SMTP_R_NESTED_MAIL, NULL);
		return;
	}
	if (cmd->malformed) {
		session_reject(s, "MAIL", SMTP_R_SYNTAX, NULL);
		return;
	}
	/* UTF-8 is checked against the SMTPUTF8 parameter after the
	 * parameters are known, so parse permissively first. */
	enum smtp_addr_result ar = smtp_addr_parse_path(
	    cmd->arg, cmd->arg_len, SMTP_ADDR_ALLOW_NULL | SMTP_ADDR_ALLOW_UTF8, &addr, &used);
	switch (ar) {
	case SMTP_ADDR_OK:
		break;
	/* RFC 3463: X.1.7 is the sender's address, X.1.3 a recipient's. */
	case SMTP_ADDR_SOURCE_ROUTE:
		session_reject(s, "MAIL", SMTP_R_MAIL_SOURCE_ROUTE, NULL);
		return;
	case SMTP_ADDR_TOO_LONG:
		session_reject(s, "MAIL", SMTP_R_MAIL_TOO_LONG, NULL);
		return;
	default:
		session_reject(s, "MAIL", SMTP_R_MAIL_SYNTAX, NULL);
		return;
	}
	struct smtp_mail_params params;
	if (smtp_params_parse_mail(cmd->arg + used, cmd->arg_len - used, extensions(s), &params,
	                           &err) < 0) {
		session_reject(s, "MAIL", err, addr.mailbox);
		return;
	}
	if (addr.has_utf8 && !params.smtputf8) {
		session_reject(s, "MAIL", SMTP_R_NEEDS_SMTPUTF8, addr.mailbox);
		return;
	}
	/* RFC 1870 6: refuse a declared size over the limit right away. */
	if (params.has_size && params.size > s->cfg->max_message_size) {
		session_reject(s, "MAIL", SMTP_R_SIZE_DECLARED, addr.mailbox);
		return;
	}
	struct policy_client pc;
	policy_client_of(s, &pc);
	if (!policy_mail(&pc, &addr, &err)) {
		session_reject(s, "MAIL", err, addr.mailbox);
		return;
	}
	if (s->account != NULL &&
	    !rate_take(s, s->srv->rl_messages, s->rate_messages, "messages")) {
		session_reject(s, "MAIL", SMTP_R_RATE_LIMITED, addr.mailbox);
		return;
	}

	s->mail = params;
	s->msg = spool_msg_new(s->srv->spool);
	struct spool_envelope *env = spool_msg_envelope(s->msg);
	env->sender = xstrdup(addr.mailbox);
	env->body = params.body;
	env->smtputf8 = params.smtputf8;
	env->ret = params.ret;
	env->envid = params.envid[0] ? xstrdup(params.envid) : NULL;
	env->declared_size = params.has_size ? params.size : 0;
	env->client_addr = xstrdup(s->client_addr);
	env->helo = xstrdup(s->helo);
	env->listener = xstrdup(s->listener->name);
	env->account = s->account ? xstrdup(s->account) : NULL;
	env->tls = s->tls_active ? xstrdup(s->tls_short) : NULL;
	session_set_state(s, SESSION_STATE_MAIL);
	session_reply(s, SMTP_R_MAIL_OK);
}

static void cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	struct smtp_addr addr;
	size_t used;
	enum smtp_reply_id err;

	if (s->state == SESSION_STATE_GREETED) {
		session_reject(s, "RCPT", SMTP_R_NEED_HELO, NULL);
		return;
	}
	if (!session_in_transaction(s)) {
		session_reject(s, "RCPT", SMTP_R_NEED_MAIL, NULL);
		return;
	}
	if (cmd->malformed) {
		session_reject(s, "RCPT", SMTP_R_SYNTAX, NULL);
		return;
	}
	unsigned flags = SMTP_ADDR_ALLOW_POSTMASTER | (s->mail.smtputf8 ? SMTP_ADDR_ALLOW_UTF8 : 0);
	enum smtp_addr_result ar =
	    smtp_addr_parse_path(cmd->arg, cmd->arg_len, flags, &addr, &used);
	switch (ar) {
	case SMTP_ADDR_OK:
		break;
	case SMTP_ADDR_SOURCE_ROUTE:
		session_reject(s, "RCPT", SMTP_R_SOURCE_ROUTE, NULL);
		return;
	case SMTP_ADDR_TOO_LONG:
		session_reject(s, "RCPT", SMTP_R_ADDR_TOO_LONG, NULL);
		return;
	case SMTP_ADDR_NEEDS_UTF8:
		session_reject(s, "RCPT", SMTP_R_NEEDS_SMTPUTF8, NULL);
		return;
	case SMTP_ADDR_NULL:
		session_reject(s, "RCPT", SMTP_R_NULL_RCPT, NULL);
		return;
	default:
		session_reject(s, "RCPT", SMTP_R_RCPT_SYNTAX, NULL);
		return;
	}
	struct smtp_rcpt_params params;
	if (smtp_params_parse_rcpt(cmd->arg + used, cmd->arg_len - used, extensions(s), &params,
	                           &err) < 0) {
		session_reject(s, "RCPT", err, addr.mailbox);
		return;
	}
	struct policy_client pc;
	policy_client_of(s, &pc);
	if (!policy_rcpt(&pc, &addr, &err)) {
		session_reject(s, "RCPT", err, addr.mailbox);
		return;
	}
	/* RFC 5321 4.5.3.1.10: 452 for one recipient too many; the client
	 * sends the rest in another transaction. */
	if (spool_msg_rcpt_count(s->msg) >= s->cfg->max_recipients) {
		session_reject(s, "RCPT", SMTP_R_TOO_MANY_RCPTS, addr.mailbox);
		return;
	}
	if (s->account != NULL &&
	    !rate_take(s, s->srv->rl_recipients, s->rate_recipients, "recipients")) {
		session_reject(s, "RCPT", SMTP_R_RCPT_RATE_LIMITED, addr.mailbox);
		return;
	}
	spool_msg_add_rcpt(s->msg, addr.mailbox, params.notify,
	                   params.orcpt[0] ? params.orcpt : NULL);
	if (spool_msg_rcpt_count(s->msg) == 1)
		memcpy(s->first_rcpt, addr.mailbox, addr.len + 1);
	session_set_state(s, SESSION_STATE_RCPT);
	session_reply(s, SMTP_R_RCPT_OK);
}

/* message_begin - the first octets of message data are coming: write our
 * Received: header in front of them and arm the data scanner. */
static void message_begin(struct session *s, enum smtp_data_mode mode)
{
	struct spool_envelope *env = spool_msg_envelope(s->msg);
	struct received_info ri = {
	    .helo = s->helo,
	    .client_addr = s->client_addr,
	    .hostname = s->cfg->hostname,
	    .qid = env->qid,
	    .tls = s->tls_active ? s->tls_desc : NULL,
	    .account = s->account,
	    .esmtp = s->esmtp,
	    .authenticated = s->account != NULL,
	    .smtputf8 = s->mail.smtputf8,
	    /* RFC 5321 4.4: "for" only with a single recipient, so that a
	     * message to several people does not show each the others. */
	    .for_rcpt = spool_msg_rcpt_count(s->msg) == 1 ? s->first_rcpt : NULL,
	    .when = time(NULL),
	};
	char header[1024];
	size_t n = received_format(&ri, header, sizeof(header));
	env->arrival_ms = now_ms();
	smtp_data_init(&s->data, mode);
	received_counter_init(&s->received);
	s->refusal = REFUSE_NONE;
	if (n == 0 || spool_msg_append(s->msg, header, n) < 0) {
		s->refusal = REFUSE_STORAGE;
		s->storage_errno = n == 0 ? EOVERFLOW : errno;
	}
}

static void cmd_data(struct session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arg_len > 0) {
		session_reject(s, "DATA", SMTP_R_NO_ARGS, NULL);
		return;
	}
	if (s->state == SESSION_STATE_GREETED) {
		session_reject(s, "DATA", SMTP_R_NEED_HELO, NULL);
		return;
	}
	if (s->state == SESSION_STATE_READY) {
		session_reject(s, "DATA", SMTP_R_NEED_MAIL, NULL);
		return;
	}
	if (s->state == SESSION_STATE_MAIL) {
		session_reject(s, "DATA", SMTP_R_NEED_RCPT, NULL);
		return;
	}
	if (s->used_bdat) {
		session_reject(s, "DATA", SMTP_R_BDAT_THEN_DATA, NULL);
		return;
	}
	message_begin(s, SMTP_DATA_DOT);
	session_set_state(s, SESSION_STATE_DATA);
	session_reply(s, SMTP_R_DATA_GO);
}

/* parse_bdat - "SIZE" or "SIZE LAST" (RFC 3030 2). */
static bool parse_bdat(const struct smtp_cmd *cmd, uint64_t *size_r, bool *last_r)
{
	const char *p = cmd->arg, *end = cmd->arg + cmd->arg_len;
	uint64_t v = 0;
	if (p == end)
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return false;
	}
	if (p == cmd->arg || v > SMTP_BDAT_CHUNK_MAX)
		return false;
	*last_r = false;
	if (p < end) {
		if (*p != ' ' || !mem_ieq(p + 1, (size_t)(end - p - 1), "LAST"))
			return false;
		*last_r = true;
	}
	*size_r = v;
	return true;
}

static void cmd_bdat(struct session *s, const struct smtp_cmd *cmd)
{
	uint64_t size;
	bool last;
	if (!parse_bdat(cmd, &size, &last)) {
		/* Without a size the octets that follow cannot be told apart
		 * from commands: the stream is lost, so close it rather than
		 * read message data as commands. */
		session_reject(s, "BDAT", SMTP_R_BDAT_SYNTAX, NULL);
		session_close(s, "bdat-syntax");
		return;
	}
	s->bdat_remaining = size;
	s->bdat_last = last;
	s->bdat_discard = false;
	s->bdat_return = s->state;
	/* RFC 3030 2: the chunk is read even when it is refused. */
	if (!s->esmtp) {
		s->bdat_discard = true;
		s->bdat_error = SMTP_R_CMD_UNKNOWN;
	} else if (s->state == SESSION_STATE_GREETED) {
		s->bdat_discard = true;
		s->bdat_error = SMTP_R_NEED_HELO;
	} else if (s->state == SESSION_STATE_READY) {
		s->bdat_discard = true;
		s->bdat_error = SMTP_R_NEED_MAIL;
	} else if (s->state == SESSION_STATE_MAIL) {
		s->bdat_discard = true;
		s->bdat_error = SMTP_R_NEED_RCPT;
	} else if (!s->used_bdat) {
		s->used_bdat = true;
		message_begin(s, SMTP_DATA_CHUNK);
	}
	session_set_state(s, SESSION_STATE_BDAT);
}

static void cmd_rset(struct session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arg_len > 0) {
		session_reject(s, "RSET", SMTP_R_NO_ARGS, NULL);
		return;
	}
	session_transaction_reset(s);
	if (s->state != SESSION_STATE_GREETED)
		session_set_state(s, SESSION_STATE_READY);
	session_reply(s, SMTP_R_RSET_OK);
}

static void cmd_noop(struct session *s, const struct smtp_cmd *cmd)
{
	/* RFC 5321 4.1.1.9: NOOP may carry a string, which is ignored. */
	session_reply(s, SMTP_R_OK);
}

static void cmd_quit(struct session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arg_len > 0) {
		session_reject(s, "QUIT", SMTP_R_NO_ARGS, NULL);
		return;
	}
	session_reply(s, SMTP_R_BYE);
	session_close(s, "quit");
}

static void cmd_vrfy(struct session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arg_len == 0) {
		session_reject(s, "VRFY", SMTP_R_SYNTAX, NULL);
		return;
	}
	/* RFC 5321 3.5.3: 252 neither confirms nor denies: no enumeration. */
	session_reply(s, SMTP_R_VRFY);
}

static void cmd_expn(struct session *s, const struct smtp_cmd *cmd)
{
	session_reject(s, "EXPN", SMTP_R_NOT_IMPLEMENTED, NULL);
}

static void cmd_help(struct session *s, const struct smtp_cmd *cmd)
{
	session_reply(s, SMTP_R_HELP);
}

static void cmd_http(struct session *s, const struct smtp_cmd *cmd)
{
	/* A web client (or a cross-protocol attack from a browser): nothing
	 * it sends can be SMTP, so close at once. */
	session_reject(s, "HTTP", SMTP_R_HTTP, NULL);
	session_close(s, "http");
}

static void cmd_unknown(struct session *s, const struct smtp_cmd *cmd)
{
	session_reject(s, "UNKNOWN", SMTP_R_CMD_UNKNOWN, NULL);
}

/* A command may be followed by more pipelined commands only if it is not
 * one of these (RFC 2920 3.1; CVE-2011-0411 for STARTTLS). */
#define CMD_LAST_IN_GROUP 0x1

struct command {
	enum smtp_verb verb;
	void (*handler)(struct session *s, const struct smtp_cmd *cmd);
	unsigned flags;
};

static const struct command commands[] = {
    {SMTP_VERB_HELO, cmd_helo, CMD_LAST_IN_GROUP},
    {SMTP_VERB_EHLO, cmd_helo, CMD_LAST_IN_GROUP},
    {SMTP_VERB_MAIL, cmd_mail, 0},
    {SMTP_VERB_RCPT, cmd_rcpt, 0},
    {SMTP_VERB_DATA, cmd_data, CMD_LAST_IN_GROUP},
    {SMTP_VERB_BDAT, cmd_bdat, 0},
    {SMTP_VERB_RSET, cmd_rset, 0},
    {SMTP_VERB_NOOP, cmd_noop, 0},
    {SMTP_VERB_QUIT, cmd_quit, 0},
    {SMTP_VERB_VRFY, cmd_vrfy, 0},
    {SMTP_VERB_EXPN, cmd_expn, 0},
    {SMTP_VERB_HELP, cmd_help, 0},
    {SMTP_VERB_STARTTLS, session_cmd_starttls, 0}, /* pipelined input is discarded */
    {SMTP_VERB_AUTH, session_cmd_auth, 0},
    {SMTP_VERB_HTTP, cmd_http, 0},
    {SMTP_VERB_UNKNOWN, cmd_unknown, 0},
};

/* dispatch - run one complete command line. more_input: bytes of a later
 * command were already waiting when this one was read. */
static void dispatch(struct session *s, const char *line, size_t len, bool more_input)
{
	struct smtp_cmd cmd;
	smtp_cmd_parse(line, len, &cmd);
	const struct command *c = &commands[ARRAY_SIZE(commands) - 1];
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (commands[i].verb == cmd.verb) {
			c = &commands[i];
			break;
		}
	}
	/* RFC 2920: without EHLO there is no pipelining at all; with it, some
	 * commands must still end their group. Either way the command is
	 * refused, so that bytes sent ahead (a message body sent before the
	 * 354, commands before the TLS handshake) are never acted upon as the
	 * client assumed. */
	if (more_input && cmd.verb != SMTP_VERB_QUIT && cmd.verb != SMTP_VERB_HTTP &&
	    (!s->esmtp || (c->flags & CMD_LAST_IN_GROUP))) {
		session_reject(s, smtp_verb_name(cmd.verb), SMTP_R_PIPELINING, NULL);
		return;
	}
	c->handler(s, &cmd);
}

/* ---- message data ------------------------------------------------------- */

/* data_consume - run message octets through the scanner into the message. */
static enum smtp_data_result data_consume(struct session *s, const char *in, size_t len,
                                          size_t *used_r)
{
	size_t out_len, used;
	enum smtp_data_result r = smtp_data_feed(&s->data, in, len, scratch, &out_len, &used);
	*used_r = used;
	if (out_len == 0 || s->msg == NULL)
		return r;
	if (!s->received.done)
		received_counter_feed(&s->received, scratch, out_len);
	if (s->refusal != REFUSE_NONE)
		return r;
	/* The limit applies to the client's octets, not to our Received:. */
	if (s->data.out_len > s->cfg->max_message_size) {
		s->refusal = REFUSE_TOO_BIG;
		return r;
	}
	if (s->received.count > s->cfg->max_received) {
		s->refusal = REFUSE_LOOP;
		return r;
	}
	if (spool_msg_append(s->msg, scratch, out_len) < 0) {
		s->refusal = REFUSE_STORAGE;
		s->storage_errno = errno;
	}
	return r;
}

static void commit_done(void *arg, enum spool_result result, const char *qid);

/* message_end - all octets are in: refuse the message, or hand it to the
 * spool and wait for the commit before answering. */
static void message_end(struct session *s, const char *command)
{
	enum smtp_reply_id refuse = SMTP_R_COUNT;
	unsigned errs = s->data.errors;

	/* Smuggling checks first: they mean the client and we disagree about
	 * the message's bytes, which matters more than its size. */
	if (errs & SMTP_DATA_ERR_BARE_LF)
		refuse = SMTP_R_DATA_BARE_LF;
	else if (errs & SMTP_DATA_ERR_BARE_CR)
		refuse = SMTP_R_DATA_BARE_CR;
	else if (errs & SMTP_DATA_ERR_NUL)
		refuse = SMTP_R_DATA_NUL;
	else if (errs & SMTP_DATA_ERR_LONG_LINE)
		refuse = SMTP_R_DATA_LONG_LINE;
	else if (s->refusal == REFUSE_TOO_BIG)
		refuse = SMTP_R_TOO_BIG;
	else if (s->refusal == REFUSE_LOOP)
		refuse = SMTP_R_LOOP;
	else if (s->refusal == REFUSE_STORAGE)
		refuse = s->storage_errno == ENOSPC || s->storage_errno == EDQUOT
		             ? SMTP_R_NO_SPACE
		             : SMTP_R_QUEUE_FAILED;
	if (refuse != SMTP_R_COUNT) {
		s->srv->messages_refused++;
		session_reject(s, command, refuse, NULL);
		session_transaction_reset(s);
		session_set_state(s, SESSION_STATE_READY);
		return;
	}

	struct spool_envelope *env = spool_msg_envelope(s->msg);
	struct logline l;
	logline_init(&l, "smtp.message");
	logline_str(&l, "qid", env->qid);
	logline_int(&l, "session", (long long)s->id);
	logline_str(&l, "client", s->client_addr);
	logline_str(&l, "listener", s->listener->name);
	if (s->account != NULL)
		logline_str(&l, "account", s->account);
	logline_fmt(&l, "from", "<%s>", env->sender);
	logline_int(&l, "size", (long long)s->data.out_len);
	logline_int(&l, "nrcpt", (long long)spool_msg_rcpt_count(s->msg));
	logline_str(&l, "to", s->first_rcpt);
	free(s->pending_log);
	s->pending_log = xmalloc(sizeof(*s->pending_log));
	*s->pending_log = l;

	CRASHPOINT("session-before-commit");
	s->pending = s->msg;
	s->msg = NULL;
	session_set_state(s, SESSION_STATE_COMMIT);
	spool_commit(s->srv->spool, s->pending, commit_done, s);
}

/* commit_done - the spool's answer: only now may the client hear 250. */
static void commit_done(void *arg, enum spool_result result, const char *qid)
{
	struct session *s = arg;
	s->pending = NULL;
	CRASHPOINT("session-before-reply");
	struct logline *l = s->pending_log;
	s->pending_log = NULL;

	if (result == SPOOL_OK) {
		s->messages++;
		s->srv->messages_accepted++;
		logline_str(l, "result", "queued");
		logline_emit(l, LOG_LEVEL_INFO);
		session_replyf(s, 250, "2.0.0", "Ok: queued as %s", qid);
		delivery_kick(s->srv->delivery);
	} else {
		s->srv->messages_refused++;
		enum smtp_reply_id id =
		    result == SPOOL_NOSPACE ? SMTP_R_NO_SPACE : SMTP_R_QUEUE_FAILED;
		logline_str(l, "result", "tempfail");
		logline_emit(l, LOG_LEVEL_WARN);
		session_reply(s, id);
	}
	free(l);
	session_transaction_reset(s);
	session_set_state(s, SESSION_STATE_READY);
	session_process(s);
}

/* read_data - DATA state: scan what has arrived; stop at the end marker. */
static void read_data(struct session *s, struct evbuffer *in)
{
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		size_t len = v.iov_len < SCRATCH_IN ? v.iov_len : SCRATCH_IN;
		size_t used;
		enum smtp_data_result r = data_consume(s, v.iov_base, len, &used);
		evbuffer_drain(in, used);
		if (r == SMTP_DATA_END) {
			message_end(s, "DATA");
			return;
		}
	}
}

/* read_bdat - BDAT state: take exactly the announced number of octets. */
static void read_bdat(struct session *s, struct evbuffer *in)
{
	while (s->bdat_remaining > 0 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		size_t len = v.iov_len < SCRATCH_IN ? v.iov_len : SCRATCH_IN;
		if (len > s->bdat_remaining)
			len = (size_t)s->bdat_remaining;
		size_t used = len;
		if (!s->bdat_discard)
			data_consume(s, v.iov_base, len, &used);
		evbuffer_drain(in, used);
		s->bdat_remaining -= used;
	}
	if (s->bdat_remaining > 0)
		return;

	/* The chunk is complete. */
	if (s->bdat_discard) {
		session_set_state(s, s->bdat_return);
		session_reject(s, "BDAT", s->bdat_error, NULL);
		return;
	}
	if (s->bdat_last) {
		char tail[2];
		size_t n = smtp_data_finish(&s->data, tail);
		if (n > 0 && s->refusal == REFUSE_NONE && s->msg != NULL &&
		    spool_msg_append(s->msg, tail, n) < 0) {
			s->refusal = REFUSE_STORAGE;
			s->storage_errno = errno;
		}
		message_end(s, "BDAT");
		return;
	}
	/* RFC 3030 2: a failed chunk fails the transaction at once. */
	if (s->data.errors != 0 || s->refusal != REFUSE_NONE) {
		message_end(s, "BDAT");
		return;
	}
	session_set_state(s, SESSION_STATE_RCPT);
	session_replyf(s, 250, "2.0.0", "%llu octets received",
	               (unsigned long long)s->data.out_len);
}

/* ---- input -------------------------------------------------------------- */

/* skip_rest_of_line - after an over-long line: drop input up to its LF. */
static bool skip_rest_of_line(struct session *s, struct evbuffer *in)
{
	struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);
	if (p.pos < 0) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return false;
	}
	evbuffer_drain(in, (size_t)p.pos + 1);
	s->skip_line = false;
	return true;
}

/* read_command - one command line, if a whole one has arrived. Returns false
 * when more input is needed. */
static bool read_command(struct session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	/* RFC 4954 4: AUTH commands and responses may be up to 12288 octets. */
	bool auth_line = s->auth_step != AUTH_STEP_NONE;
	if (!auth_line) {
		size_t head_len = avail < 5 ? avail : 5;
		const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len);
		auth_line = mem_istarts(head, head_len, "AUTH ");
	}
	size_t max = SMTP_CMDLINE_MAX;
	if (auth_line) {
		max = SMTP_AUTHLINE_MAX;
	} else if (s->esmtp && avail >= 5) {
		/* MAIL and RCPT carry the parameters EHLO advertised. */
		const char *head = (const char *)evbuffer_pullup(in, 5);
		if (mem_istarts(head, 5, "MAIL "))
			max = SMTP_MAIL_LINE_MAX;
		else if (mem_istarts(head, 5, "RCPT "))
			max = SMTP_RCPT_LINE_MAX;
	}
	size_t look = avail < max ? avail : max;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
	size_t line_len, used;
	char line[SMTP_AUTHLINE_MAX]; /* the longest line of any kind */

	switch (smtp_line_scan(buf, look, max, &line_len, &used)) {
	case SMTP_LINE_PARTIAL:
		return false;
	case SMTP_LINE_TOO_LONG:
		if (s->auth_step != AUTH_STEP_NONE)
			session_auth_abort(s, SMTP_R_LINE_TOO_LONG, "line too long");
		else
			session_reject(s, "LINE", SMTP_R_LINE_TOO_LONG, NULL);
		s->skip_line = true;
		return true;
	case SMTP_LINE_BARE_LF:
		evbuffer_drain(in, used);
		session_reject(s, "LINE", SMTP_R_CMD_BARE_LF, NULL);
		return true;
	case SMTP_LINE_BARE_CR:
		evbuffer_drain(in, used);
		session_reject(s, "LINE", SMTP_R_CMD_BARE_CR, NULL);
		return true;
	case SMTP_LINE_NUL:
		evbuffer_drain(in, used);
		session_reject(s, "LINE", SMTP_R_CMD_NUL, NULL);
		return true;
	case SMTP_LINE_OK:
		break;
	}
	memcpy(line, buf, line_len);
	evbuffer_drain(in, used);
	if (s->auth_step != AUTH_STEP_NONE)
		session_auth_response(s, line, line_len);
	else
		dispatch(s, line, line_len, evbuffer_get_length(in) > 0);
	/* The line may have held a password. */
	explicit_bzero(line, line_len);
	return true;
}

/* session_process - act on buffered input until it is used up, the session
 * waits for something (the spool, the client reading), or it closes. */
static void session_process_input(struct session *s);

/* session_process - act on the input, then send the replies at once. */
void session_process(struct session *s)
{
	session_process_input(s);
	session_flush_now(s);
}

static void session_process_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);

	for (;;) {
		if (s->state == SESSION_STATE_CLOSING || s->state == SESSION_STATE_COMMIT ||
		    s->state == SESSION_STATE_AUTH || s->state == SESSION_STATE_TLS)
			return;
		if (s->errors >= SMTP_ERRORS_MAX) {
			session_reply(s, SMTP_R_TOO_MANY_ERRORS);
			session_close(s, "too-many-errors");
			return;
		}
		if (s->shutting_down && s->state <= SESSION_STATE_READY) {
			session_reply(s, SMTP_R_SHUTDOWN);
			session_close(s, "shutdown");
			return;
		}
		/* A client that sends commands but never reads the replies
		 * only fills its own buffer, then waits. */
		if (evbuffer_get_length(out) > SESSION_OUTPUT_HIGHWATER) {
			s->output_full = true;
			return;
		}
		/* A chunk of zero octets (BDAT 0 LAST) is complete without input. */
		if (evbuffer_get_length(in) == 0 &&
		    !(s->state == SESSION_STATE_BDAT && s->bdat_remaining == 0))
			return;
		if (s->state == SESSION_STATE_DATA) {
			read_data(s, in);
		} else if (s->state == SESSION_STATE_BDAT) {
			read_bdat(s, in);
			if (s->state == SESSION_STATE_BDAT)
				return; /* the chunk is not complete yet */
		} else if (s->skip_line) {
			if (!skip_rest_of_line(s, in))
				return;
		} else if (!read_command(s, in)) {
			return;
		}
	}
}

/* ---- connection events -------------------------------------------------- */

void session_on_read(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

/* output_pending - bytes not yet handed to the kernel; under STARTTLS the
 * encrypted bytes wait in the underlying connection's buffer. */
static size_t output_pending(struct session *s)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/*
 * flush_now - write queued replies to the socket now. Left to itself,
 * libevent would add a write event, wait for the next loop iteration, write,
 * and remove the event again: two epoll_ctl calls and a round of latency
 * for every reply, though a reply almost always fits the socket buffer at
 * once. Only what does not fit is left to libevent (EV_WRITE enabled until
 * the buffer drains). TLS sessions always go through libevent.
 */
void session_flush_now(struct session *s)
{
	if (!s->direct_write)
		return;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	if (evbuffer_get_length(out) == 0)
		return;
	/* A socket bufferevent keeps the start of its output frozen so that
	 * only its own write callback drains it; thaw it for this write. */
	evbuffer_unfreeze(out, 1);
	int n = evbuffer_write(out, bufferevent_getfd(s->bev));
	evbuffer_freeze(out, 1);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		/* Let libevent find and report the error (session_on_event). */
		bufferevent_enable(s->bev, EV_WRITE);
		return;
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(s->bev, EV_WRITE);
}

void session_on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->direct_write && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE); /* back to flush_now */
	if (s->state == SESSION_STATE_CLOSING) {
		if (output_pending(s) == 0)
			session_free(s);
		return;
	}
	if (s->output_full) {
		s->output_full = false;
		session_process(s);
	}
}

void session_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if ((what & BEV_EVENT_CONNECTED) && s->state == SESSION_STATE_TLS) {
		session_tls_established(s);
		session_process(s);
		return;
	}
	if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) && s->state == SESSION_STATE_TLS) {
		unsigned long err = bufferevent_get_openssl_error(bev);
		log_event(LOG_LEVEL_INFO, "smtp.tls_error", "session=%llu client=%s error=\"%s\"",
		          (unsigned long long)s->id, s->client_addr,
		          err ? tls_last_error(err) : "connection lost during the handshake");
		/* OpenSSL has queued its alert (protocol_version, ...) in the
		 * plain connection under a STARTTLS session: let it go out
		 * before closing, so the client learns why. */
		session_close(s, "tls-handshake");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == SESSION_STATE_TLS) {
			/* No reply: there is no channel to send it on. */
			s->close_reason = "tls-timeout";
			session_free(s);
			return;
		}
		if (s->state == SESSION_STATE_CLOSING) {
			session_free(s);
			return;
		}
		session_reply(s, SMTP_R_TIMEOUT);
		session_close(s, "timeout");
		return;
	}
	if (what & BEV_EVENT_EOF)
		s->close_reason = s->close_reason ? s->close_reason : "eof";
	else if (what & BEV_EVENT_ERROR)
		s->close_reason = s->close_reason ? s->close_reason : "error";
	session_free(s);
}

/* Interval at which a closing session checks that its replies are out. */
#define CLOSE_POLL_MS 10
/* A client that does not read its last replies is cut off after this. */
#define CLOSE_FLUSH_MS 5000

/* close_check - free the session once its replies have left (or it is
 * clear they never will). */
static void close_check(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (output_pending(s) > 0 && mono_ms() < s->close_deadline_ms) {
		struct timeval tv = {0, CLOSE_POLL_MS * 1000};
		evtimer_add(s->close_ev, &tv);
		return;
	}
	session_free(s);
}

/* session_close - stop reading; free the session once the replies written
 * so far have reached the client (or the write times out). */
void session_close(struct session *s, const char *reason)
{
	if (s->state == SESSION_STATE_CLOSING)
		return;
	s->close_reason = reason;
	session_flush_now(s);
	session_set_state(s, SESSION_STATE_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	/* The session is freed from the loop, never here (callers still hold
	 * s): by the write callback once the output is empty, or by
	 * close_check, which also covers TLS's underlying buffer and a client
	 * that stopped reading. */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	s->close_deadline_ms = mono_ms() + CLOSE_FLUSH_MS;
	s->close_ev = evtimer_new(s->srv->base, close_check, s);
	struct timeval now = {0, 0};
	evtimer_add(s->close_ev, &now);
}

static void session_free(struct session *s)
{
	struct logline l;
	logline_init(&l, "smtp.disconnect");
	logline_int(&l, "session", (long long)s->id);
	logline_str(&l, "client", s->client_addr);
	logline_str(&l, "listener", s->listener->name);
	logline_int(&l, "messages", s->messages);
	logline_int(&l, "errors", s->errors);
	logline_int(&l, "duration_ms", (long long)(mono_ms() - s->started_ms));
	logline_str(&l, "reason", s->close_reason ? s->close_reason : "closed");
	logline_emit(&l, LOG_LEVEL_INFO);

	if (s->pending != NULL)
		spool_cancel(s->srv->spool, s->pending);
	if (s->auth_job != NULL)
		s->auth_job->session = NULL; /* the worker's result is dropped */
	if (s->auth_delay != NULL)
		event_free(s->auth_delay);
	if (s->close_ev != NULL)
		event_free(s->close_ev);
	if (s->deadline != NULL)
		event_free(s->deadline);
	if (!s->trusted) /* counted in the server's per-address table */
		server_ip_release(s->srv, s->client_addr);
	if (s->login != NULL) {
		explicit_bzero(s->login, sizeof(*s->login));
		free(s->login);
	}
	free(s->account);
	for (size_t i = 0; i < s->n_senders; i++)
		free(s->senders[i]);
	free(s->senders);
	free(s->pending_log);
	session_transaction_reset(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	server_session_removed(s->srv, s);
	bufferevent_free(s->bev);
	config_unref(&s->cfg);
	free(s);
}

struct session *session_next(struct session *s)
{
	return s->next;
}

void session_shutdown(struct session *s, bool force)
{
	if (s->state == SESSION_STATE_CLOSING)
		return;
	s->shutting_down = true;
	if (force && s->state != SESSION_STATE_COMMIT && s->state != SESSION_STATE_AUTH) {
		/* A message being committed gets its answer first: the spool
		 * is flushed before the process exits. */
		session_reply(s, SMTP_R_SHUTDOWN);
		session_close(s, "shutdown");
		return;
	}
	session_process(s);
}

/* deadline_over - [limits] session_timeout: long enough for any honest
 * client, so whatever is still open is holding the connection. */
static void deadline_over(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (s->state == SESSION_STATE_CLOSING || s->state == SESSION_STATE_COMMIT ||
	    s->state == SESSION_STATE_AUTH)
		return; /* finishing anyway */
	if (s->state != SESSION_STATE_TLS)
		session_reply(s, SMTP_R_TIMEOUT);
	session_close(s, "session-timeout");
}

void session_start(struct server *srv, const struct config_listener *listener, int fd,
                   const struct sockaddr *peer, socklen_t peer_len, const char *client_addr,
                   bool trusted)
{
	struct session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->cfg = config_ref(srv->cfg);
	s->listener = listener;
	s->id = ++srv->next_session_id;
	s->started_ms = mono_ms();
	memcpy(&s->peer, peer, peer_len < sizeof(s->peer) ? peer_len : sizeof(s->peer));
	str_copy(s->client_addr, client_addr, sizeof(s->client_addr));
	s->client_port =
	    ntohs(peer->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)peer)->sin6_port
	                                      : ((const struct sockaddr_in *)peer)->sin_port);
	s->trusted = trusted;

	/* Replies are small and latency-bound: never wait for a delayed ACK. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (listener->tls == LISTENER_TLS_IMPLICIT) {
		/* RFC 8314 3.3: TLS from the first byte; the greeting is written
		 * now and goes out once the handshake is done. */
		SSL *ssl = srv->tls_ctx ? SSL_new(srv->tls_ctx) : NULL;
		if (ssl == NULL) {
			log_event(LOG_LEVEL_WARN, "smtp.tls_error", "listener=%s error=\"%s\"",
			          listener->name, tls_last_error(0));
			close(fd);
			if (!trusted)
				server_ip_release(srv, s->client_addr);
			config_unref(&s->cfg);
			free(s);
			return;
		}
		s->bev = bufferevent_openssl_socket_new(
		    srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	} else {
		s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
		s->direct_write = true;
	}
	bufferevent_setcb(s->bev, session_on_read, session_on_write, session_on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_HIGHWATER);
	bufferevent_setwatermark(s->bev, EV_WRITE, SESSION_OUTPUT_HIGHWATER / 2, 0);
	s->state =
	    listener->tls == LISTENER_TLS_IMPLICIT ? SESSION_STATE_TLS : SESSION_STATE_GREETED;
	session_set_timeouts(s);
	s->deadline = evtimer_new(srv->base, deadline_over, s);
	struct timeval dl = {s->cfg->session_timeout, 0};
	evtimer_add(s->deadline, &dl);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	server_session_added(srv, s);

	struct logline l;
	logline_init(&l, "smtp.connect");
	logline_int(&l, "session", (long long)s->id);
	logline_fmt(&l, "client", "%s", s->client_addr);
	logline_int(&l, "port", s->client_port);
	logline_str(&l, "listener", listener->name);
	logline_str(&l, "trusted", s->trusted ? "yes" : "no");
	logline_emit(&l, LOG_LEVEL_INFO);

	session_replyf(s, 220, "", "%s ESMTP detour", s->cfg->hostname);
	if (s->direct_write) {
		/* A new bufferevent has writing enabled: off, flush_now writes. */
		bufferevent_disable(s->bev, EV_WRITE);
		bufferevent_enable(s->bev, EV_READ);
		session_flush_now(s);
	} else {
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	}
}
