/* SPDX-License-Identifier: ISC */
/*
 * detourctl - the operator's tool: the queue, status and reload.
 *
 * Reading the queue (list, show, cat) opens state_dir/queue.db read-only,
 * beside a running detourd. Every change (delete, hold, release) and every
 * question about the running daemon (status, reload) goes over the control
 * socket, so that only the daemon's writer thread ever writes the queue.
 * Commands are a table: words, handler, and the usage line --help prints.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "ctl/ctl_client.h"
#include "lib/json.h"
#include "lib/util.h"
#include "lib/version.h"
#include "queue/queue_view.h"
#include "queue/spool.h"
#include "user.h"

/* sysexits.h values, spelled out where they are used */
#define EXIT_USAGE       64
#define EXIT_DATAERR     65
#define EXIT_UNAVAILABLE 69
#define EXIT_SOFTWARE    70
#define EXIT_CONFIG      78

struct ctl_ctx {
	struct config *cfg;
	bool json;
	int argc; /* arguments after the command words */
	char **argv;
};

struct command {
	const char *words; /* "queue list" */
	int nargs;         /* positional arguments; -1: zero or one */
	const char *usage;
	int (*run)(struct ctl_ctx *ctx);
};

static void format_time(int64_t ms, char *out, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static struct queue_view *open_view(struct ctl_ctx *ctx)
{
	const char *error;
	struct queue_view *v = queue_view_open(ctx->cfg->state_dir, &error);
	if (v == NULL)
		fprintf(stderr, "detourctl: %s\n", error);
	return v;
}

/* ---- queue list ------------------------------------------------------- */

struct list_state {
	bool json;
	size_t count;
	uint64_t bytes;
};

static void json_msg(FILE *out, const struct queue_view_msg *m, bool full)
{
	char when[32];
	format_time(m->arrival_ms, when, sizeof(when));
	fputs("{\"id\":", out);
	json_str(out, m->id);
	fputs(",\"sender\":", out);
	json_str(out, m->sender);
	fputs(",\"recipients\":[", out);
	for (size_t i = 0; i < m->rcpt_count; i++) {
		const struct queue_view_rcpt *r = &m->rcpts[i];
		fputs(i ? ",{\"address\":" : "{\"address\":", out);
		json_str(out, r->address);
		fputs(",\"state\":", out);
		json_str(out, r->state);
		if (full) {
			fprintf(out, ",\"attempts\":%u,\"next_attempt_ms\":%lld,\"last_result\":",
			        r->attempts, (long long)r->next_attempt_ms);
			json_str(out, r->last_result);
			fprintf(out, ",\"delay_warning_sent\":%s", r->warned ? "true" : "false");
			fprintf(out, ",\"notify\":%u,\"orcpt\":", r->notify);
			json_str(out, r->orcpt);
		}
		fputs("}", out);
	}
	fprintf(out, "],\"size\":%llu,\"arrival\":", (unsigned long long)m->size);
	json_str(out, when);
	fprintf(out, ",\"arrival_ms\":%lld,\"listener\":", (long long)m->arrival_ms);
	json_str(out, m->listener);
	fputs(",\"client_address\":", out);
	json_str(out, m->client_addr);
	fputs(",\"account\":", out);
	json_str(out, m->account);
	fprintf(out, ",\"held\":%s", m->held ? "true" : "false");
	if (full) {
		fputs(",\"helo\":", out);
		json_str(out, m->helo);
		fputs(",\"tls\":", out);
		json_str(out, m->tls);
		fputs(",\"envid\":", out);
		json_str(out, m->envid);
		fprintf(out, ",\"smtputf8\":%s", m->smtputf8 ? "true" : "false");
	}
	fputs("}", out);
}

static int list_one(void *arg, const struct queue_view_msg *m)
{
	struct list_state *st = arg;
	if (st->json) {
		fputs(st->count ? ",\n" : "\n", stdout);
		json_msg(stdout, m, false);
	} else {
		char when[32];
		format_time(m->arrival_ms, when, sizeof(when));
		printf("%-16s %10llu  %s  <%s>%s\n", m->id, (unsigned long long)m->size, when,
		       m->sender, m->held ? "  (held)" : "");
		for (size_t i = 0; i < m->rcpt_count; i++)
			printf("%48s<%s>  %s\n", "", m->rcpts[i].address, m->rcpts[i].state);
	}
	st->count++;
	st->bytes += m->size;
	return 0;
}

static int cmd_queue_list(struct ctl_ctx *ctx)
{
	struct queue_view *v = open_view(ctx);
	if (v == NULL)
		return EXIT_UNAVAILABLE;
	struct list_state st = {.json = ctx->json};
	const char *error;
	if (ctx->json)
		fputs("[", stdout);
	else
		printf("%-16s %10s  %-20s  %s\n", "QUEUE ID", "SIZE", "ARRIVAL",
		       "SENDER / RECIPIENTS");
	enum queue_view_result r = queue_view_foreach(v, list_one, &st, &error);
	if (ctx->json)
		fputs(st.count ? "\n]\n" : "]\n", stdout);
	else
		printf("-- %zu message%s, %llu bytes\n", st.count, st.count == 1 ? "" : "s",
		       (unsigned long long)st.bytes);
	queue_view_close(&v);
	if (r != QUEUE_VIEW_OK) {
		fprintf(stderr, "detourctl: %s\n", error);
		return EXIT_SOFTWARE;
	}
	return 0;
}

/* ---- queue show / cat ---------------------------------------------------- */

static int check_qid(const char *qid)
{
	if (!spool_qid_valid(qid)) {
		fprintf(stderr,
		        "detourctl: '%s' is not a queue id (16 characters, as shown by "
		        "'queue list')\n",
		        qid);
		return -1;
	}
	return 0;
}

static int cmd_queue_show(struct ctl_ctx *ctx)
{
	const char *qid = ctx->argv[0], *error;
	if (check_qid(qid) < 0)
		return EXIT_DATAERR;
	struct queue_view *v = open_view(ctx);
	if (v == NULL)
		return EXIT_UNAVAILABLE;
	struct queue_view_msg *m;
	enum queue_view_result r = queue_view_get(v, qid, &m, &error);
	if (r == QUEUE_VIEW_NOTFOUND) {
		fprintf(stderr, "detourctl: %s: no such message in the queue\n", qid);
		queue_view_close(&v);
		return EXIT_DATAERR;
	}
	if (r != QUEUE_VIEW_OK) {
		fprintf(stderr, "detourctl: %s\n", error);
		queue_view_close(&v);
		return EXIT_SOFTWARE;
	}
	if (ctx->json) {
		json_msg(stdout, m, true);
		putchar('\n');
	} else {
		static const char *const bodies[] = {"unspecified", "7BIT", "8BITMIME"};
		static const char *const rets[] = {"unspecified", "FULL", "HDRS"};
		char when[32];
		format_time(m->arrival_ms, when, sizeof(when));
		printf("id: %s\nsender: <%s>\nsize: %llu\narrival: %s\nlistener: %s\n"
		       "client_address: %s\nhelo: %s\ntls: %s\naccount: %s\nheld: %s\n"
		       "body: %s\nsmtputf8: %s\nret: %s\nenvid: %s\n",
		       m->id, m->sender, (unsigned long long)m->size, when,
		       m->listener ? m->listener : "-", m->client_addr ? m->client_addr : "-",
		       m->helo ? m->helo : "-", m->tls ? m->tls : "none",
		       m->account ? m->account : "-", m->held ? "yes" : "no", bodies[m->body_type],
		       m->smtputf8 ? "yes" : "no", rets[m->ret], m->envid ? m->envid : "-");
		for (size_t i = 0; i < m->rcpt_count; i++) {
			const struct queue_view_rcpt *rc = &m->rcpts[i];
			printf("recipient: <%s> state=%s attempts=%u", rc->address, rc->state,
			       rc->attempts);
			if (rc->warned)
				fputs(" delay_warning=sent", stdout);
			if (rc->last_result)
				printf(" last_result=\"%s\"", rc->last_result);
			putchar('\n');
		}
	}
	queue_view_msg_free(&m);
	queue_view_close(&v);
	return 0;
}

static int cmd_queue_cat(struct ctl_ctx *ctx)
{
	const char *qid = ctx->argv[0], *error;
	if (check_qid(qid) < 0)
		return EXIT_DATAERR;
	struct queue_view *v = open_view(ctx);
	if (v == NULL)
		return EXIT_UNAVAILABLE;
	signal(SIGPIPE, SIG_IGN);
	fflush(stdout);
	enum queue_view_result r = queue_view_cat(v, qid, STDOUT_FILENO, &error);
	queue_view_close(&v);
	if (r == QUEUE_VIEW_NOTFOUND) {
		fprintf(stderr, "detourctl: %s: no such message in the queue\n", qid);
		return EXIT_DATAERR;
	}
	if (r != QUEUE_VIEW_OK) {
		fprintf(stderr, "detourctl: %s\n", error);
		return EXIT_SOFTWARE;
	}
	return 0;
}

/* ---- requests to the daemon ------------------------------------------------ */

/* ask_daemon - one control request; prints the answer. */
static int ask_daemon(struct ctl_ctx *ctx, const char *request)
{
	char *answer = NULL;
	int r = ctl_request(ctx->cfg->control_socket, request, &answer);
	size_t len = strlen(answer);
	if (len > 0 && answer[len - 1] == '\n')
		answer[--len] = '\0';
	if (r == 0) {
		if (len > 0)
			puts(answer);
	} else {
		fprintf(stderr, "detourctl: %s\n", answer);
	}
	free(answer);
	return r == 0 ? 0 : r == 1 ? EXIT_DATAERR : EXIT_UNAVAILABLE;
}

static int cmd_queue_op(struct ctl_ctx *ctx, const char *op)
{
	const char *qid = ctx->argv[0];
	if (check_qid(qid) < 0)
		return EXIT_DATAERR;
	char request[64];
	snprintf(request, sizeof(request), "queue %s %s", op, qid);
	return ask_daemon(ctx, request);
}

static int cmd_queue_delete(struct ctl_ctx *ctx)
{
	return cmd_queue_op(ctx, "delete");
}

static int cmd_queue_hold(struct ctl_ctx *ctx)
{
	return cmd_queue_op(ctx, "hold");
}

static int cmd_queue_release(struct ctl_ctx *ctx)
{
	return cmd_queue_op(ctx, "release");
}

static int cmd_queue_flush(struct ctl_ctx *ctx)
{
	if (ctx->argc == 0)
		return ask_daemon(ctx, "queue flush");
	return cmd_queue_op(ctx, "flush");
}

static int cmd_delivery_pause(struct ctl_ctx *ctx)
{
	return ask_daemon(ctx, "delivery pause");
}

static int cmd_delivery_resume(struct ctl_ctx *ctx)
{
	return ask_daemon(ctx, "delivery resume");
}

static int cmd_status(struct ctl_ctx *ctx)
{
	return ask_daemon(ctx, "status");
}

static int cmd_reload(struct ctl_ctx *ctx)
{
	return ask_daemon(ctx, "reload");
}

static const struct command commands[] = {
    {"queue list", 0, "queue list [--json]      every queued message and its recipients",
     cmd_queue_list},
    {"queue show", 1, "queue show ID [--json]   one message's envelope and recipient states",
     cmd_queue_show},
    {"queue cat", 1, "queue cat ID             the message exactly as it will be sent",
     cmd_queue_cat},
    {"queue delete", 1, "queue delete ID          remove a message without a bounce",
     cmd_queue_delete},
    {"queue hold", 1, "queue hold ID            keep a message from being delivered",
     cmd_queue_hold},
    {"queue release", 1, "queue release ID         undo hold", cmd_queue_release},
    {"queue flush", -1, "queue flush [ID]         try deferred messages (or one) now",
     cmd_queue_flush},
    {"delivery pause", 0, "delivery pause           keep queueing, stop sending",
     cmd_delivery_pause},
    {"delivery resume", 0, "delivery resume          send again", cmd_delivery_resume},
    {"status", 0, "status                   up time, connections, queue size", cmd_status},
    {"reload", 0, "reload                   read the configuration file again", cmd_reload},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: detourctl [-c FILE] COMMAND [ARGS]\n\n"
	             "Manage a detour relay: its queue and the running daemon.\n\n"
	             "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %s\n", commands[i].usage);
	ctl_user_usage(out);
	fprintf(out,
	        "\nOptions:\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -h       show this help;  -V  show the version\n"
	        "\nExit status: 0 done; 64 usage; 65 bad argument or refused; 69 daemon or\n"
	        "queue unavailable; 70 internal error; 78 configuration error.\n"
	        "See detourctl(8).\n",
	        CONFIG_DEFAULT_PATH);
}

/* words_match - do the command's words equal argv[0..]? Returns how many. */
static int words_match(const char *words, int argc, char **argv)
{
	char buf[64];
	str_copy(buf, words, sizeof(buf));
	int n = 0;
	for (char *save = NULL, *w = strtok_r(buf, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save)) {
		if (n >= argc || strcmp(argv[n], w) != 0)
			return 0;
		n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	int opt;
	/* --help anywhere before the command, as after it. */
	for (int i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "-c") == 0)
			i++;
	}
	while ((opt = getopt(argc, argv, "+c:hV")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("detourctl %s\n", DETOUR_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;

	/* Account commands have options of their own (--password-stdin,
	 * --hash): user.c parses everything after "user". */
	if (argc >= 1 && strcmp(argv[0], "user") == 0) {
		if (argc == 1) {
			ctl_user_usage(stderr);
			return EXIT_USAGE;
		}
		char *errors = NULL;
		struct config *cfg = config_load(path, &errors);
		if (cfg == NULL) {
			fputs(errors, stderr);
			free(errors);
			return EXIT_CONFIG;
		}
		int rc = ctl_user(cfg, argc - 1, argv + 1);
		config_unref(&cfg);
		return rc;
	}

	/* Options after the command words: --json and --help. */
	struct ctl_ctx ctx = {0};
	char *positional[8];
	int npos = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			ctx.json = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			fprintf(stderr, "detourctl: unknown option '%s'\n", argv[i]);
			return EXIT_USAGE;
		} else if (npos < (int)ARRAY_SIZE(positional)) {
			positional[npos++] = argv[i];
		}
	}
	const struct command *cmd = NULL;
	int used = 0;
	for (size_t i = 0; i < ARRAY_SIZE(commands) && cmd == NULL; i++) {
		used = words_match(commands[i].words, npos, positional);
		if (used > 0)
			cmd = &commands[i];
	}
	if (cmd == NULL) {
		if (npos > 0)
			fprintf(stderr, "detourctl: unknown command '%s'\n", positional[0]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cmd->nargs >= 0 ? npos - used != cmd->nargs : npos - used > 1) {
		fprintf(stderr, "usage: detourctl %s\n", cmd->usage);
		return EXIT_USAGE;
	}

	char *errors = NULL;
	ctx.cfg = config_load(path, &errors);
	if (ctx.cfg == NULL) {
		fputs(errors, stderr);
		free(errors);
		return EXIT_CONFIG;
	}
	ctx.argc = npos - used;
	ctx.argv = positional + used;
	int rc = cmd->run(&ctx);
	config_unref(&ctx.cfg);
	return rc;
}
