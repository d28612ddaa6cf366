/* SPDX-License-Identifier: ISC */
/*
 * outbound.c - one outbound SMTP connection: libevent sockets and TLS under
 * the pure client state machine (smtp_client).
 *
 * A connection tries its destination's targets in order until one of them
 * greets it; an opportunistic STARTTLS that fails its handshake is tried
 * once more on a fresh plaintext connection (RFC 7435); after that the
 * connection carries as many messages as the destination gives it, and
 * quits when it has been idle for DELIVERY_IDLE_MS.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "delivery/delivery_internal.h"
#include "lib/log.h"
#include "lib/util.h"
#include "smtp/smtp_dotstuff.h"

/* Message octets read and stuffed per step while sending a body. */
#define BODY_CHUNK 65536

struct outbound {
	struct outbound *next; /* in the destination's list */
	struct destination *dest;
	struct outbound_settings set; /* strings copied */
	size_t target;                /* index into dest->route.targets */
	bool plain_retry;             /* STARTTLS failed here once: plaintext now */
	bool connected;               /* TCP (and implicit TLS) is up */
	bool in_handshake;            /* STARTTLS handshake running */
	bool direct;                  /* plain TCP: output is written at once (flush_now) */
	bool ever_ready;
	bool announced_ready; /* engine_conn_ready was called for this idle period */
	struct bufferevent *bev;
	struct smtp_client *client;
	struct dlv_job *job;
	struct smtp_dotstuff ds;
	uint64_t body_off;
	bool sending_body;
	struct event *idle_ev;
	char relay[DELIVERY_RELAY_MAX];
	char tls[96];
	struct smtp_client_result error; /* the last connection failure */
	bool have_error;
};

static char body_in[BODY_CHUNK];
static char body_out[SMTP_DOTSTUFF_FEED_MAX(BODY_CHUNK) + SMTP_DOTSTUFF_FINISH_MAX];

static void attempt(struct outbound *ob);
static void drive(struct outbound *ob);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

bool outbound_is_ready(const struct outbound *ob)
{
	return ob->client != NULL && ob->job == NULL &&
	       smtp_client_want(ob->client) == SMTP_CLIENT_WANT_MESSAGE;
}

struct outbound *outbound_next(const struct outbound *ob)
{
	return ob->next;
}

void outbound_set_next(struct outbound *ob, struct outbound *next)
{
	ob->next = next;
}

static const struct dns_route_target *current_target(const struct outbound *ob)
{
	return &ob->dest->route.targets[ob->target];
}

static void set_relay(struct outbound *ob)
{
	const struct dns_route_target *t = current_target(ob);
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (t->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&t->addr;
		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		port = ntohs(s6->sin6_port);
	} else if (t->addr.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&t->addr;
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		port = ntohs(s4->sin_port);
	}
	snprintf(ob->relay, sizeof(ob->relay), "%s[%s]:%u", t->host, addr, port);
}

/* new_ssl - an SSL for this target, with SNI, and with certificate checks
 * when the settings ask for them (smarthosts; never for opportunistic MX
 * TLS, RFC 7435). */
static SSL *new_ssl(struct outbound *ob)
{
	const struct dns_route_target *t = current_target(ob);
	SSL *ssl = SSL_new(ob->set.ssl_ctx);
	if (ssl == NULL)
		return NULL;
	struct in6_addr a6;
	struct in_addr a4;
	bool is_ip =
	    inet_pton(AF_INET, t->host, &a4) == 1 || inet_pton(AF_INET6, t->host, &a6) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, t->host);
	if (ob->set.verify) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(param, t->host);
		else
			SSL_set1_host(ssl, t->host);
	}
	return ssl;
}

/* flush_now - write queued output to the socket at once rather than in the
 * loop's next round (see flush_now in session.c: it saves two epoll_ctl
 * calls and a round trip of latency per command). What does not fit is
 * left to libevent. */
static void flush_now(struct outbound *ob)
{
	if (!ob->direct)
		return;
	struct evbuffer *out = bufferevent_get_output(ob->bev);
	if (evbuffer_get_length(out) == 0)
		return;
	evbuffer_unfreeze(out, 1);
	int n = evbuffer_write(out, bufferevent_getfd(ob->bev));
	evbuffer_freeze(out, 1);
	if ((n < 0 && errno != EAGAIN && errno != EINTR) || evbuffer_get_length(out) > 0)
		bufferevent_enable(ob->bev, EV_WRITE);
}

static void close_bev(struct outbound *ob)
{
	if (ob->bev != NULL) {
		bufferevent_free(ob->bev);
		ob->bev = NULL;
	}
	smtp_client_free(&ob->client);
	ob->connected = false;
	ob->direct = false;
	ob->in_handshake = false;
	ob->sending_body = false;
	ob->tls[0] = '\0';
}

static void outbound_free(struct outbound *ob)
{
	close_bev(ob);
	if (ob->idle_ev != NULL)
		event_free(ob->idle_ev);
	if (ob->set.auth_password != NULL) {
		explicit_bzero((char *)ob->set.auth_password, strlen(ob->set.auth_password));
		free((char *)ob->set.auth_password);
	}
	free((char *)ob->set.auth_user);
	free((char *)ob->set.ehlo_name);
	free(ob);
}

/* finish - the connection is over: tell the destination, then free. */
static void finish(struct outbound *ob, bool failed)
{
	close_bev(ob);
	struct destination *dest = ob->dest;
	engine_conn_closed(dest, ob, ob->ever_ready, failed && ob->have_error ? &ob->error : NULL,
	                   ob->relay);
	outbound_free(ob);
}

/* job_done - the job's results are final: hand it back. */
static void job_done(struct outbound *ob)
{
	struct dlv_job *job = ob->job;
	ob->job = NULL;
	ob->sending_body = false;
	const struct smtp_client_info *info = smtp_client_info(ob->client);
	engine_job_done(ob->dest, ob, job, ob->relay, ob->tls,
	                (info->extensions & SMTP_CLIENT_EXT_DSN) != 0);
}

static void note_error(struct outbound *ob, const struct smtp_client_result *e)
{
	if (e != NULL) {
		ob->error = *e;
		ob->have_error = true;
	}
}

/* next_target - this target did not work out before any message: try the
 * next, or give up. */
static void next_target(struct outbound *ob)
{
	close_bev(ob);
	ob->target++;
	ob->plain_retry = false;
	if (ob->target >= ob->dest->route.n_targets) {
		finish(ob, true);
		return;
	}
	attempt(ob);
}

/* pump_body - stuff and queue message octets until the output is full or
 * the message is done (returns true then). The output is written when it
 * is full or the message is done, so the end of a message goes out with
 * its last octets rather than as a packet of its own. A direct write that
 * empties the output leaves no write event to come back on: go on filling.
 * Otherwise on_write calls again once the output has drained. */
static bool pump_body(struct outbound *ob)
{
	struct evbuffer *out = bufferevent_get_output(ob->bev);
	bool done = false;
	do {
		while (!done && evbuffer_get_length(out) < DELIVERY_OUTPUT_HIGHWATER) {
			long n = engine_read_body(ob->job, ob->body_off, body_in, sizeof(body_in));
			if (n < 0) {
				/* The message vanished (deleted by an operator) or
				 * the queue cannot be read: lose the connection
				 * rather than end a message that is not whole. */
				smtp_client_event(ob->client, SMTP_CLIENT_EV_LOST);
				return false;
			}
			size_t k = n == 0
			               ? smtp_dotstuff_finish(&ob->ds, body_out)
			               : smtp_dotstuff_feed(&ob->ds, body_in, (size_t)n, body_out);
			bufferevent_write(ob->bev, body_out, k);
			ob->body_off += (uint64_t)n;
			done = n == 0;
		}
		flush_now(ob);
	} while (!done && ob->direct && evbuffer_get_length(out) == 0);
	if (done) {
		ob->sending_body = false;
		smtp_client_body_sent(ob->client);
	}
	return done;
}

static void start_tls(struct outbound *ob)
{
	SSL *ssl = new_ssl(ob);
	if (ssl == NULL) {
		smtp_client_tls_done(ob->client, false);
		return;
	}
	/* The client accepts no byte between STARTTLS's 220 and the
	 * handshake, so the input is empty here. From now on the TLS layer
	 * writes. */
	ob->direct = false;
	bufferevent_set_timeouts(ob->bev, NULL, NULL);
	ob->bev = bufferevent_openssl_filter_new(engine_base(ob->dest), ob->bev, ssl,
	                                         BUFFEREVENT_SSL_CONNECTING,
	                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_openssl_set_allow_dirty_shutdown(ob->bev, 1);
	bufferevent_setcb(ob->bev, on_read, on_write, on_event, ob);
	bufferevent_setwatermark(ob->bev, EV_WRITE, DELIVERY_OUTPUT_HIGHWATER / 2, 0);
	unsigned secs = TLS_HANDSHAKE_TIMEOUT < ob->set.reply_timeout ? TLS_HANDSHAKE_TIMEOUT
	                                                              : ob->set.reply_timeout;
	struct timeval tv = {secs, 0};
	bufferevent_set_timeouts(ob->bev, &tv, &tv);
	bufferevent_enable(ob->bev, EV_READ | EV_WRITE);
	ob->in_handshake = true;
}

/* log_tls_failure - say why a handshake failed: above all, that a
 * smarthost's certificate did not verify, and why (RFC 6125 name check,
 * unknown CA, expiry). */
static void log_tls_failure(struct outbound *ob, struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long err = bufferevent_get_openssl_error(bev);
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	char reason[256];
	if (ob->set.verify && verify != X509_V_OK)
		snprintf(reason, sizeof(reason), "certificate verification failed: %s",
		         X509_verify_cert_error_string(verify));
	else if (err != 0)
		ERR_error_string_n(err, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "connection closed during the handshake");
	ERR_clear_error();
	struct logline l;
	logline_init(&l, "delivery.tls_failed");
	logline_str(&l, "relay", ob->relay);
	logline_str(&l, "reason", reason);
	logline_emit(&l, LOG_LEVEL_WARN);
}

static void record_tls(struct outbound *ob)
{
	SSL *ssl = bufferevent_openssl_get_ssl(ob->bev);
	if (ssl != NULL)
		snprintf(ob->tls, sizeof(ob->tls), "%s %s", SSL_get_version(ssl),
		         SSL_get_cipher_name(ssl));
}

static void set_timeout(struct outbound *ob)
{
	unsigned secs = smtp_client_timeout(ob->client);
	if (secs > ob->set.reply_timeout)
		secs = ob->set.reply_timeout;
	if (secs == 0) {
		bufferevent_set_timeouts(ob->bev, NULL, NULL);
		return;
	}
	struct timeval tv = {secs, 0};
	bufferevent_set_timeouts(ob->bev, &tv, &tv);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct outbound *ob = arg;
	if (outbound_is_ready(ob)) {
		smtp_client_quit(ob->client);
		drive(ob);
	}
}

/* drive - write what the client wants written, then do what it wants. */
static void drive(struct outbound *ob)
{
	for (;;) {
		size_t len;
		const char *out = smtp_client_output(ob->client, &len);
		if (len > 0) {
			bufferevent_write(ob->bev, out, len);
			smtp_client_output_consume(ob->client, len);
			flush_now(ob);
		}
		switch (smtp_client_want(ob->client)) {
		case SMTP_CLIENT_WANT_REPLY:
			set_timeout(ob);
			return;
		case SMTP_CLIENT_WANT_TLS:
			start_tls(ob);
			if (ob->in_handshake)
				return;
			continue; /* tls_done(false) changed the want */
		case SMTP_CLIENT_WANT_BODY:
			if (!ob->sending_body) {
				ob->sending_body = true;
				smtp_dotstuff_init(&ob->ds);
				ob->body_off = 0;
				set_timeout(ob);
			}
			if (!pump_body(ob) && ob->sending_body)
				return; /* wait for the socket (on_write) */
			continue;
		case SMTP_CLIENT_WANT_MESSAGE:
			if (ob->job != NULL) {
				job_done(ob);
				ob->announced_ready = false;
			}
			ob->ever_ready = true;
			if (!ob->announced_ready && ob->job == NULL) {
				ob->announced_ready = true;
				bufferevent_set_timeouts(ob->bev, NULL, NULL);
				/* The engine calls outbound_send or outbound_idle,
				 * which come back here. */
				engine_conn_ready(ob->dest, ob);
			}
			return;
		case SMTP_CLIENT_WANT_DONE:
			if (ob->job != NULL)
				job_done(ob);
			finish(ob, false);
			return;
		case SMTP_CLIENT_WANT_FAILED: {
			const struct smtp_client_result *e = smtp_client_error(ob->client);
			note_error(ob, e);
			if (ob->job != NULL) {
				job_done(ob);
				finish(ob, true);
				return;
			}
			if (ob->ever_ready) {
				finish(ob, true);
				return;
			}
			/* Before any message: a failed opportunistic STARTTLS is
			 * tried once more in plaintext; anything else moves on to
			 * the next target. */
			/* (Data where the handshake should start is a broken
			 * STARTTLS too, reported as a protocol error.) */
			const struct smtp_client_info *info = smtp_client_info(ob->client);
			bool tls_broke = e != NULL && (e->reason == SMTP_CLIENT_R_TLS_FAILED ||
			                               (e->reason == SMTP_CLIENT_R_PROTOCOL &&
			                                info->starttls_offered && !info->tls));
			if (tls_broke && ob->set.tls == SMTP_CLIENT_TLS_OPPORTUNISTIC &&
			    !ob->plain_retry) {
				close_bev(ob);
				ob->plain_retry = true;
				attempt(ob);
				return;
			}
			/* A 5xx greeting or HELO refusal from one MX is not the
			 * verdict of the others (RFC 5321 5.1). */
			next_target(ob);
			return;
		}
		}
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct outbound *ob = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (evbuffer_get_length(in) > 0 && ob->client != NULL) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		smtp_client_feed(ob->client, v.iov_base, v.iov_len);
		evbuffer_drain(in, v.iov_len);
	}
	drive(ob);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct outbound *ob = arg;
	if (ob->direct && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE); /* back to flush_now */
	if (ob->sending_body)
		drive(ob);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct outbound *ob = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (ob->in_handshake) {
			ob->in_handshake = false;
			record_tls(ob);
			smtp_client_tls_done(ob->client, true);
			drive(ob);
			return;
		}
		ob->connected = true;
		if (!ob->set.implicit_tls) {
			ob->direct = true;
			bufferevent_disable(bev, EV_WRITE);
		}
		int fd = bufferevent_getfd(bev);
		int one = 1;
		/* The final dot is a small write: never wait for an ACK. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (ob->set.implicit_tls)
			record_tls(ob);
		set_timeout(ob);
		drive(ob);
		return;
	}
	if (!ob->connected) {
		/* No connection (refused, unreachable, timed out, or the
		 * implicit-TLS handshake failed): the next target. */
		struct smtp_client_result e = {
		    .status = SMTP_CLIENT_TEMPFAIL, .reason = SMTP_CLIENT_R_LOST, .code = 421};
		str_copy(e.enhanced, "4.4.1", sizeof(e.enhanced));
		snprintf(e.text, sizeof(e.text), "connect to %s: %s", ob->relay,
		         (what & BEV_EVENT_TIMEOUT) ? "timed out"
		         : EVUTIL_SOCKET_ERROR()
		             ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())
		             : "failed");
		if (ob->set.implicit_tls && bufferevent_get_openssl_error(bev) != 0) {
			snprintf(e.text, sizeof(e.text), "TLS handshake with %s failed", ob->relay);
			log_tls_failure(ob, bev);
		}
		note_error(ob, &e);
		log_event(LOG_LEVEL_INFO, "delivery.connect_failed", "relay=%s", ob->relay);
		next_target(ob);
		return;
	}
	if (ob->in_handshake) {
		ob->in_handshake = false;
		log_tls_failure(ob, bev);
		smtp_client_tls_done(ob->client, false);
		drive(ob);
		return;
	}
	smtp_client_event(ob->client, (what & BEV_EVENT_TIMEOUT) ? SMTP_CLIENT_EV_TIMEOUT
	                                                         : SMTP_CLIENT_EV_LOST);
	drive(ob);
}

/* attempt - connect to the current target. */
static void attempt(struct outbound *ob)
{
	const struct dns_route_target *t = current_target(ob);
	struct event_base *base = engine_base(ob->dest);
	set_relay(ob);
	struct smtp_client_config cc = {
	    .ehlo_name = ob->set.ehlo_name,
	    .tls = ob->plain_retry ? SMTP_CLIENT_TLS_NONE : ob->set.tls,
	    .implicit_tls = ob->set.implicit_tls,
	    .auth_user = ob->set.auth_user,
	    .auth_password = ob->set.auth_password,
	};
	ob->client = smtp_client_new(&cc);
	if (ob->client == NULL) {
		struct smtp_client_result e = {.status = SMTP_CLIENT_TEMPFAIL, .code = 451};
		str_copy(e.enhanced, "4.3.5", sizeof(e.enhanced));
		str_copy(e.text, "invalid SMTP client settings (EHLO name or credentials)",
		         sizeof(e.text));
		note_error(ob, &e);
		finish(ob, true);
		return;
	}
	if (ob->set.implicit_tls) {
		SSL *ssl = new_ssl(ob);
		ob->bev =
		    bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		bufferevent_openssl_set_allow_dirty_shutdown(ob->bev, 1);
	} else {
		/* Deferred callbacks: nothing calls back into this code from
		 * inside a libevent call made here (a connect that fails at
		 * once reports later, from the loop). */
		ob->bev = bufferevent_socket_new(base, -1,
		                                 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	bufferevent_setcb(ob->bev, on_read, on_write, on_event, ob);
	bufferevent_setwatermark(ob->bev, EV_WRITE, DELIVERY_OUTPUT_HIGHWATER / 2, 0);
	struct timeval tv = {ob->set.connect_timeout, 0};
	bufferevent_set_timeouts(ob->bev, &tv, &tv);
	bufferevent_enable(ob->bev, EV_READ | EV_WRITE);
	/* A failure, immediate or not, arrives through on_event. */
	bufferevent_socket_connect(ob->bev, (const struct sockaddr *)&t->addr, (int)t->addr_len);
}

struct outbound *outbound_open(struct destination *dest, const struct outbound_settings *set)
{
	struct outbound *ob = xcalloc(1, sizeof(*ob));
	ob->dest = dest;
	ob->set = *set;
	ob->set.ehlo_name = xstrdup(set->ehlo_name);
	ob->set.auth_user = set->auth_user ? xstrdup(set->auth_user) : NULL;
	ob->set.auth_password = set->auth_password ? xstrdup(set->auth_password) : NULL;
	ob->idle_ev = evtimer_new(engine_base(dest), on_idle_timeout, ob);
	attempt(ob);
	return ob;
}

void outbound_send(struct outbound *ob, struct dlv_job *job)
{
	evtimer_del(ob->idle_ev);
	ob->job = job;
	ob->announced_ready = false;
	smtp_client_send(ob->client, &job->cmsg, job->results);
	drive(ob);
}

void outbound_idle(struct outbound *ob)
{
	struct timeval tv = {DELIVERY_IDLE_MS / 1000, (DELIVERY_IDLE_MS % 1000) * 1000};
	evtimer_add(ob->idle_ev, &tv);
}

void outbound_abort(struct outbound *ob)
{
	close_bev(ob);
	outbound_free(ob);
}

struct dlv_job *outbound_job(const struct outbound *ob)
{
	return ob->job;
}

bool outbound_ever_ready(const struct outbound *ob)
{
	return ob->ever_ready;
}
