/* SPDX-License-Identifier: ISC */
/*
 * detour - the end user's tool (SPEC.md "The end user's tool"):
 *
 *   detour probe HOST ...   which of HOST's SMTP ports this network lets
 *                           through, refuses, drops or intercepts (probe.c)
 *   detour send ...         sendmail-compatible submission through the port
 *                           that works on this network (send.c, race.c)
 *   detour flush            send the local queue
 *   detour queue            list the local queue
 *
 * Run as `sendmail` (a symbolic link), it is `detour send`, so cron,
 * scripts and PHP's mail() use it unchanged.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/detour/detour.h"
#include "cmd/detour/probe.h"
#include "cmd/detour/send.h"
#include "lib/version.h"

static const char usage[] =
    "usage: detour [--config FILE] COMMAND [ARGS]\n"
    "\n"
    "  probe HOST    which of HOST's SMTP ports this network lets through,\n"
    "                refuses, silently drops or intercepts, and which to use\n"
    "  send [RCPT..] submit the message on standard input, like sendmail, through\n"
    "                the port that last worked on this network or the first that\n"
    "                works (a 'sendmail' link to detour is 'detour send')\n"
    "  flush         send the messages waiting in the local queue\n"
    "  queue         list them\n"
    "\n"
    "'detour COMMAND --help' tells more; detour(1) tells everything.\n"
    "Configuration: --config FILE, $DETOUR_CONFIG, or ~/.config/detour/config.\n";

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash != NULL ? slash + 1 : path;
}

int main(int argc, char **argv)
{
	/* A relay that closes on us must not kill the process mid-write. */
	signal(SIGPIPE, SIG_IGN);
	const char *name = argc > 0 ? base_name(argv[0]) : "detour";
	if (strcmp(name, "sendmail") == 0 || strcmp(name, "detour-sendmail") == 0)
		return send_main(argc, argv, NULL);
	if (strcmp(name, "mailq") == 0) {
		char *qargv[] = {"queue", NULL};
		return queue_main(1, qargv, NULL);
	}

	const char *config = NULL;
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return EX_OK;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("detour %s\n", DETOUR_VERSION);
			return EX_OK;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config = argv[i + 1];
			i += 2;
			continue;
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			config = argv[i] + 9;
			i++;
			continue;
		}
		fprintf(stderr, "detour: unknown option %s\n%s", argv[i], usage);
		return EX_USAGE;
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[i];
	int sub_argc = argc - i;
	char **sub_argv = argv + i;
	if (strcmp(cmd, "probe") == 0)
		return probe_main(sub_argc, sub_argv, config);
	if (strcmp(cmd, "send") == 0)
		return send_main(sub_argc, sub_argv, config);
	if (strcmp(cmd, "flush") == 0)
		return flush_main(sub_argc, sub_argv, config);
	if (strcmp(cmd, "queue") == 0)
		return queue_main(sub_argc, sub_argv, config);
	if (strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return EX_OK;
	}
	fprintf(stderr, "detour: unknown command '%s'\n%s", cmd, usage);
	return EX_USAGE;
}
