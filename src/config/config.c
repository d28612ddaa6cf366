/* SPDX-License-Identifier: ISC */
/* config.c - see config.h */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/errlist.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"

enum key_type {
	KEY_STRING,
	KEY_PATH,     /* absolute path */
	KEY_HOSTNAME, /* a domain name */
	KEY_USER,     /* an existing user */
	KEY_DURATION,
	KEY_MILLIS, /* a duration that may also be given in ms */
	KEY_SIZE,
	KEY_RATE,
	KEY_BOOL,
	KEY_UINT,
	KEY_TRUSTED,
	KEY_LISTEN,
	KEY_TLS,
	KEY_AUTH,
	KEY_SMARTHOST_TLS,
	KEY_RETRY,
	KEY_HOSTPORTS, /* "host[:port] ..." (resolver, smarthost) */
};

enum key_section { SEC_SERVER, SEC_TLS, SEC_DELIVERY, SEC_LIMITS, SEC_LISTENER, SEC_NONE };

struct key_def {
	enum key_section section;
	const char *name;
	enum key_type type;
	size_t offset; /* in struct config, or struct config_listener */
	unsigned min, max;
};

#define C(field) offsetof(struct config, field)
#define L(field) offsetof(struct config_listener, field)

/* The schema: every key the file may contain. A key missing here is an
 * error, so a typo never silently leaves a default in place. */
static const struct key_def keys[] = {
    {SEC_SERVER, "hostname", KEY_HOSTNAME, C(hostname), 0, 0},
    {SEC_SERVER, "state_dir", KEY_PATH, C(state_dir), 0, 0},
    {SEC_SERVER, "user", KEY_USER, C(user), 0, 0},
    {SEC_SERVER, "trusted", KEY_TRUSTED, 0, 0, 0},
    {SEC_SERVER, "control_socket", KEY_PATH, C(control_socket), 0, 0},
    {SEC_SERVER, "shutdown_grace", KEY_DURATION, C(shutdown_grace), 0, 3600},
    {SEC_TLS, "certificate", KEY_PATH, C(certificate), 0, 0},
    {SEC_TLS, "private_key", KEY_PATH, C(private_key), 0, 0},
    {SEC_LISTENER, "listen", KEY_LISTEN, 0, 0, 0},
    {SEC_LISTENER, "tls", KEY_TLS, L(tls), 0, 0},
    {SEC_LISTENER, "auth", KEY_AUTH, L(auth), 0, 0},
    {SEC_LISTENER, "plaintext_auth", KEY_BOOL, L(plaintext_auth), 0, 0},
    {SEC_DELIVERY, "resolver", KEY_HOSTPORTS, C(resolver), 0, 0},
    {SEC_DELIVERY, "mx_port", KEY_UINT, C(mx_port), 1, 65535},
    {SEC_DELIVERY, "smarthost", KEY_HOSTPORTS, C(smarthost), 0, 0},
    {SEC_DELIVERY, "smarthost_tls", KEY_SMARTHOST_TLS, C(smarthost_tls), 0, 0},
    {SEC_DELIVERY, "smarthost_user", KEY_STRING, C(smarthost_user), 0, 0},
    {SEC_DELIVERY, "smarthost_password_file", KEY_PATH, C(smarthost_password_file), 0, 0},
    {SEC_DELIVERY, "smarthost_ca_file", KEY_PATH, C(smarthost_ca_file), 0, 0},
    {SEC_DELIVERY, "retry", KEY_RETRY, 0, 0, 0},
    {SEC_DELIVERY, "max_age", KEY_DURATION, C(max_age), 60, 365 * 86400},
    {SEC_DELIVERY, "delay_warning", KEY_DURATION, C(delay_warning), 0, 365 * 86400},
    {SEC_DELIVERY, "allow_loopback_mx", KEY_BOOL, C(allow_loopback_mx), 0, 0},
    {SEC_DELIVERY, "pause", KEY_BOOL, C(pause), 0, 0},
    {SEC_DELIVERY, "connect_timeout", KEY_DURATION, C(connect_timeout), 1, 3600},
    {SEC_DELIVERY, "reply_timeout", KEY_DURATION, C(reply_timeout), 1, 3600},
    {SEC_LIMITS, "max_message_size", KEY_SIZE, C(max_message_size), 0, 0},
    {SEC_LIMITS, "max_recipients", KEY_UINT, C(max_recipients), 1, 100000},
    {SEC_LIMITS, "max_connections", KEY_UINT, C(max_connections), 1, 1000000},
    {SEC_LIMITS, "max_connections_per_ip", KEY_UINT, C(max_connections_per_ip), 1, 1000000},
    {SEC_LIMITS, "max_received", KEY_UINT, C(max_received), 1, 1000},
    {SEC_LIMITS, "auth_failures", KEY_RATE, C(auth_failures), 0, 0},
    {SEC_LIMITS, "account_messages", KEY_RATE, C(account_messages), 0, 0},
    {SEC_LIMITS, "account_recipients", KEY_RATE, C(account_recipients), 0, 0},
    {SEC_LIMITS, "auth_failure_delay", KEY_MILLIS, C(auth_failure_delay_ms), 0, 60000},
    {SEC_LIMITS, "command_timeout", KEY_DURATION, C(command_timeout), 1, 86400},
    {SEC_LIMITS, "data_timeout", KEY_DURATION, C(data_timeout), 1, 86400},
    {SEC_LIMITS, "session_timeout", KEY_DURATION, C(session_timeout), 1, 7 * 86400},
};

static const char *const section_names[] = {"server", "tls", "delivery", "limits", "listener"};

/* Smallest and largest message size a configuration may set. A message is
 * one SQLite blob, and SQLite's longest blob is 10^9 bytes. */
#define MESSAGE_SIZE_MIN 1024ULL
#define MESSAGE_SIZE_MAX (512ULL << 20)

/* Parsing state: the config being built, the reader's position, errors. */
struct loader {
	struct config *c;
	const char *name;
	FILE *fp;
	const char *text; /* config_load_string */
	int line;
	enum key_section section;
	struct config_listener *listener; /* current [listener NAME] */
	bool seen_section[SEC_NONE];
	bool bad_section; /* the current section header was reported as wrong */
	/* which keys were set in the current section, to refuse duplicates */
	bool seen_key[ARRAY_SIZE(keys)];
	/* the line of each key outside listeners, for errors that involve
	 * several keys (0: not given) */
	int key_line[ARRAY_SIZE(keys)];
	struct errlist errs;
};

static void __attribute__((format(printf, 3, 4)))
load_error(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	errlist_addv(&ld->errs, ld->name, line, fmt, ap);
	va_end(ap);
}

/* ---- value parsers ------------------------------------------------------ */

/* parse_uint - decimal digits only, no sign, no overflow. */
static int parse_uint(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	*v_r = v;
	return 0;
}

int config_parse_duration(const char *s, unsigned *seconds_r, const char **error_r)
{
	size_t len = strlen(s);
	uint64_t mult = 1, v;
	if (len > 0) {
		switch (s[len - 1]) {
		case 's':
			mult = 1;
			len--;
			break;
		case 'm':
			mult = 60;
			len--;
			break;
		case 'h':
			mult = 3600;
			len--;
			break;
		case 'd':
			mult = 86400;
			len--;
			break;
		default:
			break;
		}
	}
	if (parse_uint(s, len, &v) < 0 || __builtin_mul_overflow(v, mult, &v) || v > UINT32_MAX) {
		*error_r = "expected a duration such as 30s, 5m, 4h or 5d";
		return -1;
	}
	*seconds_r = (unsigned)v;
	return 0;
}

int config_parse_size(const char *s, uint64_t *bytes_r, const char **error_r)
{
	size_t len = strlen(s);
	uint64_t mult = 1, v;
	if (len > 0) {
		switch (s[len - 1]) {
		case 'K':
		case 'k':
			mult = 1024;
			len--;
			break;
		case 'M':
		case 'm':
			mult = 1024 * 1024;
			len--;
			break;
		case 'G':
		case 'g':
			mult = 1024 * 1024 * 1024;
			len--;
			break;
		default:
			break;
		}
	}
	if (parse_uint(s, len, &v) < 0 || __builtin_mul_overflow(v, mult, &v)) {
		*error_r = "expected a size such as 512K, 50M or 1G";
		return -1;
	}
	*bytes_r = v;
	return 0;
}

int config_parse_rate(const char *s, struct config_rate *rate_r, const char **error_r)
{
	const char *slash = strchr(s, '/');
	uint64_t count;
	unsigned secs;
	const char *e;
	if (slash == NULL || parse_uint(s, (size_t)(slash - s), &count) < 0 || count > UINT32_MAX ||
	    config_parse_duration(slash + 1, &secs, &e) < 0 || secs == 0) {
		*error_r = "expected a rate COUNT/DURATION such as 500/1h";
		return -1;
	}
	rate_r->count = (unsigned)count;
	rate_r->seconds = secs;
	return 0;
}

int config_parse_bool(const char *s, bool *value_r, const char **error_r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (str_ieq(s, yes[i])) {
			*value_r = true;
			return 0;
		}
		if (str_ieq(s, no[i])) {
			*value_r = false;
			return 0;
		}
	}
	*error_r = "expected yes or no";
	return -1;
}

/* parse_ip - a numeric IPv4 or IPv6 address into a sockaddr with port. */
static int parse_ip(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

int config_parse_addr(const char *s, struct config_addr *addr_r, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_s;
	size_t hlen;
	uint64_t port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':') {
			*error_r = "expected [IPv6]:PORT";
			return -1;
		}
		hlen = (size_t)(close - s - 1);
		port_s = close + 2;
		s++;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
			*error_r = "expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)";
			return -1;
		}
		hlen = (size_t)(colon - s);
		port_s = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*error_r = "missing or over-long address";
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (parse_uint(port_s, strlen(port_s), &port) < 0 || port == 0 || port > 65535) {
		*error_r = "port must be a number from 1 to 65535";
		return -1;
	}
	if (parse_ip(host, (unsigned)port, &addr_r->ss, &addr_r->len) < 0) {
		*error_r = "not a numeric IPv4 or IPv6 address (host names are not resolved here)";
		return -1;
	}
	/* The text is canonical (inet_ntop), so "[0:0::1]:25" and "[::1]:25"
	 * are recognised as the same address. */
	char canon[INET6_ADDRSTRLEN];
	if (addr_r->ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr_r->ss)->sin6_addr, canon,
		          sizeof(canon));
		snprintf(addr_r->text, sizeof(addr_r->text), "[%s]:%u", canon, (unsigned)port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&addr_r->ss)->sin_addr, canon,
		          sizeof(canon));
		snprintf(addr_r->text, sizeof(addr_r->text), "%s:%u", canon, (unsigned)port);
	}
	return 0;
}

int config_parse_cidr(const char *s, struct config_cidr *cidr_r, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t prefix = 0;

	if (hlen == 0 || hlen >= sizeof(host)) {
		*error_r = "expected a network such as 192.0.2.0/24 or 2001:db8::/32";
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(cidr_r, 0, sizeof(*cidr_r));
	if (inet_pton(AF_INET, host, cidr_r->addr) == 1) {
		cidr_r->family = AF_INET;
		prefix = 32;
	} else if (inet_pton(AF_INET6, host, cidr_r->addr) == 1) {
		cidr_r->family = AF_INET6;
		prefix = 128;
	} else {
		*error_r = "expected a network such as 192.0.2.0/24 or 2001:db8::/32";
		return -1;
	}
	if (slash != NULL) {
		uint64_t max = prefix;
		if (parse_uint(slash + 1, strlen(slash + 1), &prefix) < 0 || prefix > max) {
			*error_r = "bad prefix length";
			return -1;
		}
	}
	cidr_r->prefix = (unsigned)prefix;
	/* Host bits must be zero: "10.0.0.1/8" is almost always a typo. */
	unsigned bytes = cidr_r->family == AF_INET ? 4 : 16;
	for (unsigned bit = cidr_r->prefix; bit < bytes * 8; bit++) {
		if (cidr_r->addr[bit / 8] & (0x80 >> (bit % 8))) {
			*error_r = "address has bits set beyond the prefix length";
			return -1;
		}
	}
	return 0;
}

/* cidr_match - does addr (4 or 16 bytes of family) fall in cidr? */
static bool cidr_match(const struct config_cidr *cidr, int family, const unsigned char *addr)
{
	if (cidr->family != family)
		return false;
	unsigned full = cidr->prefix / 8, rest = cidr->prefix % 8;
	if (memcmp(cidr->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (cidr->addr[full] & mask) == (addr[full] & mask);
}

bool config_is_trusted(const struct config *c, const struct sockaddr *sa)
{
	int family = sa->sa_family;
	const unsigned char *addr;
	if (family == AF_INET) {
		addr = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		addr = (const unsigned char *)a6;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			addr += 12;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < c->n_trusted; i++)
		if (cidr_match(&c->trusted[i], family, addr))
			return true;
	return false;
}

/* ---- the handler -------------------------------------------------------- */

/* next_word - split s at spaces; returns the word or NULL at the end. */
static char *next_word(char **s)
{
	char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return NULL;
	char *w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return w;
}

/* valid_hostport - "host[:port]" or "[v6]:port" with a sensible host. */
static bool valid_hostport(const char *w)
{
	struct config_addr a;
	const char *e;
	if (config_parse_addr(w, &a, &e) == 0)
		return true;
	char host[SMTP_DOMAIN_MAX + 1];
	const char *colon = strrchr(w, ':');
	size_t hlen = colon ? (size_t)(colon - w) : strlen(w);
	if (hlen == 0 || hlen > SMTP_DOMAIN_MAX)
		return false;
	memcpy(host, w, hlen);
	host[hlen] = '\0';
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) != 1 && !smtp_domain_valid(host, hlen, false))
		return false;
	if (colon != NULL) {
		uint64_t port;
		if (parse_uint(colon + 1, strlen(colon + 1), &port) < 0 || port == 0 ||
		    port > 65535)
			return false;
	}
	return true;
}

/* set_value - check one value against its definition and store it. */
static void set_value(struct loader *ld, const struct key_def *k, void *base, const char *value)
{
	const char *e = NULL;
	char *field_s;
	void *field = (char *)base + k->offset;
	char *copy, *rest, *w;

	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
	case KEY_HOSTNAME:
	case KEY_USER:
		if (*value == '\0') {
			load_error(ld, ld->line, "%s: empty value", k->name);
			return;
		}
		if (k->type == KEY_PATH && value[0] != '/') {
			load_error(ld, ld->line, "%s: '%s' is not an absolute path", k->name,
			           value);
			return;
		}
		if (k->type == KEY_HOSTNAME && !smtp_domain_valid(value, strlen(value), false)) {
			load_error(ld, ld->line, "%s: '%s' is not a valid host name", k->name,
			           value);
			return;
		}
		if (k->type == KEY_USER && getpwnam(value) == NULL) {
			load_error(ld, ld->line, "%s: no such user '%s'", k->name, value);
			return;
		}
		field_s = xstrdup(value);
		free(*(char **)field);
		*(char **)field = field_s;
		return;
	case KEY_DURATION: {
		unsigned v;
		if (config_parse_duration(value, &v, &e) < 0) {
			load_error(ld, ld->line, "%s: '%s': %s", k->name, value, e);
		} else if (v < k->min || v > k->max) {
			load_error(ld, ld->line, "%s: must be between %us and %us", k->name, k->min,
			           k->max);
		} else {
			*(unsigned *)field = v;
		}
		return;
	}
	case KEY_MILLIS: {
		unsigned v;
		size_t len = strlen(value);
		uint64_t ms;
		if (len > 2 && strcmp(value + len - 2, "ms") == 0) {
			if (parse_uint(value, len - 2, &ms) < 0)
				ms = UINT64_MAX;
		} else if (config_parse_duration(value, &v, &e) == 0) {
			ms = (uint64_t)v * 1000;
		} else {
			ms = UINT64_MAX;
		}
		if (ms < k->min || ms > k->max)
			load_error(ld, ld->line, "%s: '%s': expected a duration from %ums to %ums",
			           k->name, value, k->min, k->max);
		else
			*(unsigned *)field = (unsigned)ms;
		return;
	}
	case KEY_SIZE: {
		uint64_t v;
		if (config_parse_size(value, &v, &e) < 0)
			load_error(ld, ld->line, "%s: '%s': %s", k->name, value, e);
		else if (v < MESSAGE_SIZE_MIN || v > MESSAGE_SIZE_MAX)
			load_error(ld, ld->line, "%s: must be between 1K and 512M", k->name);
		else
			*(uint64_t *)field = v;
		return;
	}
	case KEY_RATE:
		if (config_parse_rate(value, (struct config_rate *)field, &e) < 0)
			load_error(ld, ld->line, "%s: '%s': %s", k->name, value, e);
		return;
	case KEY_BOOL:
		if (config_parse_bool(value, (bool *)field, &e) < 0)
			load_error(ld, ld->line, "%s: '%s': %s", k->name, value, e);
		return;
	case KEY_UINT: {
		uint64_t v;
		if (parse_uint(value, strlen(value), &v) < 0 || v < k->min || v > k->max)
			load_error(ld, ld->line, "%s: '%s': expected a number from %u to %u",
			           k->name, value, k->min, k->max);
		else
			*(unsigned *)field = (unsigned)v;
		return;
	}
	case KEY_TLS:
	case KEY_AUTH:
	case KEY_SMARTHOST_TLS: {
		static const char *const tls[] = {"none", "starttls", "implicit"};
		static const char *const auth[] = {"required", "optional", "off"};
		static const char *const shtls[] = {"starttls", "implicit", "none"};
		const char *const *names = k->type == KEY_TLS    ? tls
		                           : k->type == KEY_AUTH ? auth
		                                                 : shtls;
		for (int i = 0; i < 3; i++) {
			if (str_ieq(value, names[i])) {
				*(int *)field = i;
				return;
			}
		}
		load_error(ld, ld->line, "%s: '%s': expected %s, %s or %s", k->name, value,
		           names[0], names[1], names[2]);
		return;
	}
	case KEY_TRUSTED:
		ld->c->n_trusted = 0;
		copy = rest = xstrdup(value);
		while ((w = next_word(&rest)) != NULL) {
			if (ld->c->n_trusted == CONFIG_TRUSTED_MAX) {
				load_error(ld, ld->line, "trusted: more than %d networks",
				           CONFIG_TRUSTED_MAX);
				break;
			}
			if (config_parse_cidr(w, &ld->c->trusted[ld->c->n_trusted], &e) < 0)
				load_error(ld, ld->line, "trusted: '%s': %s", w, e);
			else
				ld->c->n_trusted++;
		}
		free(copy);
		return;
	case KEY_LISTEN: {
		struct config_listener *l = base;
		l->n_addrs = 0;
		copy = rest = xstrdup(value);
		while ((w = next_word(&rest)) != NULL) {
			if (l->n_addrs == CONFIG_LISTEN_ADDRS_MAX) {
				load_error(ld, ld->line, "listen: more than %d addresses",
				           CONFIG_LISTEN_ADDRS_MAX);
				break;
			}
			if (config_parse_addr(w, &l->addrs[l->n_addrs], &e) < 0)
				load_error(ld, ld->line, "listen: '%s': %s", w, e);
			else
				l->n_addrs++;
		}
		if (l->n_addrs == 0 && e == NULL)
			load_error(ld, ld->line, "listen: no address given");
		free(copy);
		return;
	}
	case KEY_RETRY: {
		struct config *c = ld->c;
		free(c->retry);
		c->retry = NULL;
		c->n_retry = 0;
		copy = rest = xstrdup(value);
		int words = 0;
		while ((w = next_word(&rest)) != NULL) {
			unsigned v;
			words++;
			if (config_parse_duration(w, &v, &e) < 0) {
				load_error(ld, ld->line, "retry: '%s': %s", w, e);
				continue;
			}
			if (v == 0) {
				load_error(ld, ld->line, "retry: '%s': must be longer than 0s", w);
				continue;
			}
			c->retry = xreallocarray(c->retry, c->n_retry + 1, sizeof(*c->retry));
			c->retry[c->n_retry++] = v;
		}
		if (words == 0)
			load_error(ld, ld->line, "retry: no interval given");
		free(copy);
		return;
	}
	case KEY_HOSTPORTS: {
		copy = rest = xstrdup(value);
		int n = 0;
		while ((w = next_word(&rest)) != NULL) {
			n++;
			if (!valid_hostport(w))
				load_error(ld, ld->line, "%s: '%s' is not HOST[:PORT]", k->name, w);
		}
		free(copy);
		if (n == 0) {
			load_error(ld, ld->line, "%s: empty value", k->name);
			return;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return;
	}
	}
}

/* config_handler - inih callback for every name = value line. */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	(void)section; /* the reader tracks sections itself, with line numbers */
	if (ld->section == SEC_NONE) {
		if (!ld->bad_section)
			load_error(ld, ld->line, "'%s' is outside of any section", name);
		return 1; /* inside a bad section: that was already reported */
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key_def *k = &keys[i];
		if (k->section != ld->section || strcmp(k->name, name) != 0)
			continue;
		if (ld->seen_key[i]) {
			load_error(ld, ld->line, "%s: given twice in this section", name);
			return 1;
		}
		ld->seen_key[i] = true;
		if (ld->section == SEC_LISTENER && k->type == KEY_LISTEN)
			ld->listener->listen_line = ld->line;
		else if (ld->section != SEC_LISTENER)
			ld->key_line[i] = ld->line;
		void *base = ld->section == SEC_LISTENER ? (void *)ld->listener : (void *)ld->c;
		set_value(ld, k, base, value);
		return 1;
	}
	load_error(ld, ld->line, "unknown key '%s' in [%s]", name, section_names[ld->section]);
	return 1;
}

static void listener_defaults(struct config_listener *l)
{
	l->tls = LISTENER_TLS_STARTTLS;
	l->auth = LISTENER_AUTH_REQUIRED;
	l->plaintext_auth = false;
}

/* start_section - the reader saw "[...]": check it and make it current. */
static void start_section(struct loader *ld, const char *text, size_t len)
{
	char name[CONFIG_LINE_MAX];
	memcpy(name, text, len);
	name[len] = '\0';
	memset(ld->seen_key, 0, sizeof(ld->seen_key));
	ld->section = SEC_NONE;
	ld->listener = NULL;
	ld->bad_section = true; /* until the header proves good */

	if (strncmp(name, "listener", 8) == 0 && (name[8] == ' ' || name[8] == '\0')) {
		const char *lname = name + 8;
		while (*lname == ' ')
			lname++;
		if (*lname == '\0') {
			load_error(ld, ld->line, "[listener] needs a name: [listener NAME]");
			return;
		}
		for (const char *p = lname; *p; p++) {
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
				load_error(ld, ld->line,
				           "listener name '%s': use letters, digits, '-', '_', '.'",
				           lname);
				return;
			}
		}
		struct config *c = ld->c;
		for (size_t i = 0; i < c->n_listeners; i++) {
			if (strcmp(c->listeners[i].name, lname) == 0) {
				load_error(ld, ld->line,
				           "listener '%s' is defined twice (first at line %d)",
				           lname, c->listeners[i].line);
				return;
			}
		}
		if (c->n_listeners == CONFIG_LISTENERS_MAX) {
			load_error(ld, ld->line, "more than %d listeners", CONFIG_LISTENERS_MAX);
			return;
		}
		c->listeners =
		    xreallocarray(c->listeners, c->n_listeners + 1, sizeof(*c->listeners));
		struct config_listener *l = &c->listeners[c->n_listeners++];
		memset(l, 0, sizeof(*l));
		l->name = xstrdup(lname);
		l->line = ld->line;
		listener_defaults(l);
		ld->section = SEC_LISTENER;
		ld->listener = l;
		ld->bad_section = false;
		return;
	}
	for (int s = 0; s < SEC_LISTENER; s++) {
		if (strcmp(name, section_names[s]) == 0) {
			if (ld->seen_section[s])
				load_error(ld, ld->line, "section [%s] appears twice", name);
			ld->seen_section[s] = true;
			ld->section = (enum key_section)s;
			ld->bad_section = false;
			return;
		}
	}
	load_error(ld, ld->line,
	           "unknown section [%s] (expected server, tls, listener NAME, delivery, limits)",
	           name);
}

/* read_line - inih reader: one line from the file or string, counting lines,
 * refusing over-long ones and tracking section headers with their numbers. */
static char *read_line(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	char line[CONFIG_LINE_MAX + 3];
	size_t n = 0;
	int ch;
	bool too_long = false, any = false;

	for (;;) {
		if (ld->fp != NULL) {
			ch = getc(ld->fp);
		} else {
			ch = *ld->text ? (unsigned char)*ld->text++ : EOF;
		}
		if (ch == EOF)
			break;
		any = true;
		if (ch == '\n')
			break;
		/* One octet more than the limit is kept, for a CR before the LF. */
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
		line[0] = '\0';
	}
	if (memchr(line, '\0', n) != NULL) {
		load_error(ld, ld->line, "NUL byte in line");
		n = 0;
		line[0] = '\0';
	}
	/* Section headers are handled here because inih reports a section only
	 * with its first key, and never an empty or misspelt one. */
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		const char *after = close ? close + 1 : NULL;
		while (after && (*after == ' ' || *after == '\t'))
			after++;
		if (close == NULL || (*after != '\0' && *after != ';' && *after != '#')) {
			load_error(ld, ld->line, "malformed section header");
			ld->section = SEC_NONE;
			ld->bad_section = true;
		} else {
			start_section(ld, p + 1, (size_t)(close - p - 1));
		}
		/* inih still sees the header, so its own section name stays in step */
	} else if (*p != '\0' && *p != ';' && *p != '#' && strchr(p, '=') == NULL) {
		load_error(ld, ld->line, "expected 'key = value'");
		n = 0;
		line[0] = '\0';
	}
	memcpy(str, line, n + 1);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static void config_defaults(struct config *c)
{
	char host[256];
	c->refs = 1;
	if (gethostname(host, sizeof(host)) == 0 && host[0] != '\0') {
		host[sizeof(host) - 1] = '\0';
		c->hostname = xstrdup(host);
	} else {
		c->hostname = xstrdup("localhost");
	}
	c->state_dir = xstrdup(CONFIG_DEFAULT_STATE_DIR);
	c->shutdown_grace = SERVER_GRACE_DEFAULT;
	c->mx_port = 25;
	c->smarthost_tls = SMARTHOST_TLS_STARTTLS;
	static const unsigned retry_default[] = {300, 600, 1800, 3600, 7200, 14400};
	c->n_retry = ARRAY_SIZE(retry_default);
	c->retry = xmalloc(sizeof(retry_default));
	memcpy(c->retry, retry_default, sizeof(retry_default));
	c->max_age = 5 * 86400;
	c->connect_timeout = 30;
	/* RFC 5321 4.5.3.2's longest wait (the reply to the end of data) */
	c->reply_timeout = 600;
	c->max_message_size = SMTP_MESSAGE_MAX_DEFAULT;
	c->max_recipients = SMTP_RCPT_MAX_DEFAULT;
	c->max_connections = 1000;
	c->max_connections_per_ip = 20;
	c->max_received = 50;
	c->auth_failures = (struct config_rate){5, 600};
	c->account_messages = (struct config_rate){500, 3600};
	c->account_recipients = (struct config_rate){2000, 86400};
	c->auth_failure_delay_ms = AUTH_FAILURE_DELAY_DEFAULT_MS;
	c->command_timeout = SMTP_COMMAND_TIMEOUT_DEFAULT;
	c->data_timeout = SMTP_DATA_TIMEOUT_DEFAULT;
	c->session_timeout = SMTP_SESSION_TIMEOUT_DEFAULT;
}

/* key_line_of - the line a key outside listeners was given on, or 0. */
static int key_line_of(const struct loader *ld, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].section != SEC_LISTENER && strcmp(keys[i].name, name) == 0)
			return ld->key_line[i];
	return 0;
}

/* config_check - rules that involve several keys, after the whole file.
 * Each error names the line of the key (or section) that calls for what is
 * missing or conflicting. */
static void config_check(struct loader *ld)
{
	struct config *c = ld->c;
	const struct config_listener *tls_user = NULL;
	if (c->n_listeners == 0)
		load_error(ld, 0, "no [listener NAME] section: detourd would accept nothing");
	for (size_t i = 0; i < c->n_listeners; i++) {
		struct config_listener *l = &c->listeners[i];
		/* A listen line that failed to parse was reported already. */
		if (l->listen_line == 0)
			load_error(ld, l->line, "listener '%s' has no 'listen' addresses", l->name);
		if (l->tls != LISTENER_TLS_NONE && tls_user == NULL)
			tls_user = l;
		/* The same address in two listeners cannot be bound twice. The
		 * texts are canonical, so spelling cannot hide a duplicate. */
		for (size_t a = 0; a < l->n_addrs; a++) {
			for (size_t j = 0; j <= i; j++) {
				struct config_listener *o = &c->listeners[j];
				size_t bmax = j == i ? a : o->n_addrs;
				for (size_t b = 0; b < bmax; b++) {
					if (strcmp(o->addrs[b].text, l->addrs[a].text) == 0)
						load_error(
						    ld, l->listen_line ? l->listen_line : l->line,
						    "listener '%s': %s is already used by "
						    "listener '%s'",
						    l->name, l->addrs[a].text, o->name);
				}
			}
		}
	}
	if (tls_user != NULL && (c->certificate == NULL || c->private_key == NULL))
		load_error(ld, tls_user->line,
		           "listener '%s' uses TLS (tls = starttls or implicit), so [tls] needs "
		           "'certificate' and 'private_key'",
		           tls_user->name);
	if (c->smarthost_user != NULL && c->smarthost_password_file == NULL)
		load_error(ld, key_line_of(ld, "smarthost_user"),
		           "smarthost_user needs smarthost_password_file");
	if (c->smarthost_user != NULL && c->smarthost_tls == SMARTHOST_TLS_NONE) {
		int line = key_line_of(ld, "smarthost_tls");
		load_error(ld, line ? line : key_line_of(ld, "smarthost_user"),
		           "smarthost_tls = none cannot be used with credentials: they "
		           "would travel in plaintext");
	}
	if (c->control_socket == NULL)
		c->control_socket = xasprintf("%s/control.sock", c->state_dir);
	if (strlen(c->control_socket) >= 100)
		load_error(ld,
		           key_line_of(ld, "control_socket") ? key_line_of(ld, "control_socket")
		                                             : key_line_of(ld, "state_dir"),
		           "control socket path '%s' is too long for a unix socket",
		           c->control_socket);
}

static struct config *config_parse(struct loader *ld, char **errors_r)
{
	/* Debian's inih reads its settings from variables: one line may be as
	 * long as our own limit, continuation lines are not allowed (a value
	 * indented by mistake would silently join the previous key). */
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_initial_alloc = CONFIG_LINE_MAX + 3; /* the heap buffer's size */
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;

	ld->c = xcalloc(1, sizeof(*ld->c));
	config_defaults(ld->c);
	ld->section = SEC_NONE;
	int r = ini_parse_stream(read_line, ld, config_handler, ld);
	if (r > 0 && ld->errs.count == 0)
		load_error(ld, r, "syntax error");
	else if (r < 0 && ld->errs.count == 0)
		load_error(ld, 0, "could not be parsed");
	/* Rules that relate several keys are checked once every line is valid:
	 * a value that failed to parse would leave its default in place and
	 * make them report problems the file does not have. */
	if (ld->errs.count == 0)
		config_check(ld);
	ld->c->certificate_line = key_line_of(ld, "certificate");
	if (ld->errs.count > 0) {
		config_unref(&ld->c);
		*errors_r = errlist_take(&ld->errs);
		return NULL;
	}
	free(errlist_take(&ld->errs));
	*errors_r = NULL;
	return ld->c;
}

struct config *config_load(const char *path, char **errors_r)
{
	struct loader ld = {.name = path};
	ld.fp = fopen(path, "re");
	if (ld.fp == NULL) {
		*errors_r = xasprintf("%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	struct config *c = config_parse(&ld, errors_r);
	fclose(ld.fp);
	if (c != NULL)
		c->path = xstrdup(path);
	return c;
}

struct config *config_load_string(const char *name, const char *text, char **errors_r)
{
	struct loader ld = {.name = name, .text = text};
	struct config *c = config_parse(&ld, errors_r);
	if (c != NULL)
		c->path = xstrdup(name);
	return c;
}

struct config *config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void config_unref(struct config **cp)
{
	struct config *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	if (--c->refs > 0)
		return;
	free(c->path);
	free(c->hostname);
	free(c->state_dir);
	free(c->user);
	free(c->control_socket);
	free(c->certificate);
	free(c->private_key);
	for (size_t i = 0; i < c->n_listeners; i++)
		free(c->listeners[i].name);
	free(c->listeners);
	free(c->resolver);
	free(c->smarthost);
	free(c->smarthost_user);
	free(c->smarthost_password_file);
	free(c->smarthost_ca_file);
	free(c->retry);
	free(c);
}
