/* SPDX-License-Identifier: ISC */
/*
 * client_config.h - the end user's configuration (SPEC.md "The end user's
 * tool"): ~/.config/detour/config, or --config FILE, or $DETOUR_CONFIG.
 *
 *     [account work]
 *     host          = relay.example.net
 *     user          = alice@example.org
 *     password_file = ~/.config/detour/work.password   ; mode 0600
 *     ; password_command = pass show mail/work
 *     ports         = 465 587 2525                     ; PORT[/implicit|/starttls]
 *     from          = alice@example.org
 *     ; ca_file     = ~/.config/detour/relay-ca.pem    ; trust only these CAs
 *     queue         = yes
 *     ; timeout     = 20s
 *
 * Owns: the schema (keys, defaults, syntax), "FILE:LINE: problem" errors
 * (every problem of a file is reported, then loading fails), the rule that
 * a password file readable by group or others is refused, and fetching the
 * password (password_file or password_command) when it is needed.
 * Does not own: what the settings mean on the network (race.c, send.c).
 * Reads the INI syntax with inih, like the daemon's config.c, through a
 * reader of our own that counts lines.
 * Threads: one; inih's settings are process globals.
 */
#ifndef DETOUR_CLIENT_CONFIG_H
#define DETOUR_CLIENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd/detour/detour.h"

/* A port and how TLS starts on it. Without a suffix, 465 is implicit TLS
 * (RFC 8314 3) and every other port STARTTLS (RFC 3207). */
struct client_port {
	unsigned port;
	bool implicit;
};

struct client_account {
	char *name;
	int line; /* of the [account NAME] header */
	char *host;
	char *user;             /* NULL: no AUTH */
	char *password_file;    /* "~/" expanded */
	char *password_command; /* run with /bin/sh -c */
	struct client_port ports[DETOUR_PORTS_MAX];
	size_t nports;
	char *from;    /* NULL: -f or nothing */
	char *ca_file; /* NULL: the system's CA store */
	bool queue;
	unsigned timeout; /* seconds, per connection attempt */
};

struct client_config {
	char *path;
	struct client_account *accounts; /* the first is the default */
	size_t naccounts;
};

/* client_config_path - --config, else $DETOUR_CONFIG, else
 * $XDG_CONFIG_HOME/detour/config, else ~/.config/detour/config. The caller
 * frees; NULL when no HOME is known. */
char *client_config_path(const char *option);

/* client_config_load - read and check path. 0 and *config_r, or -1 and
 * *errors_r: one "FILE:LINE: problem" line per problem (caller frees). */
int client_config_load(const char *path, struct client_config **config_r, char **errors_r);

/* client_config_load_string - the same for text in memory (tests); name
 * stands for the file in messages. Password files are still checked. */
int client_config_load_string(const char *name, const char *text, struct client_config **config_r,
                              char **errors_r);

void client_config_free(struct client_config **config);

/* client_config_account - the account called name, or the first one when
 * name is NULL; NULL if there is none. */
const struct client_account *client_config_account(const struct client_config *config,
                                                   const char *name);

/* client_config_parse_ports - "465 587/starttls, 2525" into ports_r (room
 * for max). 0, or -1 with a static description in *error_r. */
int client_config_parse_ports(const char *s, struct client_port *ports_r, size_t max, size_t *n_r,
                              const char **error_r);

/* client_config_password - the account's password, from password_file
 * (first line) or password_command (first line of its output; it must
 * exit 0). NULL with a message in err when it cannot be had. The caller
 * wipes and frees it. */
char *client_config_password(const struct client_account *account, char *err, size_t errlen);

#endif
