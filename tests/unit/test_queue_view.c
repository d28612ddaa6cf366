/* SPDX-License-Identifier: ISC */
/*
 * test_queue_view.c - the read-only view detourctl uses: it sees what the
 * running spool committed, oldest first, from one snapshot; it reads bodies
 * in chunks; and its errors are values with a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/queue_view.h"
#include "queue/spool.h"
#include "unit_fixture.h"

struct fixture {
	char dir[256];
	struct event_base *base;
	struct event *tick;
	struct spool *sp;
	struct queue_view *view;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	assert_non_null(unit_mkdtemp(f->dir, sizeof(f->dir), "view"));
	f->base = unit_loop_new(&f->tick, 50);
	assert_non_null(f->base);
	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err);
	if (f->sp == NULL)
		fail_msg("spool_open: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	queue_view_close(&f->view);
	spool_close(&f->sp);
	unit_loop_free(&f->base, &f->tick);
	unit_rm_tree(f->dir);
	free(f);
	return 0;
}

static struct queue_view *open_view(struct fixture *f)
{
	const char *err = NULL;
	queue_view_close(&f->view);
	f->view = queue_view_open(f->dir, &err);
	if (f->view == NULL)
		fail_msg("queue_view_open: %s", err);
	assert_null(err);
	return f->view;
}

struct outcome {
	int calls;
	enum spool_result result;
	char qid[QID_SIZE];
};

static void commit_cb(void *arg, enum spool_result result, const char *qid)
{
	struct outcome *o = arg;
	o->calls++;
	o->result = result;
	str_copy(o->qid, qid, sizeof(o->qid));
}

/* commit - queue a message from sender with nrcpt recipients and a body
 * of `size` bytes of `fill`; return its id. */
static void commit(struct fixture *f, const char *sender, int nrcpt, size_t size, char fill,
                   int64_t arrival_ms, char qid_r[QID_SIZE])
{
	struct spool_msg *m = spool_msg_new(f->sp);
	struct spool_envelope *env = spool_msg_envelope(m);
	env->sender = xstrdup(sender);
	env->listener = xstrdup("alternate");
	if (arrival_ms != 0)
		env->arrival_ms = arrival_ms;
	for (int i = 0; i < nrcpt; i++) {
		char addr[64];
		snprintf(addr, sizeof(addr), "r%d@example.net", i);
		spool_msg_add_rcpt(m, addr, SMTP_NOTIFY_NEVER, NULL);
	}
	char buf[1024];
	memset(buf, fill, sizeof(buf));
	for (size_t off = 0; off < size; off += sizeof(buf))
		assert_int_equal(
		    spool_msg_append(m, buf, size - off < sizeof(buf) ? size - off : sizeof(buf)),
		    0);
	struct outcome o = {0};
	spool_commit(f->sp, m, commit_cb, &o);
	int64_t deadline = mono_ms() + 60000;
	while (o.calls == 0 && mono_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.result, SPOOL_OK);
	memcpy(qid_r, o.qid, QID_SIZE);
}

struct listing {
	int count;
	int stop_after;
	char ids[16][QID_SIZE];
	char senders[16][64];
	size_t rcpts[16];
	struct fixture *f;
	bool nested;        /* call get and cat from inside the callback */
	bool commit_during; /* commit a message during the iteration */
};

static int list_cb(void *arg, const struct queue_view_msg *msg)
{
	struct listing *l = arg;
	assert_true(l->count < 16);
	memcpy(l->ids[l->count], msg->id, QID_SIZE);
	str_copy(l->senders[l->count], msg->sender, sizeof(l->senders[0]));
	l->rcpts[l->count] = msg->rcpt_count;
	l->count++;
	if (l->nested) {
		const char *err = NULL;
		struct queue_view_msg *m = NULL;
		assert_int_equal(queue_view_get(l->f->view, msg->id, &m, &err), QUEUE_VIEW_OK);
		assert_int_equal(m->size, msg->size);
		queue_view_msg_free(&m);
		int fd = memfd_create("b", MFD_CLOEXEC);
		assert_int_equal(queue_view_cat(l->f->view, msg->id, fd, &err), QUEUE_VIEW_OK);
		struct stat st;
		fstat(fd, &st);
		assert_int_equal((uint64_t)st.st_size, msg->size);
		close(fd);
		/* But not a second listing from inside the first. */
		assert_int_equal(queue_view_foreach(l->f->view, list_cb, l, &err),
		                 QUEUE_VIEW_ERROR);
		assert_non_null(err);
	}
	if (l->commit_during && l->count == 1) {
		char qid[QID_SIZE];
		commit(l->f, "late@example.org", 1, 10, 'l', 0, qid);
	}
	return l->stop_after != 0 && l->count >= l->stop_after;
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	char path[512];
	snprintf(path, sizeof(path), "%s/nowhere", f->dir);
	assert_null(queue_view_open(path, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "nowhere/queue.db"));

	/* An SQLite database that is not a queue. */
	snprintf(path, sizeof(path), "%s/other", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	char db[600];
	snprintf(db, sizeof(db), "%s/queue.db", path);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	err = NULL;
	assert_null(queue_view_open(path, &err));
	assert_non_null(strstr(err, "not a detour queue"));
}

static void test_sees_commits_while_open(void **state)
{
	struct fixture *f = *state;
	struct queue_view *v = open_view(f);
	const char *err = NULL;
	uint64_t msgs = 1, rcpts = 1;
	assert_int_equal(queue_view_count(v, &msgs, &rcpts, &err), QUEUE_VIEW_OK);
	assert_int_equal(msgs, 0);
	assert_int_equal(rcpts, 0);
	struct listing l = {.f = f};
	assert_int_equal(queue_view_foreach(v, list_cb, &l, &err), QUEUE_VIEW_OK);
	assert_int_equal(l.count, 0);

	/* The same open view sees each new commit of the running spool. */
	char q1[QID_SIZE], q2[QID_SIZE];
	commit(f, "a@example.org", 2, 100, 'a', 0, q1);
	assert_int_equal(queue_view_count(v, &msgs, &rcpts, &err), QUEUE_VIEW_OK);
	assert_int_equal(msgs, 1);
	assert_int_equal(rcpts, 2);
	commit(f, "b@example.org", 1, 200000, 'b', 0, q2);
	assert_int_equal(queue_view_count(v, &msgs, NULL, &err), QUEUE_VIEW_OK);
	assert_int_equal(msgs, 2);
	struct queue_view_msg *m = NULL;
	assert_int_equal(queue_view_get(v, q2, &m, &err), QUEUE_VIEW_OK);
	assert_string_equal(m->sender, "b@example.org");
	assert_string_equal(m->listener, "alternate");
	assert_int_equal(m->size, 200000);
	assert_int_equal(m->rcpt_count, 1);
	assert_int_equal(m->rcpts[0].notify, SMTP_NOTIFY_NEVER);
	queue_view_msg_free(&m);
	assert_null(m);
	queue_view_msg_free(&m); /* NULL is fine */
}

static void test_foreach_oldest_first(void **state)
{
	struct fixture *f = *state;
	char q[4][QID_SIZE];
	/* Committed in this order, but arrived in another. */
	commit(f, "third@example.org", 1, 10, 'x', 3000, q[0]);
	commit(f, "first@example.org", 2, 10, 'x', 1000, q[1]);
	commit(f, "second@example.org", 3, 10, 'x', 2000, q[2]);
	commit(f, "fourth@example.org", 1, 10, 'x', 3000, q[3]); /* same ms: id decides */
	struct queue_view *v = open_view(f);
	const char *err = NULL;
	struct listing l = {.f = f};
	assert_int_equal(queue_view_foreach(v, list_cb, &l, &err), QUEUE_VIEW_OK);
	assert_int_equal(l.count, 4);
	assert_string_equal(l.senders[0], "first@example.org");
	assert_string_equal(l.senders[1], "second@example.org");
	assert_string_equal(l.senders[2], "third@example.org");
	assert_string_equal(l.senders[3], "fourth@example.org");
	assert_int_equal(l.rcpts[0], 2);
	assert_int_equal(l.rcpts[1], 3);
	assert_string_equal(l.ids[0], q[1]);

	/* Stopping early. */
	struct listing s = {.f = f, .stop_after = 2};
	assert_int_equal(queue_view_foreach(v, list_cb, &s, &err), QUEUE_VIEW_OK);
	assert_int_equal(s.count, 2);

	/* get and cat inside the callback share its snapshot. */
	struct listing n = {.f = f, .nested = true};
	assert_int_equal(queue_view_foreach(v, list_cb, &n, &err), QUEUE_VIEW_OK);
	assert_int_equal(n.count, 4);
}

/* A row whose id is not a queue id (a damaged file: the writer never
 * stores one) is left out, not listed under the id it would be cut to
 * (found by fuzz/fuzz_queue_view.c). */
static void test_malformed_id_is_left_out(void **state)
{
	struct fixture *f = *state;
	char q[QID_SIZE];
	commit(f, "good@example.org", 1, 10, 'x', 1000, q);
	char path[300];
	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	char sql[512];
	/* the good id with one more character, and a lower-case one */
	snprintf(sql, sizeof(sql),
	         "INSERT INTO message (id, arrival_ms, sender, size) VALUES ('%sX', 1, "
	         "'bad@example.org', 0), ('%.15sz', 2, 'bad2@example.org', 0)",
	         q, q);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	/* the same octets as a well-formed id, but stored as a BLOB */
	snprintf(
	    sql, sizeof(sql),
	    "INSERT INTO message (id, arrival_ms, sender, size) VALUES (CAST('%.15s0' AS BLOB), "
	    "3, 'blob@example.org', 0)",
	    q);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	struct queue_view *v = open_view(f);
	const char *err = NULL;
	struct listing l = {.f = f};
	assert_int_equal(queue_view_foreach(v, list_cb, &l, &err), QUEUE_VIEW_OK);
	assert_int_equal(l.count, 1);
	assert_string_equal(l.senders[0], "good@example.org");
}

static void test_foreach_is_a_snapshot(void **state)
{
	struct fixture *f = *state;
	char q[2][QID_SIZE];
	commit(f, "a@example.org", 1, 10, 'a', 0, q[0]);
	commit(f, "b@example.org", 1, 10, 'b', 0, q[1]);
	struct queue_view *v = open_view(f);
	const char *err = NULL;
	/* A message committed while the listing runs is not in it... */
	struct listing l = {.f = f, .commit_during = true};
	assert_int_equal(queue_view_foreach(v, list_cb, &l, &err), QUEUE_VIEW_OK);
	assert_int_equal(l.count, 2);
	/* ...but in the next one. */
	struct listing l2 = {.f = f};
	assert_int_equal(queue_view_foreach(v, list_cb, &l2, &err), QUEUE_VIEW_OK);
	assert_int_equal(l2.count, 3);
	assert_string_equal(l2.senders[2], "late@example.org");
}

static void test_get_and_cat_notfound(void **state)
{
	struct fixture *f = *state;
	struct queue_view *v = open_view(f);
	const char *err = NULL;
	struct queue_view_msg *m = (struct queue_view_msg *)1;
	assert_int_equal(queue_view_get(v, "0000000000000000", &m, &err), QUEUE_VIEW_NOTFOUND);
	assert_null(m);
	assert_non_null(err);
	assert_int_equal(queue_view_get(v, "bad id", &m, &err), QUEUE_VIEW_NOTFOUND);
	assert_int_equal(queue_view_get(v, "0000000000000000X", &m, &err), QUEUE_VIEW_NOTFOUND);
	assert_int_equal(queue_view_cat(v, "0000000000000000", 1, &err), QUEUE_VIEW_NOTFOUND);
	assert_int_equal(queue_view_cat(v, "", 1, &err), QUEUE_VIEW_NOTFOUND);
}

static void test_cat_exact_bytes_in_chunks(void **state)
{
	struct fixture *f = *state;
	char qid[QID_SIZE];
	/* Several chunks plus a tail, with every byte value. */
	size_t size = 3 * SPOOL_CHUNK + 123;
	struct spool_msg *m = spool_msg_new(f->sp);
	spool_msg_envelope(m)->sender = xstrdup("s@example.org");
	spool_msg_add_rcpt(m, "r@example.net", 0, NULL);
	unsigned char *body = xmalloc(size);
	for (size_t i = 0; i < size; i++)
		body[i] = (unsigned char)(i * 7 + i / 256);
	assert_int_equal(spool_msg_append(m, body, size), 0);
	struct outcome o = {0};
	spool_commit(f->sp, m, commit_cb, &o);
	while (o.calls == 0)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(o.result, SPOOL_OK);
	memcpy(qid, o.qid, QID_SIZE);

	struct queue_view *v = open_view(f);
	const char *err = NULL;
	int fd = memfd_create("cat", MFD_CLOEXEC);
	assert_int_equal(queue_view_cat(v, qid, fd, &err), QUEUE_VIEW_OK);
	assert_null(err);
	unsigned char *back = xmalloc(size + 1);
	assert_int_equal(pread(fd, back, size + 1, 0), (ssize_t)size);
	assert_memory_equal(back, body, size);
	close(fd);

	/* A reader that went away is an error value, not a crash. */
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(queue_view_cat(v, qid, p[1], &err), QUEUE_VIEW_ERROR);
	assert_non_null(strstr(err, "Broken pipe"));
	close(p[1]);
	free(back);
	free(body);
}

static void test_view_after_spool_closed(void **state)
{
	struct fixture *f = *state;
	char qid[QID_SIZE];
	commit(f, "a@example.org", 1, 5000, 'z', 0, qid);
	/* The daemon stopped: the WAL was checkpointed and removed. */
	spool_close(&f->sp);
	struct queue_view *v = open_view(f);
	const char *err = NULL;
	struct queue_view_msg *m = NULL;
	assert_int_equal(queue_view_get(v, qid, &m, &err), QUEUE_VIEW_OK);
	assert_int_equal(m->size, 5000);
	queue_view_msg_free(&m);
	queue_view_close(&f->view);
	/* And the daemon starts again beside nothing. */
	f->sp = spool_open(f->dir, f->base, &err);
	assert_non_null(f->sp);
	v = open_view(f);
	uint64_t msgs = 0;
	assert_int_equal(queue_view_count(v, &msgs, NULL, &err), QUEUE_VIEW_OK);
	assert_int_equal(msgs, 1);
}

int main(void)
{
	log_open("test_queue_view", true, LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sees_commits_while_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreach_oldest_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_id_is_left_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreach_is_a_snapshot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_and_cat_notfound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cat_exact_bytes_in_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_view_after_spool_closed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
