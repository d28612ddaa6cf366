/* SPDX-License-Identifier: ISC */
/*
 * queue_view.h - read-only access to the queue, for detourctl (`queue list`,
 * `queue show`, `queue cat`) and tests.
 *
 * Owns: one read-only SQLite connection to state_dir/queue.db, opened beside
 * a running detourd (WAL mode lets readers work while the writer commits;
 * a reader never blocks the writer), and the copies of rows it hands out.
 * Each call reads one consistent snapshot: a message is seen whole, with all
 * its recipients and its body, or not at all.
 * Does not own: any change to the queue. Deleting, holding and releasing go
 * through the daemon's writer (spool_op, over the control socket), because
 * only the writer thread writes queue.db.
 *
 * Ownership: a struct queue_view_msg from queue_view_get belongs to the
 * caller, who frees it with queue_view_msg_free; one passed to a
 * queue_view_foreach callback is lent for the duration of that call only.
 * All strings inside it belong to it. Error strings (*error_r) belong to the
 * view and stay valid until the next call on it; queue_view_open's belong to
 * a per-thread buffer valid until the next queue_view_open on that thread.
 *
 * Threads: a view is used by one thread at a time (any thread). It does
 * blocking file I/O, so never on the daemon's event-loop thread.
 */
#ifndef DETOUR_QUEUE_VIEW_H
#define DETOUR_QUEUE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/spool.h"
#include "smtp/smtp_params.h"

struct queue_view;

enum queue_view_result {
	QUEUE_VIEW_OK,
	QUEUE_VIEW_NOTFOUND, /* no message with that id (or the id is malformed) */
	QUEUE_VIEW_ERROR,    /* database or I/O error; *error_r says which */
};

/* One recipient, as the delivery engine last left it. */
struct queue_view_rcpt {
	char *address;
	char *state;     /* "queued", "deferred", "delivered" or "failed" */
	unsigned notify; /* SMTP_NOTIFY_* bits, 0 if NOTIFY was not given */
	char *orcpt;     /* "rfc822;user@example.org", NULL if none */
	uint32_t attempts;
	int64_t next_attempt_ms; /* wall clock, ms since the epoch; 0: as soon as possible */
	char *last_result;       /* remote's reply or our reason, NULL if not tried */
	bool warned;             /* the sender has had a delay warning for it */
};

/* One queued message: its envelope and recipients (docs/queue.md, "Schema",
 * explains each field). Strings are NULL where the envelope had none. */
struct queue_view_msg {
	char id[QID_SIZE];
	char *sender;  /* "" for the null reverse-path */
	uint64_t size; /* bytes of the stored body, as `queue cat` prints them */
	int64_t arrival_ms;
	char *listener;
	char *client_addr;
	char *helo;
	char *tls;
	char *account;
	bool held;
	enum smtp_body body_type;
	bool smtputf8;
	enum smtp_ret ret;
	char *envid;
	uint64_t declared_size;
	size_t rcpt_count;
	struct queue_view_rcpt *rcpts; /* rcpt_count entries, in RCPT order */
};

/*
 * queue_view_open - open state_dir/queue.db read-only. It must exist (the
 * daemon creates it); a missing file, a database that is not a detour queue
 * or a schema version this program does not know are errors. Returns NULL
 * with a message in *error_r.
 */
struct queue_view *queue_view_open(const char *state_dir, const char **error_r);

/* queue_view_close - close the connection. Sets *v to NULL; NULL is fine. */
void queue_view_close(struct queue_view **v);

/* A queue_view_foreach callback: return 0 to go on, anything else to stop
 * (queue_view_foreach then returns QUEUE_VIEW_OK). It may call
 * queue_view_get and queue_view_cat on the same view. */
typedef int queue_view_msg_cb(void *arg, const struct queue_view_msg *msg);

/*
 * queue_view_foreach - call cb for every message, oldest first (arrival
 * time, then id), from one snapshot of the queue: messages committed after
 * the call began are not seen, deleted ones still are. Returns QUEUE_VIEW_OK
 * or QUEUE_VIEW_ERROR.
 */
enum queue_view_result queue_view_foreach(struct queue_view *v, queue_view_msg_cb *cb, void *arg,
                                          const char **error_r);

/*
 * queue_view_get - look up one message by id. On QUEUE_VIEW_OK *msg_r is a
 * new message the caller frees with queue_view_msg_free; otherwise *msg_r is
 * NULL. A malformed id is QUEUE_VIEW_NOTFOUND.
 */
enum queue_view_result queue_view_get(struct queue_view *v, const char *qid,
                                      struct queue_view_msg **msg_r, const char **error_r);

/* queue_view_msg_free - free a message from queue_view_get. Sets *msg to
 * NULL; NULL is fine. */
void queue_view_msg_free(struct queue_view_msg **msg);

/*
 * queue_view_cat - write message qid's body to fd, exactly the bytes that
 * will be sent after the Received: header, SPOOL_CHUNK bytes at a time (a
 * large message is never held in memory whole). A write error (EPIPE when
 * the reader of a pipe went away: ignore SIGPIPE first) is QUEUE_VIEW_ERROR;
 * fd may then have received part of the body. fd stays open.
 */
enum queue_view_result queue_view_cat(struct queue_view *v, const char *qid, int fd,
                                      const char **error_r);

/* queue_view_count - how many messages and recipients (in any state) are in
 * the queue, from one snapshot. Either out-parameter may be NULL. */
enum queue_view_result queue_view_count(struct queue_view *v, uint64_t *messages_r,
                                        uint64_t *recipients_r, const char **error_r);

#endif
