/* SPDX-License-Identifier: ISC */
/*
 * config.h - the configuration file (SPEC.md "Configuration"): a schema over
 * inih that turns the INI file into one immutable struct config.
 *
 * Owns: every key, its default, its syntax and its bounds; error messages
 * that name file, line and problem. The errors of every line are collected
 * and reported together, then loading fails; rules that relate several keys
 * (a TLS listener needs [tls], smarthost credentials need TLS) are checked
 * once every line is valid. Does not own: opening sockets or
 * files the configuration names (the daemon does that at start-up, and
 * reports problems with the same file:line).
 * Threads: load on any thread; a loaded config is never modified, so it may
 * be shared by reference (config_ref/config_unref) across a reload.
 */
#ifndef DETOUR_CONFIG_H
#define DETOUR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/limits.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define CONFIG_DEFAULT_PATH      SYSCONFDIR "/detour/detour.conf"
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/detour"

enum listener_tls { LISTENER_TLS_NONE, LISTENER_TLS_STARTTLS, LISTENER_TLS_IMPLICIT };
enum listener_auth { LISTENER_AUTH_REQUIRED, LISTENER_AUTH_OPTIONAL, LISTENER_AUTH_OFF };
enum smarthost_tls { SMARTHOST_TLS_STARTTLS, SMARTHOST_TLS_IMPLICIT, SMARTHOST_TLS_NONE };

/* An address with a port, as written in the file and as a sockaddr. */
struct config_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64]; /* "0.0.0.0:587", "[::1]:2525" */
};

/* A network: family AF_INET or AF_INET6, bytes in network order. */
struct config_cidr {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

/* COUNT per DURATION seconds; count 0 means "no limit". */
struct config_rate {
	unsigned count;
	unsigned seconds;
};

struct config_listener {
	char *name;
	int line;        /* of the [listener NAME] header, for error messages */
	int listen_line; /* of its listen key, 0 if none was given */
	struct config_addr addrs[CONFIG_LISTEN_ADDRS_MAX];
	size_t n_addrs;
	enum listener_tls tls;
	enum listener_auth auth;
	bool plaintext_auth; /* offer AUTH before TLS (default: no) */
};

struct config {
	char *path;
	int refs;

	/* [server] */
	char *hostname;
	char *state_dir;
	char *user; /* NULL: keep running as the starting user */
	struct config_cidr trusted[CONFIG_TRUSTED_MAX];
	size_t n_trusted;
	char *control_socket;    /* default: state_dir/control.sock */
	unsigned shutdown_grace; /* seconds */

	/* [tls] */
	char *certificate;
	char *private_key;
	int certificate_line; /* where [tls] certificate was set, for errors */

	struct config_listener *listeners;
	size_t n_listeners;

	/* [delivery] */
	char *resolver; /* "127.0.0.1:5353 ..."; NULL: the system's */
	unsigned mx_port;
	char *smarthost;
	enum smarthost_tls smarthost_tls;
	char *smarthost_user;
	char *smarthost_password_file;
	char *smarthost_ca_file;
	unsigned *retry; /* seconds; the last one repeats */
	size_t n_retry;
	unsigned max_age; /* seconds */
	/* seconds in the queue before a sender hears that a recipient is still
	 * being retried (one RFC 3464 "delayed" notice); 0: never */
	unsigned delay_warning;
	bool allow_loopback_mx;
	bool pause;               /* accept and queue, but deliver nothing until resumed */
	unsigned connect_timeout; /* seconds to establish an outbound connection */
	unsigned reply_timeout;   /* upper bound on every wait for a reply (seconds) */

	/* [limits] */
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned max_received; /* Received: headers before a message is a loop */
	struct config_rate auth_failures;
	struct config_rate account_messages;
	struct config_rate account_recipients;
	unsigned auth_failure_delay_ms; /* a failed AUTH is answered after this */
	unsigned command_timeout;       /* seconds */
	unsigned data_timeout;          /* seconds */
	unsigned session_timeout;       /* a whole session, seconds */
};

/*
 * config_load - read and check path. On success returns a config with one
 * reference. On failure returns NULL and *errors_r is a malloc'ed text of one
 * "file:line: problem" line per error (the caller frees it).
 */
struct config *config_load(const char *path, char **errors_r);

/* config_load_string - the same for text in memory (tests); name is used in
 * error messages in place of a file name. */
struct config *config_load_string(const char *name, const char *text, char **errors_r);

struct config *config_ref(struct config *c);
/* config_unref - drop a reference; frees at zero and sets *c to NULL. */
void config_unref(struct config **c);

/* config_is_trusted - is the address (AF_INET / AF_INET6 sockaddr) in one
 * of the trusted networks? IPv4-mapped IPv6 addresses match IPv4 networks. */
bool config_is_trusted(const struct config *c, const struct sockaddr *sa);

/* Value parsers, shared with the client tool's configuration reader. Each
 * returns 0, or -1 with a static description of what is wrong. */
int config_parse_duration(const char *s, unsigned *seconds_r, const char **error_r);
int config_parse_size(const char *s, uint64_t *bytes_r, const char **error_r);
int config_parse_rate(const char *s, struct config_rate *rate_r, const char **error_r);
int config_parse_bool(const char *s, bool *value_r, const char **error_r);
int config_parse_addr(const char *s, struct config_addr *addr_r, const char **error_r);
int config_parse_cidr(const char *s, struct config_cidr *cidr_r, const char **error_r);

#endif
