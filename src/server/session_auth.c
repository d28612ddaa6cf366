/* SPDX-License-Identifier: ISC */
/*
 * session_auth.c - the security half of an SMTP server session: STARTTLS
 * (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954) with the account checks on a
 * worker thread, the failure delay and the failed-login limit.
 *
 * See session_private.h for what it shares with session.c.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/workers.h"
#include "server/auth_check.h"
#include "server/ratelimit.h"
#include "server/server.h"
#include "server/session_private.h"
#include "server/tls.h"
#include "smtp/smtp_addr.h"

/* session_auth_offered - is AUTH advertised now? RFC 4954 14 and SPEC: plaintext
 * passwords only over TLS, unless the listener explicitly allows it. */
bool session_auth_offered(const struct session *s)
{
	return s->listener->auth != LISTENER_AUTH_OFF && s->account == NULL &&
	       (s->tls_active || s->listener->plaintext_auth);
}

bool session_starttls_offered(const struct session *s)
{
	return s->listener->tls == LISTENER_TLS_STARTTLS && !s->tls_active &&
	       s->srv->tls_ctx != NULL;
}

/* account_rate - an account's own limit, or the configured default. */
static struct config_rate account_rate(const char *text, struct config_rate fallback)
{
	struct config_rate r;
	const char *e;
	if (text != NULL && config_parse_rate(text, &r, &e) == 0)
		return r;
	return fallback;
}

void session_cmd_starttls(struct session *s, const struct smtp_cmd *cmd)
{
	if (s->tls_active) {
		session_reject(s, "STARTTLS", SMTP_R_TLS_ALREADY, NULL);
		return;
	}
	if (!session_starttls_offered(s)) {
		session_reject(s, "STARTTLS", SMTP_R_TLS_NOT_OFFERED, NULL);
		return;
	}
	if (cmd->arg_len > 0) {
		session_reject(s, "STARTTLS", SMTP_R_NO_ARGS, NULL);
		return;
	}
	if (session_in_transaction(s)) {
		session_reject(s, "STARTTLS", SMTP_R_TLS_IN_TRANSACTION, NULL);
		return;
	}
	SSL *ssl = SSL_new(s->srv->tls_ctx);
	if (ssl == NULL) {
		log_event(LOG_LEVEL_WARN, "smtp.tls_error", "session=%llu error=\"%s\"",
		          (unsigned long long)s->id, tls_last_error(0));
		session_reject(s, "STARTTLS", SMTP_R_TLS_UNAVAILABLE, NULL);
		return;
	}
	session_reply(s, SMTP_R_STARTTLS_GO);
	/* CVE-2011-0411: whatever the client sent after STARTTLS travelled in
	 * plaintext and may come from an attacker in the middle, so it is
	 * thrown away, never read as commands inside TLS. */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t injected = evbuffer_get_length(in);
	if (injected > 0) {
		evbuffer_drain(in, injected);
		log_event(LOG_LEVEL_WARN, "smtp.starttls_discarded",
		          "session=%llu client=%s bytes=%zu", (unsigned long long)s->id,
		          s->client_addr, injected);
	}
	s->skip_line = false;
	/* The 220 goes out before the first byte of the handshake; from now on
	 * the TLS layer writes. */
	session_flush_now(s);
	s->direct_write = false;
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	struct bufferevent *tls = bufferevent_openssl_filter_new(
	    s->srv->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	s->bev = tls;
	bufferevent_setcb(s->bev, session_on_read, session_on_write, session_on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_HIGHWATER);
	bufferevent_setwatermark(s->bev, EV_WRITE, SESSION_OUTPUT_HIGHWATER / 2, 0);
	/* RFC 3207 4.2: the client starts over with EHLO; nothing it said in
	 * plaintext counts any more. */
	session_transaction_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	/* An AUTH given in plaintext (plaintext_auth = yes) is knowledge from
	 * before the handshake too: the client logs in again inside TLS. */
	free(s->account);
	s->account = NULL;
	for (size_t i = 0; i < s->n_senders; i++)
		free(s->senders[i]);
	free(s->senders);
	s->senders = NULL;
	s->n_senders = 0;
	session_set_state(s, SESSION_STATE_TLS);
	session_set_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* session_tls_established - the handshake is done (implicit TLS or STARTTLS). */
void session_tls_established(struct session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	s->tls_active = true;
	tls_describe(ssl, s->tls_desc, sizeof(s->tls_desc));
	tls_short(ssl, s->tls_short, sizeof(s->tls_short));
	log_event(LOG_LEVEL_INFO, "smtp.tls", "session=%llu client=%s listener=%s tls=\"%s\"",
	          (unsigned long long)s->id, s->client_addr, s->listener->name, s->tls_desc);
	session_set_state(s, SESSION_STATE_GREETED);
	session_set_timeouts(s);
}

/* ---- AUTH (RFC 4954) ------------------------------------------------------ */

static void auth_finish(struct session *s);

static void auth_log(struct session *s, const char *result, const char *user, const char *reason)
{
	struct logline l;
	logline_init(&l, "smtp.auth");
	logline_int(&l, "session", (long long)s->id);
	logline_str(&l, "client", s->client_addr);
	logline_str(&l, "listener", s->listener->name);
	logline_str(&l, "mechanism", s->auth_mechanism ? s->auth_mechanism : "-");
	/* Only a user name that looks like an address: people type passwords
	 * into the user field, and those must never reach the log. */
	struct smtp_addr a;
	if (user != NULL &&
	    smtp_addr_parse_mailbox(user, strlen(user), SMTP_ADDR_ALLOW_UTF8, &a) == SMTP_ADDR_OK)
		logline_str(&l, "account", user);
	else if (user != NULL)
		logline_str(&l, "account", "(not an address)");
	logline_str(&l, "result", result);
	if (reason != NULL)
		logline_str(&l, "reason", reason);
	logline_emit(&l, LOG_LEVEL_INFO);
}

/* session_auth_abort - end the exchange with a reply; nothing is remembered. */
void session_auth_abort(struct session *s, enum smtp_reply_id id, const char *why)
{
	if (s->login != NULL) {
		explicit_bzero(s->login, sizeof(*s->login));
		free(s->login);
		s->login = NULL;
	}
	s->auth_step = AUTH_STEP_NONE;
	auth_log(s, "error", NULL, why);
	session_reject(s, "AUTH", id, NULL);
}

static void auth_done(void *arg);

/* auth_verify - hand the credentials to a worker; the session waits. */
static void auth_verify(struct session *s, struct sasl_credentials *cred)
{
	s->auth_step = AUTH_STEP_NONE;
	s->auth_job = auth_check_new(s->cfg->state_dir, cred, s->auth_mechanism);
	explicit_bzero(cred, sizeof(*cred));
	s->auth_job->session = s;
	session_set_state(s, SESSION_STATE_AUTH);
	workers_submit(s->srv->workers, auth_check_run, auth_done, s->auth_job);
}

/* session_auth_response - one line of an AUTH exchange (without CRLF). */
void session_auth_response(struct session *s, const char *line, size_t len)
{
	struct sasl_credentials cred;
	enum sasl_result r;
	if (s->auth_step == AUTH_STEP_PLAIN) {
		r = sasl_plain_decode(line, len, &cred);
	} else if (s->auth_step == AUTH_STEP_LOGIN_USER) {
		r = sasl_login_decode(line, len, s->login->user, sizeof(s->login->user));
		if (r == SASL_OK) {
			s->auth_step = AUTH_STEP_LOGIN_PASS;
			/* base64 of "Password:" */
			session_replyf(s, 334, "", "UGFzc3dvcmQ6");
			return;
		}
	} else {
		r = sasl_login_decode(line, len, s->login->password, sizeof(s->login->password));
		if (r == SASL_OK) {
			cred = *s->login;
			explicit_bzero(s->login, sizeof(*s->login));
			free(s->login);
			s->login = NULL;
		}
	}
	switch (r) {
	case SASL_OK:
		auth_verify(s, &cred);
		return;
	case SASL_CANCELLED:
		session_auth_abort(s, SMTP_R_AUTH_CANCELLED, "cancelled");
		return;
	case SASL_BAD_BASE64:
		session_auth_abort(s, SMTP_R_AUTH_BAD_BASE64, "bad base64");
		return;
	case SASL_MALFORMED:
		session_auth_abort(s, SMTP_R_AUTH_BAD_BASE64, "malformed response");
		return;
	case SASL_AUTHZID:
		/* RFC 4954 4: acting for another identity is not permitted,
		 * which refuses the credentials; it is no syntax error. */
		session_auth_abort(s, SMTP_R_AUTH_FAILED, "authorization identity refused");
		return;
	}
}

void session_cmd_auth(struct session *s, const struct smtp_cmd *cmd)
{
	if (s->state == SESSION_STATE_GREETED) {
		session_reject(s, "AUTH", SMTP_R_NEED_HELO, NULL);
		return;
	}
	if (s->listener->auth == LISTENER_AUTH_OFF || !s->esmtp) {
		session_reject(s, "AUTH", SMTP_R_AUTH_NOT_OFFERED, NULL);
		return;
	}
	if (s->account != NULL) {
		session_reject(s, "AUTH", SMTP_R_AUTH_ALREADY, NULL);
		return;
	}
	if (session_in_transaction(s)) {
		session_reject(s, "AUTH", SMTP_R_AUTH_IN_TRANSACTION, NULL);
		return;
	}
	if (!s->tls_active && !s->listener->plaintext_auth) {
		session_reject(s, "AUTH", SMTP_R_AUTH_NEEDS_TLS, NULL);
		return;
	}
	/* [limits] auth_failures: an address that guessed wrong too often is
	 * not even heard until its window has passed; others log in as usual. */
	if (!ratelimit_check(s->srv->rl_auth, s->client_addr, s->cfg->auth_failures, 1,
	                     mono_ms())) {
		s->srv->refused_auth_blocked++;
		/* Nothing is taken (the bucket is empty); this only asks
		 * whether the refusal is the first of its window. */
		if (ratelimit_take(s->srv->rl_auth, s->client_addr, s->cfg->auth_failures, 1,
		                   mono_ms()) == RATELIMIT_OVER_NEW)
			log_event(LOG_LEVEL_WARN, "smtp.auth_blocked", "client=%s limit=%u/%us",
			          s->client_addr, s->cfg->auth_failures.count,
			          s->cfg->auth_failures.seconds);
		session_reject(s, "AUTH", SMTP_R_AUTH_BLOCKED, NULL);
		return;
	}
	const char *mech = cmd->arg, *end = cmd->arg + cmd->arg_len;
	const char *sp = memchr(mech, ' ', cmd->arg_len);
	size_t mech_len = sp ? (size_t)(sp - mech) : cmd->arg_len;
	const char *ir = sp ? sp + 1 : NULL;
	size_t ir_len = sp ? (size_t)(end - ir) : 0;
	if (mem_ieq(mech, mech_len, "PLAIN")) {
		s->auth_mechanism = "PLAIN";
		s->auth_step = AUTH_STEP_PLAIN;
		if (ir == NULL) {
			session_reply_raw(s, 334, "", "", false);
			return;
		}
		session_auth_response(s, ir, ir_len);
	} else if (mem_ieq(mech, mech_len, "LOGIN")) {
		s->auth_mechanism = "LOGIN";
		s->login = xcalloc(1, sizeof(*s->login));
		s->auth_step = AUTH_STEP_LOGIN_USER;
		if (ir == NULL) {
			/* base64 of "Username:" */
			session_replyf(s, 334, "", "VXNlcm5hbWU6");
			return;
		}
		session_auth_response(s, ir, ir_len);
	} else {
		s->auth_mechanism = NULL;
		session_reject(s, "AUTH", SMTP_R_AUTH_UNKNOWN_MECH, NULL);
	}
}

static void auth_delay_over(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	event_free(s->auth_delay);
	s->auth_delay = NULL;
	session_reject(s, "AUTH", SMTP_R_AUTH_FAILED, NULL);
	auth_finish(s);
}

/* auth_done - the worker's verdict, back on the loop thread. */
static void auth_done(void *arg)
{
	struct auth_check *job = arg;
	struct session *s = job->session;
	if (s == NULL) { /* the client left meanwhile */
		auth_check_free(&job);
		return;
	}
	s->auth_job = NULL;
	if (job->result == AUTH_CHECK_OK) {
		s->account = xstrdup(job->account);
		s->senders = auth_check_take_senders(job, &s->n_senders);
		s->rate_messages = account_rate(job->messages_rate, s->cfg->account_messages);
		s->rate_recipients = account_rate(job->recipients_rate, s->cfg->account_recipients);
		auth_log(s, "ok", job->account, NULL);
		session_reply(s, SMTP_R_AUTH_OK);
		auth_check_free(&job);
		auth_finish(s);
		return;
	}
	if (job->result == AUTH_CHECK_UNAVAILABLE) {
		auth_log(s, "tempfail", job->cred.user, job->reason);
		session_reply(s, SMTP_R_AUTH_UNAVAILABLE);
		auth_check_free(&job);
		auth_finish(s);
		return;
	}
	auth_log(s, "fail", job->cred.user, job->reason);
	auth_check_free(&job);
	/* The failure counts against the client's address (auth_failures). */
	ratelimit_take(s->srv->rl_auth, s->client_addr, s->cfg->auth_failures, 1, mono_ms());
	/* A failure is answered late: it slows down password guessing. */
	unsigned ms = s->cfg->auth_failure_delay_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	s->auth_delay = evtimer_new(s->srv->base, auth_delay_over, s);
	evtimer_add(s->auth_delay, &tv);
}

/* auth_finish - the exchange is over: go on with the client's commands. */
static void auth_finish(struct session *s)
{
	session_set_state(s, SESSION_STATE_READY);
	session_process(s);
}
