/* SPDX-License-Identifier: ISC */
/*
 * fuzz_config.c - the configuration reader (src/config/config.c): inih with
 * our line reader, section tracking, schema and value parsers.
 *
 * Input: byte 0 bit 0 chooses config_load on a file (the path that reads
 * NUL octets and over-long lines from disk) or config_load_string (the text
 * cut at its first NUL); the rest is the file. Properties: a config comes
 * back exactly when no error text does; every error line starts with the
 * file name, so no value can forge a line of its own; a loaded config
 * holds what config_check promises (listeners with addresses, values in
 * their bounds, TLS files when a listener uses TLS, a control socket path
 * that fits); loading is deterministic; references count. The same text,
 * one word at a time, also goes through the exported value parsers, whose
 * results must parse back to themselves (addresses, networks, durations).
 *
 * getpwnam is replaced by a fake that knows root, nobody and detour: the
 * real one asks NSS (systemd's userdb here), which is slow, touches the
 * machine's state and would make results depend on it.
 */
#include <arpa/inet.h>
#include <pwd.h>
#include <stdbool.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "fuzz.h"

#define NAME "fuzz.conf"

static char *file_path;

struct passwd *getpwnam(const char *name)
{
	static const char *const users[] = {"root", "nobody", "detour"};
	static struct passwd pw;

	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		if (strcmp(name, users[i]) == 0) {
			pw = (struct passwd){.pw_name = (char *)users[i],
			                     .pw_passwd = (char *)"x",
			                     .pw_uid = i == 0 ? 0 : 65534 - (uid_t)i + 1,
			                     .pw_gid = i == 0 ? 0 : 65534 - (gid_t)i + 1,
			                     .pw_gecos = (char *)"",
			                     .pw_dir = (char *)"/nonexistent",
			                     .pw_shell = (char *)"/usr/sbin/nologin"};
			return &pw;
		}
	}
	return NULL;
}

static char *file_dir;

static void cleanup(void)
{
	fuzz_rmtree(file_dir);
}

/* The file is rewritten for every input: on tmpfs (/dev/shm) that costs
 * nothing, on a disk with online discard it costs milliseconds. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	file_dir = fuzz_tmpdir("config");
	file_path = xasprintf("%s/" NAME, file_dir);
	atexit(cleanup);
	return 0;
}

static void check_errors(const char *errors, const char *name)
{
	size_t nl = strlen(name);
	FUZZ_CHECK(errors[0] != '\0', "empty error text");
	for (const char *line = errors; *line;) {
		const char *end = strchr(line, '\n');
		FUZZ_CHECK(end != NULL, "error text does not end in a newline");
		FUZZ_CHECK((size_t)(end - line) > nl && memcmp(line, name, nl) == 0 &&
		               line[nl] == ':',
		           "error line \"%.*s\" does not start with the file name",
		           (int)(end - line), line);
		line = end + 1;
	}
}

static void check_config(const struct config *c)
{
	FUZZ_CHECK(c->refs == 1, "refs %d", c->refs);
	FUZZ_CHECK(c->hostname && smtp_domain_valid(c->hostname, strlen(c->hostname), false),
	           "hostname \"%s\"", c->hostname ? c->hostname : "(null)");
	FUZZ_CHECK(c->state_dir && c->state_dir[0] == '/', "state_dir");
	FUZZ_CHECK(c->control_socket && strlen(c->control_socket) < 100, "control_socket");
	FUZZ_CHECK(c->n_listeners >= 1 && c->n_listeners <= CONFIG_LISTENERS_MAX, "%zu listeners",
	           c->n_listeners);
	bool tls = false;
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct config_listener *l = &c->listeners[i];
		FUZZ_CHECK(l->name && l->name[0], "listener without a name");
		FUZZ_CHECK(l->n_addrs >= 1 && l->n_addrs <= CONFIG_LISTEN_ADDRS_MAX, "%zu addrs",
		           l->n_addrs);
		FUZZ_CHECK(l->tls <= LISTENER_TLS_IMPLICIT && l->auth <= LISTENER_AUTH_OFF,
		           "listener enum");
		tls |= l->tls != LISTENER_TLS_NONE;
		for (size_t a = 0; a < l->n_addrs; a++) {
			const struct config_addr *ad = &l->addrs[a];
			FUZZ_CHECK(strnlen(ad->text, sizeof(ad->text)) < sizeof(ad->text),
			           "address text not terminated");
			FUZZ_CHECK(ad->ss.ss_family == AF_INET || ad->ss.ss_family == AF_INET6,
			           "family %d", ad->ss.ss_family);
			/* config_check refuses an address used twice. */
			for (size_t j = 0; j <= i; j++)
				for (size_t b = 0; b < (j == i ? a : c->listeners[j].n_addrs); b++)
					FUZZ_CHECK(strcmp(c->listeners[j].addrs[b].text, ad->text),
					           "%s bound twice", ad->text);
		}
	}
	FUZZ_CHECK(!tls || (c->certificate && c->private_key), "TLS listener without files");
	FUZZ_CHECK(c->n_trusted <= CONFIG_TRUSTED_MAX, "%zu trusted", c->n_trusted);
	FUZZ_CHECK(c->n_retry >= 1 && c->retry != NULL, "no retry schedule");
	for (size_t i = 0; i < c->n_retry; i++)
		FUZZ_CHECK(c->retry[i] > 0, "retry of 0s");
	FUZZ_CHECK(c->max_message_size >= 1024 && c->max_message_size <= (512ULL << 20),
	           "max_message_size %llu", (unsigned long long)c->max_message_size);
	FUZZ_CHECK(c->max_recipients >= 1 && c->max_recipients <= 100000, "max_recipients");
	FUZZ_CHECK(c->max_received >= 1 && c->max_received <= 1000, "max_received");
	FUZZ_CHECK(c->mx_port >= 1 && c->mx_port <= 65535, "mx_port");
	FUZZ_CHECK(c->command_timeout >= 1 && c->data_timeout >= 1, "timeouts");
	FUZZ_CHECK(c->auth_failure_delay_ms <= 60000, "auth_failure_delay");
	FUZZ_CHECK(c->max_age >= 60, "max_age");
	FUZZ_CHECK(c->auth_failures.seconds > 0 && c->account_messages.seconds > 0 &&
	               c->account_recipients.seconds > 0,
	           "a rate over 0 seconds");
	FUZZ_CHECK(!(c->smarthost_user && !c->smarthost_password_file),
	           "smarthost_user without a password file");
	FUZZ_CHECK(!(c->smarthost_user && c->smarthost_tls == SMARTHOST_TLS_NONE),
	           "smarthost credentials without TLS");

	/* Trusted networks answer for addresses without trouble. */
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	(void)config_is_trusted(c, (const struct sockaddr *)&sin);
	(void)config_is_trusted(c, (const struct sockaddr *)&sin6);
}

/* values - each word of the text through the exported value parsers. */
static void values(const char *text)
{
	char *copy = xstrdup(text);
	char *save = NULL;

	for (char *w = strtok_r(copy, " \t\r\n=", &save); w != NULL;
	     w = strtok_r(NULL, " \t\r\n=", &save)) {
		const char *e = NULL;
		unsigned secs;
		uint64_t bytes;
		bool b;
		struct config_rate rate;
		struct config_addr addr, again;
		struct config_cidr cidr, cidr2;

		if (config_parse_duration(w, &secs, &e) == 0) {
			char buf[32];
			unsigned s2;
			snprintf(buf, sizeof(buf), "%us", secs);
			FUZZ_CHECK(config_parse_duration(buf, &s2, &e) == 0 && s2 == secs,
			           "duration \"%s\" = %u does not parse back", w, secs);
		} else {
			FUZZ_CHECK(e != NULL && e[0], "duration error without text");
		}
		e = NULL;
		if (config_parse_size(w, &bytes, &e) < 0)
			FUZZ_CHECK(e != NULL, "size error without text");
		e = NULL;
		if (config_parse_rate(w, &rate, &e) == 0)
			FUZZ_CHECK(rate.seconds > 0, "rate over 0 seconds from \"%s\"", w);
		e = NULL;
		if (config_parse_bool(w, &b, &e) < 0)
			FUZZ_CHECK(e != NULL, "bool error without text");
		e = NULL;
		if (config_parse_addr(w, &addr, &e) == 0) {
			FUZZ_CHECK(strnlen(addr.text, sizeof(addr.text)) < sizeof(addr.text),
			           "address text");
			FUZZ_CHECK(config_parse_addr(addr.text, &again, &e) == 0 &&
			               strcmp(again.text, addr.text) == 0 &&
			               again.len == addr.len &&
			               memcmp(&again.ss, &addr.ss, addr.len) == 0,
			           "address \"%s\" -> \"%s\" does not parse back", w, addr.text);
		}
		e = NULL;
		if (config_parse_cidr(w, &cidr, &e) == 0) {
			unsigned bits = cidr.family == AF_INET ? 32 : 128;
			FUZZ_CHECK((cidr.family == AF_INET || cidr.family == AF_INET6) &&
			               cidr.prefix <= bits,
			           "network \"%s\": family %d prefix %u", w, cidr.family,
			           cidr.prefix);
			char host[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN + 8];
			inet_ntop(cidr.family, cidr.addr, host, sizeof(host));
			snprintf(net, sizeof(net), "%s/%u", host, cidr.prefix);
			FUZZ_CHECK(config_parse_cidr(net, &cidr2, &e) == 0 &&
			               memcmp(&cidr, &cidr2, sizeof(cidr)) == 0,
			           "network \"%s\" -> \"%s\" does not parse back", w, net);
		}
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	bool from_file = data[0] & 1;
	char *text = xstrndup((const char *)data + 1, size - 1);
	char *errors = NULL, *errors2 = NULL;
	struct config *c, *c2;
	const char *name = NAME;

	if (from_file) {
		FILE *f = fopen(file_path, "we");
		if (f == NULL || fwrite(data + 1, 1, size - 1, f) != size - 1 || fclose(f) != 0)
			abort();
		name = file_path;
		c = config_load(file_path, &errors);
		c2 = config_load(file_path, &errors2);
	} else {
		c = config_load_string(NAME, text, &errors);
		c2 = config_load_string(NAME, text, &errors2);
	}
	FUZZ_CHECK((c == NULL) == (errors != NULL), "config %p with errors %p", (void *)c,
	           (void *)errors);
	FUZZ_CHECK((c == NULL) == (c2 == NULL), "loading is not deterministic");
	if (errors != NULL) {
		check_errors(errors, name);
		FUZZ_CHECK(errors2 && strcmp(errors, errors2) == 0, "errors differ between loads");
	} else {
		check_config(c);
		FUZZ_CHECK(strcmp(c->path, name) == 0, "path \"%s\"", c->path);
		struct config *r = config_ref(c);
		FUZZ_CHECK(r == c && c->refs == 2, "config_ref");
		config_unref(&r);
		FUZZ_CHECK(r == NULL && c->refs == 1, "config_unref");
	}
	config_unref(&c);
	config_unref(&c2);
	FUZZ_CHECK(c == NULL && c2 == NULL, "config_unref left a pointer");
	free(errors);
	free(errors2);
	values(text);
	free(text);
	return 0;
}
