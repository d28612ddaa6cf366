/* SPDX-License-Identifier: ISC */
/*
 * send.h - `detour send` (also run as `sendmail`), `detour flush` and
 * `detour queue`: submitting messages to an account's relay, and the local
 * queue of messages that could not be submitted yet.
 *
 * Owns: the sendmail-compatible command line (options programs pass to
 * sendmail are accepted, and those without meaning here ignored), the
 * envelope (-f, the account's from, recipients from the command line and,
 * with -t, from To/Cc/Bcc), the header fields a submission agent adds, the
 * exit codes (sysexits.h) and the one line on standard error that says what
 * happened. Does not own: finding the port (race.c), the queue files
 * (localqueue.c).
 * One thread; each function is a whole command and returns its exit code.
 */
#ifndef DETOUR_CMD_SEND_H
#define DETOUR_CMD_SEND_H

/* send_main - `detour send ARGS` (argv[0] is "send"), or `sendmail ARGS`
 * (argv[0] is the program name): the same options either way. */
int send_main(int argc, char **argv, const char *config_option);

/* flush_main - `detour flush [--account NAME]`. */
int flush_main(int argc, char **argv, const char *config_option);

/* queue_main - `detour queue`: list the local queue. */
int queue_main(int argc, char **argv, const char *config_option);

#endif
