/* SPDX-License-Identifier: ISC */
/*
 * delivery_internal.h - private to src/delivery/: the structures the engine
 * (engine.c: messages, destinations, results) and the connections
 * (outbound.c: one SMTP client session each) share.
 *
 * Ownership: the engine owns messages, jobs and destinations; a
 * destination owns its connections; a connection borrows the job it is
 * sending and hands it back (outbound_job_done) before it is closed.
 * Threads: event-loop thread only.
 */
#ifndef DETOUR_DELIVERY_INTERNAL_H
#define DETOUR_DELIVERY_INTERNAL_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery/delivery.h"
#include "dns/dns_route.h"
#include "queue/spool.h"
#include "smtp/smtp_client.h"

/* Connections to one destination at once (Postfix's default is 20). */
#define DELIVERY_DEST_CONCURRENCY 20
/* Outbound connections in all. */
#define DELIVERY_CONNECTIONS_MAX 200
/* Messages claimed from the queue and not yet finished. With bodies up to
 * SPOOL_WORK_INMEM_MAX held in memory, this bounds delivery's memory for
 * bodies to 500 x 64 KiB = 32 MiB; more than the connections can carry at
 * once (DELIVERY_CONNECTIONS_MAX), so fetching still runs ahead. */
#define DELIVERY_INFLIGHT_MAX 500
/* An idle connection waits this long for another message before QUIT. */
#define DELIVERY_IDLE_MS 2000
/* A destination's route is reused for this long (DNS answers are cached
 * separately, with their own TTLs). */
#define DELIVERY_ROUTE_TTL_MS 30000
/* Output queued on a connection before the body pauses for the socket. */
#define DELIVERY_OUTPUT_HIGHWATER (256 * 1024)
/* "host[address]:port" of the server a recipient was handed to. */
#define DELIVERY_RELAY_MAX (DNS_NAME_MAX + 64)

struct outbound;
struct destination;

/* Per recipient of a claimed message: what the last attempt found. */
struct dlv_rcpt_info {
	char relay[DELIVERY_RELAY_MAX]; /* "" when no server answered */
	char tls[96];                   /* "TLSv1.3 TLS_AES_256_GCM_SHA384", "" for plaintext */
	bool remote_dsn;                /* the next hop offered DSN */
};

/* One message claimed from the queue. */
struct dlv_msg {
	struct delivery *d;
	struct spool_work *work;
	struct smtp_client_result *results; /* work->n_rcpts */
	struct dlv_rcpt_info *info;         /* work->n_rcpts */
	size_t jobs_open;                   /* jobs not finished yet */
	int64_t started_ms;
};

/* The recipients of one message that go to one destination. */
struct dlv_job {
	struct dlv_job *next; /* in the destination's queue */
	struct dlv_msg *msg;
	size_t n;
	unsigned *rcpt; /* indices into msg->work->rcpts */
	struct smtp_client_rcpt *crcpts;
	struct smtp_client_result *results; /* n */
	struct smtp_client_message cmsg;
};

enum route_state { ROUTE_NONE, ROUTE_PENDING, ROUTE_READY };

struct destination {
	struct destination *next; /* the engine's hash chain */
	struct delivery *d;
	char key[DNS_NAME_MAX + 2]; /* lower-case domain, "" for the smarthost */
	bool smarthost;
	struct dlv_job *queue_head, *queue_tail;
	size_t queued;
	struct outbound *conns; /* every open connection */
	unsigned n_conns;
	unsigned n_connecting; /* not yet ready for a message */
	enum route_state route_state;
	struct dns_route route;
	int64_t route_expires_ms;
	struct dns_route_query *route_query;
	struct smarthost_lookup *smarthost_lookup;
};

/* What a connection needs from the engine's configuration. */
struct outbound_settings {
	const char *ehlo_name;
	enum smtp_client_tls tls;
	bool implicit_tls;
	bool verify; /* check the certificate against the CAs and the host name */
	SSL_CTX *ssl_ctx;
	const char *auth_user; /* NULL: no AUTH */
	const char *auth_password;
	unsigned connect_timeout; /* [delivery] connect_timeout */
	unsigned reply_timeout;   /* caps RFC 5321 4.5.3.2's waits ([delivery] reply_timeout) */
};

/* outbound.c */

/* outbound_open - connect to dest's route targets in order, starting a
 * session on the first that answers. The destination is told through
 * engine_conn_ready, engine_job_done and engine_conn_closed. */
struct outbound *outbound_open(struct destination *dest, const struct outbound_settings *set);

/* outbound_send - a ready (idle) connection takes a job. */
void outbound_send(struct outbound *ob, struct dlv_job *job);

/* outbound_idle - nothing to send now: QUIT after DELIVERY_IDLE_MS unless
 * a job comes first. */
void outbound_idle(struct outbound *ob);

/* outbound_abort - close at once, without telling the engine anything
 * (shutdown). The job in progress, if any, stays the engine's to free:
 * outbound_job tells which it was. */
void outbound_abort(struct outbound *ob);
struct dlv_job *outbound_job(const struct outbound *ob);

bool outbound_is_ready(const struct outbound *ob);
/* outbound_ever_ready - did the connection ever reach the point of taking a
 * message (it is no longer "connecting")? */
bool outbound_ever_ready(const struct outbound *ob);
struct outbound *outbound_next(const struct outbound *ob);
void outbound_set_next(struct outbound *ob, struct outbound *next);

/* engine.c, called by outbound.c */
struct event_base *engine_base(struct destination *dest);
void engine_conn_ready(struct destination *dest, struct outbound *ob);
void engine_job_done(struct destination *dest, struct outbound *ob, struct dlv_job *job,
                     const char *relay, const char *tls, bool remote_dsn);
void engine_conn_closed(struct destination *dest, struct outbound *ob, bool ever_ready,
                        const struct smtp_client_result *error, const char *relay);
long engine_read_body(struct dlv_job *job, uint64_t off, void *buf, size_t len);

#endif
