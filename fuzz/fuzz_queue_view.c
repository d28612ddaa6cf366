/* SPDX-License-Identifier: ISC */
/*
 * fuzz_queue_view.c - the read side of the queue (src/queue/queue_view.c),
 * which detourctl uses to list, show and cat messages, over queue records
 * that a bug, a newer writer or a damaged disk could have left: any value of
 * any SQLite type in any column the constraints let through.
 *
 * Set-up, once: spool_open creates a real queue.db (the writer's own schema)
 * in a directory on tmpfs (fuzz_tmpdir); it is closed, switched out of WAL
 * mode (so that a plain file copy is the whole database) and its octets
 * are kept as a template.
 * Per input: the template is copied to a work directory, rows described by
 * the input are inserted through a separate connection, and the view reads
 * them back.
 * Input: a byte stream read as: messages (0..4), each with its 15 columns,
 * an optional body and 0..5 recipients with their 9 columns. Each value is
 * a type byte (NULL, small integer, 64-bit integer, text, blob, real) and
 * its octets (texts and blobs: a length byte, then the octets). A row the
 * constraints refuse (NOT NULL, a duplicate id) is simply not there.
 * Properties: the view opens the database; it counts what was inserted;
 * foreach visits once every message whose id is a well-formed queue id
 * (and no other), each with a sender, enums in range, and recipients with
 * an address and a state; every listed message is found again by
 * queue_view_get with the same fields, and queue_view_cat writes exactly its
 * body's octets (or reports NOTFOUND without a body, ERROR for a body that
 * is not a blob); malformed ids are NOTFOUND; nothing leaks. With FUZZ_TRACE=1
 * (fuzz_trace) how many rows an input inserted is printed to stderr.
 */
#include <event2/event.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "queue/queue_view.h"
#include "queue/spool.h"
#include "fuzz.h"

static char *work_dir, *work_db, *template_dir;
static unsigned char *template_bytes;
static size_t template_len;
static int body_fd = -1;

/* ---- set-up ---- */

/* SQLite allocates and frees a few hundred KiB per connection; with ASan's
 * default 256 MiB quarantine every input then touches fresh pages, and page
 * faults take most of the time. A smaller quarantine still catches a use
 * after free within the same input. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_queue_view: %s: %s\n", what, detail ? detail : "");
	exit(1);
}

static char *top_dir;

static void cleanup(void)
{
	fuzz_rmtree(top_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	top_dir = fuzz_tmpdir("queue");
	template_dir = xasprintf("%s/template", top_dir);
	work_dir = xasprintf("%s/work", top_dir);
	work_db = xasprintf("%s/queue.db", work_dir);
	if (mkdir(template_dir, 0700) < 0 || mkdir(work_dir, 0700) < 0)
		die("mkdir", top_dir);
	atexit(cleanup);

	/* The writer's own schema. */
	struct event_base *base = event_base_new();
	const char *err = NULL;
	struct spool *sp = spool_open(template_dir, base, &err);
	if (sp == NULL)
		die("spool_open", err);
	spool_close(&sp);
	event_base_free(base);

	/* Out of WAL mode: one file is the whole database. */
	char *path = xasprintf("%s/queue.db", template_dir);
	sqlite3 *db = NULL;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK)
		die("template", sqlite3_errmsg(db));
	sqlite3_close(db);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die("template", path);
	template_len = (size_t)st.st_size;
	template_bytes = xmalloc(template_len);
	if (read(fd, template_bytes, template_len) != (ssize_t)template_len)
		die("template read", path);
	close(fd);
	free(path);
	/* Only the octets are needed from now on. */
	fuzz_rmtree(template_dir);

	body_fd = memfd_create("fuzz-queue-body", MFD_CLOEXEC);
	if (body_fd < 0)
		die("memfd_create", NULL);
	return 0;
}

/* ---- reading the input ---- */

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct rd *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static uint64_t u64(struct rd *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | u8(r);
	return v;
}

/* bind - one value of the type the input says into parameter i. */
static void bind_value(sqlite3_stmt *st, int i, struct rd *r)
{
	uint8_t t = u8(r) % 6;
	switch (t) {
	case 0:
		sqlite3_bind_null(st, i);
		break;
	case 1:
		sqlite3_bind_int(st, i, (int8_t)u8(r));
		break;
	case 2:
		sqlite3_bind_int64(st, i, (sqlite3_int64)u64(r));
		break;
	case 3:
	case 4: {
		size_t len = u8(r);
		if (len > r->n)
			len = r->n;
		if (t == 3)
			sqlite3_bind_text(st, i, (const char *)r->p, (int)len, SQLITE_TRANSIENT);
		else
			sqlite3_bind_blob(st, i, r->p, (int)len, SQLITE_TRANSIENT);
		r->p += len;
		r->n -= len;
		break;
	}
	default: {
		uint64_t bits = u64(r);
		double d;
		memcpy(&d, &bits, sizeof(d));
		sqlite3_bind_double(st, i, d);
		break;
	}
	}
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* fill - write the rows the input describes into the work database.
 * Returns the connection, still open, for checking what the view says. */
static sqlite3 *fill(struct rd *r)
{
	int fd = open(work_db, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, template_bytes, template_len) != (ssize_t)template_len)
		die("copy", work_db);
	close(fd);

	sqlite3 *db = NULL;
	if (sqlite3_open(work_db, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
	                 "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF;"
	                 "PRAGMA ignore_check_constraints=ON; BEGIN",
	                 NULL, NULL, NULL) != SQLITE_OK)
		die("open work database", sqlite3_errmsg(db));
	sqlite3_stmt *msg = NULL, *body = NULL, *rcpt = NULL;
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO message (id, arrival_ms, sender, size, body_type,"
	                       " smtputf8, ret, envid, declared_size, client_addr, helo, listener,"
	                       " tls, account, held) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	                       " ?10, ?11, ?12, ?13, ?14, ?15)",
	                       -1, &msg, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO body (message_id, data) VALUES"
	                       " ((SELECT id FROM message WHERE rowid = ?1), ?2)",
	                       -1, &body, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO recipient (message_id, idx, address, notify, orcpt,"
	                       " state, attempts, next_attempt_ms, last_result) VALUES"
	                       " (CASE WHEN ?10 THEN ?1 ELSE"
	                       "  (SELECT id FROM message WHERE rowid = ?11) END,"
	                       " ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	                       -1, &rcpt, NULL) != SQLITE_OK)
		die("prepare", sqlite3_errmsg(db));

	unsigned nmsg = u8(r) % 5;
	for (unsigned m = 0; m < nmsg; m++) {
		for (int i = 1; i <= 15; i++)
			bind_value(msg, i, r);
		bool inserted = sqlite3_step(msg) == SQLITE_DONE;
		sqlite3_reset(msg);
		sqlite3_clear_bindings(msg);
		sqlite3_int64 rowid = inserted ? sqlite3_last_insert_rowid(db) : -1;
		uint8_t flags = u8(r);
		if (flags & 1) {
			sqlite3_bind_int64(body, 1, rowid);
			bind_value(body, 2, r);
			(void)sqlite3_step(body);
			sqlite3_reset(body);
			sqlite3_clear_bindings(body);
		}
		unsigned nr = (flags >> 1) % 6;
		for (unsigned k = 0; k < nr; k++) {
			uint8_t how = u8(r);
			/* message_id: usually this message's, sometimes any value
			 * (orphans, other messages' ids, other types). */
			if (how & 1)
				bind_value(rcpt, 1, r);
			else
				sqlite3_bind_null(rcpt, 1);
			sqlite3_bind_int(rcpt, 10, how & 1);
			sqlite3_bind_int64(rcpt, 11, rowid);
			for (int i = 2; i <= 9; i++)
				bind_value(rcpt, i, r);
			(void)sqlite3_step(rcpt);
			sqlite3_reset(rcpt);
			sqlite3_clear_bindings(rcpt);
		}
	}
	sqlite3_finalize(msg);
	sqlite3_finalize(body);
	sqlite3_finalize(rcpt);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("commit", sqlite3_errmsg(db));
	return db;
}

/* ---- checking the view ---- */

struct walk {
	struct queue_view *v;
	sqlite3 *db;
	size_t seen;
};

static bool streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void same_msg(const struct queue_view_msg *a, const struct queue_view_msg *b)
{
	FUZZ_CHECK(strcmp(a->id, b->id) == 0 && streq(a->sender, b->sender) && a->size == b->size &&
	               a->arrival_ms == b->arrival_ms && streq(a->listener, b->listener) &&
	               streq(a->client_addr, b->client_addr) && streq(a->helo, b->helo) &&
	               streq(a->tls, b->tls) && streq(a->account, b->account) &&
	               a->held == b->held && a->body_type == b->body_type &&
	               a->smtputf8 == b->smtputf8 && a->ret == b->ret &&
	               streq(a->envid, b->envid) && a->declared_size == b->declared_size &&
	               a->rcpt_count == b->rcpt_count,
	           "queue_view_get(%s) differs from the listing", a->id);
	for (size_t i = 0; i < a->rcpt_count; i++) {
		const struct queue_view_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		FUZZ_CHECK(streq(x->address, y->address) && streq(x->state, y->state) &&
		               x->notify == y->notify && streq(x->orcpt, y->orcpt) &&
		               x->attempts == y->attempts &&
		               x->next_attempt_ms == y->next_attempt_ms &&
		               streq(x->last_result, y->last_result) && x->warned == y->warned,
		           "recipient %zu of %s differs", i, a->id);
	}
}

/* listable - how many message rows have an id the view lists: a queue id
 * stored as TEXT of exactly QID_LEN octets (queue_view leaves other rows
 * out). */
static int64_t listable(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	if (sqlite3_prepare_v2(db, "SELECT id FROM message", -1, &st, NULL) != SQLITE_OK)
		abort();
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_TEXT)
			continue;
		const unsigned char *id = sqlite3_column_text(st, 0);
		if (id != NULL && sqlite3_column_bytes(st, 0) == QID_LEN &&
		    spool_qid_valid((const char *)id))
			n++;
	}
	sqlite3_finalize(st);
	return n;
}

static int64_t body_len(sqlite3 *db, const char *id)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(db,
	                       "SELECT length(CAST(data AS BLOB)), typeof(data) FROM body"
	                       " WHERE message_id = ?1",
	                       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			const unsigned char *type = sqlite3_column_text(st, 1);
			bool blob_or_text = type && (strcmp((const char *)type, "blob") == 0 ||
			                             strcmp((const char *)type, "text") == 0);
			n = blob_or_text ? sqlite3_column_int64(st, 0) : -2;
		}
	}
	sqlite3_finalize(st);
	return n;
}

static int visit(void *arg, const struct queue_view_msg *m)
{
	struct walk *w = arg;
	w->seen++;
	FUZZ_CHECK(strnlen(m->id, sizeof(m->id)) < sizeof(m->id), "id not terminated");
	FUZZ_CHECK(m->sender != NULL, "no sender");
	FUZZ_CHECK(m->body_type <= SMTP_BODY_8BITMIME && m->ret <= SMTP_RET_HDRS, "enum range");
	FUZZ_CHECK(m->rcpt_count == 0 || m->rcpts != NULL, "recipients missing");
	for (size_t i = 0; i < m->rcpt_count; i++)
		FUZZ_CHECK(m->rcpts[i].address != NULL && m->rcpts[i].state != NULL,
		           "recipient %zu without address or state", i);

	/* Listed means well formed, and found again under that id. */
	FUZZ_CHECK(spool_qid_valid(m->id), "listed a malformed id \"%s\"", m->id);
	const char *err = NULL;
	struct queue_view_msg *g = NULL;
	enum queue_view_result r = queue_view_get(w->v, m->id, &g, &err);
	FUZZ_CHECK(r == QUEUE_VIEW_OK && g != NULL, "listed %s, but get gave %d: %s", m->id, (int)r,
	           err ? err : "");
	same_msg(m, g);
	queue_view_msg_free(&g);
	FUZZ_CHECK(g == NULL, "msg_free left the pointer");

	if (ftruncate(body_fd, 0) < 0 || lseek(body_fd, 0, SEEK_SET) < 0)
		abort();
	r = queue_view_cat(w->v, m->id, body_fd, &err);
	int64_t want = body_len(w->db, m->id);
	off_t got = lseek(body_fd, 0, SEEK_CUR);
	if (want >= 0)
		FUZZ_CHECK(r == QUEUE_VIEW_OK && got == want, "cat(%s): %d, %lld of %lld octets",
		           m->id, (int)r, (long long)got, (long long)want);
	else if (want == -1)
		FUZZ_CHECK(r == QUEUE_VIEW_NOTFOUND, "cat(%s) without a body: %d", m->id, (int)r);
	else
		FUZZ_CHECK(r == QUEUE_VIEW_ERROR && err != NULL, "cat(%s) of a non-blob: %d", m->id,
		           (int)r);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	struct rd r = {data, size};
	sqlite3 *db = fill(&r);
	int64_t nmsg = count(db, "SELECT count(*) FROM message");
	int64_t nrcpt = count(db, "SELECT count(*) FROM recipient");
	if (fuzz_trace())
		fprintf(stderr,
		        "fuzz_queue_view: %lld messages (%lld with a body), %lld recipients\n",
		        (long long)nmsg, (long long)count(db, "SELECT count(*) FROM body"),
		        (long long)nrcpt);

	const char *err = NULL;
	struct queue_view *v = queue_view_open(work_dir, &err);
	FUZZ_CHECK(v != NULL, "queue_view_open: %s", err ? err : "?");
	uint64_t messages = 0, recipients = 0;
	FUZZ_CHECK(queue_view_count(v, &messages, &recipients, &err) == QUEUE_VIEW_OK &&
	               (int64_t)messages == nmsg && (int64_t)recipients == nrcpt,
	           "counted %llu/%llu, inserted %lld/%lld", (unsigned long long)messages,
	           (unsigned long long)recipients, (long long)nmsg, (long long)nrcpt);
	struct walk w = {.v = v, .db = db};
	enum queue_view_result res = queue_view_foreach(v, visit, &w, &err);
	int64_t nlist = listable(db);
	FUZZ_CHECK(res == QUEUE_VIEW_OK && (int64_t)w.seen == nlist, "foreach %d, %zu of %lld: %s",
	           (int)res, w.seen, (long long)nlist, err ? err : "");

	/* Ids that are not in the queue, or not ids at all. */
	struct queue_view_msg *g = NULL;
	static const char *const ids[] = {
	    "",    "0000000000000000", "ZZZZZZZZZZZZZZZZ", "0000000000000000X", "000000000000000I",
	    "%s%n"};
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		enum queue_view_result gr = queue_view_get(v, ids[i], &g, &err);
		FUZZ_CHECK(gr != QUEUE_VIEW_ERROR && (gr == QUEUE_VIEW_OK) == (g != NULL),
		           "get(\"%s\"): %d", ids[i], (int)gr);
		FUZZ_CHECK(spool_qid_valid(ids[i]) || gr == QUEUE_VIEW_NOTFOUND,
		           "malformed id \"%s\" found", ids[i]);
		queue_view_msg_free(&g);
	}
	queue_view_close(&v);
	FUZZ_CHECK(v == NULL, "close left the pointer");
	sqlite3_close(db);
	return 0;
}
