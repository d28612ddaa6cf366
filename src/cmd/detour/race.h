/* SPDX-License-Identifier: ISC */
/*
 * race.h - finding a usable connection to an account's relay from the
 * network this machine is on, for `detour send` and `detour flush`.
 *
 * The order: the port that last worked on this network (portmem.h) first,
 * alone for DETOUR_REMEMBERED_HEAD_START_MS or until it fails; then the
 * account's other ports, implicit TLS before STARTTLS (RFC 8314 3.3), each
 * in the order the account lists them, started one after the other as in
 * Happy Eyeballs (RFC 8305 5): the next one when the previous failed or
 * after DETOUR_STAGGER_MS, so a silently dropped port costs a quarter of a
 * second, not its timeout. Ports seen intercepted on this network in the
 * last day go last. Each port is tried on the host's first IPv6 and first
 * IPv4 address.
 *
 * Every attempt requires TLS (STARTTLS required, or implicit) with a
 * certificate that verifies for the host (system CAs or the account's
 * ca_file), and stops, gated (conn.h), once EHLO was answered inside TLS.
 * The first attempt to get there wins: its gate opens (AUTH goes out) and
 * every other attempt is closed. So credentials are never sent without
 * verified TLS, never to a port whose greeting is masked or whose EHLO
 * keywords are rewritten, and never on more than one connection.
 * The winner, and the ports found intercepted, are remembered for this
 * network.
 *
 * Owns: the order, the timing, the verdict on each attempt, the port memory
 * update. Does not own: messages (send.c). One thread.
 */
#ifndef DETOUR_CMD_RACE_H
#define DETOUR_CMD_RACE_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd/detour/client_config.h"
#include "cmd/detour/conn.h"
#include "cmd/detour/netid.h"

struct race {
	/* in */
	const struct client_account *account;
	struct ssl_ctx_st *ssl_ctx;
	const char *password; /* NULL when the account has no user */
	const char *state_dir;
	bool verbose;
	/* out */
	struct conn *winner; /* IDLE and authenticated, on success */
	unsigned port;
	bool implicit;
	struct netid netid;
	int exit_code;      /* on failure: EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM, EX_NOHOST... */
	bool permanent;     /* on failure: queueing will not help (AUTH refused) */
	char summary[1024]; /* on failure: one line, what went wrong on each port */
};

/* race_run - 0 with r->winner, or -1 with r->exit_code and r->summary. */
int race_run(struct race *r);

/* race_free - close the winner, if any. */
void race_free(struct race *r);

#endif
