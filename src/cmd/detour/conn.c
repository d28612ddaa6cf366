/* SPDX-License-Identifier: ISC */
/* conn.c - see conn.h */
#include "cmd/detour/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/detour/detour.h"
#include "lib/util.h"
#include "smtp/smtp_dotstuff.h"
#include "smtp/smtp_replyparse.h"

/* Octets of message read and stuffed per step, and how much output may
 * wait for the socket before the body is read further. */
#define CONN_BODY_CHUNK    16384
#define CONN_OUT_HIGHWATER (256 * 1024)
#define CONN_READ_CHUNK    16384

enum phase { PH_CONNECTING, PH_HANDSHAKE, PH_SMTP, PH_CLOSED };

struct conn {
	char *host;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool implicit;
	SSL_CTX *ctx;
	bool require_verified;
	bool gate;
	unsigned wait_ms;
	int64_t deadline;

	int fd;
	enum phase phase;
	bool settled;  /* IDLE was reached once: RFC 5321 timeouts from now on */
	bool starttls; /* the running handshake upgrades a plaintext session */
	SSL *ssl;
	bool hs_want_write;    /* the handshake waits to write */
	bool read_wants_write; /* SSL_read needs the socket writable */
	int64_t started;       /* mono_ms when the current wait began */
	uint64_t bytes_read;   /* application octets read */
	struct smtp_client *client;
	char *wbuf;
	size_t wlen, woff, wcap;
	bool gated, released;
	enum conn_status final; /* DONE or FAILED once closed */

	enum conn_failure failure;
	enum probe_connect connect_result;
	char err[320];
	bool tls_tried;
	struct tlsinfo tls;
	struct smtp_client_result smtp_error;

	struct smtp_replyparse *tap;
	bool tap_failed, tap_in_tls;
	struct conn_reply replies[CONN_REPLIES_MAX];
	size_t nreplies;

	const char *body;
	size_t body_len, body_off;
	struct smtp_dotstuff ds;
	bool in_body;
};

static void drive(struct conn *c, int64_t now);

static void set_fail(struct conn *c, enum conn_failure f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_fail(struct conn *c, enum conn_failure f, const char *fmt, ...)
{
	if (c->failure != CONN_FAIL_NONE)
		return;
	c->failure = f;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static void close_conn(struct conn *c, enum conn_status final)
{
	if (c->phase == PH_CLOSED)
		return;
	if (c->ssl != NULL) {
		if (final == CONN_DONE)
			SSL_shutdown(c->ssl); /* a close_notify, not waited for */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->phase = PH_CLOSED;
	c->final = final;
	if (c->wbuf != NULL)
		explicit_bzero(c->wbuf, c->wcap); /* may hold AUTH */
	c->wlen = c->woff = 0;
	ERR_clear_error();
}

/* ---- the transcript ---- */

static void tap_feed(struct conn *c, const char *buf, size_t len)
{
	while (len > 0 && !c->tap_failed) {
		size_t used;
		const struct smtp_parsed_reply *r;
		enum smtp_replyparse_result res = smtp_replyparse_feed(c->tap, buf, len, &used, &r);
		buf += used;
		len -= used;
		if (res == SMTP_REPLYPARSE_MORE)
			return;
		if (res == SMTP_REPLYPARSE_MALFORMED) {
			c->tap_failed = true;
			return;
		}
		if (c->nreplies == CONN_REPLIES_MAX)
			continue;
		struct conn_reply *cr = &c->replies[c->nreplies++];
		cr->code = r->code;
		cr->in_tls = c->tap_in_tls;
		size_t off = 0;
		for (size_t i = 0; i < r->nlines; i++) {
			size_t l;
			const char *s = smtp_replyparse_line(r, i, &l);
			if (off + l + 2 > sizeof(cr->text))
				break;
			if (i > 0)
				cr->text[off++] = '\n';
			memcpy(cr->text + off, s, l);
			off += l;
		}
		cr->text[off] = '\0';
	}
}

/* ---- output ---- */

static char *wbuf_room(struct conn *c, size_t n)
{
	if (c->woff > 0 && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wcap - c->wlen < n && c->woff > 0) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		explicit_bzero(c->wbuf + c->wlen, c->woff);
		c->woff = 0;
	}
	if (c->wcap - c->wlen < n) {
		size_t cap = c->wcap ? c->wcap : 4096;
		while (cap - c->wlen < n)
			cap *= 2;
		char *nb = xmalloc(cap);
		if (c->wbuf != NULL) {
			memcpy(nb, c->wbuf, c->wlen);
			explicit_bzero(c->wbuf, c->wcap);
			free(c->wbuf);
		}
		c->wbuf = nb;
		c->wcap = cap;
	}
	return c->wbuf + c->wlen;
}

static void move_output(struct conn *c)
{
	size_t len;
	const char *out = smtp_client_output(c->client, &len);
	if (len == 0)
		return;
	memcpy(wbuf_room(c, len), out, len);
	c->wlen += len;
	smtp_client_output_consume(c->client, len);
}

static void lost(struct conn *c, const char *what)
{
	smtp_client_event(c->client, SMTP_CLIENT_EV_LOST);
	if (c->err[0] == '\0' && what != NULL)
		snprintf(c->err, sizeof(c->err), "%s", what);
}

/* flush - write what can be written now. false when the connection broke. */
static bool flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		size_t n = c->wlen - c->woff;
		ssize_t w;
		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, c->wbuf + c->woff,
			                  n > INT32_MAX ? INT32_MAX : (int)n);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					return true;
				return false;
			}
			w = r;
		} else {
			w = send(c->fd, c->wbuf + c->woff, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return true;
			if (w <= 0)
				return false;
		}
		explicit_bzero(c->wbuf + c->woff, (size_t)w);
		c->woff += (size_t)w;
	}
	c->woff = c->wlen = 0;
	return true;
}

/* ---- TLS ---- */

static void tls_error_text(char *buf, size_t size, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	if (e != 0) {
		const char *reason = ERR_reason_error_string(e);
		snprintf(buf, size, "%s", reason != NULL ? reason : fallback);
	} else {
		snprintf(buf, size, "%s", fallback);
	}
	ERR_clear_error();
}

static void handshake_failed(struct conn *c, const char *why)
{
	set_fail(c, CONN_FAIL_TLS, "TLS handshake failed: %s", why);
	if (c->starttls) {
		smtp_client_tls_done(c->client, false);
		c->phase = PH_SMTP;
	}
	close_conn(c, CONN_FAILED);
}

static void handshake_done(struct conn *c, int64_t now)
{
	tlsinfo_fill(c->ssl, c->host, &c->tls);
	c->phase = PH_SMTP;
	c->started = now;
	if (c->require_verified && (!c->tls.has_cert || !c->tls.chain_ok || !c->tls.name_ok)) {
		char why[300];
		tlsinfo_problem(&c->tls, c->host, why, sizeof(why));
		set_fail(c, CONN_FAIL_CERT, "%s", why);
		/* Nothing is sent inside this session: no EHLO, no AUTH. */
		if (c->starttls)
			smtp_client_tls_done(c->client, false);
		close_conn(c, CONN_FAILED);
		return;
	}
	/* RFC 3207 4.2: what came before the handshake counts for nothing;
	 * the transcript starts again too. */
	smtp_replyparse_init(c->tap);
	c->tap_failed = false;
	c->tap_in_tls = true;
	if (c->starttls)
		smtp_client_tls_done(c->client, true);
	drive(c, now);
}

static void do_handshake(struct conn *c, int64_t now)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		handshake_done(c, now);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		c->hs_want_write = false;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		c->hs_want_write = true;
		return;
	}
	char why[200];
	if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0)
		snprintf(why, sizeof(why), "%s",
		         r == 0 || errno == 0 ? "the server closed the connection"
		                              : strerror(errno));
	else
		tls_error_text(why, sizeof(why), "protocol error");
	handshake_failed(c, why);
}

static void start_handshake(struct conn *c, bool starttls, int64_t now)
{
	c->tls_tried = true;
	c->starttls = starttls;
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		handshake_failed(c, "cannot set up TLS");
		return;
	}
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* RFC 6066 3: no IP addresses in SNI. */
	if (!detour_is_ip_literal(c->host))
		SSL_set_tlsext_host_name(c->ssl, c->host);
	SSL_set_connect_state(c->ssl);
	c->phase = PH_HANDSHAKE;
	c->started = now;
	do_handshake(c, now);
}

/* ---- reading ---- */

static void feed(struct conn *c, const char *buf, size_t n)
{
	c->bytes_read += n;
	tap_feed(c, buf, n);
	smtp_client_feed(c->client, buf, n);
}

static void read_some(struct conn *c, int64_t now)
{
	char buf[CONN_READ_CHUNK];
	c->read_wants_write = false;
	/* Only while a reply is awaited (or may come unasked, 421): after
	 * STARTTLS's 220 the next octets belong to the handshake. */
	while (c->phase == PH_SMTP && smtp_client_want(c->client) != SMTP_CLIENT_WANT_TLS &&
	       smtp_client_want(c->client) != SMTP_CLIENT_WANT_DONE &&
	       smtp_client_want(c->client) != SMTP_CLIENT_WANT_FAILED) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, buf, sizeof(buf));
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					c->read_wants_write = true;
					return;
				}
				lost(c, "the server closed the connection");
				return;
			}
			c->started = now;
			feed(c, buf, (size_t)r);
		} else {
			ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (r <= 0) {
				lost(c,
				     r == 0 ? "the server closed the connection" : strerror(errno));
				return;
			}
			c->started = now;
			feed(c, buf, (size_t)r);
		}
	}
}

/* ---- the body ---- */

/* pump_body - stuff more of the message into the output; true when the
 * whole message, with its final dot, is there. */
static bool pump_body(struct conn *c)
{
	if (!c->in_body) {
		c->in_body = true;
		c->body_off = 0;
		smtp_dotstuff_init(&c->ds);
	}
	while (c->wlen - c->woff < CONN_OUT_HIGHWATER && c->body_off < c->body_len) {
		size_t chunk = c->body_len - c->body_off;
		if (chunk > CONN_BODY_CHUNK)
			chunk = CONN_BODY_CHUNK;
		char *out = wbuf_room(c, SMTP_DOTSTUFF_FEED_MAX(chunk));
		c->wlen += smtp_dotstuff_feed(&c->ds, c->body + c->body_off, chunk, out);
		c->body_off += chunk;
	}
	if (c->body_off < c->body_len)
		return false;
	char *out = wbuf_room(c, SMTP_DOTSTUFF_FINISH_MAX);
	c->wlen += smtp_dotstuff_finish(&c->ds, out);
	c->in_body = false;
	smtp_client_body_sent(c->client);
	return true;
}

/* ---- the state machine's wants ---- */

static void note_smtp_failure(struct conn *c)
{
	const struct smtp_client_result *e = smtp_client_error(c->client);
	if (e == NULL)
		return;
	c->smtp_error = *e;
	char text[sizeof(c->err)];
	set_fail(c, CONN_FAIL_SMTP, "%s", detour_reply_text(text, sizeof(text), e));
}

static void drive(struct conn *c, int64_t now)
{
	for (;;) {
		if (c->phase != PH_SMTP)
			return;
		if (c->gate && !c->gated) {
			const struct smtp_client_info *info = smtp_client_info(c->client);
			/* TLS is up and the server spoke inside it: whatever
			 * the client writes next (AUTH) waits for release. */
			if (info->tls && info->ehlo_line[0] != '\0' &&
			    smtp_client_want(c->client) != SMTP_CLIENT_WANT_FAILED)
				c->gated = true;
		}
		bool holding = c->gated && !c->released;
		if (!holding)
			move_output(c);
		if (!flush(c)) {
			lost(c, "the connection broke while writing");
			if (c->wlen > 0)
				c->woff = c->wlen = 0;
			continue;
		}
		if (holding) {
			/* READY, unless the server ended it meanwhile (a 421) */
			enum smtp_client_want w = smtp_client_want(c->client);
			if (w == SMTP_CLIENT_WANT_FAILED) {
				note_smtp_failure(c);
				close_conn(c, CONN_FAILED);
			} else if (w == SMTP_CLIENT_WANT_DONE) {
				close_conn(c, CONN_DONE);
			}
			return;
		}
		switch (smtp_client_want(c->client)) {
		case SMTP_CLIENT_WANT_REPLY:
			return;
		case SMTP_CLIENT_WANT_TLS:
			if (c->wlen > c->woff)
				return; /* STARTTLS still to be written */
			start_handshake(c, true, now);
			return;
		case SMTP_CLIENT_WANT_BODY:
			if (!pump_body(c)) {
				if (!flush(c))
					lost(c, "the connection broke while writing");
				if (c->wlen - c->woff >= CONN_OUT_HIGHWATER)
					return;
			}
			continue;
		case SMTP_CLIENT_WANT_MESSAGE:
			c->settled = true;
			return;
		case SMTP_CLIENT_WANT_DONE:
			close_conn(c, CONN_DONE);
			return;
		case SMTP_CLIENT_WANT_FAILED:
			note_smtp_failure(c);
			close_conn(c, CONN_FAILED);
			return;
		}
	}
}

/* ---- connecting ---- */

static void connect_failed(struct conn *c, int err)
{
	switch (err) {
	case ECONNREFUSED:
		c->connect_result = PROBE_CONNECT_REFUSED;
		break;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
	case ENETDOWN:
	case EACCES:
	case EPERM:
		c->connect_result = PROBE_CONNECT_UNREACHABLE;
		break;
	case ETIMEDOUT:
		c->connect_result = PROBE_CONNECT_TIMEOUT;
		break;
	default:
		c->connect_result = PROBE_CONNECT_ERROR;
		break;
	}
	if (c->connect_result == PROBE_CONNECT_TIMEOUT)
		set_fail(c, CONN_FAIL_CONNECT, "no answer within %.1fs, silently dropped",
		         (double)(mono_ms() - c->started) / 1000.0);
	else
		set_fail(c, CONN_FAIL_CONNECT, "%s", strerror(err));
	close_conn(c, CONN_FAILED);
}

static void on_connected(struct conn *c, int64_t now)
{
	int one = 1;
	c->connect_result = PROBE_CONNECT_OK;
	/* The final dot is a small write: never wait for an ACK. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->started = now;
	if (c->implicit) {
		start_handshake(c, false, now);
		return;
	}
	c->phase = PH_SMTP;
	drive(c, now);
}

struct conn *conn_open(const struct conn_settings *s)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int64_t now = mono_ms();
	c->host = xstrdup(s->host);
	memcpy(&c->addr, s->addr, s->addrlen);
	c->addrlen = s->addrlen;
	c->implicit = s->implicit_tls;
	c->ctx = s->ssl_ctx;
	c->require_verified = s->require_verified;
	c->gate = s->gate;
	c->wait_ms = s->wait_ms;
	c->deadline = s->deadline;
	c->fd = -1;
	c->started = now;
	c->connect_result = PROBE_CONNECT_ERROR;
	c->tap = xmalloc(sizeof(*c->tap));
	smtp_replyparse_init(c->tap);
	c->tap_in_tls = s->implicit_tls;
	struct smtp_client_config cc = {
	    .ehlo_name = detour_ehlo_name(),
	    .tls = s->tls,
	    .implicit_tls = s->implicit_tls,
	    .auth_user = s->auth_user,
	    .auth_password = s->auth_password,
	};
	c->client = smtp_client_new(&cc);
	if (c->client == NULL) {
		set_fail(c, CONN_FAIL_CONNECT, "invalid settings (EHLO name or credentials)");
		c->phase = PH_CLOSED;
		c->final = CONN_FAILED;
		return c;
	}
	c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		connect_failed(c, errno);
		return c;
	}
	c->phase = PH_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&c->addr, c->addrlen) == 0)
		on_connected(c, now);
	else if (errno != EINPROGRESS)
		connect_failed(c, errno);
	return c;
}

void conn_free(struct conn **cp)
{
	struct conn *c = *cp;
	if (c == NULL)
		return;
	close_conn(c, CONN_FAILED);
	smtp_client_free(&c->client);
	if (c->wbuf != NULL) {
		explicit_bzero(c->wbuf, c->wcap);
		free(c->wbuf);
	}
	free(c->tap);
	free(c->host);
	free(c);
	*cp = NULL;
}

enum conn_status conn_status(const struct conn *c)
{
	if (c->phase == PH_CLOSED)
		return c->final;
	if (c->gated && !c->released)
		return CONN_READY;
	if (c->phase == PH_SMTP && smtp_client_want(c->client) == SMTP_CLIENT_WANT_MESSAGE)
		return CONN_IDLE;
	return CONN_BUSY;
}

/* wait_bound - when the current wait ends (mono_ms). Until the connection
 * settles the caller's bound applies to every wait; afterwards the
 * client's RFC 5321 4.5.3.2 timeouts. */
static int64_t wait_bound(const struct conn *c)
{
	int64_t ms;
	if (c->phase == PH_HANDSHAKE)
		ms = (int64_t)TLS_HANDSHAKE_TIMEOUT * 1000;
	else if (c->phase == PH_SMTP)
		ms = (int64_t)smtp_client_timeout(c->client) * 1000;
	else
		ms = 0;
	if (!c->settled && c->wait_ms > 0 && (ms == 0 || ms > c->wait_ms))
		ms = c->wait_ms;
	if (c->phase == PH_SMTP && conn_status(c) != CONN_BUSY)
		ms = 0; /* READY or IDLE: nothing awaited */
	int64_t until = ms > 0 ? c->started + ms : 0;
	if (c->deadline != 0 && (until == 0 || c->deadline < until))
		until = c->deadline;
	return until;
}

static short poll_events(const struct conn *c)
{
	switch (c->phase) {
	case PH_CONNECTING:
		return POLLOUT;
	case PH_HANDSHAKE:
		return c->hs_want_write ? POLLOUT : POLLIN;
	case PH_SMTP: {
		short ev = POLLIN;
		if (c->wlen > c->woff || c->read_wants_write)
			ev |= POLLOUT;
		return ev;
	}
	case PH_CLOSED:
		break;
	}
	return 0;
}

static void timed_out(struct conn *c, int64_t now)
{
	switch (c->phase) {
	case PH_CONNECTING:
		connect_failed(c, ETIMEDOUT);
		return;
	case PH_HANDSHAKE:
		if (c->starttls) {
			set_fail(c, CONN_FAIL_TLS, "TLS handshake timed out");
			smtp_client_event(c->client, SMTP_CLIENT_EV_TIMEOUT);
			c->phase = PH_SMTP;
			note_smtp_failure(c);
		} else {
			set_fail(c, CONN_FAIL_SILENT, "connected, but no TLS handshake in time");
		}
		close_conn(c, CONN_FAILED);
		return;
	case PH_SMTP:
		if (c->bytes_read == 0 && !c->tls.up)
			set_fail(c, CONN_FAIL_SILENT, "connected, but no greeting in time");
		smtp_client_event(c->client, SMTP_CLIENT_EV_TIMEOUT);
		drive(c, now);
		if (c->phase != PH_CLOSED) {
			/* a timeout while READY/IDLE is the caller's deadline */
			set_fail(c, CONN_FAIL_ABORTED, "deadline reached");
			close_conn(c, CONN_FAILED);
		}
		return;
	case PH_CLOSED:
		return;
	}
}

static void process(struct conn *c, short revents, int64_t now)
{
	switch (c->phase) {
	case PH_CONNECTING:
		if (revents & (POLLOUT | POLLERR | POLLHUP)) {
			int err = 0;
			socklen_t len = sizeof(err);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
			if (err != 0)
				connect_failed(c, err);
			else
				on_connected(c, now);
			return;
		}
		break;
	case PH_HANDSHAKE:
		if (revents != 0) {
			do_handshake(c, now);
			return;
		}
		break;
	case PH_SMTP:
		/* Always try: reads are non-blocking, and TLS may have data
		 * buffered, or need the socket writable to read. */
		read_some(c, now);
		drive(c, now);
		break;
	case PH_CLOSED:
		return;
	}
	if (c->phase == PH_CLOSED)
		return;
	int64_t until = wait_bound(c);
	if (until != 0 && now >= until)
		timed_out(c, now);
}

void conn_wait(struct conn *const *conns, size_t n, int64_t until)
{
	struct pollfd *pfds = xcalloc(n > 0 ? n : 1, sizeof(*pfds));
	int64_t now = mono_ms(), earliest = until;
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		pfds[i].fd = -1;
		struct conn *c = conns[i];
		if (c == NULL || c->phase == PH_CLOSED)
			continue;
		pfds[i].fd = c->fd;
		pfds[i].events = poll_events(c);
		int64_t dl = wait_bound(c);
		if (dl != 0 && (earliest == 0 || dl < earliest))
			earliest = dl;
		any = true;
	}
	if (!any && until == 0) {
		free(pfds);
		return;
	}
	int timeout = -1;
	if (earliest != 0)
		timeout = earliest > now ? (int)(earliest - now) : 0;
	if (poll(pfds, n, timeout) < 0 && errno != EINTR) {
		free(pfds);
		return;
	}
	now = mono_ms();
	for (size_t i = 0; i < n; i++) {
		struct conn *c = conns[i];
		if (c == NULL || pfds[i].fd < 0)
			continue;
		process(c, pfds[i].revents, now);
	}
	free(pfds);
}

void conn_release(struct conn *c)
{
	if (c->phase == PH_CLOSED || !c->gated)
		return;
	c->released = true;
	c->deadline = 0; /* the caller's bound was on reaching READY */
	c->started = mono_ms();
	drive(c, c->started);
}

void conn_send(struct conn *c, const struct smtp_client_message *msg,
               struct smtp_client_result *results, const char *body, size_t len)
{
	c->body = body;
	c->body_len = len;
	c->in_body = false;
	c->started = mono_ms();
	smtp_client_send(c->client, msg, results);
	drive(c, c->started);
}

void conn_quit(struct conn *c)
{
	c->started = mono_ms();
	smtp_client_quit(c->client);
	drive(c, c->started);
}

void conn_abort(struct conn *c)
{
	if (c->phase == PH_CLOSED)
		return;
	set_fail(c, CONN_FAIL_ABORTED, "closed by detour");
	close_conn(c, CONN_FAILED);
}

enum conn_failure conn_failure(const struct conn *c)
{
	return c->failure;
}

const char *conn_error(const struct conn *c)
{
	return c->err;
}

enum probe_connect conn_connect_result(const struct conn *c)
{
	return c->connect_result;
}

bool conn_connected(const struct conn *c)
{
	/* set by on_connected only, and never changed afterwards */
	return c->connect_result == PROBE_CONNECT_OK;
}

const struct smtp_client_result *conn_smtp_error(const struct conn *c)
{
	/* PENDING (zeroed) until note_smtp_failure: smtp_client's error
	 * is always TEMPFAIL, PERMFAIL or (a 2xx to AUTH) OK */
	return c->smtp_error.status != SMTP_CLIENT_PENDING ? &c->smtp_error : NULL;
}

const struct smtp_client_info *conn_info(const struct conn *c)
{
	return c->client != NULL ? smtp_client_info(c->client) : NULL;
}

const struct tlsinfo *conn_tls(const struct conn *c)
{
	return &c->tls;
}

bool conn_tls_tried(const struct conn *c)
{
	return c->tls_tried;
}

const struct conn_reply *conn_replies(const struct conn *c, size_t *n_r)
{
	*n_r = c->nreplies;
	return c->replies;
}

bool conn_implicit(const struct conn *c)
{
	return c->implicit;
}

SSL_CTX *conn_ssl_ctx(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot set up TLS");
		return NULL;
	}
	/* RFC 8996: nothing older than TLS 1.2. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* The chain is still verified (SSL_get_verify_result); conn.c decides
	 * after the handshake, so that what the server showed can be said. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
	                         : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		char why[200];
		tls_error_text(why, sizeof(why), "cannot be read");
		snprintf(err, errlen, "CA file %s: %s", ca_file != NULL ? ca_file : "(system)",
		         why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
