/* SPDX-License-Identifier: ISC */
/*
 * spool.h - the durable queue: an SQLite database in WAL mode, written by one
 * thread that commits many finished messages in one transaction.
 *
 * Owns: the database file (state_dir/queue.db), the spill folder for large
 * messages being received (state_dir/tmp), the writer thread, queue ids, and
 * crash recovery at start-up (docs/queue.md is the normative description of
 * every on-disk state). Does not own: when messages are delivered (the
 * scheduler) or who may send them (policy).
 *
 * Threads: spool_open, spool_close and every spool_msg_* / spool_commit /
 * spool_cancel / spool_op call happen on the event-loop thread. The writer
 * thread only touches messages handed to it; completion callbacks run on the
 * event-loop thread, from the event base given to spool_open.
 *
 * Durability contract: a commit callback with SPOOL_OK runs only after the
 * transaction holding the message is on stable storage (WAL + fsync). Only
 * then may a session answer 250.
 */
#ifndef DETOUR_SPOOL_H
#define DETOUR_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp_params.h"

struct event_base;
struct spool;
struct spool_msg;

/* Queue ids: 16 characters of [0-9A-Z] (Crockford base32, no I L O U),
 * time-ordered, unique within this spool. */
#define QID_LEN  16
#define QID_SIZE (QID_LEN + 1)

enum spool_result {
	SPOOL_OK,
	SPOOL_TEMPFAIL, /* database error; the message is not queued (451) */
	SPOOL_NOSPACE,  /* out of disk space; not queued (452 4.3.1) */
	SPOOL_NOTFOUND, /* spool_op: no such queue id */
};

/* The envelope of a message being received. Strings are owned by the
 * message (set them with xstrdup); NULL means "not known / not applicable". */
struct spool_envelope {
	char qid[QID_SIZE];
	char *sender; /* reverse-path without <>, "" for the null sender */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char *envid;            /* RFC 3461 ENVID, decoded */
	uint64_t declared_size; /* SIZE= from MAIL, 0 if none */
	char *client_addr;      /* "192.0.2.1" or "2001:db8::1" */
	char *helo;             /* EHLO/HELO argument */
	char *listener;         /* name of the [listener NAME] section */
	char *tls;              /* "TLSv1.3 TLS_AES_256_GCM_SHA384", NULL if plaintext */
	char *account;          /* authenticated account, NULL if none */
	int64_t arrival_ms;     /* wall clock, milliseconds since the epoch */
};

/*
 * spool_open - open (creating if needed) state_dir/queue.db, run recovery
 * (remove stale spill files; SQLite rolls back or replays its WAL) and start
 * the writer thread. Returns NULL with a message in *error_r (static or
 * owned by the spool's error buffer; print it before calling anything else).
 */
struct spool *spool_open(const char *state_dir, struct event_base *base, const char **error_r);

/* spool_close - finish every commit and operation already handed over,
 * stop the writer, close the database. Callbacks that have not run yet (and
 * were not cancelled) run from inside spool_close, on the calling loop
 * thread, once their data is durable: every callback runs exactly once.
 * A commit or operation handed over by one of those callbacks fails with
 * SPOOL_TEMPFAIL (its callback runs too). Not from inside a spool callback.
 * Sets *sp to NULL; NULL is fine. */
void spool_close(struct spool **sp);

/* spool_msg_new - start a message: assigns its queue id. */
struct spool_msg *spool_msg_new(struct spool *sp);
struct spool_envelope *spool_msg_envelope(struct spool_msg *m);
void spool_msg_add_rcpt(struct spool_msg *m, const char *address, unsigned notify,
                        const char *orcpt);
size_t spool_msg_rcpt_count(const struct spool_msg *m);

/* spool_msg_append - add message bytes. They stay in memory up to
 * SPOOL_INMEM_MAX, then spill to state_dir/tmp/QID (not synced: the commit
 * copies them into the database). Returns 0, or -1 with errno set
 * (ENOSPC: the session answers 452 4.3.1). */
int spool_msg_append(struct spool_msg *m, const void *data, size_t len);
uint64_t spool_msg_size(const struct spool_msg *m);

/* spool_msg_free - abandon a message that was not committed (RSET, refused,
 * client gone): memory and spill file are released. Sets *m to NULL. */
void spool_msg_free(struct spool_msg **m);

typedef void spool_commit_cb(void *arg, enum spool_result result, const char *qid);

/*
 * spool_commit - hand a finished message to the writer. The spool owns m from
 * now on. cb(arg, result, qid) runs once on the event-loop thread after the
 * group commit that holds it (SPOOL_OK) or after it failed.
 */
void spool_commit(struct spool *sp, struct spool_msg *m, spool_commit_cb *cb, void *arg);

/* spool_cancel - the session that waits for m is gone: do not call its
 * callback. The message is still committed (the client never saw a 250, so
 * it may send it again: delivery is at-least-once). */
void spool_cancel(struct spool *sp, struct spool_msg *m);

/* FLUSH makes every pending recipient of one message due now; FLUSH_ALL
 * does it for the whole queue (qid is ignored). */
enum spool_op {
	SPOOL_OP_DELETE,
	SPOOL_OP_HOLD,
	SPOOL_OP_RELEASE,
	SPOOL_OP_FLUSH,
	SPOOL_OP_FLUSH_ALL
};

typedef void spool_op_cb(void *arg, enum spool_result result);

/* spool_op - change one queued message, through the writer thread. The
 * callback runs on the event-loop thread once the change is durable. */
void spool_op(struct spool *sp, enum spool_op op, const char *qid, spool_op_cb *cb, void *arg);

/* ---- the delivery side --------------------------------------------------
 *
 * The scheduler asks for due work with spool_fetch and reports results with
 * spool_update. A fetched message is "claimed" until its update: no other
 * fetch returns it, so one message is never delivered twice at once. Claims
 * live in the writer's memory only; after a restart nothing is claimed and
 * every pending recipient is due again at its next_attempt_ms.
 */

/* Bodies up to this size come back with the fetch; larger ones are read in
 * pieces with spool_read_body while they are sent. */
#define SPOOL_WORK_INMEM_MAX (64 * 1024)
/* Messages one fetch returns at most. */
#define SPOOL_FETCH_MAX 256

enum spool_rcpt_state {
	SPOOL_RCPT_QUEUED,    /* never tried */
	SPOOL_RCPT_DEFERRED,  /* tried, will be tried again at next_attempt_ms */
	SPOOL_RCPT_DELIVERED, /* final */
	SPOOL_RCPT_FAILED,    /* final: bounced (or dropped for a null sender) */
};

struct spool_work_rcpt {
	unsigned idx; /* position in the message's RCPT order */
	char *address;
	unsigned notify; /* SMTP_NOTIFY_* bits, 0 if not given */
	char *orcpt;     /* NULL if none */
	unsigned attempts;
	enum spool_rcpt_state state;
	bool warned; /* the sender has had a delay warning for this recipient */
};

/* One claimed message and its recipients that are due now. */
struct spool_work {
	struct spool_work *next;
	char qid[QID_SIZE];
	char *sender; /* "" for the null sender */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char *envid;
	int64_t arrival_ms;
	uint64_t size;
	unsigned char *data; /* the whole body if size <= SPOOL_WORK_INMEM_MAX, else NULL */
	char *client_addr;
	char *helo;
	struct spool_work_rcpt *rcpts;
	size_t n_rcpts;
};

/*
 * spool_fetch - claim up to max messages that have recipients due at now_ms
 * (and are not held), oldest due first. cb(arg, result, list, next_due_ms)
 * runs on the loop thread; the list belongs to the callback (free each with
 * spool_work_free); next_due_ms is when the earliest unclaimed pending
 * recipient becomes due (INT64_MAX if none).
 */
typedef void spool_fetch_cb(void *arg, enum spool_result result, struct spool_work *list,
                            int64_t next_due_ms);
void spool_fetch(struct spool *sp, int64_t now_ms, size_t max, spool_fetch_cb *cb, void *arg);

void spool_work_free(struct spool_work **w);

struct spool_rcpt_update {
	unsigned idx;
	enum spool_rcpt_state state; /* DEFERRED, DELIVERED or FAILED */
	int64_t next_attempt_ms;     /* for DEFERRED */
	const char *last_result;     /* the remote's reply or our reason */
	bool warned;                 /* a delay warning for it is in this update's bounce */
};

/*
 * spool_update - record the results of one delivery attempt of message qid
 * and release its claim. Each listed recipient gets its new state, one more
 * attempt and its last result. When no recipient is pending any more the
 * message is deleted. bounce, if not NULL, is a new message (a delivery
 * status notification built by the caller) inserted in the same
 * transaction, so a failure is recorded if and only if its bounce is
 * queued; the spool owns it from now on. cb runs once it is committed.
 * Unlike a new message, a batch of updates is not fsynced at its commit:
 * a crash may lose the latest results, and their recipients are then
 * tried again (at least once; docs/queue.md, "Delivery results"). An
 * update with n == 0 only releases the claim.
 */
void spool_update(struct spool *sp, const char *qid, const struct spool_rcpt_update *updates,
                  size_t n, struct spool_msg *bounce, spool_op_cb *cb, void *arg);

/*
 * spool_read_body - copy up to len bytes of message qid's body from offset
 * off into buf. Returns the number of bytes read (0 at the end), or -1 if
 * the message is gone or the database cannot be read. Runs on the loop
 * thread with a read-only connection of its own; each call is a short read
 * (a page-cache hit in practice), so sending a large message never holds a
 * read transaction open for long.
 */
long spool_read_body(struct spool *sp, const char *qid, uint64_t off, void *buf, size_t len);

struct spool_stats {
	uint64_t messages;  /* in the queue now */
	uint64_t committed; /* since start */
	uint64_t batches;   /* transactions since start */
	uint64_t pending;   /* handed to the writer, not yet durable */
};

void spool_get_stats(struct spool *sp, struct spool_stats *stats_r);

/* spool_qid_valid - is s a well-formed queue id (QID_LEN characters of the
 * queue-id alphabet)? For detourctl and the control socket. */
bool spool_qid_valid(const char *s);

#endif
