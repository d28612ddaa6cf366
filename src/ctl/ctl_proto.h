/* SPDX-License-Identifier: ISC */
/*
 * ctl_proto.h - the control protocol between detourctl and detourd.
 *
 * A unix stream socket (mode 0600, [server] control_socket). The client sends
 * one request line of at most CTL_REQUEST_MAX octets ending in LF: words
 * separated by single spaces ("status", "reload", "queue hold QID"). The
 * server answers with a first line "ok" or "error", optionally followed by a
 * space and a one-line message, then zero or more lines of body, and closes
 * the connection. The request never carries secrets.
 */
#ifndef DETOUR_CTL_PROTO_H
#define DETOUR_CTL_PROTO_H

/* Seconds either side waits for the other before giving up. */
#define CTL_TIMEOUT 30

#endif
