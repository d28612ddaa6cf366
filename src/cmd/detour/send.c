/* SPDX-License-Identifier: ISC */
/* send.c - see send.h */
#include "cmd/detour/send.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/detour/client_config.h"
#include "cmd/detour/conn.h"
#include "cmd/detour/detour.h"
#include "cmd/detour/localqueue.h"
#include "cmd/detour/message.h"
#include "cmd/detour/race.h"
#include "lib/base64.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_params.h"

struct send_opts {
	const char *config;
	const char *account;
	const char *from; /* -f / -r, angle brackets removed */
	const char *fullname;
	bool extract;     /* -t */
	bool ignore_dots; /* -i, -oi */
	bool verbose;
	bool body_8bit;    /* -B 8BITMIME */
	unsigned notify;   /* -N */
	enum smtp_ret ret; /* -R */
	const char *envid; /* -V */
};

/* What a submission did to each recipient. */
struct outcome {
	struct addr_list ok, temp, perm;
	char temp_text[SMTP_REPLYLINE_MAX]; /* the first temporary reply */
	char perm_text[SMTP_REPLYLINE_MAX]; /* the first permanent reply */
	bool sender_refused;                /* the permanent one was about the sender */
	char ok_text[SMTP_REPLYLINE_MAX];
};

static void outcome_free(struct outcome *o)
{
	addr_list_free(&o->ok);
	addr_list_free(&o->temp);
	addr_list_free(&o->perm);
}

/* ---- the command line ---------------------------------------------------- */

static const char send_usage[] =
    "usage: detour send [-f FROM] [-F NAME] [-t] [-i] [--account NAME] [-v] [RCPT...]\n"
    "       sendmail [-f FROM] [-F NAME] [-t] [-i] [-oi] [-odi] ... [RCPT...]\n"
    "\n"
    "Reads a message on standard input and submits it to the account's relay,\n"
    "through the port that last worked on this network or the first that works.\n"
    "\n"
    "  -f, -r FROM      envelope sender (default: the account's 'from')\n"
    "  -F NAME          full name for the From: field added when there is none\n"
    "  -t               recipients from To:, Cc: and Bcc: too; Bcc: is removed\n"
    "  -i, -oi          a line with a single '.' does not end the message\n"
    "  -N NOTIFY        DSN: never, or success,failure,delay (RFC 3461)\n"
    "  -R full|hdrs     DSN: what a bounce returns\n"
    "  -V ENVID         DSN: envelope id\n"
    "  -B 8BITMIME      the body is 8-bit\n"
    "  --account NAME   use this [account NAME] (default: the one whose 'from'\n"
    "                   is the -f address, else the first)\n"
    "  --config FILE    configuration (default: $DETOUR_CONFIG or\n"
    "                   ~/.config/detour/config)\n"
    "  -v               say which ports are tried and what happens\n"
    "  -q               send the local queue now (as 'detour flush')\n"
    "  -bp              list the local queue (as 'detour queue')\n"
    "Other sendmail options (-odi, -oem, -U, -m, ...) are accepted and ignored.\n"
    "Exit status (sysexits.h): 0 sent (or queued with queue = yes), 64 usage,\n"
    "65 bad message or address, 67 recipient refused, 68 unknown host, 69 no\n"
    "usable port or certificate refused, 75 temporary failure, 77 sender or\n"
    "credentials refused, 78 configuration.\n";

static const char *unbracket(const char *s, char *buf, size_t size)
{
	size_t len = strlen(s);
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		size_t n = len - 2 < size - 1 ? len - 2 : size - 1;
		memcpy(buf, s + 1, n);
		buf[n] = '\0';
		return buf;
	}
	return s;
}

static int parse_notify(const char *s, unsigned *notify_r)
{
	unsigned n = 0;
	char *copy = xstrdup(s);
	int rc = 0;
	for (char *save = NULL, *w = strtok_r(copy, ",", &save); w != NULL;
	     w = strtok_r(NULL, ",", &save)) {
		if (str_ieq(w, "never"))
			n |= SMTP_NOTIFY_NEVER;
		else if (str_ieq(w, "success"))
			n |= SMTP_NOTIFY_SUCCESS;
		else if (str_ieq(w, "failure"))
			n |= SMTP_NOTIFY_FAILURE;
		else if (str_ieq(w, "delay"))
			n |= SMTP_NOTIFY_DELAY;
		else
			rc = -1;
	}
	free(copy);
	/* RFC 3461 4.1: NEVER stands alone. */
	if ((n & SMTP_NOTIFY_NEVER) && n != SMTP_NOTIFY_NEVER)
		rc = -1;
	*notify_r = n;
	return rc;
}

enum send_mode { MODE_SEND, MODE_FLUSH, MODE_LIST };

static char from_buf[SMTP_PATH_MAX + 3];

/* The long options of send, flush and queue alike. */
enum { OPT_ACCOUNT = 256, OPT_CONFIG, OPT_HELP };
static const struct option longopts[] = {
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"help", no_argument, NULL, OPT_HELP},
    {"verbose", no_argument, NULL, 'v'},
    {NULL, 0, NULL, 0},
};

/* parse_args - sendmail's options. Returns -1 after printing a usage
 * error, 1 after --help, 0 otherwise; *first_rcpt_r is optind. */
static int parse_args(int argc, char **argv, struct send_opts *o, enum send_mode *mode_r,
                      int *first_rcpt_r)
{
	*mode_r = MODE_SEND;
	optind = 1;
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":f:F:r:tio:O:B:N:R:V:X:C:L:h:b:q::A:d:p:UmGnv",
	                         longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
		case 'r':
			o->from = unbracket(optarg, from_buf, sizeof(from_buf));
			break;
		case 'F':
			o->fullname = optarg;
			break;
		case 't':
			o->extract = true;
			break;
		case 'i':
			o->ignore_dots = true;
			break;
		case 'o':
			/* -oi is -i; -odi, -oem, -oee, -om, -ob... mean
			 * nothing to a submission agent */
			if (strcmp(optarg, "i") == 0)
				o->ignore_dots = true;
			break;
		case 'B':
			if (str_ieq(optarg, "8BITMIME"))
				o->body_8bit = true;
			break;
		case 'N':
			if (parse_notify(optarg, &o->notify) < 0) {
				detour_warn("-N %s: expected never, or success,failure,delay",
				            optarg);
				return -1;
			}
			break;
		case 'R':
			if (str_ieq(optarg, "full"))
				o->ret = SMTP_RET_FULL;
			else if (str_ieq(optarg, "hdrs"))
				o->ret = SMTP_RET_HDRS;
			else {
				detour_warn("-R %s: expected full or hdrs", optarg);
				return -1;
			}
			break;
		case 'V':
			o->envid = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "m") == 0)
				break;
			if (strcmp(optarg, "p") == 0) {
				*mode_r = MODE_LIST;
				break;
			}
			detour_warn("-b%s is not supported (only -bm, -bp)", optarg);
			return -1;
		case 'q':
			*mode_r = MODE_FLUSH;
			break;
		case 'v':
			o->verbose = true;
			break;
		case OPT_ACCOUNT:
			o->account = optarg;
			break;
		case OPT_CONFIG:
			o->config = optarg;
			break;
		case OPT_HELP:
			fputs(send_usage, stdout);
			return 1;
		case 'O':
		case 'X':
		case 'C':
		case 'L':
		case 'h':
		case 'A':
		case 'd':
		case 'p':
		case 'U':
		case 'm':
		case 'G':
		case 'n':
			break; /* sendmail's, ignored */
		case ':':
			detour_warn("option -%c needs a value", optopt);
			fputs(send_usage, stderr);
			return -1;
		default:
			if (optopt != 0)
				detour_warn("unknown option -%c", optopt);
			else
				detour_warn("unknown option %s", argv[optind - 1]);
			fputs(send_usage, stderr);
			return -1;
		}
	}
	*first_rcpt_r = optind;
	return 0;
}

/* ---- configuration ------------------------------------------------------- */

static int load_config(const char *option, struct client_config **cfg_r)
{
	char *path = client_config_path(option);
	if (path == NULL) {
		detour_warn("no configuration: set HOME or use --config FILE");
		return EX_CONFIG;
	}
	char *errors = NULL;
	if (client_config_load(path, cfg_r, &errors) < 0) {
		/* every problem, one "FILE:LINE: problem" line each */
		fputs(errors, stderr);
		free(errors);
		free(path);
		return EX_CONFIG;
	}
	free(path);
	return 0;
}

static const struct client_account *pick_account(const struct client_config *cfg,
                                                 const struct send_opts *o)
{
	if (o->account != NULL)
		return client_config_account(cfg, o->account);
	if (o->from != NULL)
		for (size_t i = 0; i < cfg->naccounts; i++)
			if (cfg->accounts[i].from != NULL &&
			    str_ieq(cfg->accounts[i].from, o->from))
				return &cfg->accounts[i];
	return client_config_account(cfg, NULL);
}

/* ---- the message ---------------------------------------------------------- */

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : NULL;
}

/* add_rcpts - validate (and qualify: a local name gets the sender's
 * domain, as sendmail qualifies with its own) the addresses, append them. */
static int add_rcpts(struct addr_list *in, const char *domain, struct addr_list *out)
{
	for (size_t i = 0; i < in->n; i++) {
		const char *a = in->addrs[i];
		char *q = strchr(a, '@') == NULL && domain != NULL ? xasprintf("%s@%s", a, domain)
		                                                   : xstrdup(a);
		struct smtp_addr parsed;
		size_t len = strlen(q);
		if (len > SMTP_PATH_MAX ||
		    smtp_addr_parse_mailbox(q, len,
		                            SMTP_ADDR_ALLOW_UTF8 | SMTP_ADDR_ALLOW_POSTMASTER,
		                            &parsed) != SMTP_ADDR_OK) {
			char shown[300];
			detour_warn("'%s' is not a mail address", detour_printable(shown, 200, a));
			free(q);
			return -1;
		}
		bool dup = false;
		for (size_t k = 0; k < out->n; k++)
			if (strcmp(out->addrs[k], q) == 0)
				dup = true;
		if (!dup) {
			if (out->n == DETOUR_RCPTS_MAX) {
				detour_warn("more than %d recipients", DETOUR_RCPTS_MAX);
				free(q);
				return -1;
			}
			addr_list_add(out, q, len);
		}
		free(q);
	}
	return 0;
}

static bool ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s > 0x7f)
			return false;
	return true;
}

/* phrase - a display name as RFC 5322 3.2.5 wants it: a quoted string, or
 * an RFC 2047 encoded word when it is not ASCII. */
static char *phrase(const char *name)
{
	if (!ascii(name)) {
		size_t len = strlen(name);
		char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
		base64_encode((const unsigned char *)name, len, b64, 4 * ((len + 2) / 3) + 1);
		char *out = xasprintf("=?UTF-8?B?%s?=", b64);
		free(b64);
		return out;
	}
	char *out = xmalloc(2 * strlen(name) + 3);
	size_t n = 0;
	out[n++] = '"';
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == '"' || *p == '\\')
			out[n++] = '\\';
		out[n++] = *p;
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}

/* complete_header - RFC 6409 8.1-8.3: a submission agent may add From,
 * Date and Message-ID when they are missing; mail without them is often
 * refused or scored as spam downstream. */
static void complete_header(struct message *m, const char *from, const char *fullname)
{
	char *add = xstrdup("");
	if (!message_has_field(m, "From") && from != NULL && from[0] != '\0') {
		char *old = add;
		if (fullname != NULL && fullname[0] != '\0') {
			char *p = phrase(fullname);
			add = xasprintf("%sFrom: %s <%s>\n", old, p, from);
			free(p);
		} else {
			add = xasprintf("%sFrom: %s\n", old, from);
		}
		free(old);
	}
	if (!message_has_field(m, "Date")) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		/* RFC 5322 3.3, in the C locale */
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		char *old = add;
		add = xasprintf("%sDate: %s\n", old, date);
		free(old);
	}
	if (!message_has_field(m, "Message-ID")) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		const char *domain = from != NULL ? domain_of(from) : NULL;
		char *old = add;
		add = xasprintf("%sMessage-ID: <%lld.%09ld.%ld@%s>\n", old, (long long)ts.tv_sec,
		                ts.tv_nsec, (long)getpid(),
		                domain != NULL ? domain : detour_ehlo_name());
		free(old);
	}
	if (add[0] != '\0')
		message_prepend(m, add);
	free(add);
}

/* smtp_size - RFC 1870 3: the size with CRLF line ends, without the
 * dot-stuffing and the final dot. */
static uint64_t smtp_size(const struct message *m)
{
	uint64_t size = 0;
	for (size_t i = 0; i < m->len; i++) {
		char ch = m->data[i];
		if (ch == '\n' && (i == 0 || m->data[i - 1] != '\r'))
			size += 2;
		else if (ch == '\r' && (i + 1 == m->len || m->data[i + 1] != '\n'))
			size += 2;
		else
			size += 1;
	}
	if (m->len > 0 && m->data[m->len - 1] != '\n')
		size += 2;
	return size;
}

/* ---- submitting ------------------------------------------------------------ */

/* transmit - one message on an IDLE connection; every result final. */
static void transmit(struct conn *c, const char *from, const struct addr_list *rcpts,
                     const struct message *m, const struct send_opts *o, struct outcome *out)
{
	memset(out, 0, sizeof(*out));
	struct smtp_client_rcpt *rc = xcalloc(rcpts->n, sizeof(*rc));
	struct smtp_client_result *res = xcalloc(rcpts->n, sizeof(*res));
	bool utf8 = !ascii(from);
	for (size_t i = 0; i < rcpts->n; i++) {
		rc[i].address = rcpts->addrs[i];
		rc[i].notify = o != NULL ? o->notify : 0;
		if (!ascii(rcpts->addrs[i]))
			utf8 = true;
	}
	struct smtp_client_message cm = {
	    .reverse_path = from,
	    .rcpts = rc,
	    .nrcpts = rcpts->n,
	    .size = smtp_size(m),
	    .body_8bit = (o != NULL && o->body_8bit) || message_is_8bit(m),
	    .smtputf8 = utf8,
	    .ret = o != NULL ? o->ret : SMTP_RET_UNSPECIFIED,
	    .envid = o != NULL ? o->envid : NULL,
	};
	conn_send(c, &cm, res, m->data, m->len);
	while (conn_status(c) == CONN_BUSY)
		conn_wait(&c, 1, 0);
	for (size_t i = 0; i < rcpts->n; i++) {
		const struct smtp_client_result *r = &res[i];
		char text[SMTP_REPLYLINE_MAX];
		detour_reply_text(text, sizeof(text), r);
		const char *a = rcpts->addrs[i];
		switch (r->status) {
		case SMTP_CLIENT_OK:
			addr_list_add(&out->ok, a, strlen(a));
			if (out->ok_text[0] == '\0')
				str_copy(out->ok_text, text, sizeof(out->ok_text));
			break;
		case SMTP_CLIENT_PERMFAIL:
			addr_list_add(&out->perm, a, strlen(a));
			if (out->perm_text[0] == '\0') {
				str_copy(out->perm_text, text, sizeof(out->perm_text));
				/* MAIL FROM refused: 553, or an RFC 3463 code about
				 * the sender (X.1.7, X.1.8) or the authorization to
				 * use it (X.7.1); the client gives every recipient
				 * that reply. */
				out->sender_refused = r->code == 553 ||
				                      strcmp(r->enhanced, "5.7.1") == 0 ||
				                      strcmp(r->enhanced, "5.1.7") == 0 ||
				                      strcmp(r->enhanced, "5.1.8") == 0;
			}
			break;
		default:
			addr_list_add(&out->temp, a, strlen(a));
			if (out->temp_text[0] == '\0')
				str_copy(out->temp_text, text, sizeof(out->temp_text));
			break;
		}
	}
	free(rc);
	free(res);
}

static void join(const struct addr_list *l, char *buf, size_t size)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < l->n && off + 4 < size; i++) {
		int w = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", l->addrs[i]);
		if (w < 0 || (size_t)w >= size - off) {
			str_copy(buf + (size - 5 > off ? off : size - 5), "...", 5);
			break;
		}
		off += (size_t)w;
	}
}

struct session {
	const struct client_account *account;
	SSL_CTX *ctx;
	char *password;
	char *state_dir;
	char *queue_dir;
	struct race race;
	bool connected;
	size_t flushed, flush_left, flush_refused;
};

static void session_end(struct session *s)
{
	if (s->race.winner != NULL && conn_status(s->race.winner) == CONN_IDLE) {
		conn_quit(s->race.winner);
		while (conn_status(s->race.winner) == CONN_BUSY)
			conn_wait(&s->race.winner, 1, 0);
	}
	race_free(&s->race);
	if (s->ctx != NULL)
		SSL_CTX_free(s->ctx);
	if (s->password != NULL) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->state_dir);
	free(s->queue_dir);
	memset(s, 0, sizeof(*s));
}

/* session_open - credentials and TLS settings; 0 or an exit code. */
static int session_open(struct session *s, const struct client_account *a, bool verbose)
{
	memset(s, 0, sizeof(*s));
	s->account = a;
	s->state_dir = detour_state_dir();
	if (s->state_dir != NULL)
		s->queue_dir = xasprintf("%s/queue", s->state_dir);
	char err[512];
	s->ctx = conn_ssl_ctx(a->ca_file, err, sizeof(err));
	if (s->ctx == NULL) {
		detour_warn("account '%s': %s", a->name, err);
		return EX_CONFIG;
	}
	s->race.account = a;
	s->race.ssl_ctx = s->ctx;
	s->race.state_dir = s->state_dir;
	s->race.verbose = verbose;
	return 0;
}

/* session_connect - the password is fetched only now (a password_command
 * may ask an agent, or a person), then the race runs; once per session. */
static bool session_connect(struct session *s)
{
	if (s->connected)
		return s->race.winner != NULL;
	s->connected = true;
	const struct client_account *a = s->account;
	if (a->user != NULL) {
		char err[512];
		s->password = client_config_password(a, err, sizeof(err));
		if (s->password == NULL) {
			snprintf(s->race.summary, sizeof(s->race.summary), "account '%s': %s",
			         a->name, err);
			s->race.exit_code = EX_CONFIG;
			s->race.permanent = true;
			return false;
		}
	}
	s->race.password = s->password;
	return race_run(&s->race) == 0;
}

/* flush_queue - send the account's queued messages over the session's
 * connection (connecting when there are any). */
static void flush_queue(struct session *s, bool verbose)
{
	if (s->queue_dir == NULL)
		return;
	char **ids;
	size_t n = localqueue_list(s->queue_dir, &ids);
	for (size_t i = 0; i < n; i++) {
		struct localqueue_entry e;
		char err[512];
		int r = localqueue_load(s->queue_dir, ids[i], &e, err, sizeof(err));
		if (r < 0)
			detour_warn("%s", err);
		if (r <= 0)
			continue;
		if (strcmp(e.account, s->account->name) != 0) {
			localqueue_entry_free(&e);
			continue;
		}
		if (!session_connect(s) || conn_status(s->race.winner) != CONN_IDLE) {
			s->flush_left++;
			localqueue_entry_free(&e);
			continue;
		}
		struct outcome out;
		transmit(s->race.winner, e.from, &e.rcpts, &e.msg, NULL, &out);
		char list[400];
		if (out.perm.n > 0) {
			join(&out.perm, list, sizeof(list));
			detour_warn("queued message %s: %s refused %s: %s", e.id, s->account->host,
			            list, out.perm_text);
			s->flush_refused++;
		}
		if (out.temp.n == 0) {
			if (localqueue_remove(&e) < 0)
				detour_warn("cannot remove %s: %s", e.path, strerror(errno));
			if (out.ok.n > 0) {
				s->flushed++;
				if (verbose)
					detour_warn("queued message %s sent: %s", e.id,
					            out.ok_text);
			}
		} else {
			s->flush_left++;
			if ((out.ok.n > 0 || out.perm.n > 0) &&
			    localqueue_rewrite(&e, &out.temp, err, sizeof(err)) < 0)
				detour_warn("%s", err);
		}
		outcome_free(&out);
		localqueue_entry_free(&e);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static int queue_message(struct session *s, const char *from, const struct addr_list *rcpts,
                         const struct message *m, const char *why)
{
	char err[512], *id;
	if (s->queue_dir == NULL) {
		detour_warn("%s; cannot queue it: no HOME", why);
		return EX_CANTCREAT;
	}
	if (localqueue_add(s->queue_dir, s->account->name, from, rcpts, m, &id, err, sizeof(err)) <
	    0) {
		detour_warn("%s; cannot queue it: %s", why, err);
		return EX_CANTCREAT;
	}
	detour_warn("%s; message queued as %s, to be sent by the next 'detour send' or "
	            "'detour flush'",
	            why, id);
	free(id);
	return EX_OK;
}

/* ---- the commands ------------------------------------------------------------ */

static int flush_accounts(const char *config, const char *account, bool verbose);
static int list_queue(void);

int send_main(int argc, char **argv, const char *config_option)
{
	struct send_opts o = {.config = config_option, .ret = SMTP_RET_UNSPECIFIED};
	enum send_mode mode;
	int first;
	int pr = parse_args(argc, argv, &o, &mode, &first);
	if (pr != 0)
		return pr > 0 ? EX_OK : EX_USAGE;
	if (mode == MODE_FLUSH)
		return flush_accounts(o.config, o.account, o.verbose);
	if (mode == MODE_LIST)
		return list_queue();

	struct client_config *cfg = NULL;
	int rc = load_config(o.config, &cfg);
	if (rc != 0)
		return rc;
	const struct client_account *a = pick_account(cfg, &o);
	if (a == NULL) {
		detour_warn("no account '%s' in %s", o.account, cfg->path);
		client_config_free(&cfg);
		return EX_CONFIG;
	}
	const char *from = o.from != NULL ? o.from : a->from;
	if (from == NULL) {
		detour_warn("no sender address: set 'from' in [account %s] or use -f", a->name);
		client_config_free(&cfg);
		return EX_CONFIG;
	}
	if (from[0] != '\0') {
		struct smtp_addr parsed;
		size_t len = strlen(from);
		if (len > SMTP_PATH_MAX || smtp_addr_parse_mailbox(from, len, SMTP_ADDR_ALLOW_UTF8,
		                                                   &parsed) != SMTP_ADDR_OK) {
			detour_warn("-f %s: not a mail address", from);
			client_config_free(&cfg);
			return EX_DATAERR;
		}
	}

	struct message m;
	enum message_read_result mr =
	    message_read(STDIN_FILENO, !o.ignore_dots, DETOUR_MESSAGE_MAX, &m);
	if (mr != MESSAGE_READ_OK) {
		if (mr == MESSAGE_READ_TOO_BIG)
			detour_warn("the message is larger than %u MiB", DETOUR_MESSAGE_MAX >> 20);
		else
			detour_warn("cannot read the message: %s", strerror(errno));
		message_free(&m);
		client_config_free(&cfg);
		return mr == MESSAGE_READ_TOO_BIG ? EX_DATAERR : EX_IOERR;
	}

	/* recipients: the arguments (each may be a list), then -t's */
	struct addr_list given = {0}, rcpts = {0};
	for (int i = first; i < argc; i++)
		if (message_parse_addrs(argv[i], strlen(argv[i]), &given) == 0) {
			detour_warn("'%s' is not a mail address", argv[i]);
			rc = EX_DATAERR;
		}
	if (o.extract) {
		message_field_addrs(&m, "To", &given);
		message_field_addrs(&m, "Cc", &given);
		message_field_addrs(&m, "Bcc", &given);
		/* RFC 5322 3.6.3: the Bcc: field is not passed on */
		message_remove_field(&m, "Bcc");
	}
	const char *domain =
	    from[0] != '\0' ? domain_of(from) : (a->from ? domain_of(a->from) : NULL);
	if (rc == 0 && add_rcpts(&given, domain, &rcpts) < 0)
		rc = EX_DATAERR;
	addr_list_free(&given);
	if (rc == 0 && rcpts.n == 0) {
		detour_warn("no recipients: give them as arguments, or use -t");
		rc = EX_USAGE;
	}
	if (rc != 0) {
		addr_list_free(&rcpts);
		message_free(&m);
		client_config_free(&cfg);
		return rc;
	}
	complete_header(&m, from[0] != '\0' ? from : a->from, o.fullname);

	struct session s;
	rc = session_open(&s, a, o.verbose);
	if (rc == 0) {
		/* older messages first */
		flush_queue(&s, o.verbose);
		if (!session_connect(&s)) {
			if (a->queue && !s.race.permanent)
				rc = queue_message(&s, from, &rcpts, &m, s.race.summary);
			else {
				detour_warn("%s; message not sent", s.race.summary);
				rc = s.race.exit_code;
			}
		} else if (conn_status(s.race.winner) != CONN_IDLE) {
			/* lost while sending the queue */
			const char *why = conn_error(s.race.winner);
			if (a->queue)
				rc = queue_message(&s, from, &rcpts, &m, why);
			else {
				detour_warn("%s: %s; message not sent", a->host, why);
				rc = EX_TEMPFAIL;
			}
		} else {
			struct outcome out;
			transmit(s.race.winner, from, &rcpts, &m, &o, &out);
			char list[400];
			rc = EX_OK;
			if (out.perm.n > 0) {
				join(&out.perm, list, sizeof(list));
				detour_warn("%s refused %s %s: %s", a->host,
				            out.sender_refused ? "the sender for"
				                               : "the message for",
				            list, out.perm_text);
				rc = out.sender_refused ? EX_NOPERM : EX_NOUSER;
			}
			if (out.temp.n > 0) {
				join(&out.temp, list, sizeof(list));
				char *why = xasprintf("%s: temporary failure for %s: %s", a->host,
				                      list, out.temp_text);
				if (a->queue) {
					int q = queue_message(&s, from, &out.temp, &m, why);
					if (rc == EX_OK)
						rc = q;
				} else {
					detour_warn("%s; not sent to them", why);
					if (rc == EX_OK)
						rc = EX_TEMPFAIL;
				}
				free(why);
			}
			if (o.verbose && out.ok.n > 0) {
				join(&out.ok, list, sizeof(list));
				detour_warn("sent to %s through %s port %u (%s): %s", list, a->host,
				            s.race.port,
				            s.race.implicit ? "implicit TLS" : "STARTTLS",
				            out.ok_text);
			}
			outcome_free(&out);
		}
	}
	session_end(&s);
	addr_list_free(&rcpts);
	message_free(&m);
	client_config_free(&cfg);
	return rc;
}

static const char flush_usage[] =
    "usage: detour flush [--account NAME] [--config FILE] [-v]\n"
    "\n"
    "Sends the messages of the local queue (accounts with queue = yes keep there\n"
    "what could not be sent). Exit status 0 when nothing is left, 75 when some\n"
    "messages are still waiting, 78 for a configuration problem.\n";

static int simple_args(int argc, char **argv, const char *usage, const char **config,
                       const char **account, bool *verbose)
{
	optind = 1;
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":v", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_ACCOUNT:
			*account = optarg;
			break;
		case OPT_CONFIG:
			*config = optarg;
			break;
		case 'v':
			*verbose = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			return 1;
		default:
			detour_warn("unknown option %s", argv[optind - 1]);
			fputs(usage, stderr);
			return -1;
		}
	}
	if (optind < argc) {
		detour_warn("unexpected argument %s", argv[optind]);
		fputs(usage, stderr);
		return -1;
	}
	return 0;
}

/* flush_accounts - `detour flush` and `sendmail -q`: the queue of one
 * account, or of every account when account is NULL. */
static int flush_accounts(const char *config, const char *account, bool verbose)
{
	struct client_config *cfg = NULL;
	int rc = load_config(config, &cfg);
	if (rc != 0)
		return rc;
	if (account != NULL && client_config_account(cfg, account) == NULL) {
		detour_warn("no account '%s' in %s", account, cfg->path);
		client_config_free(&cfg);
		return EX_CONFIG;
	}
	size_t sent = 0, left = 0;
	rc = EX_OK;
	for (size_t i = 0; i < cfg->naccounts; i++) {
		const struct client_account *a = &cfg->accounts[i];
		if (account != NULL && strcmp(a->name, account) != 0)
			continue;
		struct session s;
		int r = session_open(&s, a, verbose);
		if (r != 0) {
			rc = r;
			session_end(&s);
			continue;
		}
		flush_queue(&s, verbose);
		if (s.connected && s.race.winner == NULL) {
			detour_warn("%s", s.race.summary);
			if (rc == EX_OK)
				rc = EX_TEMPFAIL;
		}
		sent += s.flushed;
		left += s.flush_left;
		session_end(&s);
	}
	if (sent > 0 || left > 0)
		detour_warn("%zu queued message%s sent, %zu left in the queue", sent,
		            sent == 1 ? "" : "s", left);
	if (rc == EX_OK && left > 0)
		rc = EX_TEMPFAIL;
	client_config_free(&cfg);
	return rc;
}

int flush_main(int argc, char **argv, const char *config_option)
{
	const char *config = config_option, *account = NULL;
	bool verbose = false;
	int pr = simple_args(argc, argv, flush_usage, &config, &account, &verbose);
	if (pr != 0)
		return pr > 0 ? EX_OK : EX_USAGE;
	return flush_accounts(config, account, verbose);
}

/* list_queue - `detour queue` and `sendmail -bp`: every account's. */
static int list_queue(void)
{
	char *state = detour_state_dir();
	if (state == NULL) {
		detour_warn("no HOME: no local queue");
		return EX_CONFIG;
	}
	char *dir = xasprintf("%s/queue", state);
	char **ids;
	size_t n = localqueue_list(dir, &ids);
	for (size_t i = 0; i < n; i++) {
		struct localqueue_entry e;
		char err[512];
		int r = localqueue_load(dir, ids[i], &e, err, sizeof(err));
		if (r > 0) {
			char list[400];
			join(&e.rcpts, list, sizeof(list));
			printf("%s  account=%s  from=<%s>  to=%s  size=%zu\n", e.id, e.account,
			       e.from, list, e.msg.len);
			localqueue_entry_free(&e);
		} else if (r == 0) {
			printf("%s  (being sent)\n", ids[i]);
		} else {
			detour_warn("%s", err);
		}
		free(ids[i]);
	}
	free(ids);
	if (n == 0)
		printf("the local queue is empty\n");
	free(dir);
	free(state);
	return EX_OK;
}

static const char queue_usage[] = "usage: detour queue [--config FILE]\n"
                                  "\n"
                                  "Lists the messages waiting in the local queue.\n";

int queue_main(int argc, char **argv, const char *config_option)
{
	const char *config = config_option, *account = NULL;
	bool verbose = false;
	int pr = simple_args(argc, argv, queue_usage, &config, &account, &verbose);
	if (pr != 0)
		return pr > 0 ? EX_OK : EX_USAGE;
	return list_queue();
}
