/* SPDX-License-Identifier: ISC */
/*
 * ctl_server.h - the daemon's side of the control socket (ctl_proto.h).
 *
 * Owns: the socket file, reading and bounding requests, and turning them
 * into server and spool operations. Does not own: the operations themselves.
 * Threads: event-loop thread.
 */
#ifndef DETOUR_CTL_SERVER_H
#define DETOUR_CTL_SERVER_H

struct server;
struct ctl_server;

/* ctl_server_new - bind path (an existing socket file is replaced only if
 * nothing answers on it: a second detourd must not steal the first one's). */
struct ctl_server *ctl_server_new(struct server *srv, const char *path, const char **error_r);
void ctl_server_free(struct ctl_server **ctl);

#endif
