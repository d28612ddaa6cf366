/* SPDX-License-Identifier: ISC */
/*
 * server.h - the running relay: configuration, listeners, sessions, the
 * spool and the control socket, on one libevent loop.
 *
 * Owns: the set of listening sockets (bound at start-up as root, rebound on
 * reload), the list of live sessions, connection counters, and the shutdown
 * sequence (SIGTERM: stop accepting, 421 to every session, exit within the
 * grace period). Does not own: the SMTP dialogue (session.c), the queue
 * (spool.c) or the control protocol (ctl_server.c).
 * Threads: everything here runs on the event-loop thread.
 */
#ifndef DETOUR_SERVER_H
#define DETOUR_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct config;
struct config_listener;
struct event_base;
struct spool;
struct ssl_ctx_st;
struct workers;
struct delivery;
struct ratelimit;
struct ip_count;
struct session;
struct server_listener;

struct server {
	struct event_base *base;
	struct config *cfg; /* current configuration; sessions hold their own ref */
	struct spool *spool;
	struct server_listener *listeners; /* linked list of bound sockets */
	struct session *sessions;          /* doubly linked list of live sessions */
	struct ctl_server *ctl;
	struct ssl_ctx_st *tls_ctx; /* NULL when no listener uses TLS */
	struct workers *workers;    /* password checks */
	struct delivery *delivery;  /* the outbound side */
	/* Abuse limits ([limits]; docs/security.md) */
	struct ratelimit *rl_messages;   /* per account: messages */
	struct ratelimit *rl_recipients; /* per account: recipients */
	struct ratelimit *rl_auth;       /* per client address: failed logins */
	struct ip_count **ip_counts;     /* open connections per client address */
	uint64_t refused_rate;           /* MAIL/RCPT refused by an account limit */
	uint64_t refused_auth_blocked;   /* AUTH refused after too many failures */
	uint64_t refused_per_ip;         /* connections over max_connections_per_ip */
	struct event *grace_timer;
	unsigned n_sessions;
	uint64_t next_session_id;
	uint64_t total_sessions;
	uint64_t messages_accepted;
	uint64_t messages_refused;
	time_t started;
	bool stopping;
	int lock_fd; /* state_dir/detourd.lock, held while running */
};

/* server_new - bind every listener of cfg (fatal problems go to *error_r,
 * naming the configuration line). Creates no event or thread, so the
 * process may still fork (detach) afterwards. */
struct server *server_new(struct config *cfg, const char **error_r);

/* server_check_tls - can the certificate and key of cfg be used (for
 * detourd -n)? -1 with a message naming the file and the line. */
int server_check_tls(const struct config *cfg, const char **error_r);

/* server_start - open the spool and the control socket, start accepting on
 * base. Called after detaching and after privileges are dropped. */
int server_start(struct server *srv, struct event_base *base, const char **error_r);

/* server_reload - load the configuration file again; on success listeners
 * are rebound (sockets for unchanged addresses are kept) and new sessions use
 * the new settings; on failure the old configuration stays. *message_r
 * describes the outcome (malloc'ed; the caller frees it). */
int server_reload(struct server *srv, char **message_r);

/* server_stop - SIGTERM: stop accepting, end sessions, break the loop once
 * every session is gone or the grace period is over. */
void server_stop(struct server *srv);

/* server_free - close everything (after the loop has exited). */
void server_free(struct server **srv);

/* server_ip_release - a session from this client address ended (its
 * count was taken when the connection was accepted). */
void server_ip_release(struct server *srv, const char *client_addr);

/* Session bookkeeping, called by session.c. */
void server_session_added(struct server *srv, struct session *s);
void server_session_removed(struct server *srv, struct session *s);

#endif
