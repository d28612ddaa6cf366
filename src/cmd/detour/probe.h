/* SPDX-License-Identifier: ISC */
/*
 * probe.h - `detour probe HOST`: which of HOST's SMTP ports this network
 * lets through, refuses, silently drops or intercepts, and which to use.
 *
 * Every port is probed at once, each bounded by --timeout: TCP connect,
 * greeting, EHLO, STARTTLS when offered (or implicit TLS on 465, and on a
 * port that stays silent a third of the timeout but completes a TLS
 * handshake), the certificate, EHLO again inside TLS for the AUTH
 * mechanisms, QUIT. No credentials, no MAIL, nothing but HOST is contacted.
 * The facts go to classify.c; the verdicts are printed as a table or JSON,
 * with one line of advice and, when nothing works, a paragraph for the
 * provider. Ports found intercepted are remembered for this network when an
 * account's relay is HOST, so that `detour send` tries them last.
 *
 * Owns: the probing schedule, the output. One thread.
 */
#ifndef DETOUR_CMD_PROBE_H
#define DETOUR_CMD_PROBE_H

/* probe_main - the command; argv[0] is "probe". Returns the exit code: 0
 * when some port is usable, 69 when none is, 64 usage, 68 unknown host. */
int probe_main(int argc, char **argv, const char *config_option);

#endif
