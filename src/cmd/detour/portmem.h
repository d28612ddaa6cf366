/* SPDX-License-Identifier: ISC */
/*
 * portmem.h - the per-network port memory of `detour send`: for each
 * network (netid.h) and relay host, the port that last worked and the
 * ports seen intercepted, in STATE_DIR/networks (one line per network and
 * host, "key=value" words; see detour(1), FILES).
 *
 * Owns: the file's format, finding the entry for the current network
 * (a MAC address that was not known yet matches any), keeping at most
 * PORTMEM_ENTRIES_MAX entries (the oldest go first), and writing the file
 * atomically (temporary file, fsync, rename).
 * Does not own: deciding which port wins (race.c).
 * Pure but for portmem_load and portmem_save. One thread.
 */
#ifndef DETOUR_CMD_PORTMEM_H
#define DETOUR_CMD_PORTMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/detour/detour.h"
#include "cmd/detour/netid.h"

#define PORTMEM_ENTRIES_MAX 256
#define PORTMEM_LINE_MAX    1024

struct portmem_entry {
	struct netid id; /* iface is not stored */
	char host[256];
	unsigned port; /* 0: nothing worked yet */
	bool implicit;
	int64_t when; /* unix seconds of the last change */
	unsigned intercepted[DETOUR_PORTS_MAX];
	int64_t intercepted_when[DETOUR_PORTS_MAX];
	size_t nintercepted;
};

struct portmem {
	struct portmem_entry *e;
	size_t n;
};

/* portmem_parse - read the file's text; malformed lines are skipped (the
 * memory is a cache: losing a line costs one race). */
void portmem_parse(const char *text, struct portmem *pm_r);

/* portmem_format - the file's text; the caller frees. */
char *portmem_format(const struct portmem *pm);

/* portmem_find - the entry for this network and host, or NULL. */
struct portmem_entry *portmem_find(struct portmem *pm, const struct netid *id, const char *host);

/* portmem_touch - the entry, created when missing (evicting the oldest
 * beyond PORTMEM_ENTRIES_MAX); a MAC learnt since is filled in. */
struct portmem_entry *portmem_touch(struct portmem *pm, const struct netid *id, const char *host,
                                    int64_t now);

void portmem_set_winner(struct portmem_entry *e, unsigned port, bool implicit, int64_t now);
void portmem_mark_intercepted(struct portmem_entry *e, unsigned port, int64_t now);
void portmem_clear_intercepted(struct portmem_entry *e, unsigned port);
/* portmem_is_intercepted - seen intercepted within DETOUR_INTERCEPTED_TTL. */
bool portmem_is_intercepted(const struct portmem_entry *e, unsigned port, int64_t now);

/* portmem_load - read path ("" memory when it does not exist). */
int portmem_load(const char *path, struct portmem *pm_r);
/* portmem_save - write path atomically, mode 0600. 0 or -1 with errno. */
int portmem_save(const char *path, const struct portmem *pm);

void portmem_free(struct portmem *pm);

#endif
