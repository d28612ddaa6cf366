/* SPDX-License-Identifier: ISC */
/*
 * localqueue.h - the local queue of `detour send` (queue = yes): messages
 * that could not be handed to the relay yet, in STATE_DIR/queue/, one file
 * each, sent by the next `detour send` of the same account or `detour flush`.
 *
 * A file is "detour-queue 1", then "account NAME", "from ADDR", one "rcpt
 * ADDR" per recipient, "created SECONDS", an empty line, and the message.
 * Durability, as the relay's own promise: the file is written under
 * queue/tmp/, fsynced, renamed into queue/, and the folder fsynced, before
 * `detour send` says "queued"; a crash leaves either no message or a whole
 * one (a stray file in tmp/ is never sent, and is removed after a day).
 * Files are mode 0600 in folders of mode 0700: they hold mail.
 * Sending takes an exclusive flock(2) on the file, so two flushes at once
 * never send one message twice; a message is removed only after the relay
 * accepted it (at least once: a crash in between sends it again).
 *
 * Owns: the format, the files, the locks. Does not own: sending (send.c).
 * One thread.
 */
#ifndef DETOUR_CMD_LOCALQUEUE_H
#define DETOUR_CMD_LOCALQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/detour/message.h"

struct localqueue_entry {
	char *path; /* queue/NAME */
	char *id;   /* NAME */
	int fd;     /* locked while loaded */
	char *account;
	char *from;
	struct addr_list rcpts;
	int64_t created;
	struct message msg;
};

/* localqueue_add - store a message durably. 0 and the new id (caller
 * frees), or -1 with a message in err. */
int localqueue_add(const char *dir, const char *account, const char *from,
                   const struct addr_list *rcpts, const struct message *msg, char **id_r, char *err,
                   size_t errlen);

/* localqueue_list - the ids in dir, oldest first (caller frees each and
 * the array). */
size_t localqueue_list(const char *dir, char ***ids_r);

/* localqueue_load - lock and read one entry. 1 loaded, 0 gone or locked
 * by another process (skip it), -1 unreadable (err says why). */
int localqueue_load(const char *dir, const char *id, struct localqueue_entry *e_r, char *err,
                    size_t errlen);

/* localqueue_rewrite - the entry keeps only these recipients (the others
 * were delivered or refused for good): written anew durably. */
int localqueue_rewrite(struct localqueue_entry *e, const struct addr_list *rcpts, char *err,
                       size_t errlen);

/* localqueue_remove - the relay has it: delete durably. */
int localqueue_remove(struct localqueue_entry *e);

/* localqueue_entry_free - unlock and free. */
void localqueue_entry_free(struct localqueue_entry *e);

/* localqueue_parse - the header of a queue file's text (tests). 0 or -1. */
int localqueue_parse(const char *data, size_t len, struct localqueue_entry *e_r);

/* localqueue_format - a queue file's text (tests, and the writer). */
char *localqueue_format(const char *account, const char *from, const struct addr_list *rcpts,
                        int64_t created, size_t *len_r);

#endif
