/* SPDX-License-Identifier: ISC */
/* client_config.c - see client_config.h */
#include "cmd/detour/client_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/limits.h"
#include "lib/errlist.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_sasl.h"

enum key_id {
	K_HOST,
	K_USER,
	K_PASSWORD_FILE,
	K_PASSWORD_COMMAND,
	K_PORTS,
	K_FROM,
	K_CA_FILE,
	K_QUEUE,
	K_TIMEOUT,
	K_COUNT,
};

static const char *const key_names[K_COUNT] = {
    "host", "user",    "password_file", "password_command", "ports",
    "from", "ca_file", "queue",         "timeout",
};

struct loader {
	struct client_config *c;
	const char *name; /* the file, for messages */
	FILE *fp;
	const char *text;
	int line;
	struct client_account *account; /* the current section, NULL outside */
	bool bad_section;               /* problems in it were reported already */
	int key_line[K_COUNT];          /* where each key of the section was set */
	struct errlist errs;
};

static void load_error(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void load_error(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	errlist_addv(&ld->errs, ld->name, line, fmt, ap);
	va_end(ap);
}

char *client_config_path(const char *option)
{
	if (option != NULL)
		return xstrdup(option);
	const char *env = getenv("DETOUR_CONFIG");
	if (env != NULL && env[0] != '\0')
		return xstrdup(env);
	const char *xdg = getenv("XDG_CONFIG_HOME");
	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/detour/config", xdg);
	const char *home = getenv("HOME");
	if (home == NULL || home[0] == '\0')
		return NULL;
	return xasprintf("%s/.config/detour/config", home);
}

int client_config_parse_ports(const char *s, struct client_port *ports_r, size_t max, size_t *n_r,
                              const char **error_r)
{
	size_t n = 0;
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		const char *w = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		size_t len = (size_t)(p - w);
		unsigned long port = 0;
		size_t i = 0;
		while (i < len && i < 6 && w[i] >= '0' && w[i] <= '9')
			port = port * 10 + (unsigned long)(w[i++] - '0');
		if (i == 0 || port == 0 || port > 65535) {
			*error_r =
			    "expected port numbers from 1 to 65535, such as \"465 587 2525\"";
			return -1;
		}
		bool implicit = port == 465;
		if (i < len) {
			if (w[i] != '/') {
				*error_r = "expected PORT or PORT/implicit or PORT/starttls";
				return -1;
			}
			const char *mode = w + i + 1;
			size_t mlen = len - i - 1;
			if (mem_ieq(mode, mlen, "implicit") || mem_ieq(mode, mlen, "tls") ||
			    mem_ieq(mode, mlen, "ssl"))
				implicit = true;
			else if (mem_ieq(mode, mlen, "starttls"))
				implicit = false;
			else {
				*error_r = "a port's TLS mode is /implicit or /starttls";
				return -1;
			}
		}
		for (size_t k = 0; k < n; k++) {
			if (ports_r[k].port == port) {
				*error_r = "a port is given twice";
				return -1;
			}
		}
		if (n == max) {
			*error_r = "too many ports (at most 16)";
			return -1;
		}
		ports_r[n].port = (unsigned)port;
		ports_r[n].implicit = implicit;
		n++;
	}
	if (n == 0) {
		*error_r = "no port given";
		return -1;
	}
	*n_r = n;
	return 0;
}

static bool valid_host(const char *s)
{
	size_t len = strlen(s);
	return detour_is_ip_literal(s) || (len > 0 && len <= SMTP_DOMAIN_MAX &&
	                                   smtp_domain_valid(s, len, false) && s[0] != '-');
}

/* password_file_problem - a password file must be a regular file readable
 * by nobody but its owner (the same rule as ssh's private keys). NULL, or
 * the reason (the caller frees). Checked when the configuration is loaded
 * and again on the open file when the password is read. */
static char *password_file_problem(const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return xasprintf("password_file %s is not a regular file", path);
	if (st->st_mode & 077)
		return xasprintf("password_file %s is readable by %s (mode %04o): run chmod 600 %s",
		                 path, (st->st_mode & 007) ? "everyone" : "its group",
		                 (unsigned)(st->st_mode & 07777), path);
	return NULL;
}

/* check_password_file - it must exist and pass password_file_problem. */
static void check_password_file(struct loader *ld, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		load_error(ld, ld->line, "password_file %s: %s", path, strerror(errno));
		return;
	}
	char *why = password_file_problem(path, &st);
	if (why != NULL)
		load_error(ld, ld->line, "%s", why);
	free(why);
}

static void set_key(struct loader *ld, enum key_id k, const char *value)
{
	struct client_account *a = ld->account;
	const char *err = NULL;
	switch (k) {
	case K_HOST:
		if (!valid_host(value)) {
			load_error(ld, ld->line, "host: '%s' is not a host name or IP address",
			           value);
			return;
		}
		a->host = xstrdup(value);
		return;
	case K_USER:
		if (value[0] == '\0' || strlen(value) > SASL_USER_MAX) {
			load_error(ld, ld->line, "user: empty or longer than %d octets",
			           SASL_USER_MAX);
			return;
		}
		a->user = xstrdup(value);
		return;
	case K_PASSWORD_FILE:
		if (value[0] == '\0') {
			load_error(ld, ld->line, "password_file: empty");
			return;
		}
		a->password_file = detour_expand_home(value);
		check_password_file(ld, a->password_file);
		return;
	case K_PASSWORD_COMMAND:
		if (value[0] == '\0') {
			load_error(ld, ld->line, "password_command: empty");
			return;
		}
		a->password_command = xstrdup(value);
		return;
	case K_PORTS:
		if (client_config_parse_ports(value, a->ports, DETOUR_PORTS_MAX, &a->nports, &err) <
		    0)
			load_error(ld, ld->line, "ports: %s", err);
		return;
	case K_FROM: {
		struct smtp_addr addr;
		size_t len = strlen(value);
		if (len > SMTP_PATH_MAX || smtp_addr_parse_mailbox(value, len, SMTP_ADDR_ALLOW_UTF8,
		                                                   &addr) != SMTP_ADDR_OK) {
			load_error(ld, ld->line, "from: '%s' is not a mail address", value);
			return;
		}
		a->from = xstrdup(value);
		return;
	}
	case K_CA_FILE: {
		char *path = detour_expand_home(value);
		if (access(path, R_OK) < 0) {
			load_error(ld, ld->line, "ca_file %s: %s", path, strerror(errno));
			free(path);
			return;
		}
		a->ca_file = path;
		return;
	}
	case K_QUEUE:
		if (config_parse_bool(value, &a->queue, &err) < 0)
			load_error(ld, ld->line, "queue: %s", err);
		return;
	case K_TIMEOUT:
		if (config_parse_duration(value, &a->timeout, &err) < 0)
			load_error(ld, ld->line, "timeout: %s", err);
		else if (a->timeout < 1 || a->timeout > DETOUR_TIMEOUT_MAX)
			load_error(ld, ld->line, "timeout: between 1s and 1h");
		return;
	case K_COUNT:
		break;
	}
}

/* on_key - inih's callback for every "key = value" line. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	(void)section; /* the reader follows sections itself, with their lines */
	if (ld->account == NULL) {
		if (!ld->bad_section)
			load_error(ld, ld->line, "'%s' is outside of any [account NAME] section",
			           name);
		return 1;
	}
	for (int k = 0; k < K_COUNT; k++) {
		if (strcmp(name, key_names[k]) != 0)
			continue;
		if (ld->key_line[k] != 0) {
			load_error(ld, ld->line,
			           "%s: given twice in this section (first at line %d)", name,
			           ld->key_line[k]);
			return 1;
		}
		ld->key_line[k] = ld->line;
		set_key(ld, (enum key_id)k, value);
		return 1;
	}
	load_error(ld, ld->line,
	           "unknown key '%s' (expected host, user, password_file, password_command, "
	           "ports, from, ca_file, queue, timeout)",
	           name);
	return 1;
}

/* end_section - checks that need the whole [account] section. */
static void end_section(struct loader *ld)
{
	struct client_account *a = ld->account;
	if (a == NULL)
		return;
	if (a->host == NULL)
		load_error(ld, a->line, "account '%s' has no host", a->name);
	if (a->password_file != NULL && a->password_command != NULL)
		load_error(ld, ld->key_line[K_PASSWORD_COMMAND],
		           "password_file and password_command: give only one");
	if (a->user != NULL && a->password_file == NULL && a->password_command == NULL)
		load_error(ld, ld->key_line[K_USER],
		           "user needs password_file or password_command");
	if (a->user == NULL && (a->password_file != NULL || a->password_command != NULL))
		load_error(ld,
		           ld->key_line[K_PASSWORD_FILE] ? ld->key_line[K_PASSWORD_FILE]
		                                         : ld->key_line[K_PASSWORD_COMMAND],
		           "a password without a user: add 'user ='");
	ld->account = NULL;
}

static void start_section(struct loader *ld, const char *text, size_t len)
{
	char name[CONFIG_LINE_MAX + 1];
	end_section(ld);
	memcpy(name, text, len);
	name[len] = '\0';
	memset(ld->key_line, 0, sizeof(ld->key_line));
	ld->bad_section = true;
	if (strncmp(name, "account", 7) != 0 || (name[7] != ' ' && name[7] != '\0')) {
		load_error(ld, ld->line, "unknown section [%s] (expected [account NAME])", name);
		return;
	}
	const char *aname = name + 7;
	while (*aname == ' ')
		aname++;
	size_t alen = strlen(aname);
	while (alen > 0 && aname[alen - 1] == ' ')
		alen--;
	if (alen == 0) {
		load_error(ld, ld->line, "[account] needs a name: [account NAME]");
		return;
	}
	for (size_t i = 0; i < alen; i++) {
		unsigned char ch = (unsigned char)aname[i];
		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.' && ch != '@') {
			load_error(ld, ld->line,
			           "account name '%.*s': use letters, digits, '-', '_', '.', '@'",
			           (int)alen, aname);
			return;
		}
	}
	struct client_config *c = ld->c;
	for (size_t i = 0; i < c->naccounts; i++) {
		if (strlen(c->accounts[i].name) == alen &&
		    memcmp(c->accounts[i].name, aname, alen) == 0) {
			load_error(ld, ld->line,
			           "account '%.*s' is defined twice (first at line %d)", (int)alen,
			           aname, c->accounts[i].line);
			return;
		}
	}
	if (c->naccounts == DETOUR_ACCOUNTS_MAX) {
		load_error(ld, ld->line, "more than %d accounts", DETOUR_ACCOUNTS_MAX);
		return;
	}
	c->accounts = xreallocarray(c->accounts, c->naccounts + 1, sizeof(*c->accounts));
	struct client_account *a = &c->accounts[c->naccounts++];
	memset(a, 0, sizeof(*a));
	a->name = xstrndup(aname, alen);
	a->line = ld->line;
	/* The submission ports, implicit TLS first (RFC 8314 3.3 prefers
	 * it), then an alternate port many relays keep open. */
	a->ports[0] = (struct client_port){465, true};
	a->ports[1] = (struct client_port){587, false};
	a->ports[2] = (struct client_port){2525, false};
	a->nports = 3;
	a->timeout = DETOUR_SEND_TIMEOUT_DEFAULT;
	ld->account = a;
	ld->bad_section = false;
}

/* read_line - inih reader: one line of the file or string, counting lines,
 * refusing over-long ones and NUL octets, and following section headers
 * with their line numbers (inih reports a section only with its first
 * key, and never an empty one). */
static char *read_line(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	char line[CONFIG_LINE_MAX + 2];
	size_t n = 0;
	bool any = false, too_long = false, nul = false;
	for (;;) {
		int ch = ld->fp != NULL ? getc(ld->fp)
		                        : (*ld->text != '\0' ? (unsigned char)*ld->text++ : EOF);
		if (ch == EOF)
			break;
		any = true;
		if (ch == '\n')
			break;
		if (ch == '\0')
			nul = true;
		/* One octet more than the limit is kept, for a CR before the
		 * LF: the same lines as detourd's configuration reader. */
		if (n < CONFIG_LINE_MAX + 1)
			line[n++] = (char)ch;
		else
			too_long = true;
	}
	if (!any)
		return NULL;
	ld->line++;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (n > CONFIG_LINE_MAX)
		too_long = true;
	line[n] = '\0';
	if (too_long || n + 3 > (size_t)num) {
		load_error(ld, ld->line, "line longer than %d characters", CONFIG_LINE_MAX);
		n = 0;
	} else if (nul) {
		load_error(ld, ld->line, "NUL octet in the line");
		n = 0;
	}
	line[n] = '\0';
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		const char *after = close != NULL ? close + 1 : NULL;
		while (after != NULL && (*after == ' ' || *after == '\t'))
			after++;
		if (close == NULL || (*after != '\0' && *after != ';' && *after != '#')) {
			end_section(ld);
			load_error(ld, ld->line, "malformed section header");
			ld->bad_section = true;
		} else {
			start_section(ld, p + 1, (size_t)(close - p - 1));
		}
	} else if (*p != '\0' && *p != ';' && *p != '#' && strchr(p, '=') == NULL) {
		load_error(ld, ld->line, "expected 'key = value'");
		n = 0;
		line[0] = '\0';
	}
	memcpy(str, line, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static int parse(struct loader *ld, struct client_config **config_r, char **errors_r)
{
	/* Debian's inih takes its settings from globals: lines as long as
	 * ours, no continuation lines (an indented value would silently join
	 * the key above), comments after ';'. */
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_initial_alloc = CONFIG_LINE_MAX + 3;
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;

	ld->c = xcalloc(1, sizeof(*ld->c));
	ld->c->path = xstrdup(ld->name);
	int r = ini_parse_stream(read_line, ld, on_key, ld);
	end_section(ld);
	if (r != 0 && ld->errs.count == 0)
		load_error(ld, r > 0 ? r : 0, "syntax error");
	if (ld->errs.count == 0 && ld->c->naccounts == 0)
		load_error(ld, 0, "no [account NAME] section: detour does not know a relay");
	if (ld->errs.count > 0) {
		client_config_free(&ld->c);
		*errors_r = errlist_take(&ld->errs);
		*config_r = NULL;
		return -1;
	}
	free(errlist_take(&ld->errs));
	*errors_r = NULL;
	*config_r = ld->c;
	return 0;
}

int client_config_load(const char *path, struct client_config **config_r, char **errors_r)
{
	struct loader ld = {.name = path};
	ld.fp = fopen(path, "re");
	if (ld.fp == NULL) {
		*errors_r = xasprintf("%s: cannot open: %s\n", path, strerror(errno));
		*config_r = NULL;
		return -1;
	}
	int r = parse(&ld, config_r, errors_r);
	fclose(ld.fp);
	return r;
}

int client_config_load_string(const char *name, const char *text, struct client_config **config_r,
                              char **errors_r)
{
	struct loader ld = {.name = name, .text = text};
	return parse(&ld, config_r, errors_r);
}

void client_config_free(struct client_config **cp)
{
	struct client_config *c = *cp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->naccounts; i++) {
		struct client_account *a = &c->accounts[i];
		free(a->name);
		free(a->host);
		free(a->user);
		free(a->password_file);
		free(a->password_command);
		free(a->from);
		free(a->ca_file);
	}
	free(c->accounts);
	free(c->path);
	free(c);
	*cp = NULL;
}

const struct client_account *client_config_account(const struct client_config *c, const char *name)
{
	if (c == NULL || c->naccounts == 0)
		return NULL;
	if (name == NULL)
		return &c->accounts[0];
	for (size_t i = 0; i < c->naccounts; i++)
		if (strcmp(c->accounts[i].name, name) == 0)
			return &c->accounts[i];
	return NULL;
}

/* first_line - keep what comes before the first line end; refuse empty
 * and over-long passwords. */
static char *first_line(char *buf, size_t len, const char *what, char *err, size_t errlen)
{
	size_t n = 0;
	while (n < len && buf[n] != '\n' && buf[n] != '\r')
		n++;
	if (n == 0 || n > SASL_PASSWORD_MAX || memchr(buf, '\0', n) != NULL) {
		snprintf(err, errlen, "%s: %s", what,
		         n == 0 ? "the password is empty"
		                : "the password is too long or holds NUL");
		explicit_bzero(buf, len);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	explicit_bzero(buf + n, len - n);
	return buf;
}

/* password_from_file - the file's mode is checked again on the open
 * descriptor: it may have changed since the configuration was loaded.
 * O_NONBLOCK: a FIFO put in its place must not hang the open (it is then
 * refused as not a regular file). */
static char *password_from_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *why = password_file_problem(path, &st);
	if (why != NULL) {
		snprintf(err, errlen, "%s", why);
		free(why);
		close(fd);
		return NULL;
	}
	/* read(2) straight into buf: no stdio buffer keeps a copy */
	char *buf = xmalloc(SASL_PASSWORD_MAX + 2);
	size_t len = 0;
	while (len < SASL_PASSWORD_MAX + 1) {
		ssize_t r = read(fd, buf + len, SASL_PASSWORD_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
			close(fd);
			explicit_bzero(buf, SASL_PASSWORD_MAX + 2);
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	char *what = xasprintf("password_file %s", path);
	char *pw = first_line(buf, len, what, err, errlen);
	free(what);
	return pw;
}

static char *password_from_command(const char *command, char *err, size_t errlen)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "password_command: pipe: %s", strerror(errno));
		return NULL;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "password_command: fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	if (pid == 0) {
		/* Standard input may be the message being sent: the command
		 * must not read it. */
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(fds[1], STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char *buf = xmalloc(SASL_PASSWORD_MAX + 2);
	size_t len = 0;
	for (;;) {
		char chunk[512];
		ssize_t r = read(fds[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		/* Keep the first SASL_PASSWORD_MAX + 1 octets; drain the rest so
		 * the command never blocks on a full pipe. */
		size_t take = (size_t)r;
		if (take > SASL_PASSWORD_MAX + 1 - len)
			take = SASL_PASSWORD_MAX + 1 - len;
		memcpy(buf + len, chunk, take);
		len += take;
		explicit_bzero(chunk, sizeof(chunk));
	}
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "password_command failed (%s %d): %s",
		         WIFEXITED(status) ? "exit status" : "signal",
		         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), command);
		explicit_bzero(buf, SASL_PASSWORD_MAX + 2);
		free(buf);
		return NULL;
	}
	return first_line(buf, len, "password_command", err, errlen);
}

char *client_config_password(const struct client_account *a, char *err, size_t errlen)
{
	if (a->password_file != NULL)
		return password_from_file(a->password_file, err, errlen);
	if (a->password_command != NULL)
		return password_from_command(a->password_command, err, errlen);
	snprintf(err, errlen, "account '%s' has no password_file or password_command", a->name);
	return NULL;
}
