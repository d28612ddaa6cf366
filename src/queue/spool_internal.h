/* SPDX-License-Identifier: ISC */
/*
 * spool_internal.h - private to src/queue/: the structures shared by the
 * event-loop side of the spool (spool.c), its writer thread (spool_writer.c)
 * and the queue-id generator (qid.c). Nothing outside src/queue/ includes
 * this file, except the spool's own unit test.
 *
 * Owns: the layout of struct spool, struct spool_msg and the writer's jobs.
 * Thread rules are written next to each field: "loop" fields are touched
 * only on the event-loop thread, "writer" fields only on the writer thread,
 * "lock" fields only with spool.lock held. A message or job moves between
 * threads only through the two mutex-protected lists, which is what orders
 * every access to it.
 */
#ifndef DETOUR_SPOOL_INTERNAL_H
#define DETOUR_SPOOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/spool.h"

struct event;

/* Current schema version, kept in PRAGMA user_version (docs/queue.md). */
#define SPOOL_SCHEMA_VERSION 2
/* PRAGMA application_id of queue.db: "dtrq", so that file(1) and we can
 * tell the queue from another SQLite database given by mistake. */
#define SPOOL_APPLICATION_ID 0x64747271

/* The writer checkpoints the WAL itself, between batches (docs/queue.md,
 * "Checkpoints"): when it is idle and the WAL holds at least this many
 * pages, or at once past the hard limit. */
#define SPOOL_CHECKPOINT_IDLE_PAGES 1000
#define SPOOL_CHECKPOINT_HARD_PAGES 16384
/* After a checkpoint reset the WAL, SQLite truncates it to this size. */
#define SPOOL_WAL_SIZE_LIMIT (64 * 1024 * 1024)
/* A writer that finds the database locked by another process waits this
 * long before failing the batch with SPOOL_TEMPFAIL. */
#define SPOOL_BUSY_TIMEOUT_MS 10000

enum spool_job_kind { SPOOL_JOB_COMMIT, SPOOL_JOB_OP, SPOOL_JOB_FETCH, SPOOL_JOB_UPDATE };

/* Buckets of the writer's set of claimed messages (spool_fetch). */
#define SPOOL_CLAIM_BUCKETS 1024
/* Rows of the pending-recipient index one fetch may walk past (claimed or
 * held messages) before it gives up and says "look again soon". */
#define SPOOL_FETCH_SCAN_MAX 20000

/* One unit of work for the writer: a message to insert or an operator
 * change. Jobs run in the order they were handed over. */
struct spool_job {
	struct spool_job *next; /* lock: in spool.queue or spool.done */
	enum spool_job_kind kind;
	enum spool_result result; /* writer: set before the job is done */
	void *arg;
	/* SPOOL_JOB_COMMIT: the job is embedded in its message. */
	spool_commit_cb *commit_cb;
	/* SPOOL_JOB_OP */
	enum spool_op op;
	bool op_invalid; /* the id is not well formed: NOTFOUND at once */
	char op_qid[QID_SIZE];
	spool_op_cb *op_cb; /* SPOOL_JOB_OP and SPOOL_JOB_UPDATE */
	/* SPOOL_JOB_FETCH: runs after the batch's COMMIT, outside it, so that
	 * it never sees rows a failed batch would take back. */
	int64_t fetch_now_ms;
	size_t fetch_max;
	spool_fetch_cb *fetch_cb;
	struct spool_work *fetch_list; /* writer: the result */
	int64_t fetch_next_due_ms;     /* writer: the result */
	/* SPOOL_JOB_UPDATE (op_qid names the message) */
	struct spool_rcpt_update *updates; /* copies; last_result strings owned */
	size_t n_updates;
	struct spool_msg *bounce; /* inserted in the same savepoint, or NULL */
	bool deleted;		  /* writer: the update removed a finished message */
};

enum spool_msg_state {
	SPOOL_MSG_RECEIVING, /* owned by the session (loop) */
	SPOOL_MSG_COMMITTING /* owned by the spool: queued, in the writer or done */
};

struct spool_rcpt {
	char *address;
	unsigned notify;
	char *orcpt; /* NULL if none */
};

struct spool_msg {
	struct spool_job job; /* must stay first: the writer goes from job to message */
	struct spool *sp;
	enum spool_msg_state state; /* loop */
	bool canceled;              /* loop: spool_cancel was called */
	struct spool_envelope env;
	struct spool_rcpt *rcpts;
	size_t rcpt_count, rcpt_cap;
	uint64_t size; /* bytes appended so far */
	/* Body: the first SPOOL_INMEM_MAX bytes live in mem. Once the message
	 * is larger, mem becomes the write buffer of the spill file: it holds
	 * mem_len bytes not yet written to spill_fd. */
	unsigned char *mem;
	size_t mem_len, mem_cap;
	int spill_fd;     /* -1 while the body is in memory */
	char *spill_path; /* state_dir/tmp/QID, NULL while in memory */
	int append_errno; /* a failed spill write is sticky: 0 if none */
};

struct spool_writer; /* spool_writer.c */

struct spool {
	char *state_dir;
	char *tmp_dir;
	struct event_base *base;
	struct event *wake_ev; /* loop: reads wake_fd */
	int wake_fd;           /* eventfd: the writer adds 1 after posting results */
	pthread_t thread;
	bool thread_started;
	bool delivering; /* loop: inside spool_deliver, callbacks running */

	pthread_mutex_t lock;
	pthread_cond_t cond;          /* lock: signalled when queue grows or stopping */
	struct spool_job *queue_head; /* lock: handed to the writer, in order */
	struct spool_job *queue_tail; /* lock */
	struct spool_job *done_head;  /* lock: finished, callbacks not yet run */
	struct spool_job *done_tail;  /* lock */
	bool stopping;                /* lock: spool_close was called */
	bool closed;                  /* loop: the writer has exited */

	/* loop: read-only connection for spool_read_body (opened on first use) */
	struct sqlite3 *reader;
	struct sqlite3_stmt *reader_rowid;

	struct spool_writer *writer; /* writer (created at open, before the thread) */

	_Atomic uint64_t messages;
	_Atomic uint64_t committed;
	_Atomic uint64_t batches;
	_Atomic uint64_t pending;
};

/* spool_writer.c: the database side. writer_open runs on the loop thread in
 * spool_open (so errors reach its caller); everything else on the writer. */
struct spool_writer *writer_open(struct spool *sp, const char *db_path, uint64_t *messages_r,
                                 char *err, size_t errlen);
void writer_close(struct spool_writer **w);
void *writer_main(void *arg);

/* spool.c: drop a message's body (memory, spill file) once the writer is
 * done with it or the session abandons it. Either thread, per ownership. */
void spool_msg_release_body(struct spool_msg *m);

/* qid.c: process-wide queue-id generator. */
#define QID_ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

/* qid_next - the next id from the wall clock. Thread-safe. */
void qid_next(char out[QID_SIZE]);
/* qid_next_at - the same with the clock given, for tests of a clock that
 * steps back: the result is strictly greater than every earlier id. */
void qid_next_at(int64_t now_us, char out[QID_SIZE]);
/* qid_floor - make every later id greater than qid (a valid id already in
 * the queue, so that a clock set back across a restart cannot reuse one). */
void qid_floor(const char *qid);

#endif
