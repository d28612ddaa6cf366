/* SPDX-License-Identifier: ISC */
/*
 * classify.h - what a probe of one host's ports means: for each port `ok`,
 * `refused`, `blocked`, `intercepted` or (over several rounds) `throttled`,
 * with the reason in one sentence.
 *
 * Owns: the rules, and only the rules. A port is
 *   refused      when the TCP connection is refused (a reset, or an ICMP
 *                error: the network or the server says no at once), or the
 *                server's greeting is 4xx/5xx;
 *   blocked      when nothing answers within the time: SYNs silently dropped,
 *                or a connection that opens but never says a word;
 *   intercepted  when something answers that is not the host's server (the
 *                signs of a transparent proxy or a firewall's SMTP
 *                inspection): a masked greeting ("220 ****"), rewritten EHLO
 *                keywords ("XXXXXXXA" where STARTTLS was), a TLS certificate
 *                that is not the host's or differs from the one the other
 *                ports show, no TLS here while other ports have it, or a
 *                server name that is neither the host's nor the one the
 *                host's server gives on its other ports;
 *   ok           otherwise; `usable` when, on top, TLS works there (a mail
 *                program can then send a password over it);
 *   throttled    (--repeat) when a port answers some attempts but not others.
 * Does not own: gathering the facts (probe.c), printing them.
 * Pure: no I/O, no globals. Any thread.
 */
#ifndef DETOUR_CMD_CLASSIFY_H
#define DETOUR_CMD_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd/detour/tlsinfo.h"
#include "lib/limits.h"

enum probe_result {
	PROBE_OK,
	PROBE_REFUSED,
	PROBE_BLOCKED,
	PROBE_INTERCEPTED,
	PROBE_THROTTLED,
};

enum probe_connect {
	PROBE_CONNECT_OK,
	PROBE_CONNECT_REFUSED,     /* ECONNREFUSED: a TCP reset or ICMP port unreachable */
	PROBE_CONNECT_UNREACHABLE, /* EHOSTUNREACH, ENETUNREACH, EACCES...: ICMP prohibited */
	PROBE_CONNECT_TIMEOUT,     /* no answer at all */
	PROBE_CONNECT_ERROR,       /* anything else; see connect_error */
};

enum probe_tls {
	PROBE_TLS_NONE,
	PROBE_TLS_STARTTLS, /* RFC 3207 */
	PROBE_TLS_IMPLICIT, /* RFC 8314 3 */
};

#define PROBE_TEXT_MAX     SMTP_REPLYLINE_MAX
#define PROBE_KEYWORDS_MAX 1024
#define PROBE_DETAIL_MAX   768

/* The facts about one port, gathered by one attempt. Texts are raw. */
struct probe_obs {
	unsigned port;
	bool implicit_expected; /* probed as implicit TLS first (465) */
	enum probe_connect connect;
	char connect_error[128];
	bool silent;       /* connected, but no greeting and no TLS in time */
	int greeting_code; /* 0: none */
	char greeting[PROBE_TEXT_MAX];
	char ehlo[PROBE_TEXT_MAX];         /* first line of the first EHLO reply */
	char keywords[PROBE_KEYWORDS_MAX]; /* that reply's other lines, '\n' between */
	char tls_ehlo[PROBE_TEXT_MAX];     /* first line of the EHLO reply inside STARTTLS */
	bool starttls_offered;
	enum probe_tls tls_mode; /* how TLS was reached; NONE: it was not */
	char tls_error[160];     /* a handshake that was tried and failed */
	struct tlsinfo tls;
	char auth[256]; /* AUTH mechanisms of the last EHLO, raw */
};

struct probe_verdict {
	enum probe_result result;
	bool usable;
	char detail[PROBE_DETAIL_MAX];
};

/* classify_ports - the verdict on each of n ports probed in the same round
 * (the rules compare ports with each other). timeout is the per-port bound
 * in seconds, for the wording. */
void classify_ports(const char *host, unsigned timeout, const struct probe_obs *obs, size_t n,
                    struct probe_verdict *verdicts_r);

/* classify_repeat - one port's verdict over nrounds rounds. */
void classify_repeat(const struct probe_verdict *rounds, size_t nrounds,
                     struct probe_verdict *verdict_r);

/* classify_masked - does this greeting or EHLO text look masked by a
 * firewall ("****************")? */
bool classify_masked(const char *text);

/* classify_mangled_keywords - is an EHLO keyword (one per line of
 * keywords) rewritten by a firewall ("XXXXXXXA")? Those keywords are
 * copied into which, ", " between them, as many as fit. */
bool classify_mangled_keywords(const char *keywords, char *which, size_t size);

/* classify_server_name - the first word of a greeting or EHLO text (the
 * server's name, RFC 5321 4.3.1, 4.1.1.1), at most size - 1 octets. */
void classify_server_name(const char *text, char *name, size_t size);

/* classify_name_related - could name be host's server? The same name, or
 * the same registered domain (mx1.example.org for smtp.example.org); for
 * an IP address host, the address or its literal "[192.0.2.1]". */
bool classify_name_related(const char *name, const char *host);

/* classify_result_name - "ok", "refused", "blocked", "intercepted",
 * "throttled". */
const char *classify_result_name(enum probe_result result);

#endif
