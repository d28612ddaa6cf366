/* SPDX-License-Identifier: ISC */
/*
 * user.c - `detourctl user ...`: see user.h.
 *
 * Each command checks its arguments before it touches the database, and
 * looks the account up before it asks for a password, so an operator never
 * types a password for a command that was going to fail anyway. A generated
 * password is printed only after the change is committed: the line on the
 * screen is then always the password that works.
 */
#include "cmd/detourctl/user.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth/accounts.h"
#include "auth/password.h"
#include "config/config.h"
#include "ctl/ctl_client.h"
#include "lib/json.h"
#include "lib/util.h"

/* sysexits.h values, spelled out where they are used */
#define EXIT_USAGE       64
#define EXIT_DATAERR     65
#define EXIT_UNAVAILABLE 69
#define EXIT_SOFTWARE    70
#define EXIT_CONFIG      78

/* Options a command accepts. */
#define OPT_JSON   0x1
#define OPT_STDIN  0x2
#define OPT_HASH   0x4
#define OPT_LIMITS 0x8 /* --messages RATE, --recipients RATE */

struct user_args {
	const char *pos[2]; /* ADDRESS, PATTERN */
	int n_pos;
	bool json;
	bool password_stdin;
	const char *hash;       /* --hash HASH */
	const char *messages;   /* --messages RATE|default|unlimited */
	const char *recipients; /* --recipients RATE|default|unlimited */
};

struct user_cmd {
	const char *name;
	int nargs;
	unsigned options;
	int (*run)(const struct config *cfg, const struct user_args *args);
};

/* The help text: one line per form, several for a command with several. */
static const struct {
	const char *name;
	const char *synopsis;
	const char *text;
} usage_lines[] = {
    {"add", "user add ADDRESS [--password-stdin]",
     "create an account (password generated unless given)"},
    {"add", "user add ADDRESS --hash HASH", "create an account with an existing crypt(3) hash"},
    {"passwd", "user passwd ADDRESS [--password-stdin]",
     "set a new password (generated unless given)"},
    {"passwd", "user passwd ADDRESS --hash HASH", "set an existing crypt(3) hash"},
    {"del", "user del ADDRESS", "delete an account and its sender permissions"},
    {"list", "user list [--json]", "every account and the senders it may use"},
    {"allow", "user allow ADDRESS PATTERN", "let it send as PATTERN (an address or @domain)"},
    {"disallow", "user disallow ADDRESS PATTERN", "take that permission away"},
    {"show", "user show ADDRESS [--json]", "one account: senders, limits, what it may send now"},
    {"limits", "user limits ADDRESS [--messages R] [--recipients R]",
     "own limits (R: COUNT/DURATION, unlimited, default)"},
    {"suspend", "user suspend ADDRESS", "refuse its logins until resumed"},
    {"resume", "user resume ADDRESS", "allow its logins again"},
};

void ctl_user_usage(FILE *out)
{
	int width = 0;
	for (size_t i = 0; i < ARRAY_SIZE(usage_lines); i++) {
		int len = (int)strlen(usage_lines[i].synopsis);
		if (len > width)
			width = len;
	}
	for (size_t i = 0; i < ARRAY_SIZE(usage_lines); i++)
		fprintf(out, "  %-*s  %s\n", width, usage_lines[i].synopsis, usage_lines[i].text);
}

/* cmd_usage - "usage: detourctl user add ..." for one command. */
static int cmd_usage(const char *name)
{
	const char *lead = "usage:";
	for (size_t i = 0; i < ARRAY_SIZE(usage_lines); i++) {
		if (strcmp(usage_lines[i].name, name) == 0) {
			fprintf(stderr, "%s detourctl %s\n", lead, usage_lines[i].synopsis);
			lead = "      ";
		}
	}
	return EXIT_USAGE;
}

/* result_exit - the exit code for a result of a call on an open database. */
static int result_exit(enum accounts_result r)
{
	switch (r) {
	case ACCOUNTS_OK:
		return 0;
	case ACCOUNTS_NOTFOUND:
	case ACCOUNTS_EXISTS:
	case ACCOUNTS_INVALID:
		return EXIT_DATAERR;
	case ACCOUNTS_ERROR:
		break;
	}
	return EXIT_SOFTWARE;
}

/* fail - print "detourctl: message" and return code. */
static int fail(int code, const char *message)
{
	fprintf(stderr, "detourctl: %s\n", message);
	return code;
}

/* open_db - open the account database; on failure print why and return
 * the exit code (a state_dir that is not there, or a file that is not
 * ours, is the configuration's fault). */
static int open_db(const struct config *cfg, enum accounts_mode mode, struct accounts **a_r,
                   enum accounts_result *res_r)
{
	const char *error;
	enum accounts_result r = accounts_open(cfg->state_dir, mode, a_r, &error);
	if (res_r != NULL)
		*res_r = r;
	if (r == ACCOUNTS_OK)
		return 0;
	if (r == ACCOUNTS_NOTFOUND && res_r != NULL)
		return 0; /* the caller handles "no database yet" */
	fprintf(stderr, "detourctl: %s\n", error);
	return r == ACCOUNTS_INVALID ? EXIT_CONFIG : EXIT_UNAVAILABLE;
}

/* normalize - the stored form of an ADDRESS argument, or an exit code. */
static int normalize(const char *address, char *out)
{
	const char *error;
	if (accounts_normalize(address, out, ACCOUNTS_ADDRESS_SIZE, &error) != ACCOUNTS_OK)
		return fail(EXIT_DATAERR, error);
	return 0;
}

/* open_account - what every command on one ADDRESS starts with: its stored
 * form into norm, then the database. res_r as for open_db. Returns 0 or an
 * exit code. */
static int open_account(const struct config *cfg, const char *address, enum accounts_mode mode,
                        char norm[ACCOUNTS_ADDRESS_SIZE], struct accounts **a_r,
                        enum accounts_result *res_r)
{
	int rc = normalize(address, norm);
	return rc != 0 ? rc : open_db(cfg, mode, a_r, res_r);
}

/* ---- passwords ------------------------------------------------------------ */

/* read_password - one line from standard input, without its LF or CRLF,
 * into pw (PASSWORD_MAX + 2 bytes). Read a byte at a time with read(2): no
 * stdio buffer keeps a copy, and nothing after the line is consumed. On a
 * terminal, echo is turned off while the password is typed. Returns 0 or
 * an exit code, with the reason printed. */
static int read_password(const char *address, char *pw)
{
	struct termios saved;
	bool restore = false;
	if (isatty(STDIN_FILENO)) {
		fprintf(stderr, "Password for %s: ", address);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			struct termios quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			quiet.c_lflag |= ECHONL;
			restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	size_t len = 0;
	bool eol = false, too_long = false;
	int read_errno = 0;
	char c = 0;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			read_errno = errno;
		if (n <= 0)
			break;
		if (c == '\n') {
			eol = true;
			break;
		}
		/* Room for PASSWORD_MAX bytes and the CR of a CRLF. */
		if (len == PASSWORD_MAX + 1) {
			too_long = true;
			break;
		}
		pw[len++] = c;
	}
	explicit_bzero(&c, sizeof(c));
	if (restore)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	if (eol && len > 0 && pw[len - 1] == '\r')
		len--;
	pw[len] = '\0';
	if (read_errno != 0) {
		fprintf(stderr, "detourctl: reading the password: %s\n", strerror(read_errno));
		return EXIT_SOFTWARE;
	}
	if (too_long || len > PASSWORD_MAX) {
		fprintf(stderr,
		        "detourctl: the password is longer than %d bytes (the most "
		        "libxcrypt can hash)\n",
		        PASSWORD_MAX);
		return EXIT_DATAERR;
	}
	if (len == 0)
		return fail(EXIT_DATAERR, "the password is empty");
	if (strlen(pw) != len)
		return fail(EXIT_DATAERR, "the password contains a NUL byte");
	return 0;
}

/* print_password - the one line that shows a password. Written with one
 * write(2) from a buffer that is wiped afterwards, so no stdio buffer
 * holds it longer than needed. */
static int print_password(const char *address, const char *password)
{
	char line[ACCOUNTS_ADDRESS_SIZE + PASSWORD_GENERATED_LEN + 32];
	int n = snprintf(line, sizeof(line), "Password for %s: %s\n", address, password);
	fflush(stdout);
	int r = n > 0 && (size_t)n < sizeof(line) ? write_all(STDOUT_FILENO, line, (size_t)n) : -1;
	int err = errno;
	explicit_bzero(line, sizeof(line));
	if (r < 0) {
		fprintf(stderr,
		        "detourctl: the password for %s was set but could not be printed (%s); "
		        "set another with 'detourctl user passwd'\n",
		        address, strerror(err));
		return EXIT_SOFTWARE;
	}
	return 0;
}

/* new_hash - the hash to store: an imported one (--hash), or one made from
 * a password read from standard input or generated (then copied to
 * generated, for print_password). Returns 0 or an exit code. */
static int new_hash(const struct user_args *args, const char *address, char *hash, char *generated)
{
	generated[0] = '\0';
	if (args->hash != NULL) {
		const char *why;
		if (!password_hash_importable(args->hash, &why)) {
			fprintf(stderr, "detourctl: cannot use that hash: %s\n", why);
			return EXIT_DATAERR;
		}
		str_copy(hash, args->hash, PASSWORD_HASH_SIZE);
		return 0;
	}
	char pw[PASSWORD_MAX + 2];
	int r = 0;
	if (args->password_stdin) {
		r = read_password(address, pw);
	} else if (password_generate(pw, sizeof(pw)) < 0) {
		fprintf(stderr, "detourctl: generating a password: %s\n", strerror(errno));
		r = EXIT_SOFTWARE;
	} else {
		str_copy(generated, pw, PASSWORD_GENERATED_LEN + 1);
	}
	if (r == 0 && password_hash(pw, hash, PASSWORD_HASH_SIZE) < 0) {
		fprintf(stderr, "detourctl: hashing the password: %s\n", strerror(errno));
		r = EXIT_SOFTWARE;
	}
	explicit_bzero(pw, sizeof(pw));
	return r;
}

/* ---- commands ---------------------------------------------------------------- */

/* set_password - user add and user passwd: they differ in whether the
 * account must not or must exist. */
static int set_password(const struct config *cfg, const struct user_args *args, bool add)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	char hash[PASSWORD_HASH_SIZE], generated[PASSWORD_GENERATED_LEN + 1];
	struct accounts *a = NULL;
	int rc = open_account(cfg, args->pos[0], ACCOUNTS_READ_WRITE, norm, &a, NULL);
	if (rc != 0)
		return rc;

	const char *error;
	struct account *acct = NULL;
	enum accounts_result r = accounts_get(a, norm, &acct, &error);
	account_free(&acct);
	if (add && r == ACCOUNTS_OK) {
		fprintf(stderr,
		        "detourctl: account %s already exists (change its password with "
		        "'detourctl user passwd')\n",
		        norm);
		rc = EXIT_DATAERR;
	} else if ((add && r != ACCOUNTS_NOTFOUND) || (!add && r != ACCOUNTS_OK)) {
		rc = fail(result_exit(r), error);
	}
	if (rc == 0)
		rc = new_hash(args, norm, hash, generated);
	if (rc == 0) {
		r = add ? accounts_add(a, norm, hash, &error)
		        : accounts_set_hash(a, norm, hash, &error);
		if (r != ACCOUNTS_OK)
			rc = fail(result_exit(r), error);
	}
	accounts_close(&a);
	if (rc == 0 && generated[0] != '\0')
		rc = print_password(norm, generated);
	explicit_bzero(generated, sizeof(generated));
	explicit_bzero(hash, sizeof(hash));
	return rc;
}

static int cmd_add(const struct config *cfg, const struct user_args *args)
{
	return set_password(cfg, args, true);
}

static int cmd_passwd(const struct config *cfg, const struct user_args *args)
{
	return set_password(cfg, args, false);
}

static int cmd_del(const struct config *cfg, const struct user_args *args)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	struct accounts *a = NULL;
	int rc = open_account(cfg, args->pos[0], ACCOUNTS_READ_WRITE, norm, &a, NULL);
	if (rc != 0)
		return rc;
	const char *error;
	enum accounts_result r = accounts_delete(a, norm, &error);
	if (r != ACCOUNTS_OK)
		rc = fail(result_exit(r), error);
	accounts_close(&a);
	return rc;
}

/* allow_or_disallow - both check the pattern before the database is
 * opened. Allowing what is already allowed (or the account's own address)
 * succeeds with a note: the end state is what was asked for, and scripts
 * that provision accounts can run twice. Disallowing what was not allowed
 * is an error: it is most likely a typing mistake the operator should see. */
static int allow_or_disallow(const struct config *cfg, const struct user_args *args, bool allow)
{
	char norm[ACCOUNTS_ADDRESS_SIZE], pat[ACCOUNTS_ADDRESS_SIZE];
	const char *error;
	int rc = normalize(args->pos[0], norm);
	if (rc != 0)
		return rc;
	if (accounts_normalize_pattern(args->pos[1], pat, sizeof(pat), &error) != ACCOUNTS_OK)
		return fail(EXIT_DATAERR, error);
	struct accounts *a = NULL;
	rc = open_db(cfg, ACCOUNTS_READ_WRITE, &a, NULL);
	if (rc != 0)
		return rc;
	enum accounts_result r =
	    allow ? accounts_allow(a, norm, pat, &error) : accounts_disallow(a, norm, pat, &error);
	if (r == ACCOUNTS_EXISTS && allow)
		rc = fail(0, error);
	else if (r != ACCOUNTS_OK)
		rc = fail(result_exit(r), error);
	accounts_close(&a);
	return rc;
}

static int cmd_allow(const struct config *cfg, const struct user_args *args)
{
	return allow_or_disallow(cfg, args, true);
}

static int cmd_disallow(const struct config *cfg, const struct user_args *args)
{
	return allow_or_disallow(cfg, args, false);
}

struct list_state {
	bool json;
	size_t count;
};

static void format_time(int64_t ms, char *out, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* json_account - the fields `user list --json` and `user show --json` share,
 * from '{' on; the caller closes the object. */
static void json_account(const struct account *acct, const char *when)
{
	fputs("{\"address\":", stdout);
	json_str(stdout, acct->address);
	fputs(",\"senders\":[", stdout);
	for (size_t i = 0; i < acct->n_senders; i++) {
		if (i > 0)
			putchar(',');
		json_str(stdout, acct->senders[i]);
	}
	printf("],\"suspended\":%s,\"created\":", acct->suspended ? "true" : "false");
	json_str(stdout, when);
}

static int list_one(void *arg, const struct account *acct)
{
	struct list_state *st = arg;
	char when[32];
	format_time(acct->created_ms, when, sizeof(when));
	if (st->json) {
		fputs(st->count ? ",\n" : "\n", stdout);
		json_account(acct, when);
		putchar('}');
	} else {
		printf("%-32s %-20s ", acct->address, when);
		for (size_t i = 0; i < acct->n_senders; i++)
			printf(" %s", acct->senders[i]);
		if (acct->n_senders == 0)
			fputs(" -", stdout);
		puts(acct->suspended ? "  (suspended)" : "");
	}
	st->count++;
	return 0;
}

static int cmd_list(const struct config *cfg, const struct user_args *args)
{
	struct accounts *a = NULL;
	enum accounts_result r;
	int rc = open_db(cfg, ACCOUNTS_READ_ONLY, &a, &r);
	if (rc != 0)
		return rc;
	struct list_state st = {.json = args->json};
	const char *error = NULL;
	if (st.json)
		fputs("[", stdout);
	else
		printf("%-32s %-20s  %s\n", "ACCOUNT", "CREATED", "MAY ALSO SEND AS");
	/* No database yet is no accounts yet, not an error. */
	if (r == ACCOUNTS_OK)
		r = accounts_foreach(a, list_one, &st, &error);
	else
		r = ACCOUNTS_OK;
	if (st.json)
		fputs(st.count ? "\n]\n" : "]\n", stdout);
	else
		printf("-- %zu account%s\n", st.count, st.count == 1 ? "" : "s");
	if (r != ACCOUNTS_OK)
		rc = fail(result_exit(r), error);
	accounts_close(&a);
	return rc;
}

static int cmd_suspend_or_resume(const struct config *cfg, const struct user_args *args,
                                 bool suspend)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	struct accounts *a = NULL;
	int rc = open_account(cfg, args->pos[0], ACCOUNTS_READ_WRITE, norm, &a, NULL);
	if (rc != 0)
		return rc;
	const char *error;
	enum accounts_result r = accounts_set_suspended(a, norm, suspend, &error);
	if (r != ACCOUNTS_OK)
		rc = fail(result_exit(r), error);
	else
		printf("%s %s\n", norm, suspend ? "suspended: it cannot log in" : "resumed");
	accounts_close(&a);
	return rc;
}

static int cmd_suspend(const struct config *cfg, const struct user_args *args)
{
	return cmd_suspend_or_resume(cfg, args, true);
}

static int cmd_resume(const struct config *cfg, const struct user_args *args)
{
	return cmd_suspend_or_resume(cfg, args, false);
}

/* limit_value - "default" (NULL: the [limits] value), "unlimited" (stored
 * as a rate of 0, which no bucket enforces), or COUNT/DURATION. Returns
 * -1 for anything else. *keep_r: the option was not given. */
static int limit_value(const char *opt, const char *given, const char *current, char *out,
                       size_t size, const char **value_r)
{
	struct config_rate rate;
	const char *e;
	if (given == NULL) {
		*value_r = current;
		return 0;
	}
	if (strcmp(given, "default") == 0) {
		*value_r = NULL;
		return 0;
	}
	if (strcmp(given, "unlimited") == 0) {
		str_copy(out, "0/1d", size);
		*value_r = out;
		return 0;
	}
	if (config_parse_rate(given, &rate, &e) < 0) {
		fprintf(stderr, "detourctl: %s '%s': %s, unlimited or default\n", opt, given, e);
		return -1;
	}
	str_copy(out, given, size);
	*value_r = out;
	return 0;
}

static int cmd_limits(const struct config *cfg, const struct user_args *args)
{
	char norm[ACCOUNTS_ADDRESS_SIZE], mbuf[64], rbuf[64];
	if (args->messages == NULL && args->recipients == NULL)
		return cmd_usage("limits");
	struct accounts *a = NULL;
	int rc = open_account(cfg, args->pos[0], ACCOUNTS_READ_WRITE, norm, &a, NULL);
	if (rc != 0)
		return rc;
	const char *error, *m, *r;
	struct account *acct = NULL;
	enum accounts_result res = accounts_get(a, norm, &acct, &error);
	if (res != ACCOUNTS_OK) {
		rc = fail(result_exit(res), error);
	} else if (limit_value("--messages", args->messages, acct->messages_rate, mbuf,
	                       sizeof(mbuf), &m) < 0 ||
	           limit_value("--recipients", args->recipients, acct->recipients_rate, rbuf,
	                       sizeof(rbuf), &r) < 0) {
		rc = EXIT_DATAERR;
	} else {
		/* m and r may point into acct: store before freeing it. */
		res = accounts_set_limits(a, norm, m, r, &error);
		if (res != ACCOUNTS_OK)
			rc = fail(result_exit(res), error);
	}
	account_free(&acct);
	accounts_close(&a);
	return rc;
}

/* effective - an account's limit as text, and where it comes from. */
static void effective(const char *own, struct config_rate def, char *out, size_t size,
                      const char **source_r)
{
	struct config_rate r;
	const char *e;
	if (own != NULL && config_parse_rate(own, &r, &e) == 0) {
		*source_r = "account";
	} else {
		r = def;
		*source_r = "default";
	}
	if (r.count == 0)
		str_copy(out, "unlimited", size);
	else
		snprintf(out, size, "%u/%us", r.count, r.seconds);
}

static int cmd_show(const struct config *cfg, const struct user_args *args)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	struct accounts *a = NULL;
	enum accounts_result res;
	int rc = open_account(cfg, args->pos[0], ACCOUNTS_READ_ONLY, norm, &a, &res);
	if (rc != 0)
		return rc;
	const char *error = "no such account";
	struct account *acct = NULL;
	if (res == ACCOUNTS_OK)
		res = accounts_get(a, norm, &acct, &error);
	if (res != ACCOUNTS_OK) {
		rc = fail(res == ACCOUNTS_ERROR ? EXIT_SOFTWARE : EXIT_DATAERR, error);
		accounts_close(&a);
		return rc;
	}
	char m[48], r[48], when[32];
	const char *msrc, *rsrc;
	effective(acct->messages_rate, cfg->account_messages, m, sizeof(m), &msrc);
	effective(acct->recipients_rate, cfg->account_recipients, r, sizeof(r), &rsrc);
	format_time(acct->created_ms, when, sizeof(when));
	/* What the running daemon says the account may still send now. */
	char request[ACCOUNTS_ADDRESS_SIZE + 128], *answer = NULL;
	snprintf(request, sizeof(request), "usage %s %s %s", norm,
	         strcmp(m, "unlimited") ? m : "0/1d", strcmp(r, "unlimited") ? r : "0/1d");
	int live = ctl_request(cfg->control_socket, request, &answer);
	long mavail = -1, ravail = -1;
	if (live == 0) {
		const char *p = strstr(answer, "messages_available: ");
		const char *q = strstr(answer, "recipients_available: ");
		if (p != NULL)
			mavail = strtol(p + 20, NULL, 10);
		if (q != NULL)
			ravail = strtol(q + 22, NULL, 10);
	}
	free(answer);
	if (args->json) {
		json_account(acct, when);
		fputs(",\"messages_limit\":", stdout);
		json_str(stdout, m);
		fputs(",\"messages_limit_source\":", stdout);
		json_str(stdout, msrc);
		fputs(",\"recipients_limit\":", stdout);
		json_str(stdout, r);
		fputs(",\"recipients_limit_source\":", stdout);
		json_str(stdout, rsrc);
		if (mavail >= 0)
			printf(",\"messages_available\":%ld,\"recipients_available\":%ld", mavail,
			       ravail);
		else
			fputs(",\"messages_available\":null,\"recipients_available\":null", stdout);
		puts("}");
	} else {
		printf("account: %s\ncreated: %s\nsuspended: %s\n", acct->address, when,
		       acct->suspended ? "yes (cannot log in)" : "no");
		printf("may also send as:");
		for (size_t i = 0; i < acct->n_senders; i++)
			printf(" %s", acct->senders[i]);
		puts(acct->n_senders ? "" : " -");
		printf("messages limit: %s (%s)\nrecipients limit: %s (%s)\n", m, msrc, r, rsrc);
		if (mavail >= 0)
			printf("may send now: %ld messages, %ld recipients\n", mavail, ravail);
		else
			puts("may send now: unknown (detourd is not running)");
	}
	account_free(&acct);
	accounts_close(&a);
	return 0;
}

static const struct user_cmd user_cmds[] = {
    {"show", 1, OPT_JSON, cmd_show},
    {"limits", 1, OPT_LIMITS, cmd_limits},
    {"suspend", 1, 0, cmd_suspend},
    {"resume", 1, 0, cmd_resume},
    {"add", 1, OPT_STDIN | OPT_HASH, cmd_add},
    {"passwd", 1, OPT_STDIN | OPT_HASH, cmd_passwd},
    {"del", 1, 0, cmd_del},
    {"list", 0, OPT_JSON, cmd_list},
    {"allow", 2, 0, cmd_allow},
    {"disallow", 2, 0, cmd_disallow},
};

/* parse_args - options and positional arguments after the command word.
 * Returns 0, -1 for --help (printed), or an exit code. */
static int parse_args(const struct user_cmd *cmd, int argc, char **argv, struct user_args *args)
{
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		unsigned needs = 0;
		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			if (args->n_pos == cmd->nargs) {
				fprintf(stderr, "detourctl: unexpected argument '%s'\n", arg);
				return cmd_usage(cmd->name);
			}
			args->pos[args->n_pos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_done = true;
		} else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			ctl_user_usage(stdout);
			return -1;
		} else if (strcmp(arg, "--json") == 0) {
			needs = OPT_JSON;
			args->json = true;
		} else if (strcmp(arg, "--password-stdin") == 0) {
			needs = OPT_STDIN;
			args->password_stdin = true;
		} else if (strcmp(arg, "--hash") == 0) {
			needs = OPT_HASH;
			if (i + 1 == argc) {
				fprintf(stderr, "detourctl: --hash needs a crypt(3) hash\n");
				return cmd_usage(cmd->name);
			}
			args->hash = argv[++i];
		} else if (strncmp(arg, "--hash=", 7) == 0) {
			needs = OPT_HASH;
			args->hash = arg + 7;
		} else if (strcmp(arg, "--messages") == 0 || strcmp(arg, "--recipients") == 0) {
			needs = OPT_LIMITS;
			if (i + 1 == argc) {
				fprintf(stderr, "detourctl: %s needs a value\n", arg);
				return cmd_usage(cmd->name);
			}
			if (arg[2] == 'm')
				args->messages = argv[++i];
			else
				args->recipients = argv[++i];
		} else {
			fprintf(stderr, "detourctl: unknown option '%s'\n", arg);
			return cmd_usage(cmd->name);
		}
		if ((cmd->options & needs) != needs) {
			fprintf(stderr, "detourctl: user %s does not take %s\n", cmd->name, arg);
			return cmd_usage(cmd->name);
		}
	}
	if (args->n_pos != cmd->nargs)
		return cmd_usage(cmd->name);
	if (args->hash != NULL && args->password_stdin) {
		fprintf(stderr, "detourctl: give either --hash or --password-stdin, not both\n");
		return cmd_usage(cmd->name);
	}
	return 0;
}

int ctl_user(const struct config *cfg, int argc, char **argv)
{
	if (argc < 1) {
		fputs("usage: detourctl user COMMAND [ARGS]\n", stderr);
		ctl_user_usage(stderr);
		return EXIT_USAGE;
	}
	const struct user_cmd *cmd = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(user_cmds) && cmd == NULL; i++)
		if (strcmp(argv[0], user_cmds[i].name) == 0)
			cmd = &user_cmds[i];
	if (cmd == NULL) {
		fprintf(stderr, "detourctl: unknown command 'user %s'\n", argv[0]);
		ctl_user_usage(stderr);
		return EXIT_USAGE;
	}
	struct user_args args = {0};
	int rc = parse_args(cmd, argc, argv, &args);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = cmd->run(cfg, &args);
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "detourctl: writing the output: %s\n", strerror(errno));
		rc = EXIT_SOFTWARE;
	}
	return rc;
}
