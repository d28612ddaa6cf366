/* SPDX-License-Identifier: ISC */
/*
 * session_private.h - private to the SMTP server session: the state shared
 * by session.c (the dialogue, the transaction, message data) and
 * session_auth.c (STARTTLS and AUTH). Nothing else includes this file.
 *
 * Threads: event-loop thread only.
 */
#ifndef DETOUR_SESSION_PRIVATE_H
#define DETOUR_SESSION_PRIVATE_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "lib/log.h"
#include "queue/spool.h"
#include "server/received.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_params.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_sasl.h"

struct bufferevent;
struct event;
struct auth_check;
struct server;

enum session_state {
	SESSION_STATE_GREETED, /* banner sent, no EHLO or HELO yet */
	SESSION_STATE_READY,   /* EHLO/HELO done, no transaction */
	SESSION_STATE_MAIL,    /* MAIL accepted, no recipient yet */
	SESSION_STATE_RCPT,    /* at least one recipient accepted */
	SESSION_STATE_DATA,    /* reading message data after 354 */
	SESSION_STATE_BDAT,    /* reading the octets of a BDAT chunk */
	SESSION_STATE_COMMIT,  /* waiting for the spool to make the message durable */
	SESSION_STATE_AUTH,    /* waiting for a password check, or its failure delay */
	SESSION_STATE_TLS,     /* TLS handshake in progress */
	SESSION_STATE_CLOSING, /* the last reply is being flushed */
};

/* Where an AUTH exchange stands between two lines from the client. */
enum auth_step { AUTH_STEP_NONE, AUTH_STEP_PLAIN, AUTH_STEP_LOGIN_USER, AUTH_STEP_LOGIN_PASS };

/* Why a message in DATA or BDAT is refused; checked at its end. */
enum refusal { REFUSE_NONE, REFUSE_TOO_BIG, REFUSE_STORAGE, REFUSE_LOOP, REFUSE_SEQUENCE };

struct session {
	struct session *next, *prev; /* the server's list */
	struct server *srv;
	struct config *cfg; /* the configuration this session started under */
	const struct config_listener *listener;
	struct bufferevent *bev;
	uint64_t id;
	char client_addr[INET6_ADDRSTRLEN];
	unsigned client_port;
	struct sockaddr_storage peer;
	int64_t started_ms;

	enum session_state state;
	bool esmtp;         /* EHLO given: extensions and pipelining negotiated */
	bool trusted;       /* client address is in [server] trusted */
	bool skip_line;     /* discarding the rest of an over-long line */
	bool output_full;   /* paused until the client reads its replies */
	bool shutting_down; /* close at the next command boundary */
	char helo[SMTP_HELO_MAX + 1];

	/* Plain TCP: replies are written to the socket directly (session_flush_now). */
	bool direct_write;

	/* TLS: active after the handshake of implicit TLS or STARTTLS. */
	bool tls_active;
	char tls_desc[160]; /* for Received: "TLSv1.3 with cipher ..." */
	char tls_short[96]; /* for the envelope */

	/* AUTH (RFC 4954) */
	char *account;  /* authenticated account, NULL until AUTH succeeds */
	char **senders; /* further sender patterns the account may use */
	size_t n_senders;
	enum auth_step auth_step;
	const char *auth_mechanism;
	struct sasl_credentials *login;   /* AUTH LOGIN: user name until the password */
	struct auth_check *auth_job;      /* in flight on a worker */
	struct event *auth_delay;         /* failure answered after a pause */
	struct config_rate rate_messages; /* the account's limits ([limits] or its own) */
	struct config_rate rate_recipients;
	struct event *deadline; /* [limits] session_timeout */
	unsigned errors;
	unsigned messages;
	const char *close_reason;

	/* The current transaction (MAIL to the end of DATA/BDAT LAST). */
	struct spool_msg *msg;
	struct smtp_mail_params mail;
	bool mail_utf8; /* sender needs SMTPUTF8 */
	char first_rcpt[SMTP_PATH_MAX + 1];
	bool used_bdat;
	struct smtp_data data;
	struct received_counter received;
	enum refusal refusal;
	int storage_errno;
	uint64_t bdat_remaining; /* octets of the current chunk still to read */
	bool bdat_last;
	bool bdat_discard; /* chunk read only to be thrown away */
	enum smtp_reply_id bdat_error;
	enum session_state bdat_return; /* state to go back to after a discarded chunk */

	/* Closing: the last replies are flushed, then the session is freed. */
	struct event *close_ev;
	int64_t close_deadline_ms;

	/* A message handed to the spool, waiting for its commit. */
	struct spool_msg *pending;
	struct logline *pending_log; /* the message's log line, completed with the result */
};

/* session.c */
void session_reply_raw(struct session *s, int code, const char *enh, const char *text, bool more);
void session_reply(struct session *s, enum smtp_reply_id id);
void session_replyf(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* session_reject - the reply for id, with a smtp.reject log line. */
void session_reject(struct session *s, const char *command, enum smtp_reply_id id,
                    const char *detail);
/* session_set_state - the one place where the session changes state. */
void session_set_state(struct session *s, enum session_state next);
void session_set_timeouts(struct session *s);
void session_transaction_reset(struct session *s);
bool session_in_transaction(const struct session *s);
/* session_process - act on buffered input, then send the replies. */
void session_process(struct session *s);
void session_flush_now(struct session *s);
void session_close(struct session *s, const char *reason);
void session_on_read(struct bufferevent *bev, void *arg);
void session_on_write(struct bufferevent *bev, void *arg);
void session_on_event(struct bufferevent *bev, short what, void *arg);

/* session_auth.c */
bool session_auth_offered(const struct session *s);
bool session_starttls_offered(const struct session *s);
void session_cmd_starttls(struct session *s, const struct smtp_cmd *cmd);
/* session_tls_established - the handshake (implicit or STARTTLS) is done. */
void session_tls_established(struct session *s);
void session_cmd_auth(struct session *s, const struct smtp_cmd *cmd);
/* session_auth_response - one client line during an AUTH exchange. */
void session_auth_response(struct session *s, const char *line, size_t len);
void session_auth_abort(struct session *s, enum smtp_reply_id id, const char *why);

#endif
