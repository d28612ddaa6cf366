/* SPDX-License-Identifier: ISC */
/*
 * test_detour_config.c - unit tests for the end user's configuration
 * (src/cmd/detour/client_config.c): the schema, defaults, "FILE:LINE:
 * problem" errors, password files readable by others (when loading and
 * again when reading), fetching passwords, and port lists at their limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* The tool's files are not in the library: they are compiled in here. */
#include "cmd/detour/client_config.c"
#include "cmd/detour/common.c"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	str_copy(tmpdir, "/tmp/detour-config-XXXXXX", sizeof(tmpdir));
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

/* pwfile - a password file with this mode; returns its path (static). */
static const char *pwfile(const char *name, const char *content, mode_t mode)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static struct client_config *load_ok(const char *text)
{
	struct client_config *c = NULL;
	char *errors = NULL;
	int r = client_config_load_string("cfg", text, &c, &errors);
	if (r != 0)
		fail_msg("unexpected errors:\n%s", errors);
	assert_null(errors);
	assert_non_null(c);
	return c;
}

/* load_err - the text must be refused; returns the errors (caller frees). */
static char *load_err(const char *text)
{
	struct client_config *c = NULL;
	char *errors = NULL;
	assert_int_equal(client_config_load_string("cfg", text, &c, &errors), -1);
	assert_null(c);
	assert_non_null(errors);
	return errors;
}

static void expect_error(const char *text, const char *needle)
{
	char *errors = load_err(text);
	if (strstr(errors, needle) == NULL)
		fail_msg("expected \"%s\" in:\n%s", needle, errors);
	free(errors);
}

static void test_minimal_and_defaults(void **state)
{
	(void)state;
	struct client_config *c = load_ok("[account work]\nhost = relay.example.net\n");
	assert_int_equal(c->naccounts, 1);
	const struct client_account *a = client_config_account(c, NULL);
	assert_string_equal(a->name, "work");
	assert_string_equal(a->host, "relay.example.net");
	assert_null(a->user);
	assert_null(a->from);
	assert_false(a->queue);
	assert_int_equal(a->timeout, DETOUR_SEND_TIMEOUT_DEFAULT);
	assert_int_equal(a->nports, 3);
	assert_int_equal(a->ports[0].port, 465);
	assert_true(a->ports[0].implicit);
	assert_int_equal(a->ports[1].port, 587);
	assert_false(a->ports[1].implicit);
	assert_int_equal(a->ports[2].port, 2525);
	assert_int_equal(a->line, 1);
	assert_ptr_equal(client_config_account(c, "work"), a);
	assert_null(client_config_account(c, "home"));
	client_config_free(&c);
	assert_null(c);
}

static void test_every_key(void **state)
{
	(void)state;
	char *pw = xstrdup(pwfile("work.pw", "s3cret\nsecond line\n", 0600));
	char *ca = xstrdup(pwfile("ca.pem", "not really a CA\n", 0644));
	char *text = xasprintf("; a comment\n"
	                       "# another\n"
	                       "[account work]\n"
	                       "host = relay.example.net ; trailing comment\n"
	                       "user = alice@example.org\n"
	                       "password_file = %s\n"
	                       "ports = 465, 587/starttls 8465/implicit 2525/tls\r\n"
	                       "from = alice@example.org\n"
	                       "ca_file = %s\n"
	                       "queue = yes\n"
	                       "timeout = 2m\n"
	                       "\n"
	                       "[account home]\n"
	                       "host = 192.0.2.7\n"
	                       "user = bob\n"
	                       "password_command = printf 'from-command\\nignored'\n",
	                       pw, ca);
	struct client_config *c = load_ok(text);
	free(text);
	assert_int_equal(c->naccounts, 2);
	const struct client_account *a = client_config_account(c, NULL);
	assert_string_equal(a->name, "work");
	assert_int_equal(a->line, 3);
	assert_string_equal(a->user, "alice@example.org");
	assert_string_equal(a->password_file, pw);
	assert_int_equal(a->nports, 4);
	unsigned ports[] = {465, 587, 8465, 2525};
	bool implicit[] = {true, false, true, true};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(a->ports[i].port, ports[i]);
		assert_int_equal(a->ports[i].implicit, implicit[i]);
	}
	assert_string_equal(a->from, "alice@example.org");
	assert_string_equal(a->ca_file, ca);
	assert_true(a->queue);
	assert_int_equal(a->timeout, 120);

	char err[256];
	char *p = client_config_password(a, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(p, "s3cret");
	free(p);

	const struct client_account *h = client_config_account(c, "home");
	assert_non_null(h);
	assert_string_equal(h->host, "192.0.2.7");
	p = client_config_password(h, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(p, "from-command");
	free(p);
	client_config_free(&c);
	free(pw);
	free(ca);
}

static void test_unknown_key_names_file_and_line(void **state)
{
	(void)state;
	expect_error("[account work]\nhost = relay.example.net\nhots = typo\n",
	             "cfg:3: unknown key 'hots'");
	expect_error("host = relay.example.net\n", "cfg:1: 'host' is outside of any");
	expect_error("[server]\nhost = x\n", "cfg:1: unknown section [server]");
	expect_error("[account]\nhost = x\n", "cfg:1: [account] needs a name");
	expect_error("[account a b]\nhost = x\n", "cfg:1: account name 'a b'");
	expect_error("[account work\nhost = x\n", "cfg:1: malformed section header");
	expect_error("[account work]\nhost\n", "cfg:2: expected 'key = value'");
}

static void test_missing_host(void **state)
{
	(void)state;
	expect_error("[account a]\nhost = relay.example.net\n\n[account b]\nfrom = b@example.org\n",
	             "cfg:4: account 'b' has no host");
	expect_error("[account a]\nhost = -bad-.example\n", "cfg:2: host: '-bad-.example'");
	expect_error("", "no [account NAME] section");
}

static void test_password_file_modes(void **state)
{
	(void)state;
	const mode_t bad[] = {0644, 0640, 0604, 0660, 0606, 0610};
	const char *who[] = {"everyone",  "its group", "everyone",
	                     "its group", "everyone",  "its group"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *pw = pwfile("pw", "x\n", bad[i]);
		char *text = xasprintf("[account a]\nhost = relay.example.net\nuser = a\n"
		                       "password_file = %s\n",
		                       pw);
		char needle[600];
		snprintf(needle, sizeof(needle),
		         "cfg:4: password_file %s is readable by %s (mode %04o)", pw, who[i],
		         (unsigned)bad[i]);
		expect_error(text, needle);
		free(text);
	}
	/* 0600 and 0400 are fine */
	const mode_t good[] = {0600, 0400};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		const char *pw = pwfile("pw", "x\n", good[i]);
		char *text = xasprintf("[account a]\nhost = relay.example.net\nuser = a\n"
		                       "password_file = %s\n",
		                       pw);
		struct client_config *c = load_ok(text);
		client_config_free(&c);
		free(text);
	}
	char *text =
	    xasprintf("[account a]\nhost = h.example\nuser = a\npassword_file = %s/nope\n", tmpdir);
	expect_error(text, "cfg:4: password_file");
	expect_error(text, "No such file");
	free(text);
}

/* The mode is checked again on the open file when the password is read:
 * it may have changed since the configuration was loaded. */
static void test_password_file_checked_again(void **state)
{
	(void)state;
	const char *pw = pwfile("again.pw", "s3cret\nignored\n", 0600);
	char *path = xstrdup(pw);
	char *text = xasprintf("[account a]\nhost = relay.example.net\nuser = a\n"
	                       "password_file = %s\n",
	                       path);
	struct client_config *c = load_ok(text);
	const struct client_account *a = client_config_account(c, NULL);
	char err[1200];
	char *p = client_config_password(a, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(p, "s3cret");
	free(p);

	assert_int_equal(chmod(path, 0640), 0);
	assert_null(client_config_password(a, err, sizeof(err)));
	char needle[600];
	snprintf(needle, sizeof(needle),
	         "password_file %s is readable by its group (mode 0640): run chmod 600 %s", path,
	         path);
	assert_string_equal(err, needle);
	assert_int_equal(chmod(path, 0604), 0);
	assert_null(client_config_password(a, err, sizeof(err)));
	assert_non_null(strstr(err, "is readable by everyone (mode 0604)"));

	/* a FIFO in its place is refused, without waiting for a writer */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(client_config_password(a, err, sizeof(err)));
	snprintf(needle, sizeof(needle), "password_file %s is not a regular file", path);
	assert_string_equal(err, needle);

	/* gone */
	assert_int_equal(unlink(path), 0);
	assert_null(client_config_password(a, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));

	/* at the limit, and one past it */
	char *big = xmalloc(SASL_PASSWORD_MAX + 3);
	memset(big, 'x', SASL_PASSWORD_MAX + 1);
	big[SASL_PASSWORD_MAX] = '\n';
	big[SASL_PASSWORD_MAX + 1] = '\0';
	pwfile("again.pw", big, 0600);
	p = client_config_password(a, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(strlen(p), SASL_PASSWORD_MAX);
	free(p);
	big[SASL_PASSWORD_MAX] = 'x';
	pwfile("again.pw", big, 0600);
	assert_null(client_config_password(a, err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
	free(big);

	client_config_free(&c);
	free(text);
	free(path);
}

static void test_home_expansion(void **state)
{
	(void)state;
	pwfile("home.pw", "from-home\n", 0600);
	char *old = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
	setenv("HOME", tmpdir, 1);
	struct client_config *c =
	    load_ok("[account a]\nhost = h.example\nuser = a\npassword_file = ~/home.pw\n");
	char *want = xasprintf("%s/home.pw", tmpdir);
	assert_string_equal(c->accounts[0].password_file, want);
	free(want);
	client_config_free(&c);
	if (old != NULL) {
		setenv("HOME", old, 1);
		free(old);
	}
}

static void test_credential_rules(void **state)
{
	(void)state;
	const char *pw = pwfile("pw", "x\n", 0600);
	char *both = xasprintf("[account a]\nhost = h.example\nuser = a\npassword_file = %s\n"
	                       "password_command = echo x\n",
	                       pw);
	expect_error(both, "cfg:5: password_file and password_command: give only one");
	free(both);
	expect_error("[account a]\nhost = h.example\nuser = a\n",
	             "cfg:3: user needs password_file or password_command");
	expect_error("[account a]\nhost = h.example\npassword_command = echo x\n",
	             "cfg:3: a password without a user");
}

static void test_values(void **state)
{
	(void)state;
	expect_error("[account a]\nhost = h.example\nqueue = maybe\n",
	             "cfg:3: queue: expected yes");
	expect_error("[account a]\nhost = h.example\ntimeout = soon\n", "cfg:3: timeout:");
	expect_error("[account a]\nhost = h.example\ntimeout = 0\n", "cfg:3: timeout: between");
	expect_error("[account a]\nhost = h.example\ntimeout = 2h\n", "cfg:3: timeout: between");
	expect_error("[account a]\nhost = h.example\nfrom = not an address\n",
	             "cfg:3: from: 'not an address'");
	expect_error("[account a]\nhost = h.example\nca_file = /nonexistent/ca.pem\n",
	             "cfg:3: ca_file /nonexistent/ca.pem");
	expect_error("[account a]\nhost = h.example\nhost = other.example\n",
	             "cfg:3: host: given twice in this section (first at line 2)");
	expect_error("[account a]\nhost = h.example\n[account a]\nhost = h.example\n",
	             "cfg:3: account 'a' is defined twice (first at line 1)");
	expect_error("[account a]\nhost = h.example\nports = 465 70000\n", "cfg:3: ports:");
	/* timeout at its limits */
	struct client_config *c = load_ok("[account a]\nhost = h.example\ntimeout = 1s\n");
	assert_int_equal(c->accounts[0].timeout, 1);
	client_config_free(&c);
	c = load_ok("[account a]\nhost = h.example\ntimeout = 1h\n");
	assert_int_equal(c->accounts[0].timeout, 3600);
	client_config_free(&c);
}

static void test_every_error_is_reported(void **state)
{
	(void)state;
	char *errors = load_err("[account a]\nhots = x\nqueue = perhaps\n\n[bogus]\n");
	assert_non_null(strstr(errors, "cfg:2: unknown key 'hots'"));
	assert_non_null(strstr(errors, "cfg:3: queue:"));
	assert_non_null(strstr(errors, "cfg:1: account 'a' has no host"));
	assert_non_null(strstr(errors, "cfg:5: unknown section [bogus]"));
	free(errors);
}

static void test_line_length_limit(void **state)
{
	(void)state;
	/* a line of exactly CONFIG_LINE_MAX characters is read, with an LF or
	 * a CRLF after it (as detourd reads its own); one more is refused */
	char line[CONFIG_LINE_MAX + 2];
	const char *prefix = "from = a@";
	size_t plen = strlen(prefix);
	memcpy(line, prefix, plen);
	memset(line + plen, 'a', CONFIG_LINE_MAX - plen);
	line[CONFIG_LINE_MAX] = '\0';
	/* too long for an address (a domain label is at most 63), but the
	 * line itself was read: the error is about the value */
	char *text = xasprintf("[account a]\nhost = h.example\n%s\n", line);
	expect_error(text, "cfg:3: from:");
	free(text);
	text = xasprintf("[account a]\r\nhost = h.example\r\n%s\r\n", line);
	expect_error(text, "cfg:3: from:");
	free(text);
	line[CONFIG_LINE_MAX] = 'a';
	line[CONFIG_LINE_MAX + 1] = '\0';
	text = xasprintf("[account a]\nhost = h.example\n%s\n", line);
	expect_error(text, "cfg:3: line longer than 1024 characters");
	free(text);
	text = xasprintf("[account a]\nhost = h.example\n%s\r\n", line);
	expect_error(text, "cfg:3: line longer than 1024 characters");
	free(text);
}

static void test_ports(void **state)
{
	(void)state;
	struct client_port p[DETOUR_PORTS_MAX];
	size_t n;
	const char *err;
	assert_int_equal(client_config_parse_ports("1 65535", p, DETOUR_PORTS_MAX, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(p[1].port, 65535);
	assert_int_equal(client_config_parse_ports("0", p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_int_equal(client_config_parse_ports("65536", p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_int_equal(client_config_parse_ports("1234567", p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_int_equal(client_config_parse_ports("", p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_int_equal(client_config_parse_ports("587 587", p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_string_equal(err, "a port is given twice");
	assert_int_equal(client_config_parse_ports("587/ssl", p, DETOUR_PORTS_MAX, &n, &err), 0);
	assert_true(p[0].implicit);
	assert_int_equal(client_config_parse_ports("465/starttls", p, DETOUR_PORTS_MAX, &n, &err),
	                 0);
	assert_false(p[0].implicit);
	assert_int_equal(client_config_parse_ports("587/bogus", p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_int_equal(client_config_parse_ports("58x", p, DETOUR_PORTS_MAX, &n, &err), -1);
	/* DETOUR_PORTS_MAX ports, then one more */
	char list[256] = "";
	for (int i = 1; i <= DETOUR_PORTS_MAX; i++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%d ", 1000 + i);
	}
	assert_int_equal(client_config_parse_ports(list, p, DETOUR_PORTS_MAX, &n, &err), 0);
	assert_int_equal(n, DETOUR_PORTS_MAX);
	strcat(list, "2000");
	assert_int_equal(client_config_parse_ports(list, p, DETOUR_PORTS_MAX, &n, &err), -1);
	assert_string_equal(err, "too many ports (at most 16)");
}

static void test_password_command_failures(void **state)
{
	(void)state;
	struct client_account a = {.name = "a", .password_command = "exit 3"};
	char err[256];
	assert_null(client_config_password(&a, err, sizeof(err)));
	assert_non_null(strstr(err, "password_command failed (exit status 3)"));
	a.password_command = "printf ''";
	assert_null(client_config_password(&a, err, sizeof(err)));
	assert_non_null(strstr(err, "the password is empty"));
	/* at the limit, and one past it */
	char *cmd = xasprintf("head -c %d /dev/zero | tr '\\0' x", SASL_PASSWORD_MAX);
	a.password_command = cmd;
	char *pw = client_config_password(&a, err, sizeof(err));
	assert_non_null(pw);
	assert_int_equal(strlen(pw), SASL_PASSWORD_MAX);
	free(pw);
	free(cmd);
	cmd = xasprintf("head -c %d /dev/zero | tr '\\0' x", SASL_PASSWORD_MAX + 1);
	a.password_command = cmd;
	assert_null(client_config_password(&a, err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
	free(cmd);
	/* the command never sees our standard input */
	a.password_command = "cat";
	assert_null(client_config_password(&a, err, sizeof(err)));
}

static void test_config_path(void **state)
{
	(void)state;
	char *p = client_config_path("/x/y");
	assert_string_equal(p, "/x/y");
	free(p);
	setenv("DETOUR_CONFIG", "/from/env", 1);
	p = client_config_path(NULL);
	assert_string_equal(p, "/from/env");
	free(p);
	unsetenv("DETOUR_CONFIG");
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	p = client_config_path(NULL);
	assert_string_equal(p, "/xdg/detour/config");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/u", 1);
	p = client_config_path(NULL);
	assert_string_equal(p, "/home/u/.config/detour/config");
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_and_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_unknown_key_names_file_and_line),
	    cmocka_unit_test(test_missing_host),
	    cmocka_unit_test(test_password_file_modes),
	    cmocka_unit_test(test_password_file_checked_again),
	    cmocka_unit_test(test_home_expansion),
	    cmocka_unit_test(test_credential_rules),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_every_error_is_reported),
	    cmocka_unit_test(test_line_length_limit),
	    cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_password_command_failures),
	    cmocka_unit_test(test_config_path),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
