/* SPDX-License-Identifier: ISC */
/*
 * detour.h - what every part of the end user's tool `detour` shares: its
 * limits, exit codes, where it keeps its state, and small text helpers.
 *
 * Owns: the tool's own limits (the protocol limits stay in lib/limits.h),
 * the state folder layout (~/.local/state/detour: the per-network port
 * memory and the local queue), the EHLO name the tool announces, and making
 * a remote's text safe to print on a terminal.
 * Does not own: anything about one command (probe.c, send.c).
 * Who may call: every file under src/cmd/detour/, and their unit tests.
 */
#ifndef DETOUR_CMD_DETOUR_H
#define DETOUR_CMD_DETOUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sysexits.h>

struct smtp_client_result;

/* Ports one account or one probe may name. */
#define DETOUR_PORTS_MAX 16
/* Accounts in one client configuration file. */
#define DETOUR_ACCOUNTS_MAX 64
/* Largest message `detour send` reads from standard input; more is refused
 * (EX_DATAERR) instead of growing memory without bound. */
#define DETOUR_MESSAGE_MAX (64u * 1024 * 1024)
/* Recipients of one message (command line plus -t headers). */
#define DETOUR_RCPTS_MAX 1000
/* `detour probe --repeat N`: at most this many rounds. */
#define DETOUR_REPEAT_MAX 20
/* Longest --timeout / account timeout, seconds. */
#define DETOUR_TIMEOUT_MAX 3600
/* Default per-port bound of `detour probe`, seconds. */
#define DETOUR_PROBE_TIMEOUT_DEFAULT 10
/* Default bound on reaching a usable connection (TCP, TLS, EHLO) in
 * `detour send`, per attempt, seconds. */
#define DETOUR_SEND_TIMEOUT_DEFAULT 20
/* Happy Eyeballs (RFC 8305 5): the next port is tried when the previous
 * attempt failed or after this many milliseconds, whichever comes first;
 * 250 ms is the RFC's recommended Connection Attempt Delay. */
#define DETOUR_STAGGER_MS 250
/* The port that last worked on this network is tried alone for this long
 * (or until it fails) before the others join the race. */
#define DETOUR_REMEMBERED_HEAD_START_MS 1000
/* A port seen intercepted on a network is skipped there for this long. */
#define DETOUR_INTERCEPTED_TTL (24 * 3600)

/* Exit codes: sysexits.h (EX_OK, EX_USAGE 64, EX_DATAERR 65, EX_NOUSER 67,
 * EX_NOHOST 68, EX_UNAVAILABLE 69, EX_SOFTWARE 70, EX_OSERR 71,
 * EX_CANTCREAT 73, EX_IOERR 74, EX_TEMPFAIL 75, EX_NOPERM 77, EX_CONFIG 78). */

/* detour_state_dir - the folder for the port memory and the queue:
 * $XDG_STATE_HOME/detour, else $HOME/.local/state/detour. NULL (and errno)
 * when neither variable is set. The caller frees. */
char *detour_state_dir(void);

/* detour_mkdirs - create path and its missing parents with mode (0700 for
 * everything detour creates: it holds mail). 0 or -1 with errno. */
int detour_mkdirs(const char *path, unsigned mode);

/* detour_ehlo_name - the name this machine gives in EHLO: its host name
 * when that is a valid domain, "localhost" otherwise. Static storage. */
const char *detour_ehlo_name(void);

/* detour_warn - one line on standard error: "detour: ", the formatted
 * text, a line end. */
void detour_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* detour_printable - copy src into dst (size octets) for a terminal:
 * controls, DEL and octets above 0x7e become '?'; cut to fit. Returns dst. */
char *detour_printable(char *dst, size_t size, const char *src);

/* detour_reply_text - a result for a person, made printable (see
 * detour_printable) and cut to fit dst: "CODE ENHANCED TEXT" for the
 * server's reply, or detour's own text alone. Returns dst. */
char *detour_reply_text(char *dst, size_t size, const struct smtp_client_result *r);

/* detour_expand_home - "~/x" becomes "$HOME/x"; anything else is copied.
 * The caller frees. */
char *detour_expand_home(const char *path);

/* detour_is_ip_literal - is s a numeric IPv4 or IPv6 address? */
bool detour_is_ip_literal(const char *s);

#endif
