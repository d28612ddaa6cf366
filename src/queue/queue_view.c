/* SPDX-License-Identifier: ISC */
/*
 * queue_view.c - see queue_view.h. Reads the schema that spool_writer.c
 * creates (docs/queue.md, "Schema"); it never writes.
 */
#include "queue/queue_view.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "queue/spool_internal.h"

/* A reader is blocked only while the writer restarts the WAL or a crashed
 * writer's WAL is being recovered: both are short. */
#define QUEUE_VIEW_BUSY_TIMEOUT_MS 5000

struct queue_view {
	sqlite3 *db;
	sqlite3_stmt *list, *get, *rcpts, *body, *count;
	int txn_depth; /* nested calls share the outer call's snapshot */
	char error[512];
};

static _Thread_local char open_error[512];

static const char msg_columns[] =
    "id, arrival_ms, sender, size, body_type, smtputf8, ret, envid, declared_size,"
    " client_addr, helo, listener, tls, account, held";

/* view_error - format the view's error message and return it. */
static const char *view_error(struct queue_view *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *view_error(struct queue_view *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->error, sizeof(v->error), fmt, ap);
	va_end(ap);
	return v->error;
}

/* view_db_error - the connection's last error, as the view's message. */
static enum queue_view_result view_db_error(struct queue_view *v, const char *what,
                                            const char **error_r)
{
	*error_r = view_error(v, "queue.db: %s: %s", what, sqlite3_errmsg(v->db));
	return QUEUE_VIEW_ERROR;
}

/* view_begin / view_end - one read transaction around a whole call, so all
 * of its SELECTs see the same snapshot of the WAL. */
static int view_begin(struct queue_view *v, const char **error_r)
{
	if (v->txn_depth++ > 0)
		return 0;
	if (sqlite3_exec(v->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		v->txn_depth = 0;
		view_db_error(v, "BEGIN", error_r);
		return -1;
	}
	return 0;
}

static void view_end(struct queue_view *v)
{
	if (--v->txn_depth == 0)
		sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL);
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

/* msg_from_row - copy a row of msg_columns into a new message. Out of
 * range enum values (a newer writer) read as "unspecified". */
static struct queue_view_msg *msg_from_row(sqlite3_stmt *st)
{
	struct queue_view_msg *m = xcalloc(1, sizeof(*m));
	const unsigned char *id = sqlite3_column_text(st, 0);
	str_copy(m->id, id != NULL ? (const char *)id : "", sizeof(m->id));
	m->arrival_ms = sqlite3_column_int64(st, 1);
	m->sender = col_strdup(st, 2);
	if (m->sender == NULL)
		m->sender = xstrdup("");
	m->size = (uint64_t)sqlite3_column_int64(st, 3);
	int body = sqlite3_column_int(st, 4);
	m->body_type = body == SMTP_BODY_7BIT || body == SMTP_BODY_8BITMIME ? (enum smtp_body)body
	                                                                    : SMTP_BODY_UNSPECIFIED;
	m->smtputf8 = sqlite3_column_int(st, 5) != 0;
	int ret = sqlite3_column_int(st, 6);
	m->ret = ret == SMTP_RET_FULL || ret == SMTP_RET_HDRS ? (enum smtp_ret)ret
	                                                      : SMTP_RET_UNSPECIFIED;
	m->envid = col_strdup(st, 7);
	m->declared_size = (uint64_t)sqlite3_column_int64(st, 8);
	m->client_addr = col_strdup(st, 9);
	m->helo = col_strdup(st, 10);
	m->listener = col_strdup(st, 11);
	m->tls = col_strdup(st, 12);
	m->account = col_strdup(st, 13);
	m->held = sqlite3_column_int(st, 14) != 0;
	return m;
}

/* load_rcpts - fill in m's recipients, in RCPT order. */
static enum queue_view_result load_rcpts(struct queue_view *v, struct queue_view_msg *m,
                                         const char **error_r)
{
	sqlite3_stmt *st = v->rcpts;
	size_t cap = 0;
	int rc;
	sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (m->rcpt_count == cap) {
			cap = cap ? cap * 2 : 4;
			m->rcpts = xreallocarray(m->rcpts, cap, sizeof(*m->rcpts));
		}
		struct queue_view_rcpt *r = &m->rcpts[m->rcpt_count++];
		r->address = col_strdup(st, 0);
		if (r->address == NULL)
			r->address = xstrdup("");
		r->notify = (unsigned)sqlite3_column_int(st, 1);
		r->orcpt = col_strdup(st, 2);
		r->state = col_strdup(st, 3);
		if (r->state == NULL)
			r->state = xstrdup("queued");
		int64_t attempts = sqlite3_column_int64(st, 4);
		r->attempts = attempts < 0            ? 0
		              : attempts > UINT32_MAX ? UINT32_MAX
		                                      : (uint32_t)attempts;
		r->next_attempt_ms = sqlite3_column_int64(st, 5);
		r->last_result = col_strdup(st, 6);
		r->warned = sqlite3_column_int(st, 7) != 0;
	}
	enum queue_view_result res = QUEUE_VIEW_OK;
	if (rc != SQLITE_DONE)
		res = view_db_error(v, "reading recipients", error_r);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return res;
}

void queue_view_msg_free(struct queue_view_msg **mp)
{
	struct queue_view_msg *m = *mp;
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->rcpt_count; i++) {
		struct queue_view_rcpt *r = &m->rcpts[i];
		free(r->address);
		free(r->state);
		free(r->orcpt);
		free(r->last_result);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->listener);
	free(m->client_addr);
	free(m->helo);
	free(m->tls);
	free(m->account);
	free(m->envid);
	free(m);
	*mp = NULL;
}

/* view_prepare - one statement kept for the life of the view. */
static int view_prepare(struct queue_view *v, const char *sql, sqlite3_stmt **st_r)
{
	if (sqlite3_prepare_v3(v->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st_r, NULL) !=
	    SQLITE_OK) {
		snprintf(open_error, sizeof(open_error), "queue.db: %s", sqlite3_errmsg(v->db));
		return -1;
	}
	return 0;
}

/* view_check_schema - is this a detour queue of a version we can read? */
static int64_t view_check_schema(struct queue_view *v, const char *path)
{
	sqlite3_stmt *st = NULL;
	int64_t version = -1, app_id = -1;
	if (sqlite3_prepare_v2(v->db, "SELECT * FROM pragma_user_version, pragma_application_id",
	                       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		version = sqlite3_column_int64(st, 0);
		app_id = sqlite3_column_int64(st, 1);
	}
	if (version < 0) {
		snprintf(open_error, sizeof(open_error), "%s: %s", path, sqlite3_errmsg(v->db));
	} else if (app_id != SPOOL_APPLICATION_ID) {
		snprintf(open_error, sizeof(open_error), "%s: not a detour queue", path);
		version = -1;
	} else if (version < 1 || version > SPOOL_SCHEMA_VERSION) {
		/* Version 1 (before the daemon upgrades it) has no
		 * recipient.warned: queue_view_open reads it as 0. */
		snprintf(open_error, sizeof(open_error),
		         "%s: schema version %lld, this program reads %d", path, (long long)version,
		         SPOOL_SCHEMA_VERSION);
		version = -1;
	}
	sqlite3_finalize(st);
	return version;
}

struct queue_view *queue_view_open(const char *state_dir, const char **error_r)
{
	struct queue_view *v = xcalloc(1, sizeof(*v));
	char *path = xasprintf("%s/queue.db", state_dir);
	char *sql = NULL;
	*error_r = open_error;

	/* SQLite would report a missing file as "unable to open database
	 * file"; say what it means for the operator. */
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(open_error, sizeof(open_error), "%s: %s%s", path, strerror(errno),
		         errno == ENOENT ? " (detourd has not created the queue yet)" : "");
		goto fail;
	}
	int rc = sqlite3_open_v2(path, &v->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(open_error, sizeof(open_error), "%s: %s", path,
		         v->db != NULL ? sqlite3_errmsg(v->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(v->db, QUEUE_VIEW_BUSY_TIMEOUT_MS);
	int64_t version = view_check_schema(v, path);
	if (version < 0)
		goto fail;
	sql = xasprintf("SELECT %s FROM message ORDER BY arrival_ms, id", msg_columns);
	if (view_prepare(v, sql, &v->list) < 0)
		goto fail;
	free(sql);
	sql = xasprintf("SELECT %s FROM message WHERE id = ?1", msg_columns);
	if (view_prepare(v, sql, &v->get) < 0)
		goto fail;
	free(sql);
	/* Version 1 has no recipient.warned: nobody was warned. */
	sql = xasprintf("SELECT address, notify, orcpt, state, attempts, next_attempt_ms,"
	                " last_result, %s FROM recipient WHERE message_id = ?1 ORDER BY idx",
	                version >= 2 ? "warned" : "0");
	if (view_prepare(v, sql, &v->rcpts) < 0 ||
	    view_prepare(v, "SELECT rowid FROM body WHERE message_id = ?1", &v->body) < 0 ||
	    view_prepare(v,
	                 "SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM recipient)",
	                 &v->count) < 0)
		goto fail;
	free(sql);
	free(path);
	*error_r = NULL;
	return v;
fail:
	free(sql);
	free(path);
	queue_view_close(&v);
	return NULL;
}

void queue_view_close(struct queue_view **vp)
{
	struct queue_view *v = *vp;
	if (v == NULL)
		return;
	sqlite3_finalize(v->list);
	sqlite3_finalize(v->get);
	sqlite3_finalize(v->rcpts);
	sqlite3_finalize(v->body);
	sqlite3_finalize(v->count);
	sqlite3_close(v->db);
	free(v);
	*vp = NULL;
}

enum queue_view_result queue_view_foreach(struct queue_view *v, queue_view_msg_cb *cb, void *arg,
                                          const char **error_r)
{
	*error_r = NULL;
	/* The list statement is in use until the loop ends: a callback may
	 * use get and cat, not start another foreach. */
	if (sqlite3_stmt_busy(v->list)) {
		*error_r = view_error(v, "queue_view_foreach called from its own callback");
		return QUEUE_VIEW_ERROR;
	}
	if (view_begin(v, error_r) < 0)
		return QUEUE_VIEW_ERROR;
	enum queue_view_result res = QUEUE_VIEW_OK;
	int rc;
	while ((rc = sqlite3_step(v->list)) == SQLITE_ROW) {
		/* A row whose id is not a queue id (a damaged file) would be
		 * listed, shown and deleted under the id it was cut to: leave
		 * it out. The writer never stores one. Nor is a BLOB id one:
		 * it never equals the TEXT that get, cat and delete look up. */
		if (sqlite3_column_type(v->list, 0) != SQLITE_TEXT)
			continue;
		const unsigned char *id = sqlite3_column_text(v->list, 0);
		if (id == NULL || sqlite3_column_bytes(v->list, 0) != QID_LEN ||
		    !spool_qid_valid((const char *)id))
			continue;
		struct queue_view_msg *m = msg_from_row(v->list);
		res = load_rcpts(v, m, error_r);
		int stop = res == QUEUE_VIEW_OK ? cb(arg, m) : 1;
		queue_view_msg_free(&m);
		if (stop)
			break;
	}
	if (res == QUEUE_VIEW_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = view_db_error(v, "listing messages", error_r);
	sqlite3_reset(v->list);
	view_end(v);
	return res;
}

enum queue_view_result queue_view_get(struct queue_view *v, const char *qid,
                                      struct queue_view_msg **msg_r, const char **error_r)
{
	*msg_r = NULL;
	*error_r = NULL;
	if (!spool_qid_valid(qid)) {
		*error_r = view_error(v, "malformed queue id");
		return QUEUE_VIEW_NOTFOUND;
	}
	if (view_begin(v, error_r) < 0)
		return QUEUE_VIEW_ERROR;
	enum queue_view_result res;
	sqlite3_bind_text(v->get, 1, qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(v->get);
	if (rc == SQLITE_ROW) {
		struct queue_view_msg *m = msg_from_row(v->get);
		res = load_rcpts(v, m, error_r);
		if (res == QUEUE_VIEW_OK)
			*msg_r = m;
		else
			queue_view_msg_free(&m);
	} else if (rc == SQLITE_DONE) {
		*error_r = view_error(v, "no message %s in the queue", qid);
		res = QUEUE_VIEW_NOTFOUND;
	} else {
		res = view_db_error(v, "reading message", error_r);
	}
	sqlite3_reset(v->get);
	sqlite3_clear_bindings(v->get);
	view_end(v);
	return res;
}

/* view_copy_blob - body row `rowid` to fd in SPOOL_CHUNK pieces. */
static enum queue_view_result view_copy_blob(struct queue_view *v, sqlite3_int64 rowid, int fd,
                                             const char **error_r)
{
	sqlite3_blob *blob = NULL;
	if (sqlite3_blob_open(v->db, "main", "body", "data", rowid, 0, &blob) != SQLITE_OK) {
		sqlite3_blob_close(blob);
		return view_db_error(v, "opening body", error_r);
	}
	enum queue_view_result res = QUEUE_VIEW_OK;
	unsigned char *chunk = xmalloc(SPOOL_CHUNK);
	int size = sqlite3_blob_bytes(blob);
	for (int off = 0; off < size;) {
		int n = size - off < SPOOL_CHUNK ? size - off : SPOOL_CHUNK;
		if (sqlite3_blob_read(blob, chunk, n, off) != SQLITE_OK) {
			res = view_db_error(v, "reading body", error_r);
			break;
		}
		if (write_all(fd, chunk, (size_t)n) < 0) {
			*error_r = view_error(v, "writing body: %s", strerror(errno));
			res = QUEUE_VIEW_ERROR;
			break;
		}
		off += n;
	}
	free(chunk);
	sqlite3_blob_close(blob);
	return res;
}

enum queue_view_result queue_view_cat(struct queue_view *v, const char *qid, int fd,
                                      const char **error_r)
{
	*error_r = NULL;
	if (!spool_qid_valid(qid)) {
		*error_r = view_error(v, "malformed queue id");
		return QUEUE_VIEW_NOTFOUND;
	}
	/* The snapshot keeps the body readable even if the daemon deletes
	 * the message while we copy it. */
	if (view_begin(v, error_r) < 0)
		return QUEUE_VIEW_ERROR;
	enum queue_view_result res = QUEUE_VIEW_OK;
	sqlite3_bind_text(v->body, 1, qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(v->body);
	sqlite3_int64 rowid = rc == SQLITE_ROW ? sqlite3_column_int64(v->body, 0) : 0;
	if (rc == SQLITE_DONE) {
		*error_r = view_error(v, "no message %s in the queue", qid);
		res = QUEUE_VIEW_NOTFOUND;
	} else if (rc != SQLITE_ROW) {
		res = view_db_error(v, "finding body", error_r);
	}
	sqlite3_reset(v->body);
	sqlite3_clear_bindings(v->body);
	if (rc == SQLITE_ROW)
		res = view_copy_blob(v, rowid, fd, error_r);
	view_end(v);
	return res;
}

enum queue_view_result queue_view_count(struct queue_view *v, uint64_t *messages_r,
                                        uint64_t *recipients_r, const char **error_r)
{
	*error_r = NULL;
	enum queue_view_result res = QUEUE_VIEW_OK;
	if (sqlite3_step(v->count) == SQLITE_ROW) {
		if (messages_r != NULL)
			*messages_r = (uint64_t)sqlite3_column_int64(v->count, 0);
		if (recipients_r != NULL)
			*recipients_r = (uint64_t)sqlite3_column_int64(v->count, 1);
	} else {
		res = view_db_error(v, "counting", error_r);
	}
	sqlite3_reset(v->count);
	return res;
}
