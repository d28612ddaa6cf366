/* SPDX-License-Identifier: ISC */
/*
 * spool_writer.c - the spool's database side: the only write connection to
 * queue.db, its schema, and the writer thread that commits batches.
 *
 * One transaction per batch is the whole point (group commit): with
 * PRAGMA synchronous=FULL in WAL mode SQLite fsyncs the WAL once per COMMIT,
 * so SPOOL_BATCH_MAX messages cost one fsync instead of SPOOL_BATCH_MAX.
 * Each message is wrapped in a SAVEPOINT so that one bad message (a
 * duplicate id, an unreadable spill file) fails alone while the rest of the
 * batch commits. docs/queue.md describes every state this code leaves on disk.
 */
#include "queue/spool_internal.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/crashpoint.h"
#include "lib/log.h"
#include "lib/util.h"

/* Message, recipients and body are one transaction; the columns are
 * described in docs/queue.md, "Schema". NOT NULL is added where the queue
 * never stores NULL (a TEXT PRIMARY KEY of a rowid table would otherwise
 * accept one). */
static const char schema_sql[] =
    "CREATE TABLE message ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " arrival_ms INTEGER NOT NULL,"
    " sender TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " body_type INTEGER NOT NULL DEFAULT 0,"
    " smtputf8 INTEGER NOT NULL DEFAULT 0,"
    " ret INTEGER NOT NULL DEFAULT 0,"
    " envid TEXT,"
    " declared_size INTEGER NOT NULL DEFAULT 0,"
    " client_addr TEXT,"
    " helo TEXT,"
    " listener TEXT,"
    " tls TEXT,"
    " account TEXT,"
    " held INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE body ("
    " message_id TEXT PRIMARY KEY NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
    " data BLOB NOT NULL);"
    "CREATE TABLE recipient ("
    " message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL,"
    " address TEXT NOT NULL,"
    " notify INTEGER NOT NULL DEFAULT 0,"
    " orcpt TEXT,"
    " state TEXT NOT NULL DEFAULT 'queued'"
    "  CHECK (state = 'queued' OR state = 'deferred' OR state = 'delivered'"
    "   OR state = 'failed'),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    " last_result TEXT,"
    " warned INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (message_id, idx));"
    "CREATE INDEX recipient_pending ON recipient(next_attempt_ms)"
    " WHERE state IN ('queued', 'deferred');";

struct spool_writer {
	struct spool *sp;
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback;
	sqlite3_stmt *savepoint, *release, *rollback_to;
	sqlite3_stmt *insert_message, *insert_body, *insert_rcpt;
	sqlite3_stmt *delete_message, *set_held;
	/* delivery */
	sqlite3_stmt *fetch_due, *fetch_held, *fetch_message, *fetch_rcpts, *fetch_body;
	sqlite3_stmt *update_rcpt, *count_pending, *flush_one, *flush_all;
	struct claim *claims[SPOOL_CLAIM_BUCKETS]; /* messages out for delivery */
	unsigned char *chunk;                      /* SPOOL_CHUNK bytes: spill file -> blob */
	int wal_pages;                             /* pages in the WAL after the last commit */
	bool sync_full;                            /* PRAGMA synchronous is FULL (else NORMAL) */
};

/* What went wrong, kept long enough to classify and log it once. */
struct writer_err {
	int code;      /* SQLite extended result code, 0 for a system call */
	int sys_errno; /* errno behind it, 0 if none */
	const char *step;
	char text[200];
};

/* errno_is_full - errors that mean "no room": the 452 4.3.1 case. EFBIG
 * (a file size limit) and EDQUOT are full disks from the message's point of
 * view too. */
static bool errno_is_full(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

/* file_last_errno - the errno of the last failed system call on one of
 * SQLite's files (the unix VFS keeps it per file), 0 if none. */
static int file_last_errno(sqlite3_file *f)
{
	int err = 0;
	if (f == NULL || f->pMethods == NULL ||
	    f->pMethods->xFileControl(f, SQLITE_FCNTL_LAST_ERRNO, &err) != SQLITE_OK)
		return 0;
	return err;
}

/* writer_sys_errno - the errno behind an I/O error. sqlite3_system_errno
 * alone is not enough: the unix VFS reports the thread's errno at the time
 * the error is recorded, and SQLite's own cleanup after a failed WAL write
 * has overwritten it by then. The WAL and database files keep the errno of
 * their last failed call, which is what tells EFBIG or EDQUOT (452) from
 * EIO (451); SQLITE_FULL already covers plain ENOSPC. */
static int writer_sys_errno(struct spool_writer *w, int code)
{
	int err = sqlite3_system_errno(w->db);
	if ((code & 0xff) != SQLITE_IOERR || errno_is_full(err))
		return err;
	sqlite3_file *f = NULL;
	if (sqlite3_file_control(w->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) == SQLITE_OK) {
		int wal = file_last_errno(f);
		if (wal != 0)
			return wal;
	}
	if (sqlite3_file_control(w->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK) {
		int db = file_last_errno(f);
		if (db != 0)
			return db;
	}
	return err;
}

/* writer_err_db - record the connection's last error. */
static void writer_err_db(struct spool_writer *w, struct writer_err *e, int code, const char *step)
{
	e->code = code;
	e->sys_errno = writer_sys_errno(w, code);
	e->step = step;
	str_copy(e->text, sqlite3_errmsg(w->db), sizeof(e->text));
}

/* writer_err_sys - record a failed system call (reading a spill file). */
static void writer_err_sys(struct writer_err *e, int err, const char *step, const char *what)
{
	e->code = 0;
	e->sys_errno = err;
	e->step = step;
	snprintf(e->text, sizeof(e->text), "%s: %s", what, strerror(err));
}

/* writer_err_result - SQLITE_FULL, or an I/O error caused by a full disk, is
 * SPOOL_NOSPACE; everything else is a temporary failure. */
static enum spool_result writer_err_result(const struct writer_err *e)
{
	int primary = e->code & 0xff;
	if (primary == SQLITE_FULL)
		return SPOOL_NOSPACE;
	if ((primary == SQLITE_IOERR || e->code == 0) && errno_is_full(e->sys_errno))
		return SPOOL_NOSPACE;
	return SPOOL_TEMPFAIL;
}

static const char *result_name(enum spool_result r)
{
	switch (r) {
	case SPOOL_OK:
		return "ok";
	case SPOOL_TEMPFAIL:
		return "tempfail";
	case SPOOL_NOSPACE:
		return "nospace";
	case SPOOL_NOTFOUND:
		return "notfound";
	}
	return "?";
}

/* writer_log_err - the one log line of a failure. qid is NULL for a failure
 * of the whole batch, which then names how many jobs it took down. */
static void writer_log_err(const struct writer_err *e, const char *qid, size_t count)
{
	struct logline l;
	logline_init(&l, "queue.error");
	if (qid != NULL)
		logline_str(&l, "qid", qid);
	else
		logline_int(&l, "count", (long long)count);
	logline_str(&l, "step", e->step);
	logline_str(&l, "result", result_name(writer_err_result(e)));
	logline_int(&l, "code", e->code);
	if (e->sys_errno != 0)
		logline_int(&l, "errno", e->sys_errno);
	logline_str(&l, "error", e->text);
	logline_emit(&l, LOG_LEVEL_ERROR);
}

/* writer_step - run a statement that returns no rows we need, then reset it. */
static int writer_step(struct spool_writer *w, sqlite3_stmt *st, struct writer_err *e,
                       const char *step)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;
	}
	writer_err_db(w, e, rc, step);
	sqlite3_reset(st);
	return -1;
}

/* writer_copy_spill - fill the zeroblob of body row `rowid` from the spill
 * file, SPOOL_CHUNK bytes at a time, so that a 30 MB message never sits in
 * memory whole. */
static int writer_copy_spill(struct spool_writer *w, struct spool_msg *m, sqlite3_int64 rowid,
                             struct writer_err *e)
{
	sqlite3_blob *blob = NULL;
	int rc = sqlite3_blob_open(w->db, "main", "body", "data", rowid, 1, &blob);
	if (rc != SQLITE_OK) {
		writer_err_db(w, e, rc, "body");
		sqlite3_blob_close(blob);
		return -1;
	}
	uint64_t off = 0;
	while (off < m->size) {
		size_t want = m->size - off < SPOOL_CHUNK ? (size_t)(m->size - off) : SPOOL_CHUNK;
		ssize_t got = pread(m->spill_fd, w->chunk, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			writer_err_sys(e, got < 0 ? errno : EIO, "body",
			               got < 0 ? "reading spill file" : "spill file too short");
			sqlite3_blob_close(blob);
			return -1;
		}
		rc = sqlite3_blob_write(blob, w->chunk, (int)got, (int)off);
		if (rc != SQLITE_OK) {
			writer_err_db(w, e, rc, "body");
			sqlite3_blob_close(blob);
			return -1;
		}
		off += (uint64_t)got;
	}
	rc = sqlite3_blob_close(blob);
	if (rc != SQLITE_OK) {
		writer_err_db(w, e, rc, "body");
		return -1;
	}
	return 0;
}

/* writer_insert_message - message row, body, recipients: the order the
 * crash points name. Runs inside the message's savepoint. */
static int writer_insert_message(struct spool_writer *w, struct spool_msg *m, struct writer_err *e)
{
	const struct spool_envelope *env = &m->env;
	sqlite3_stmt *st = w->insert_message;
	int64_t declared = env->declared_size > INT64_MAX ? INT64_MAX : (int64_t)env->declared_size;

	sqlite3_bind_text(st, 1, env->qid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, env->arrival_ms);
	sqlite3_bind_text(st, 3, env->sender, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)m->size);
	sqlite3_bind_int(st, 5, (int)env->body);
	sqlite3_bind_int(st, 6, env->smtputf8 ? 1 : 0);
	sqlite3_bind_int(st, 7, (int)env->ret);
	sqlite3_bind_text(st, 8, env->envid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, declared);
	sqlite3_bind_text(st, 10, env->client_addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, env->helo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, env->listener, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, env->tls, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, env->account, -1, SQLITE_STATIC);
	int r = writer_step(w, st, e, "message-row");
	sqlite3_clear_bindings(st);
	if (r < 0)
		return -1;
	CRASHPOINT("spool-message-row");

	/* Blob offsets are ints in SQLite's API; the configured message size
	 * limit keeps far below this. */
	if (m->size > INT_MAX) {
		e->code = SQLITE_TOOBIG;
		e->sys_errno = 0;
		e->step = "body";
		str_copy(e->text, "message too large for the queue", sizeof(e->text));
		return -1;
	}
	st = w->insert_body;
	sqlite3_bind_text(st, 1, env->qid, -1, SQLITE_STATIC);
	if (m->spill_fd >= 0 || m->size == 0)
		/* zeroblob(0) too: a NULL pointer would bind NULL, not "". */
		sqlite3_bind_zeroblob64(st, 2, m->spill_fd >= 0 ? m->size : 0);
	else
		sqlite3_bind_blob64(st, 2, m->mem, m->size, SQLITE_STATIC);
	r = writer_step(w, st, e, "body");
	sqlite3_clear_bindings(st);
	if (r < 0)
		return -1;
	if (m->spill_fd >= 0 && m->size > 0 &&
	    writer_copy_spill(w, m, sqlite3_last_insert_rowid(w->db), e) < 0)
		return -1;
	CRASHPOINT("spool-body");

	st = w->insert_rcpt;
	for (size_t i = 0; i < m->rcpt_count; i++) {
		const struct spool_rcpt *rc = &m->rcpts[i];
		sqlite3_bind_text(st, 1, env->qid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, rc->address, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, (int)rc->notify);
		sqlite3_bind_text(st, 5, rc->orcpt, -1, SQLITE_STATIC);
		r = writer_step(w, st, e, "recipients");
		sqlite3_clear_bindings(st);
		if (r < 0)
			return -1;
	}
	CRASHPOINT("spool-recipients");
	return 0;
}

/* ---- delivery: claims, fetch, update ------------------------------------ */

/* One claimed message in the writer's set. */
struct claim {
	struct claim *next;
	char qid[QID_SIZE];
};

static unsigned claim_bucket(const char *qid)
{
	return str_hash(qid) % SPOOL_CLAIM_BUCKETS;
}

static bool claim_has(struct spool_writer *w, const char *qid)
{
	for (struct claim *c = w->claims[claim_bucket(qid)]; c != NULL; c = c->next)
		if (strcmp(c->qid, qid) == 0)
			return true;
	return false;
}

static void claim_add(struct spool_writer *w, const char *qid)
{
	struct claim *c = xcalloc(1, sizeof(*c));
	str_copy(c->qid, qid, sizeof(c->qid));
	unsigned b = claim_bucket(qid);
	c->next = w->claims[b];
	w->claims[b] = c;
}

static void claim_drop(struct spool_writer *w, const char *qid)
{
	for (struct claim **pp = &w->claims[claim_bucket(qid)]; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->qid, qid) == 0) {
			struct claim *c = *pp;
			*pp = c->next;
			free(c);
			return;
		}
	}
}

static void claims_free(struct spool_writer *w)
{
	for (size_t b = 0; b < SPOOL_CLAIM_BUCKETS; b++) {
		while (w->claims[b] != NULL) {
			struct claim *c = w->claims[b];
			w->claims[b] = c->next;
			free(c);
		}
	}
}

static char *column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

/* writer_load_work - the message row, its due recipients and (if small) its
 * body, for one claimed message. NULL if it vanished meanwhile. */
static struct spool_work *writer_load_work(struct spool_writer *w, const char *qid, int64_t now)
{
	sqlite3_stmt *st = w->fetch_message;
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return NULL;
	}
	struct spool_work *wk = xcalloc(1, sizeof(*wk));
	str_copy(wk->qid, qid, sizeof(wk->qid));
	wk->sender = column_dup(st, 0);
	wk->body = (enum smtp_body)sqlite3_column_int(st, 1);
	wk->smtputf8 = sqlite3_column_int(st, 2) != 0;
	wk->ret = (enum smtp_ret)sqlite3_column_int(st, 3);
	wk->envid = column_dup(st, 4);
	wk->arrival_ms = sqlite3_column_int64(st, 5);
	wk->size = (uint64_t)sqlite3_column_int64(st, 6);
	wk->client_addr = column_dup(st, 7);
	wk->helo = column_dup(st, 8);
	if (wk->sender == NULL)
		wk->sender = xstrdup("");
	sqlite3_reset(st);

	st = w->fetch_rcpts;
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	size_t cap = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (wk->n_rcpts == cap) {
			cap = cap ? cap * 2 : 4;
			wk->rcpts = xreallocarray(wk->rcpts, cap, sizeof(*wk->rcpts));
		}
		struct spool_work_rcpt *r = &wk->rcpts[wk->n_rcpts++];
		r->idx = (unsigned)sqlite3_column_int(st, 0);
		r->address = column_dup(st, 1);
		r->notify = (unsigned)sqlite3_column_int(st, 2);
		r->orcpt = column_dup(st, 3);
		r->attempts = (unsigned)sqlite3_column_int(st, 4);
		r->warned = sqlite3_column_int(st, 6) != 0;
		const unsigned char *state = sqlite3_column_text(st, 5);
		r->state = state && strcmp((const char *)state, "deferred") == 0
		               ? SPOOL_RCPT_DEFERRED
		               : SPOOL_RCPT_QUEUED;
	}
	sqlite3_reset(st);

	if (wk->size <= SPOOL_WORK_INMEM_MAX) {
		st = w->fetch_body;
		sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			int n = sqlite3_column_bytes(st, 0);
			wk->data = xmalloc(n > 0 ? (size_t)n : 1);
			if (n > 0)
				memcpy(wk->data, sqlite3_column_blob(st, 0), (size_t)n);
			wk->size = (uint64_t)n;
		}
		sqlite3_reset(st);
	}
	if (wk->n_rcpts == 0 || (wk->size <= SPOOL_WORK_INMEM_MAX && wk->data == NULL)) {
		spool_work_free(&wk);
		return NULL;
	}
	return wk;
}

/* writer_fetch - claim due messages: walk the pending recipients in due
 * order (a partial index), skipping claimed and held messages. */
static void writer_fetch(struct spool_writer *w, struct spool_job *job)
{
	int64_t now = job->fetch_now_ms;
	struct spool_work *head = NULL, **tail = &head;
	size_t taken = 0, scanned = 0;
	char held_qid[QID_SIZE] = "";
	job->fetch_next_due_ms = INT64_MAX;

	sqlite3_stmt *st = w->fetch_due;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *qid = (const char *)sqlite3_column_text(st, 0);
		int64_t due = sqlite3_column_int64(st, 1);
		if (qid == NULL)
			continue;
		if (++scanned > SPOOL_FETCH_SCAN_MAX) {
			/* Too much claimed or held work in the way: look again
			 * in a moment rather than walk the whole queue. */
			job->fetch_next_due_ms = now + 1000;
			break;
		}
		if (claim_has(w, qid) || strcmp(qid, held_qid) == 0)
			continue;
		/* held? */
		sqlite3_stmt *h = w->fetch_held;
		sqlite3_bind_text(h, 1, qid, -1, SQLITE_TRANSIENT);
		bool held = sqlite3_step(h) != SQLITE_ROW || sqlite3_column_int(h, 0) != 0;
		sqlite3_reset(h);
		if (held) {
			str_copy(held_qid, qid, sizeof(held_qid));
			continue;
		}
		if (due > now || taken == job->fetch_max) {
			job->fetch_next_due_ms = due > now ? due : now;
			break;
		}
		char id[QID_SIZE];
		str_copy(id, qid, sizeof(id));
		struct spool_work *wk = writer_load_work(w, id, now);
		if (wk == NULL)
			continue;
		claim_add(w, id);
		*tail = wk;
		tail = &wk->next;
		taken++;
	}
	sqlite3_reset(st);
	job->fetch_list = head;
	job->result = SPOOL_OK;
}

static const char *const rcpt_state_names[] = {"queued", "deferred", "delivered", "failed"};

/* writer_update - one delivery attempt's results (inside the savepoint). */
static int writer_update(struct spool_writer *w, struct spool_job *job, struct writer_err *e)
{
	sqlite3_stmt *st = w->update_rcpt;
	for (size_t i = 0; i < job->n_updates; i++) {
		const struct spool_rcpt_update *u = &job->updates[i];
		sqlite3_bind_text(st, 1, rcpt_state_names[u->state], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, u->next_attempt_ms);
		sqlite3_bind_text(st, 3, u->last_result, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, job->op_qid, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, (int)u->idx);
		sqlite3_bind_int(st, 6, u->warned ? 1 : 0);
		int r = writer_step(w, st, e, "update");
		sqlite3_clear_bindings(st);
		if (r < 0)
			return -1;
	}
	/* A message whose every recipient is final has nothing left to do. */
	st = w->count_pending;
	sqlite3_bind_text(st, 1, job->op_qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t pending = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	int64_t exists = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		writer_err_db(w, e, rc, "update");
		return -1;
	}
	job->result = exists ? SPOOL_OK : SPOOL_NOTFOUND;
	if (exists && pending == 0) {
		sqlite3_bind_text(w->delete_message, 1, job->op_qid, -1, SQLITE_STATIC);
		int r = writer_step(w, w->delete_message, e, "delete");
		sqlite3_clear_bindings(w->delete_message);
		if (r < 0)
			return -1;
		job->deleted = true; /* counted as a deletion after commit */
	}
	/* A message deleted meanwhile (detourctl queue delete) gets no
	 * bounce: a failure is recorded if and only if its bounce is queued. */
	if (exists && job->bounce != NULL && writer_insert_message(w, job->bounce, e) < 0)
		return -1;
	return 0;
}

/* writer_flush - make pending recipients due now (queue flush). */
static int writer_flush(struct spool_writer *w, struct spool_job *job, struct writer_err *e)
{
	sqlite3_stmt *st = job->op == SPOOL_OP_FLUSH ? w->flush_one : w->flush_all;
	if (job->op == SPOOL_OP_FLUSH)
		sqlite3_bind_text(st, 1, job->op_qid, -1, SQLITE_STATIC);
	int r = writer_step(w, st, e, "flush");
	sqlite3_clear_bindings(st);
	if (r < 0)
		return -1;
	if (job->op == SPOOL_OP_FLUSH_ALL) {
		job->result = SPOOL_OK;
		return 0;
	}
	/* The message exists if it has any row at all. */
	st = w->count_pending;
	sqlite3_bind_text(st, 1, job->op_qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	job->result = rc == SQLITE_ROW && sqlite3_column_int64(st, 1) ? SPOOL_OK : SPOOL_NOTFOUND;
	sqlite3_reset(st);
	return 0;
}

/* writer_run_op - DELETE, HOLD or RELEASE one message. No row matched is
 * not an error of the batch: the job's result says SPOOL_NOTFOUND. */
static int writer_run_op(struct spool_writer *w, struct spool_job *job, struct writer_err *e)
{
	if (job->op == SPOOL_OP_FLUSH || job->op == SPOOL_OP_FLUSH_ALL)
		return writer_flush(w, job, e);
	sqlite3_stmt *st = job->op == SPOOL_OP_DELETE ? w->delete_message : w->set_held;
	if (job->op == SPOOL_OP_DELETE) {
		sqlite3_bind_text(st, 1, job->op_qid, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_int(st, 1, job->op == SPOOL_OP_HOLD ? 1 : 0);
		sqlite3_bind_text(st, 2, job->op_qid, -1, SQLITE_STATIC);
	}
	int r = writer_step(w, st, e, job->op == SPOOL_OP_DELETE ? "delete" : "hold");
	sqlite3_clear_bindings(st);
	if (r < 0)
		return -1;
	/* An UPDATE counts matched rows, so holding a held message is OK. */
	job->result = sqlite3_changes(w->db) > 0 ? SPOOL_OK : SPOOL_NOTFOUND;
	return 0;
}

/* writer_undo_item - roll back one failed job's savepoint. Returns -1 when
 * the whole transaction is gone instead (SQLite rolls back by itself after
 * some I/O and disk-full errors, and we do when even the savepoint fails). */
static int writer_undo_item(struct spool_writer *w)
{
	struct writer_err ignored;
	if (sqlite3_get_autocommit(w->db))
		return -1;
	if (writer_step(w, w->rollback_to, &ignored, "rollback-to") == 0 &&
	    writer_step(w, w->release, &ignored, "release") == 0)
		return 0;
	if (!sqlite3_get_autocommit(w->db))
		writer_step(w, w->rollback, &ignored, "rollback");
	return -1;
}

static const char *job_qid(struct spool_job *job)
{
	return job->kind == SPOOL_JOB_COMMIT ? ((struct spool_msg *)job)->env.qid : job->op_qid;
}

/* writer_fail_ok - after the transaction is lost, nothing it did happened:
 * every job that had succeeded inside it fails with the batch's error. */
static void writer_fail_ok(struct spool_job **jobs, size_t n, enum spool_result result)
{
	for (size_t i = 0; i < n; i++)
		if (jobs[i]->result == SPOOL_OK)
			jobs[i]->result = result;
}

/* writer_run_job - one job inside the open transaction, in its own
 * savepoint. Returns -1 (with *e set) if the transaction was lost. */
static int writer_run_job(struct spool_writer *w, struct spool_job *job, struct writer_err *e)
{
	if ((job->kind == SPOOL_JOB_OP || job->kind == SPOOL_JOB_UPDATE) && job->op_invalid) {
		job->result = SPOOL_NOTFOUND;
		return 0;
	}
	if (job->kind == SPOOL_JOB_FETCH)
		return 0; /* after the commit, see writer_batch */
	if (job->kind == SPOOL_JOB_COMMIT) {
		struct spool_msg *m = (struct spool_msg *)job;
		if (m->append_errno != 0) {
			/* The body never reached its spill file whole. */
			writer_err_sys(e, m->append_errno, "spill", "writing spill file");
			job->result = writer_err_result(e);
			writer_log_err(e, m->env.qid, 1);
			return 0;
		}
	}
	int r = writer_step(w, w->savepoint, e, "savepoint");
	if (r == 0) {
		r = job->kind == SPOOL_JOB_COMMIT
		        ? writer_insert_message(w, (struct spool_msg *)job, e)
		    : job->kind == SPOOL_JOB_UPDATE ? writer_update(w, job, e)
		                                    : writer_run_op(w, job, e);
		if (r == 0)
			r = writer_step(w, w->release, e, "release");
		if (r == 0) {
			if (job->kind == SPOOL_JOB_COMMIT)
				job->result = SPOOL_OK;
			return 0;
		}
	}
	job->result = writer_err_result(e);
	if (writer_undo_item(w) < 0)
		return -1;
	writer_log_err(e, job_qid(job), 1);
	return 0;
}

/*
 * writer_sync_for - how durable this batch's COMMIT must be. A batch that
 * holds a new message (a session waits to say 250) or an operator's change
 * is fsynced at COMMIT (synchronous=FULL). A batch of delivery results only
 * is not (NORMAL): if the process or the machine stops before the WAL is
 * next synced (at the next FULL commit or checkpoint), those results are
 * lost and the recipients are simply tried again: a duplicate, never a
 * loss. This halves the fsyncs per relayed message (docs/queue.md).
 *
 * SQLite applies PRAGMA synchronous=... when the statement is *prepared*
 * (the parser sets the pager's flags), not when it is stepped: a statement
 * kept prepared would change nothing. So the pragma is parsed afresh at
 * every switch and the level read back. Returns -1 with e filled in only
 * when the batch needs FULL and cannot have it: then nobody may be told
 * that its message is on disk.
 */
static int writer_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
static int writer_query(sqlite3 *db, const char *sql, int64_t *value_r, char *text_r,
                        size_t text_size, char *err, size_t errlen);

static int writer_sync_for(struct spool_writer *w, struct spool_job **jobs, size_t n,
                           struct writer_err *e)
{
	bool full = false;
	for (size_t i = 0; i < n && !full; i++)
		full = jobs[i]->kind == SPOOL_JOB_COMMIT || jobs[i]->kind == SPOOL_JOB_OP;
	if (full == w->sync_full)
		return 0;
	char err[sizeof(e->text)];
	int64_t level = -1;
	if (writer_exec(w->db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err,
	                sizeof(err)) == 0 &&
	    writer_query(w->db, "PRAGMA synchronous", &level, NULL, 0, err, sizeof(err)) == 0 &&
	    level != (full ? 2 : 1))
		snprintf(err, sizeof(err), "PRAGMA synchronous=%s did not take (level %lld)",
		         full ? "FULL" : "NORMAL", (long long)level);
	if (level == (full ? 2 : 1)) {
		w->sync_full = full;
		return 0;
	}
	/* Unknown now: the next batch sets it again, whichever it needs. */
	w->sync_full = !full;
	*e = (struct writer_err){.code = sqlite3_extended_errcode(w->db), .step = "synchronous"};
	str_copy(e->text, err, sizeof(e->text));
	writer_log_err(e, NULL, n);
	return full ? -1 : 0;
}

/* writer_batch - one transaction for up to SPOOL_BATCH_MAX jobs. On return
 * every job has its result and every spill file of the batch is gone. */
static void writer_batch(struct spool_writer *w, struct spool_job **jobs, size_t n)
{
	struct spool *sp = w->sp;
	int64_t start = mono_ms();
	struct writer_err e;
	bool committed = false;

	if (writer_sync_for(w, jobs, n, &e) < 0) {
		for (size_t i = 0; i < n; i++)
			jobs[i]->result = writer_err_result(&e);
		goto out;
	}
	if (writer_step(w, w->begin, &e, "begin") < 0) {
		for (size_t i = 0; i < n; i++)
			jobs[i]->result = writer_err_result(&e);
		writer_log_err(&e, NULL, n);
		goto out;
	}
	CRASHPOINT("spool-batch-begin");
	for (size_t i = 0; i < n; i++) {
		if (writer_run_job(w, jobs[i], &e) == 0)
			continue;
		/* The transaction is gone: this job and all after it fail
		 * with the same error, and so do those before it. */
		enum spool_result res = writer_err_result(&e);
		writer_fail_ok(jobs, i, res);
		for (size_t j = i; j < n; j++)
			jobs[j]->result = res;
		writer_log_err(&e, NULL, n);
		goto out;
	}
	CRASHPOINT("spool-before-commit");
	if (writer_step(w, w->commit, &e, "commit") < 0) {
		/* Nothing half-written may look queued: the batch is one
		 * transaction, so rolling it back removes all of it. */
		struct writer_err ignored;
		if (!sqlite3_get_autocommit(w->db))
			writer_step(w, w->rollback, &ignored, "rollback");
		writer_fail_ok(jobs, n, writer_err_result(&e));
		writer_log_err(&e, NULL, n);
		goto out;
	}
	committed = true;
	CRASHPOINT("spool-after-commit");

out:
	/* Fetches read what is committed now; claims of updated messages are
	 * released whatever happened (a lost update leaves the recipients due,
	 * so they are tried again: at least once). */
	for (size_t i = 0; i < n; i++) {
		if (jobs[i]->kind == SPOOL_JOB_UPDATE && !jobs[i]->op_invalid)
			claim_drop(w, jobs[i]->op_qid);
		if (jobs[i]->kind == SPOOL_JOB_FETCH)
			writer_fetch(w, jobs[i]);
	}
	uint64_t msgs = 0, ok = 0, deleted = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		struct spool_job *job = jobs[i];
		if (job->kind == SPOOL_JOB_COMMIT) {
			msgs++;
			/* The transaction holds the bytes now, or the message
			 * failed: either way the spill file has served. */
			spool_msg_release_body((struct spool_msg *)job);
			if (job->result == SPOOL_OK)
				ok++;
		} else if (job->kind == SPOOL_JOB_FETCH) {
			continue;
		} else if (((job->kind == SPOOL_JOB_OP && job->op == SPOOL_OP_DELETE) ||
		            (job->kind == SPOOL_JOB_UPDATE && job->deleted)) &&
		           job->result == SPOOL_OK) {
			deleted++;
		}
		if (job->kind == SPOOL_JOB_UPDATE && job->bounce != NULL) {
			spool_msg_release_body(job->bounce);
			if (job->result == SPOOL_OK)
				ok++; /* the bounce is one more message in the queue */
		}
		if (job->result != SPOOL_OK && job->result != SPOOL_NOTFOUND)
			failed++;
	}
	/* Counters move before the results are posted, so that a callback
	 * already sees its own message counted. */
	if (committed) {
		atomic_fetch_add(&sp->batches, 1);
		atomic_fetch_add(&sp->committed, ok);
		atomic_fetch_add(&sp->messages, ok);
		atomic_fetch_sub(&sp->messages, deleted);
	}
	atomic_fetch_sub(&sp->pending, msgs);
	log_event(LOG_LEVEL_DEBUG, "queue.batch",
	          "count=%llu ops=%llu failed=%llu committed=%s ms=%lld", (unsigned long long)msgs,
	          (unsigned long long)(n - msgs), (unsigned long long)failed,
	          committed ? "yes" : "no", (long long)(mono_ms() - start));
}

/* writer_wal_hook - remember how large the WAL is after each commit; it
 * replaces SQLite's auto-checkpoint hook (see writer_checkpoint). */
static int writer_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct spool_writer *w = arg;
	(void)db;
	(void)name;
	w->wal_pages = pages;
	return SQLITE_OK;
}

/* writer_checkpoint - copy the WAL back into queue.db. SQLite's automatic
 * checkpoint would run inside COMMIT, before the batch's 250s can be sent;
 * here it runs after the batch's results are posted, preferably while no
 * work waits. PASSIVE never waits for readers (detourctl). */
static void writer_checkpoint(struct spool_writer *w, bool idle)
{
	if (w->wal_pages < SPOOL_CHECKPOINT_IDLE_PAGES ||
	    (!idle && w->wal_pages < SPOOL_CHECKPOINT_HARD_PAGES))
		return;
	int64_t start = mono_ms();
	int log_frames = 0, done_frames = 0;
	int rc = sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
	                                   &done_frames);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		struct logline l;
		logline_init(&l, "queue.error");
		logline_str(&l, "step", "checkpoint");
		logline_int(&l, "code", rc);
		logline_str(&l, "error", sqlite3_errmsg(w->db));
		logline_emit(&l, LOG_LEVEL_WARN);
	}
	log_event(LOG_LEVEL_DEBUG, "queue.checkpoint", "frames=%d done=%d ms=%lld", log_frames,
	          done_frames, (long long)(mono_ms() - start));
	/* Until the next commit reports the WAL's size again. */
	w->wal_pages = 0;
}

/* writer_wake - tell the event loop that results are waiting. */
static void writer_wake(struct spool *sp)
{
	uint64_t one = 1;
	while (write(sp->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
		/* retry */
	}
}

void *writer_main(void *arg)
{
	struct spool *sp = arg;
	struct spool_writer *w = sp->writer;
	struct spool_job *batch[SPOOL_BATCH_MAX];

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		while (sp->queue_head == NULL && !sp->stopping)
			pthread_cond_wait(&sp->cond, &sp->lock);
		if (sp->queue_head == NULL)
			break; /* stopping, and everything handed over is done */
		/* Take everything waiting: whatever arrived during the last
		 * fsync shares the next one. */
		size_t n = 0;
		while (n < SPOOL_BATCH_MAX && sp->queue_head != NULL) {
			batch[n++] = sp->queue_head;
			sp->queue_head = sp->queue_head->next;
		}
		if (sp->queue_head == NULL)
			sp->queue_tail = NULL;
		pthread_mutex_unlock(&sp->lock);

		writer_batch(w, batch, n);

		pthread_mutex_lock(&sp->lock);
		for (size_t i = 0; i < n; i++) {
			batch[i]->next = NULL;
			if (sp->done_tail != NULL)
				sp->done_tail->next = batch[i];
			else
				sp->done_head = batch[i];
			sp->done_tail = batch[i];
		}
		bool idle = sp->queue_head == NULL && !sp->stopping;
		pthread_mutex_unlock(&sp->lock);
		writer_wake(sp);
		writer_checkpoint(w, idle);
		pthread_mutex_lock(&sp->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

/* writer_exec - run SQL text at open time, with the message in err. */
static int writer_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "queue.db: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* writer_query - the first column of the first row of sql, as a number
 * (0 for no row or NULL); text rows are copied to text_r if given. */
static int writer_query(sqlite3 *db, const char *sql, int64_t *value_r, char *text_r,
                        size_t text_size, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (value_r != NULL)
				*value_r = sqlite3_column_int64(st, 0);
			if (text_r != NULL) {
				const unsigned char *t = sqlite3_column_text(st, 0);
				str_copy(text_r, t != NULL ? (const char *)t : "", text_size);
			}
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			if (value_r != NULL)
				*value_r = 0;
			if (text_r != NULL && text_size > 0)
				text_r[0] = '\0';
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "queue.db: %s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

/* writer_schema - create the schema in an empty database, or check that an
 * existing one is ours and of a version we know. One transaction, so a
 * crash while creating it leaves an empty database, not half a schema. */
static int writer_schema(sqlite3 *db, char *err, size_t errlen)
{
	int64_t version = 0, app_id = 0, tables = 0;
	if (writer_exec(db, "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	if (writer_query(db, "PRAGMA user_version", &version, NULL, 0, err, errlen) < 0 ||
	    writer_query(db, "PRAGMA application_id", &app_id, NULL, 0, err, errlen) < 0 ||
	    writer_query(db, "SELECT count(*) FROM sqlite_schema", &tables, NULL, 0, err, errlen) <
	        0)
		goto fail;
	if (app_id != 0 && app_id != SPOOL_APPLICATION_ID) {
		snprintf(err, errlen, "queue.db: not a detour queue (application_id %lld)",
		         (long long)app_id);
		goto fail;
	}
	if (version == 0) {
		if (tables != 0) {
			snprintf(err, errlen,
			         "queue.db: not a detour queue (tables but no version)");
			goto fail;
		}
		char pragmas[128];
		snprintf(pragmas, sizeof(pragmas),
		         "PRAGMA application_id=%d; PRAGMA user_version=%d", SPOOL_APPLICATION_ID,
		         SPOOL_SCHEMA_VERSION);
		if (writer_exec(db, schema_sql, err, errlen) < 0 ||
		    writer_exec(db, pragmas, err, errlen) < 0)
			goto fail;
	} else if (version == 1) {
		/* Version 2 added recipient.warned (delay warnings). The
		 * upgrade is this one transaction: all or nothing. */
		char upgrade[160];
		snprintf(upgrade, sizeof(upgrade),
		         "ALTER TABLE recipient ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;"
		         " PRAGMA user_version=%d",
		         SPOOL_SCHEMA_VERSION);
		if (writer_exec(db, upgrade, err, errlen) < 0)
			goto fail;
		log_event(LOG_LEVEL_INFO, "queue.upgraded", "from=1 to=%d", SPOOL_SCHEMA_VERSION);
	} else if (version != SPOOL_SCHEMA_VERSION) {
		snprintf(err, errlen, "queue.db: schema version %lld, this program knows %d",
		         (long long)version, SPOOL_SCHEMA_VERSION);
		goto fail;
	}
	return writer_exec(db, "COMMIT", err, errlen);
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* writer_prepare - one statement kept for the life of the connection. */
static int writer_prepare(struct spool_writer *w, const char *sql, sqlite3_stmt **st_r, char *err,
                          size_t errlen)
{
	if (sqlite3_prepare_v3(w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st_r, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "queue.db: preparing %s: %s", sql, sqlite3_errmsg(w->db));
		return -1;
	}
	return 0;
}

struct spool_writer *writer_open(struct spool *sp, const char *db_path, uint64_t *messages_r,
                                 char *err, size_t errlen)
{
	struct spool_writer *w = xcalloc(1, sizeof(*w));
	w->sp = sp;
	/* NOMUTEX: the connection is used by one thread at a time, handed from
	 * spool_open to the writer thread by pthread_create and back by
	 * pthread_join. */
	int rc =
	    sqlite3_open_v2(db_path, &w->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", db_path,
		         w->db != NULL ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(w->db, 1);
	sqlite3_busy_timeout(w->db, SPOOL_BUSY_TIMEOUT_MS);

	char mode[16];
	if (writer_query(w->db, "PRAGMA journal_mode=WAL", NULL, mode, sizeof(mode), err, errlen) <
	    0)
		goto fail;
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot use WAL mode (journal_mode is %s)", db_path,
		         mode);
		goto fail;
	}
	/* synchronous=FULL: in WAL mode, the WAL is fsynced at every COMMIT,
	 * which is what makes a commit callback mean "on disk". */
	char pragmas[256];
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=%d;"
	         "PRAGMA cache_size=-8192",
	         SPOOL_WAL_SIZE_LIMIT);
	if (writer_exec(w->db, pragmas, err, errlen) < 0)
		goto fail;
	int64_t check = 0;
	if (writer_query(w->db, "PRAGMA synchronous", &check, NULL, 0, err, errlen) < 0)
		goto fail;
	if (check != 2) {
		snprintf(err, errlen, "%s: PRAGMA synchronous=FULL did not take", db_path);
		goto fail;
	}
	if (writer_query(w->db, "PRAGMA foreign_keys", &check, NULL, 0, err, errlen) < 0)
		goto fail;
	if (check != 1) {
		snprintf(err, errlen, "%s: this SQLite has no foreign keys", db_path);
		goto fail;
	}
	/* We checkpoint between batches ourselves (writer_checkpoint). */
	sqlite3_wal_autocheckpoint(w->db, 0);
	sqlite3_wal_hook(w->db, writer_wal_hook, w);

	if (writer_schema(w->db, err, errlen) < 0)
		goto fail;

	int64_t count = 0;
	char max_id[QID_SIZE + 8];
	if (writer_query(w->db, "SELECT count(*) FROM message", &count, NULL, 0, err, errlen) < 0 ||
	    writer_query(w->db, "SELECT max(id) FROM message", NULL, max_id, sizeof(max_id), err,
	                 errlen) < 0)
		goto fail;
	*messages_r = (uint64_t)count;
	qid_floor(max_id);

	w->sync_full = true; /* set by the pragmas above */
	if (writer_prepare(w, "BEGIN IMMEDIATE", &w->begin, err, errlen) < 0 ||
	    writer_prepare(w, "COMMIT", &w->commit, err, errlen) < 0 ||
	    writer_prepare(w, "ROLLBACK", &w->rollback, err, errlen) < 0 ||
	    writer_prepare(w, "SAVEPOINT item", &w->savepoint, err, errlen) < 0 ||
	    writer_prepare(w, "RELEASE item", &w->release, err, errlen) < 0 ||
	    writer_prepare(w, "ROLLBACK TO item", &w->rollback_to, err, errlen) < 0 ||
	    writer_prepare(w,
	                   "INSERT INTO message (id, arrival_ms, sender, size, body_type, smtputf8,"
	                   " ret, envid, declared_size, client_addr, helo, listener, tls, account)"
	                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	                   &w->insert_message, err, errlen) < 0 ||
	    writer_prepare(w, "INSERT INTO body (message_id, data) VALUES (?1, ?2)",
	                   &w->insert_body, err, errlen) < 0 ||
	    writer_prepare(w,
	                   "INSERT INTO recipient (message_id, idx, address, notify, orcpt)"
	                   " VALUES (?1, ?2, ?3, ?4, ?5)",
	                   &w->insert_rcpt, err, errlen) < 0 ||
	    writer_prepare(w, "DELETE FROM message WHERE id = ?1", &w->delete_message, err,
	                   errlen) < 0 ||
	    writer_prepare(w, "UPDATE message SET held = ?1 WHERE id = ?2", &w->set_held, err,
	                   errlen) < 0 ||
	    writer_prepare(w,
	                   "SELECT message_id, next_attempt_ms FROM recipient"
	                   " WHERE state IN ('queued', 'deferred') ORDER BY next_attempt_ms",
	                   &w->fetch_due, err, errlen) < 0 ||
	    writer_prepare(w, "SELECT held FROM message WHERE id = ?1", &w->fetch_held, err,
	                   errlen) < 0 ||
	    writer_prepare(w,
	                   "SELECT sender, body_type, smtputf8, ret, envid, arrival_ms, size,"
	                   " client_addr, helo FROM message WHERE id = ?1",
	                   &w->fetch_message, err, errlen) < 0 ||
	    writer_prepare(
	        w,
	        "SELECT idx, address, notify, orcpt, attempts, state, warned FROM recipient"
	        " WHERE message_id = ?1 AND state IN ('queued', 'deferred')"
	        " AND next_attempt_ms <= ?2 ORDER BY idx",
	        &w->fetch_rcpts, err, errlen) < 0 ||
	    writer_prepare(w, "SELECT data FROM body WHERE message_id = ?1", &w->fetch_body, err,
	                   errlen) < 0 ||
	    writer_prepare(w,
	                   "UPDATE recipient SET state = ?1, attempts = attempts + 1,"
	                   " next_attempt_ms = ?2, last_result = ?3, warned = warned OR ?6"
	                   " WHERE message_id = ?4 AND idx = ?5",
	                   &w->update_rcpt, err, errlen) < 0 ||
	    writer_prepare(w,
	                   "SELECT count(CASE WHEN state IN ('queued', 'deferred') THEN 1 END),"
	                   " count(*) FROM recipient WHERE message_id = ?1",
	                   &w->count_pending, err, errlen) < 0 ||
	    writer_prepare(w,
	                   "UPDATE recipient SET next_attempt_ms = 0 WHERE message_id = ?1"
	                   " AND state IN ('queued', 'deferred')",
	                   &w->flush_one, err, errlen) < 0 ||
	    writer_prepare(w,
	                   "UPDATE recipient SET next_attempt_ms = 0"
	                   " WHERE state IN ('queued', 'deferred')",
	                   &w->flush_all, err, errlen) < 0)
		goto fail;
	w->chunk = xmalloc(SPOOL_CHUNK);
	return w;
fail:
	writer_close(&w);
	return NULL;
}

void writer_close(struct spool_writer **wp)
{
	struct spool_writer *w = *wp;
	if (w == NULL)
		return;
	sqlite3_stmt *stmts[] = {
	    w->begin,       w->commit,         w->rollback,       w->savepoint,
	    w->release,     w->rollback_to,    w->insert_message, w->insert_body,
	    w->insert_rcpt, w->delete_message, w->set_held,       w->fetch_due,
	    w->fetch_held,  w->fetch_message,  w->fetch_rcpts,    w->fetch_body,
	    w->update_rcpt, w->count_pending,  w->flush_one,      w->flush_all};
	for (size_t i = 0; i < ARRAY_SIZE(stmts); i++)
		sqlite3_finalize(stmts[i]);
	/* The last connection to close checkpoints the WAL and removes it. */
	if (w->db != NULL && sqlite3_close(w->db) != SQLITE_OK)
		log_event(LOG_LEVEL_WARN, "queue.error", "step=close error=busy");
	claims_free(w);
	free(w->chunk);
	free(w);
	*wp = NULL;
}
