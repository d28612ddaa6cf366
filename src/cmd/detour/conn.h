/* SPDX-License-Identifier: ISC */
/*
 * conn.h - one SMTP client connection of the `detour` tool: a non-blocking
 * TCP connection, TLS with OpenSSL (implicit, RFC 8314, or STARTTLS, RFC
 * 3207), and the relay's own client state machine (smtp_client) on top.
 * There is no second SMTP state machine here: this file only moves bytes
 * and runs handshakes when smtp_client asks for them (see the top of
 * smtp/smtp_client.h).
 *
 * Why poll(2) and not libevent, as the relay's delivery uses: `detour` is a
 * short-lived command with a handful of connections, each of which needs an
 * absolute deadline (a probe's per-port bound, a race's attempt bound) and
 * an exact view of the bytes read before a STARTTLS handshake (RFC 3207
 * 4.2, CVE-2011-0411). A plain loop of non-blocking sockets and
 * SSL_do_handshake/SSL_read/SSL_write gives both directly, with no hidden
 * buffering between the socket and smtp_client, no callbacks, and nothing
 * to set up for one run. conn_wait() is the whole loop.
 *
 * Two things the tool needs beyond delivery's use of smtp_client:
 *   - a transcript of the server's replies (the greeting and EHLO lines as
 *     sent, for `detour probe` to spot masked and rewritten ones), read by
 *     a separate smtp_replyparse that only watches;
 *   - a gate (conn_settings.gate): once TLS is up and the server answered
 *     EHLO inside it, the connection is READY and holds what smtp_client
 *     wrote next (AUTH, with the credentials) until conn_release(). A race
 *     of several ports opens the gate only on the one it picks; the others
 *     are closed without a credential ever leaving the machine.
 * Certificates: the handshake always completes (SSL_VERIFY_NONE, which
 * still verifies) so that what the server showed can be reported; with
 * require_verified, a chain or host name that does not check out then
 * fails the connection (smtp_client_tls_done(false)) before any command is
 * sent inside TLS.
 *
 * Owns: sockets, TLS sessions, timers of one connection. Does not own:
 * choosing ports (race.c, probe.c), the message (send.c). One thread.
 */
#ifndef DETOUR_CMD_CONN_H
#define DETOUR_CMD_CONN_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cmd/detour/classify.h"
#include "cmd/detour/tlsinfo.h"
#include "smtp/smtp_client.h"

struct ssl_ctx_st;

/* Replies kept in a transcript. */
#define CONN_REPLIES_MAX 12

struct conn_settings {
	const char *host; /* for SNI and certificate checks; copied */
	const struct sockaddr *addr;
	socklen_t addrlen;
	bool implicit_tls;
	struct ssl_ctx_st *ssl_ctx;
	bool require_verified; /* fail on a certificate that does not check out */
	bool gate;             /* hold output once READY (see the top) */
	/* The smtp_client configuration (copied by smtp_client_new). */
	enum smtp_client_tls tls;
	const char *auth_user;
	const char *auth_password;
	/* Bound on every wait (connect, handshake, each reply), ms, until the
	 * connection is IDLE for the first time; afterwards the smtp_client's
	 * own timeouts (RFC 5321 4.5.3.2) apply. */
	unsigned wait_ms;
	/* Absolute deadline (mono_ms) of the connection until it is released
	 * or IDLE; 0: none. */
	int64_t deadline;
};

enum conn_status {
	CONN_BUSY,   /* connecting, handshaking, or waiting for the server */
	CONN_READY,  /* gated: TLS and EHLO done; conn_release() to go on */
	CONN_IDLE,   /* smtp_client wants a message (or QUIT) */
	CONN_DONE,   /* ended normally and closed */
	CONN_FAILED, /* ended with an error and closed; see conn_error */
};

/* How the connection failed, when it did. */
enum conn_failure {
	CONN_FAIL_NONE,
	CONN_FAIL_CONNECT, /* see conn_connect_result */
	CONN_FAIL_TLS,     /* the handshake failed */
	CONN_FAIL_CERT,    /* require_verified and the certificate does not check out */
	CONN_FAIL_SILENT,  /* connected, but the server said nothing in time */
	CONN_FAIL_SMTP,    /* smtp_client failed; see conn_smtp_error */
	CONN_FAIL_ABORTED, /* conn_abort */
};

struct conn_reply {
	int code;
	bool in_tls;
	char text[PROBE_KEYWORDS_MAX]; /* the lines' texts, '\n' between, raw */
};

struct conn;

/* conn_ssl_ctx - a TLS client context trusting ca_file (PEM), or the
 * system's CA store when it is NULL; TLS 1.2 at least. NULL with a message
 * in err. The caller frees it with SSL_CTX_free after the last conn. */
struct ssl_ctx_st *conn_ssl_ctx(const char *ca_file, char *err, size_t errlen);

/* conn_open - start connecting now. Never NULL; a connection that cannot
 * even start is FAILED at once. */
struct conn *conn_open(const struct conn_settings *settings);

/* conn_free - close (without a word) and free; *c is set to NULL. */
void conn_free(struct conn **c);

enum conn_status conn_status(const struct conn *c);

/* conn_wait - one round of the loop: poll every connection of the array
 * that has a socket (NULL entries are skipped) until something happens or
 * until `until` (mono_ms, 0: no limit of its own), then let each one act. */
void conn_wait(struct conn *const *conns, size_t n, int64_t until);

/* conn_release - READY only: let the held output go (AUTH). */
void conn_release(struct conn *c);

/* conn_send - IDLE only: submit a message; body[0..len) is the message as
 * stored (line ends LF or CRLF), dot-stuffed on the way. msg, results and
 * body must stay valid until the connection is IDLE, DONE or FAILED. */
void conn_send(struct conn *c, const struct smtp_client_message *msg,
               struct smtp_client_result *results, const char *body, size_t len);

/* conn_quit - IDLE only: QUIT, then DONE. */
void conn_quit(struct conn *c);

/* conn_abort - close at once; FAILED with CONN_FAIL_ABORTED (if it was
 * still going). Nothing more is sent: not even what a gate held. */
void conn_abort(struct conn *c);

/* What happened, for reports. */
enum conn_failure conn_failure(const struct conn *c);
const char *conn_error(const struct conn *c); /* one sentence; "" if none */
enum probe_connect conn_connect_result(const struct conn *c);
bool conn_connected(const struct conn *c);
const struct smtp_client_result *conn_smtp_error(const struct conn *c); /* or NULL */
const struct smtp_client_info *conn_info(const struct conn *c);         /* or NULL */
const struct tlsinfo *conn_tls(const struct conn *c);
bool conn_tls_tried(const struct conn *c); /* a handshake started */
const struct conn_reply *conn_replies(const struct conn *c, size_t *n_r);
bool conn_implicit(const struct conn *c);

#endif
