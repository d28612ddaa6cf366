/* SPDX-License-Identifier: ISC */
/*
 * smtp_client.h - the SMTP client state machine: one connection, from the
 * greeting to QUIT, with EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN and
 * LOGIN (RFC 4954, RFC 4616), and any number of mail transactions on it
 * (RFC 5321 3.3, 4.1.1), pipelined when the server allows (RFC 2920).
 *
 * Owns: every decision of an SMTP client: what to send, in which order,
 * what each reply means, and the result of each recipient (ok, temporary,
 * permanent, with the remote's reply kept for logs and bounces). It is the
 * one client shared by delivery (MX hosts, smarthosts) and by the `detour`
 * tool (send, probe).
 * Does not own: sockets, TLS, timers, DNS, the message body (the caller
 * streams it through smtp_dotstuff), sanitizing the remote's text. Every
 * text field below that came from the remote is RAW: bounded (at most
 * SMTP_REPLYLINE_MAX - 1 octets; longer multi-line texts are cut), free of
 * CR, LF and NUL, but otherwise any octet (invalid UTF-8, controls, terminal
 * escapes): callers sanitize before logging or writing a bounce.
 * Pure: no I/O, no clocks, no globals; events in, bytes and decisions out.
 * One client per connection, used by one thread at a time.
 *
 * How a caller drives a connection:
 *
 *   1. Connect (for implicit TLS, RFC 8314, finish the handshake first and
 *      set config.implicit_tls). c = smtp_client_new(&config).
 *   2. Loop:
 *      a. Write everything smtp_client_output() holds, then call
 *         smtp_client_output_consume() for what was written. Output is
 *         only ever appended by the calls below.
 *      b. Act on smtp_client_want(c):
 *         REPLY   - read from the socket; smtp_client_feed() the bytes. Arm
 *                   a timer of smtp_client_timeout(c) seconds; on expiry,
 *                   smtp_client_event(c, SMTP_CLIENT_EV_TIMEOUT).
 *         TLS     - once the output is written, run the TLS handshake on the
 *                   socket (reading nothing in plaintext first), then
 *                   smtp_client_tls_done(c, ok).
 *         BODY    - once the output is written, send the message's content
 *                   through smtp_dotstuff (feed + finish: the finish writes
 *                   the final ".\r\n"), then smtp_client_body_sent(c).
 *         MESSAGE - idle. The previous message, if any, is finished: its
 *                   results are final. smtp_client_send() the next one
 *                   (connection reuse), or smtp_client_quit().
 *         DONE    - the session ended normally; close the socket.
 *         FAILED  - the connection failed; smtp_client_error() says why.
 *                   Recipients of the message in progress, if any, are all
 *                   final (those not already answered are TEMPFAIL). Write
 *                   what output remains (a polite QUIT) without waiting,
 *                   then close.
 *      Whenever the socket reports EOF or an error, call
 *      smtp_client_event(c, SMTP_CLIENT_EV_LOST); bytes that arrive while
 *      the machine does not wait for a reply may still be fed (a 421 while
 *      idle fails the connection cleanly; anything else is a protocol
 *      error, and any byte while TLS is being set up is refused: RFC 3207
 *      and CVE-2011-0411 on the client side).
 *   3. smtp_client_free(&c).
 */
#ifndef DETOUR_SMTP_CLIENT_H
#define DETOUR_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/limits.h"
#include "smtp/smtp_params.h"
#include "smtp/smtp_replyparse.h"

/* When to use STARTTLS (RFC 3207) on a plaintext connection. */
enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE,          /* never */
	SMTP_CLIENT_TLS_OPPORTUNISTIC, /* when offered; plaintext otherwise */
	SMTP_CLIENT_TLS_REQUIRED,      /* when offered; fail (temporary) otherwise */
};

struct smtp_client_config {
	/* The EHLO/HELO argument: a domain or an address literal, at most
	 * SMTP_HELO_MAX octets, printable ASCII without spaces. Copied. */
	const char *ehlo_name;
	enum smtp_client_tls tls;
	/* The connection is already inside TLS (implicit TLS, RFC 8314 3):
	 * STARTTLS is then never sent, and AUTH may be. */
	bool implicit_tls;
	/* AUTH credentials, or NULL: no AUTH. Copied; the copy is wiped when
	 * the client is freed. AUTH is only ever sent inside TLS: configured
	 * credentials on a connection that did not reach TLS fail it instead
	 * (SMTP_CLIENT_R_AUTH_PLAINTEXT). PLAIN (RFC 4616) is preferred, then
	 * LOGIN, as the server's EHLO AUTH list offers them. */
	const char *auth_user;     /* at most SASL_USER_MAX octets */
	const char *auth_password; /* at most SASL_PASSWORD_MAX octets */
};

/* What the caller must do next. */
enum smtp_client_want {
	SMTP_CLIENT_WANT_REPLY,   /* read a reply and feed it */
	SMTP_CLIENT_WANT_TLS,     /* start TLS now; report with smtp_client_tls_done */
	SMTP_CLIENT_WANT_BODY,    /* send the body now; report with smtp_client_body_sent */
	SMTP_CLIENT_WANT_MESSAGE, /* idle: a message (smtp_client_send) or QUIT */
	SMTP_CLIENT_WANT_DONE,    /* ended normally: close */
	SMTP_CLIENT_WANT_FAILED,  /* the connection failed: smtp_client_error */
};

/* Events the caller reports. */
enum smtp_client_event {
	SMTP_CLIENT_EV_LOST,    /* EOF or a socket error */
	SMTP_CLIENT_EV_TIMEOUT, /* the caller's timer for the current wait fired */
};

/* The classification of a recipient, or of a failed connection. */
enum smtp_client_status {
	SMTP_CLIENT_PENDING,  /* not known yet */
	SMTP_CLIENT_OK,       /* accepted by the next hop: delivered from our side */
	SMTP_CLIENT_TEMPFAIL, /* try again later */
	SMTP_CLIENT_PERMFAIL, /* give up: bounce */
};

/* Why: the remote's reply, or something detour decided. */
enum smtp_client_reason {
	SMTP_CLIENT_R_NONE,
	SMTP_CLIENT_R_REPLY,            /* the remote's reply to MAIL, RCPT, DATA or the data */
	SMTP_CLIENT_R_GREETING,         /* the greeting was not 2xx (remote reply kept) */
	SMTP_CLIENT_R_HELO,             /* EHLO and HELO refused (remote reply kept) */
	SMTP_CLIENT_R_CLOSING,          /* a 421 (RFC 5321 3.8) */
	SMTP_CLIENT_R_PROTOCOL,         /* a malformed reply, or an unexpected one */
	SMTP_CLIENT_R_LOST,             /* the connection was lost */
	SMTP_CLIENT_R_TIMEOUT,          /* the caller's timer fired */
	SMTP_CLIENT_R_TLS_REQUIRED,     /* TLS required but STARTTLS not offered or refused */
	SMTP_CLIENT_R_TLS_FAILED,       /* the TLS handshake failed */
	SMTP_CLIENT_R_AUTH_PLAINTEXT,   /* credentials configured, but no TLS */
	SMTP_CLIENT_R_AUTH_UNAVAILABLE, /* no AUTH PLAIN or LOGIN offered */
	SMTP_CLIENT_R_AUTH_FAILED,      /* AUTH refused (535: permanent) */
	SMTP_CLIENT_R_SMTPUTF8,         /* needs SMTPUTF8, the next hop lacks it */
	SMTP_CLIENT_R_SIZE,             /* larger than the next hop's SIZE */
	SMTP_CLIENT_R_ENVELOPE,         /* an address detour cannot send (control octets, length) */
};

/*
 * A recipient's result, or the reason a connection failed. `status` is the
 * classification and is what callers act on; code, enhanced and text say
 * what was said. When `remote` is true they are the remote's reply as
 * parsed, and status follows its class (2xx OK, 4xx TEMPFAIL, 5xx
 * PERMFAIL), except SMTP_CLIENT_R_TLS_REQUIRED (STARTTLS refused when TLS is
 * required: TEMPFAIL whatever the code). Otherwise detour wrote them, with a
 * code and an RFC 3463 enhanced code of the status's class: 4.4.2 connection
 * lost or timeout, 4.5.0 malformed or unexpected reply (the remote's reply
 * quoted in the text), 4.7.10 TLS required or credentials refused in
 * plaintext, 4.7.5 handshake failed, 4.7.0 no usable AUTH, 5.6.7 SMTPUTF8,
 * 5.3.4 size, 5.1.7 and 5.1.3 envelope.
 */
struct smtp_client_result {
	enum smtp_client_status status;
	enum smtp_client_reason reason;
	bool remote;
	int code;
	char enhanced[SMTP_ENHCODE_MAX + 1];
	char text[SMTP_REPLYLINE_MAX]; /* raw, see the top of this file */
};

/* A recipient as stored in the queue. */
struct smtp_client_rcpt {
	const char *address; /* the mailbox, without angle brackets */
	unsigned notify;     /* SMTP_NOTIFY_* bits; 0: no NOTIFY */
	/* ORCPT decoded as stored ("rfc822;user@example.org"), or NULL/"".
	 * xtext-encoded here (RFC 3461 4.2); dropped if it would be longer
	 * than SMTP_ORCPT_MAX or make the command longer than 512 octets. */
	const char *orcpt;
};

/* A message envelope. */
struct smtp_client_message {
	const char *reverse_path; /* the mailbox; "" for the null path <> */
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpts;  /* at least one */
	uint64_t size;  /* message size, for SIZE= (RFC 1870) */
	bool body_8bit; /* BODY=8BITMIME when offered (RFC 6152); sent as is otherwise */
	bool smtputf8;  /* needs SMTPUTF8 (RFC 6531); refused if not offered */
	enum smtp_ret ret;
	const char *envid; /* decoded, or NULL/""; xtext-encoded here; dropped
	                    * if longer than SMTP_ENVID_MAX encoded */
};

/* Extensions of the server's last EHLO reply (RFC 5321 4.1.1.1). */
#define SMTP_CLIENT_EXT_PIPELINING          0x001 /* RFC 2920 */
#define SMTP_CLIENT_EXT_SIZE                0x002 /* RFC 1870 */
#define SMTP_CLIENT_EXT_8BITMIME            0x004 /* RFC 6152 */
#define SMTP_CLIENT_EXT_SMTPUTF8            0x008 /* RFC 6531 */
#define SMTP_CLIENT_EXT_DSN                 0x010 /* RFC 3461 */
#define SMTP_CLIENT_EXT_STARTTLS            0x020 /* RFC 3207 */
#define SMTP_CLIENT_EXT_AUTH                0x040 /* RFC 4954 */
#define SMTP_CLIENT_EXT_CHUNKING            0x080 /* RFC 3030 (noted, not used) */
#define SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES 0x100 /* RFC 2034 */

/* SASL mechanisms offered in AUTH. */
#define SMTP_CLIENT_AUTH_PLAIN 0x1
#define SMTP_CLIENT_AUTH_LOGIN 0x2

/* What the session learned about the server (for logs and `detour probe`). */
struct smtp_client_info {
	char greeting[SMTP_REPLYLINE_MAX];  /* the greeting's text, raw */
	char ehlo_line[SMTP_REPLYLINE_MAX]; /* first line of the last EHLO reply: the server's name
	                                     */
	unsigned extensions;                /* SMTP_CLIENT_EXT_*, of the last EHLO */
	uint64_t size_limit;                /* SIZE n; 0: no limit announced */
	unsigned auth_mechs;                /* SMTP_CLIENT_AUTH_* */
	bool used_helo;                     /* EHLO was refused and HELO used */
	bool starttls_offered;              /* STARTTLS was offered in plaintext */
	bool tls;                           /* the connection is inside TLS */
	bool authenticated;                 /* AUTH succeeded */
};

struct smtp_client;

/* smtp_client_new - a client for a connection that was just opened; it
 * waits for the greeting. Returns NULL if the configuration is invalid
 * (EHLO name empty, too long or with spaces or control octets; credentials
 * too long, or only one of user and password). */
struct smtp_client *smtp_client_new(const struct smtp_client_config *config);

/* smtp_client_free - free the client, wiping the credentials; *c is set to
 * NULL. Safe in any state (a message in progress is simply abandoned). */
void smtp_client_free(struct smtp_client **c);

/* smtp_client_want - what the caller must do next (see the top). */
enum smtp_client_want smtp_client_want(const struct smtp_client *c);

/* smtp_client_output - the bytes to send (CRLF line ends only; commands at
 * most SMTP_CMDLINE_MAX octets, the AUTH PLAIN line at most
 * SMTP_AUTHLINE_MAX). *len_r may be 0. Valid until the next call. */
const char *smtp_client_output(const struct smtp_client *c, size_t *len_r);

/* smtp_client_output_consume - n octets of the output were sent. They are
 * wiped from memory (they may be credentials). */
void smtp_client_output_consume(struct smtp_client *c, size_t n);

/* smtp_client_feed - bytes read from the server. Any split is fine: one
 * byte at a time, or many pipelined replies at once. Ignored after DONE or
 * FAILED. */
void smtp_client_feed(struct smtp_client *c, const char *buf, size_t len);

/* smtp_client_event - the connection was lost, or the caller's timer fired.
 * Fails the connection (recipients not answered yet: TEMPFAIL; after the
 * end of the data: "delivery status unknown", RFC 5321 6.1 - we retry, so
 * delivery is at least once); after QUIT, ends it normally. */
void smtp_client_event(struct smtp_client *c, enum smtp_client_event event);

/* smtp_client_tls_done - WANT_TLS only: the handshake succeeded (ok) or not.
 * On success the client forgets everything the server said before and
 * sends EHLO again (RFC 3207 4.2); the output must have been drained. */
void smtp_client_tls_done(struct smtp_client *c, bool ok);

/*
 * smtp_client_send - WANT_MESSAGE only: start delivering a message. msg
 * (with its recipients and strings) and results_r (msg->nrcpts entries)
 * must stay valid until the message is finished, that is until the want is
 * MESSAGE, DONE or FAILED again; each results_r[i] is set to PENDING here
 * and becomes final as the server answers.
 *
 * Some messages finish at once, without a byte sent: SMTPUTF8 needed but
 * not offered (every recipient PERMFAIL 5.6.7), larger than the server's
 * SIZE (PERMFAIL 5.3.4), a reverse-path that cannot be sent (PERMFAIL
 * 5.1.7). A recipient that cannot be sent is PERMFAIL 5.1.3 on its own.
 *
 * Parameters are sent only when the server offered their extension: SIZE=;
 * BODY=8BITMIME; SMTPUTF8; RET, ENVID, NOTIFY, ORCPT with DSN.
 * With PIPELINING, MAIL, every RCPT and DATA go in one write (RFC 2920 3.1)
 * (preceded by RSET when an earlier transaction was left open); without it,
 * one command per reply, and DATA only if a recipient was accepted.
 *
 * Per recipient: 2xx to RCPT, then the reply to the end of data decides
 * (2xx OK, 4xx TEMPFAIL, 5xx PERMFAIL); 4xx/5xx to RCPT is final at once.
 * A MAIL failure, or a DATA failure, is every (accepted) recipient's result.
 * A 452, or any 4xx with enhanced code 4.5.3, to RCPT means "too many
 * recipients" (RFC 5321 4.5.3.1.10): when some other recipient of that
 * transaction was accepted, those recipients are sent again in a new
 * transaction once this one is over; when none was, they are TEMPFAIL
 * (so every transaction finishes some recipient, and the loop ends).
 * When no recipient is accepted but the server answers DATA with 354
 * anyway (RFC 2920 says it must not), the client sends an empty message
 * (".") to leave the data phase, and ignores the reply: each recipient
 * keeps its RCPT result.
 */
void smtp_client_send(struct smtp_client *c, const struct smtp_client_message *msg,
                      struct smtp_client_result *results_r);

/* smtp_client_body_sent - WANT_BODY only: the whole body, through the final
 * ".\r\n", was written. */
void smtp_client_body_sent(struct smtp_client *c);

/* smtp_client_quit - WANT_MESSAGE only: send QUIT. The reply (or the server
 * closing) ends the session: WANT_DONE. */
void smtp_client_quit(struct smtp_client *c);

/* smtp_client_error - FAILED: why (status TEMPFAIL or PERMFAIL, for this
 * connection or destination; PERMFAIL only for a greeting or HELO 5xx and a
 * 5xx to AUTH such as 535). NULL in other states. */
const struct smtp_client_result *smtp_client_error(const struct smtp_client *c);

/* smtp_client_info - what the server said about itself so far. */
const struct smtp_client_info *smtp_client_info(const struct smtp_client *c);

/* smtp_client_timeout - seconds the caller should wait for what the client
 * wants now: RFC 5321 4.5.3.2 (greeting 5 min, MAIL and RCPT 5 min, DATA 2
 * min, each data block 3 min, end of data 10 min), TLS_HANDSHAKE_TIMEOUT
 * for a handshake; 0 when nothing is awaited (idle, done, failed). */
unsigned smtp_client_timeout(const struct smtp_client *c);

/* smtp_client_reason_name - "lost", "auth_failed"... for logs. */
const char *smtp_client_reason_name(enum smtp_client_reason reason);

#endif
