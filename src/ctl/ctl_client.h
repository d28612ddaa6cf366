/* SPDX-License-Identifier: ISC */
/*
 * ctl_client.h - detourctl's side of the control socket (ctl_proto.h).
 *
 * Owns: connecting, sending one request, reading the whole answer.
 * Blocking; for command-line tools only.
 */
#ifndef DETOUR_CTL_CLIENT_H
#define DETOUR_CTL_CLIENT_H

/*
 * ctl_request - send request to the daemon listening on path. Returns 0 if
 * the daemon answered "ok", 1 if it answered "error", -1 if it could not be
 * reached (then *answer_r says why). *answer_r is the message and body after
 * the status word (malloc'ed, the caller frees it).
 */
int ctl_request(const char *path, const char *request, char **answer_r);

#endif
