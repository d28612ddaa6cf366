/* SPDX-License-Identifier: ISC */
/*
 * session.h - one SMTP server session: the state machine of RFC 5321 with
 * the extensions detour offers, driven by bytes from a bufferevent.
 *
 * Owns: the dialogue with one client (greeting, command table, replies,
 * pipelining groups, the transaction, DATA and BDAT), its timeouts and its
 * error count. Uses the pure parsers of src/smtp/ for all syntax, policy.h for
 * every permission decision, and the spool for durability: the 250 for a
 * message is written only from the spool's commit callback.
 * Threads: event-loop thread only.
 */
#ifndef DETOUR_SESSION_H
#define DETOUR_SESSION_H

#include <stdbool.h>
#include <sys/socket.h>

struct server;
struct config;
struct config_listener;
struct session;

/* session_start - take over an accepted socket (fd) from listener and greet.
 * client_addr and trusted are what the server found when it accepted it
 * (an untrusted client was counted in its per-address table, which the
 * session leaves when it ends). The session frees itself when the
 * connection ends. */
void session_start(struct server *srv, const struct config_listener *listener, int fd,
                   const struct sockaddr *peer, socklen_t peer_len, const char *client_addr,
                   bool trusted);

/* session_shutdown - the server is stopping: a session at a command boundary
 * gets 421 and is closed now; one inside a transaction finishes its current
 * command first. With force, every session is closed now (grace is over). */
void session_shutdown(struct session *s, bool force);

/* Links for the server's list of live sessions. */
struct session *session_next(struct session *s);

#endif
