/* SPDX-License-Identifier: ISC */
/*
 * test_spool.c - the durable queue: commits of every size, group commit,
 * callbacks on the loop thread, cancel, spill files, recovery of tmp,
 * operator changes, reopen, failures that must not half-queue a message,
 * and queue ids.
 *
 * Each test gets a fresh state folder under $TMPDIR (default /tmp), a real
 * libevent base driven with event_base_loop, and reads back what was stored
 * through queue_view, as detourctl would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/queue_view.h"
#include "queue/spool.h"
#include "queue/spool_internal.h"
#include "unit_fixture.h"

#define MB (1024 * 1024)

struct fixture {
	char dir[256];
	struct event_base *base;
	struct event *tick;
	struct spool *sp;
	pthread_t loop_thread;
};

/* What one commit callback saw. */
struct outcome {
	struct fixture *f;
	int calls;
	enum spool_result result;
	char qid[QID_SIZE];
	bool on_loop_thread;
	int *counter; /* incremented on each call, if set */
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	assert_non_null(unit_mkdtemp(f->dir, sizeof(f->dir), "spool"));
	f->base = unit_loop_new(&f->tick, 50);
	assert_non_null(f->base);
	f->loop_thread = pthread_self();
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
	spool_close(&f->sp);
	unit_loop_free(&f->base, &f->tick);
	unit_rm_tree(f->dir);
	free(f);
	return 0;
}

/* run_until - drive the loop until *counter reaches want (or 120 s pass). */
static void run_until(struct fixture *f, const int *counter, int want)
{
	assert_true(unit_run_until(f->base, counter, want, 120) >= want);
}

static void commit_cb(void *arg, enum spool_result result, const char *qid)
{
	struct outcome *o = arg;
	o->calls++;
	o->result = result;
	str_copy(o->qid, qid, sizeof(o->qid));
	o->on_loop_thread = pthread_equal(pthread_self(), o->f->loop_thread);
	if (o->counter != NULL)
		(*o->counter)++;
}

/* pattern - byte i of test body number seed: not text, so that any byte
 * the queue changed, dropped or reordered shows. */
static unsigned char pattern(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + ((uint64_t)seed << 32)) * UINT64_C(0x9E3779B97F4A7C15);
	return (unsigned char)(x >> 56);
}

/* append_body - size bytes of pattern(seed) in pieces of uneven sizes,
 * from 1 byte to larger than the spill buffer. */
static void append_body(struct spool_msg *m, uint32_t seed, uint64_t size)
{
	static const size_t pieces[] = {1, 7, 1000, 4096, 65535, 65536, 200000, 13};
	unsigned char *buf = xmalloc(200000);
	uint64_t off = 0;
	for (size_t k = 0; off < size; k++) {
		size_t n = pieces[k % ARRAY_SIZE(pieces)];
		if (n > size - off)
			n = (size_t)(size - off);
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(seed, off + i);
		assert_int_equal(spool_msg_append(m, buf, n), 0);
		off += n;
	}
	free(buf);
	assert_int_equal(spool_msg_size(m), size);
}

/* new_msg - a message with a full envelope and nrcpt recipients. */
static struct spool_msg *new_msg(struct spool *sp, int nrcpt, uint32_t seed, uint64_t size)
{
	struct spool_msg *m = spool_msg_new(sp);
	struct spool_envelope *env = spool_msg_envelope(m);
	env->sender = xstrdup("alice@example.org");
	env->body = SMTP_BODY_8BITMIME;
	env->smtputf8 = true;
	env->ret = SMTP_RET_HDRS;
	env->envid = xstrdup("env-42");
	env->declared_size = size;
	env->client_addr = xstrdup("192.0.2.7");
	env->helo = xstrdup("laptop.example.org");
	env->listener = xstrdup("submission");
	env->tls = xstrdup("TLSv1.3 TLS_AES_256_GCM_SHA384");
	env->account = xstrdup("alice@example.org");
	for (int i = 0; i < nrcpt; i++) {
		char addr[64];
		snprintf(addr, sizeof(addr), "rcpt%d@example.net", i);
		spool_msg_add_rcpt(m, addr, i == 0 ? SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY : 0,
		                   i == 0 ? "rfc822;orig@example.net" : "");
	}
	assert_int_equal(spool_msg_rcpt_count(m), (size_t)nrcpt);
	append_body(m, seed, size);
	return m;
}

/* commit_one - commit m and run the loop until its callback. */
static enum spool_result commit_one(struct fixture *f, struct spool_msg *m, char qid_r[QID_SIZE])
{
	struct outcome o = {.f = f};
	spool_commit(f->sp, m, commit_cb, &o);
	run_until(f, &o.calls, 1);
	assert_int_equal(o.calls, 1);
	assert_true(o.on_loop_thread);
	if (qid_r != NULL)
		memcpy(qid_r, o.qid, QID_SIZE);
	return o.result;
}

/* check_body - the stored body of qid is exactly pattern(seed)[0..size). */
static void check_body(const char *dir, const char *qid, uint32_t seed, uint64_t size)
{
	const char *err = NULL;
	struct queue_view *v = queue_view_open(dir, &err);
	if (v == NULL)
		fail_msg("queue_view_open: %s", err);
	int fd = memfd_create("body", MFD_CLOEXEC);
	assert_true(fd >= 0);
	enum queue_view_result r = queue_view_cat(v, qid, fd, &err);
	if (r != QUEUE_VIEW_OK)
		fail_msg("queue_view_cat %s: %s", qid, err ? err : "?");
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, size);
	unsigned char *buf = xmalloc(SPOOL_CHUNK);
	for (uint64_t off = 0; off < size;) {
		ssize_t n = pread(fd, buf, SPOOL_CHUNK, (off_t)off);
		assert_true(n > 0);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(seed, off + (uint64_t)i))
				fail_msg("%s: byte %llu differs", qid,
				         (unsigned long long)(off + (uint64_t)i));
		off += (uint64_t)n;
	}
	free(buf);
	close(fd);
	struct queue_view_msg *vm = NULL;
	assert_int_equal(queue_view_get(v, qid, &vm, &err), QUEUE_VIEW_OK);
	assert_int_equal(vm->size, size);
	queue_view_msg_free(&vm);
	queue_view_close(&v);
}

/* tmp_count - files in state_dir/tmp. */
static int tmp_count(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tmp", dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static bool spill_exists(const char *dir, const char *qid)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tmp/%s", dir, qid);
	return access(path, F_OK) == 0;
}

/* view_state - whether qid is in the queue (and held), as detourctl sees it. */
static enum queue_view_result view_state(const char *dir, const char *qid, bool *held_r)
{
	const char *err = NULL;
	struct queue_view *v = queue_view_open(dir, &err);
	if (v == NULL)
		fail_msg("queue_view_open: %s", err);
	struct queue_view_msg *vm = NULL;
	enum queue_view_result r = queue_view_get(v, qid, &vm, &err);
	if (r == QUEUE_VIEW_OK && held_r != NULL)
		*held_r = vm->held;
	queue_view_msg_free(&vm);
	queue_view_close(&v);
	return r;
}

/* --- queue ids ------------------------------------------------------- */

static void test_qid_valid(void **state)
{
	(void)state;
	assert_true(spool_qid_valid("0123456789ABCDEF"));
	assert_true(spool_qid_valid("GHJKMNPQRSTVWXYZ"));
	assert_true(spool_qid_valid("ZZZZZZZZZZZZZZZZ"));
	assert_false(spool_qid_valid(NULL));
	assert_false(spool_qid_valid(""));
	assert_false(spool_qid_valid("0123456789ABCDE"));   /* 15 */
	assert_false(spool_qid_valid("0123456789ABCDEFG")); /* 17 */
	assert_false(spool_qid_valid("0123456789ABCDEI"));  /* Crockford leaves out I L O U */
	assert_false(spool_qid_valid("0123456789ABCDEL"));
	assert_false(spool_qid_valid("0123456789ABCDEO"));
	assert_false(spool_qid_valid("0123456789ABCDEU"));
	assert_false(spool_qid_valid("0123456789abcdef")); /* upper case only */
	assert_false(spool_qid_valid("0123456789ABCDE-"));
	assert_false(spool_qid_valid("../../etc/passwd"));
	assert_false(spool_qid_valid("0123456789ABCDE\n"));
	char with_nul[17] = "01234567";
	memcpy(with_nul + 9, "ABCDEFG", 8);
	assert_false(spool_qid_valid(with_nul)); /* NUL inside */
}

static void test_qid_unique_ordered(void **state)
{
	struct fixture *f = *state;
	char prev[QID_SIZE] = "";
	for (int i = 0; i < 100000; i++) {
		struct spool_msg *m = spool_msg_new(f->sp);
		const char *qid = spool_msg_envelope(m)->qid;
		if (!spool_qid_valid(qid))
			fail_msg("invalid id %s", qid);
		if (strcmp(prev, qid) >= 0)
			fail_msg("id %s after %s", qid, prev);
		memcpy(prev, qid, QID_SIZE);
		spool_msg_free(&m);
		assert_null(m);
	}
}

static void test_qid_clock_steps_back(void **state)
{
	(void)state;
	char a[QID_SIZE], b[QID_SIZE], c[QID_SIZE], d[QID_SIZE];
	int64_t now = now_ms() * 1000;
	/* An hour ahead of the real clock, then the clock jumps back. */
	qid_next_at(now + 3600LL * 1000000, a);
	qid_next_at(now, b);
	qid_next_at(now - 86400LL * 1000000, c);
	assert_true(strcmp(a, b) < 0);
	assert_true(strcmp(b, c) < 0);
	/* Same microsecond many times: the counter keeps them apart. */
	char prev[QID_SIZE];
	memcpy(prev, c, QID_SIZE);
	for (int i = 0; i < 1000; i++) {
		qid_next_at(now, d);
		assert_true(strcmp(prev, d) < 0);
		memcpy(prev, d, QID_SIZE);
	}
	/* A queue holding an id from the future raises the floor: bumping the
	 * first digit is about 4.5 years ahead. */
	char future[QID_SIZE];
	qid_next(future);
	future[0] = QID_ALPHABET[strchr(QID_ALPHABET, future[0]) - QID_ALPHABET + 1];
	qid_floor(future);
	qid_next(d);
	assert_true(spool_qid_valid(d));
	assert_true(strcmp(d, future) > 0);
	qid_floor("not an id"); /* ignored */
	qid_floor(a);           /* lower than the floor: ignored */
	qid_next(b);
	assert_true(strcmp(b, d) > 0);
}

/* --- commits --------------------------------------------------------- */

static void test_commit_small(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = new_msg(f->sp, 2, 1, 1234);
	char want_qid[QID_SIZE], qid[QID_SIZE];
	memcpy(want_qid, spool_msg_envelope(m)->qid, QID_SIZE);
	int64_t arrival = spool_msg_envelope(m)->arrival_ms;
	assert_int_equal(tmp_count(f->dir), 0); /* small: in memory */
	assert_int_equal(commit_one(f, m, qid), SPOOL_OK);
	assert_string_equal(qid, want_qid);
	check_body(f->dir, qid, 1, 1234);

	const char *err = NULL;
	struct queue_view *v = queue_view_open(f->dir, &err);
	assert_non_null(v);
	struct queue_view_msg *vm = NULL;
	assert_int_equal(queue_view_get(v, qid, &vm, &err), QUEUE_VIEW_OK);
	assert_string_equal(vm->id, qid);
	assert_string_equal(vm->sender, "alice@example.org");
	assert_int_equal(vm->arrival_ms, arrival);
	assert_int_equal(vm->body_type, SMTP_BODY_8BITMIME);
	assert_true(vm->smtputf8);
	assert_int_equal(vm->ret, SMTP_RET_HDRS);
	assert_string_equal(vm->envid, "env-42");
	assert_int_equal(vm->declared_size, 1234);
	assert_string_equal(vm->client_addr, "192.0.2.7");
	assert_string_equal(vm->helo, "laptop.example.org");
	assert_string_equal(vm->listener, "submission");
	assert_string_equal(vm->tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
	assert_string_equal(vm->account, "alice@example.org");
	assert_false(vm->held);
	assert_int_equal(vm->rcpt_count, 2);
	assert_string_equal(vm->rcpts[0].address, "rcpt0@example.net");
	assert_int_equal(vm->rcpts[0].notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_string_equal(vm->rcpts[0].orcpt, "rfc822;orig@example.net");
	assert_string_equal(vm->rcpts[0].state, "queued");
	assert_int_equal(vm->rcpts[0].attempts, 0);
	assert_int_equal(vm->rcpts[0].next_attempt_ms, 0);
	assert_null(vm->rcpts[0].last_result);
	assert_string_equal(vm->rcpts[1].address, "rcpt1@example.net");
	assert_null(vm->rcpts[1].orcpt); /* "" from the parser means none */
	queue_view_msg_free(&vm);
	queue_view_close(&v);

	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.committed, 1);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.pending, 0);

	/* Mail is private: the database and its WAL are 0600. */
	static const char *const files[] = {"queue.db", "queue.db-wal", "queue.db-shm"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char path[512];
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
}

static void test_commit_minimal_envelope(void **state)
{
	struct fixture *f = *state;
	/* Null sender, no optional fields, empty body. */
	struct spool_msg *m = spool_msg_new(f->sp);
	spool_msg_envelope(m)->sender = xstrdup("");
	spool_msg_add_rcpt(m, "postmaster@example.net", 0, NULL);
	char qid[QID_SIZE];
	assert_int_equal(commit_one(f, m, qid), SPOOL_OK);
	check_body(f->dir, qid, 0, 0);
	const char *err = NULL;
	struct queue_view *v = queue_view_open(f->dir, &err);
	struct queue_view_msg *vm = NULL;
	assert_int_equal(queue_view_get(v, qid, &vm, &err), QUEUE_VIEW_OK);
	assert_string_equal(vm->sender, "");
	assert_null(vm->envid);
	assert_null(vm->tls);
	assert_null(vm->account);
	assert_int_equal(vm->body_type, SMTP_BODY_UNSPECIFIED);
	assert_int_equal(vm->ret, SMTP_RET_UNSPECIFIED);
	assert_int_equal(vm->rcpt_count, 1);
	queue_view_msg_free(&vm);
	queue_view_close(&v);
}

static void test_commit_at_inmem_limit(void **state)
{
	struct fixture *f = *state;
	/* Exactly SPOOL_INMEM_MAX stays in memory; one byte more spills. */
	struct spool_msg *a = new_msg(f->sp, 1, 2, SPOOL_INMEM_MAX);
	struct spool_msg *b = new_msg(f->sp, 1, 3, SPOOL_INMEM_MAX + 1);
	char qa[QID_SIZE], qb[QID_SIZE];
	assert_false(spill_exists(f->dir, spool_msg_envelope(a)->qid));
	assert_true(spill_exists(f->dir, spool_msg_envelope(b)->qid));
	assert_int_equal(commit_one(f, a, qa), SPOOL_OK);
	assert_int_equal(commit_one(f, b, qb), SPOOL_OK);
	/* The spill file served its purpose once the transaction held it. */
	assert_int_equal(tmp_count(f->dir), 0);
	check_body(f->dir, qa, 2, SPOOL_INMEM_MAX);
	check_body(f->dir, qb, 3, SPOOL_INMEM_MAX + 1);
}

static void test_commit_5mb(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = new_msg(f->sp, 3, 4, 5 * MB + 17);
	char qid[QID_SIZE];
	assert_int_equal(tmp_count(f->dir), 1);
	assert_int_equal(commit_one(f, m, qid), SPOOL_OK);
	assert_int_equal(tmp_count(f->dir), 0);
	check_body(f->dir, qid, 4, 5 * MB + 17);
}

static void test_commit_30mb(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = new_msg(f->sp, 1, 5, 30 * MB);
	char qid[QID_SIZE];
	assert_int_equal(commit_one(f, m, qid), SPOOL_OK);
	assert_int_equal(tmp_count(f->dir), 0);
	check_body(f->dir, qid, 5, 30 * MB);
}

static void test_group_commit(void **state)
{
	struct fixture *f = *state;
	enum { N = 100 };
	struct outcome o[N];
	struct spool_msg *m[N];
	int done = 0;
	log_set_level(LOG_LEVEL_DEBUG); /* queue.batch lines, once */
	for (int i = 0; i < N; i++) {
		/* Some in memory, some spilled, in the same batches. */
		m[i] = new_msg(f->sp, 1 + i % 3, 100 + (uint32_t)i,
		               i % 10 == 0 ? SPOOL_INMEM_MAX + 100 : 4096);
		o[i] = (struct outcome){.f = f, .counter = &done};
	}
	/* All handed over before the loop runs: they are "concurrent". */
	for (int i = 0; i < N; i++)
		spool_commit(f->sp, m[i], commit_cb, &o[i]);
	run_until(f, &done, N);
	log_set_level(LOG_LEVEL_INFO);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	print_message("# %d messages in %llu batches\n", N, (unsigned long long)st.batches);
	assert_true(st.batches < N);
	assert_int_equal(st.committed, N);
	assert_int_equal(st.messages, N);
	assert_int_equal(st.pending, 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].calls, 1);
		assert_int_equal(o[i].result, SPOOL_OK);
		assert_true(o[i].on_loop_thread);
		/* Results come back in the order the commits went in. */
		if (i > 0)
			assert_true(strcmp(o[i - 1].qid, o[i].qid) < 0);
	}
	assert_int_equal(tmp_count(f->dir), 0);
	check_body(f->dir, o[0].qid, 100, SPOOL_INMEM_MAX + 100);
	check_body(f->dir, o[N - 1].qid, 100 + N - 1, 4096);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *a = new_msg(f->sp, 1, 6, 2000);
	struct spool_msg *b = new_msg(f->sp, 1, 7, 2000);
	char qa[QID_SIZE];
	memcpy(qa, spool_msg_envelope(a)->qid, QID_SIZE);
	struct outcome oa = {.f = f}, ob = {.f = f};
	spool_commit(f->sp, a, commit_cb, &oa);
	spool_cancel(f->sp, a); /* the session went away */
	spool_commit(f->sp, b, commit_cb, &ob);
	/* Callbacks run in order, so when b's has run a's would have too. */
	run_until(f, &ob.calls, 1);
	assert_int_equal(ob.result, SPOOL_OK);
	assert_int_equal(oa.calls, 0);
	/* Still committed: the client never saw a 250 and may send it again. */
	check_body(f->dir, qa, 6, 2000);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 2);
}

static void test_msg_free_removes_spill(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *big = new_msg(f->sp, 1, 8, 3 * SPOOL_INMEM_MAX);
	struct spool_msg *small = new_msg(f->sp, 1, 9, 10);
	char qid[QID_SIZE];
	memcpy(qid, spool_msg_envelope(big)->qid, QID_SIZE);
	assert_true(spill_exists(f->dir, qid));
	spool_msg_free(&big);
	assert_null(big);
	assert_false(spill_exists(f->dir, qid));
	spool_msg_free(&small);
	spool_msg_free(&small); /* NULL is fine */
	assert_int_equal(tmp_count(f->dir), 0);
	/* Nothing was queued. */
	assert_int_equal(view_state(f->dir, qid, NULL), QUEUE_VIEW_NOTFOUND);
}

static void test_stale_spill_removed_at_open(void **state)
{
	struct fixture *f = *state;
	spool_close(&f->sp);
	assert_null(f->sp);
	/* What a crash leaves: spill files of messages never committed. */
	const char *names[] = {"0123456789ABCDEF", "GHJKMNPQRSTVWXYZ", "junk"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/tmp/%s", f->dir, names[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "partial", 7), 7);
		close(fd);
	}
	assert_int_equal(tmp_count(f->dir), 3);
	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err);
	assert_non_null(f->sp);
	assert_null(err);
	assert_int_equal(tmp_count(f->dir), 0);
	/* And tmp is created when missing. */
	spool_close(&f->sp);
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->dir);
	assert_int_equal(rmdir(tmp), 0);
	f->sp = spool_open(f->dir, f->base, &err);
	assert_non_null(f->sp);
	struct stat st;
	assert_int_equal(stat(tmp, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	struct spool_msg *m = new_msg(f->sp, 1, 10, SPOOL_INMEM_MAX * 2);
	assert_int_equal(commit_one(f, m, NULL), SPOOL_OK);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	char path[512];
	snprintf(path, sizeof(path), "%s/missing", f->dir);
	assert_null(spool_open(path, f->base, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "missing"));
	/* A database that is not ours is refused, not "migrated". */
	snprintf(path, sizeof(path), "%s/other", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	char db[600];
	snprintf(db, sizeof(db), "%s/queue.db", path);
	FILE *fp = fopen(db, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, it is much longer than a header would be....."
	      "..................................................................",
	      fp);
	fclose(fp);
	err = NULL;
	assert_null(spool_open(path, f->base, &err));
	assert_non_null(err);
}

/* --- operator changes ------------------------------------------------ */

struct op_outcome {
	int calls;
	enum spool_result result;
};

static void op_cb(void *arg, enum spool_result result)
{
	struct op_outcome *o = arg;
	o->calls++;
	o->result = result;
}

static enum spool_result run_op(struct fixture *f, enum spool_op op, const char *qid)
{
	struct op_outcome o = {0};
	spool_op(f->sp, op, qid, op_cb, &o);
	run_until(f, &o.calls, 1);
	assert_int_equal(o.calls, 1);
	return o.result;
}

static void test_ops(void **state)
{
	struct fixture *f = *state;
	char qid[QID_SIZE];
	bool held = true;
	assert_int_equal(commit_one(f, new_msg(f->sp, 2, 11, 500), qid), SPOOL_OK);
	assert_int_equal(view_state(f->dir, qid, &held), QUEUE_VIEW_OK);
	assert_false(held);

	assert_int_equal(run_op(f, SPOOL_OP_HOLD, qid), SPOOL_OK);
	assert_int_equal(view_state(f->dir, qid, &held), QUEUE_VIEW_OK);
	assert_true(held);
	assert_int_equal(run_op(f, SPOOL_OP_HOLD, qid), SPOOL_OK); /* already held */
	assert_int_equal(run_op(f, SPOOL_OP_RELEASE, qid), SPOOL_OK);
	assert_int_equal(view_state(f->dir, qid, &held), QUEUE_VIEW_OK);
	assert_false(held);

	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 1);
	assert_int_equal(run_op(f, SPOOL_OP_DELETE, qid), SPOOL_OK);
	assert_int_equal(view_state(f->dir, qid, NULL), QUEUE_VIEW_NOTFOUND);
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.committed, 1);

	/* Unknown and malformed ids. */
	assert_int_equal(run_op(f, SPOOL_OP_DELETE, qid), SPOOL_NOTFOUND);
	assert_int_equal(run_op(f, SPOOL_OP_HOLD, qid), SPOOL_NOTFOUND);
	assert_int_equal(run_op(f, SPOOL_OP_RELEASE, "0000000000000000"), SPOOL_NOTFOUND);
	assert_int_equal(run_op(f, SPOOL_OP_DELETE, "not-a-queue-id"), SPOOL_NOTFOUND);
	char longer[QID_SIZE + 1];
	memcpy(longer, qid, QID_LEN);
	memcpy(longer + QID_LEN, "0", 2);
	assert_int_equal(run_op(f, SPOOL_OP_DELETE, longer), SPOOL_NOTFOUND);

	/* Deleting the body and recipients goes with the message (CASCADE). */
	const char *err = NULL;
	struct queue_view *v = queue_view_open(f->dir, &err);
	uint64_t msgs = 9, rcpts = 9;
	assert_int_equal(queue_view_count(v, &msgs, &rcpts, &err), QUEUE_VIEW_OK);
	assert_int_equal(msgs, 0);
	assert_int_equal(rcpts, 0);
	queue_view_close(&v);
}

static void test_ops_in_order_with_commits(void **state)
{
	struct fixture *f = *state;
	/* A hold and a delete handed over right after the commit run after
	 * it, in the same order, probably in the same transaction. */
	struct spool_msg *a = new_msg(f->sp, 1, 12, 100);
	struct spool_msg *b = new_msg(f->sp, 1, 13, 100);
	char qa[QID_SIZE], qb[QID_SIZE];
	memcpy(qa, spool_msg_envelope(a)->qid, QID_SIZE);
	memcpy(qb, spool_msg_envelope(b)->qid, QID_SIZE);
	struct outcome oa = {.f = f}, ob = {.f = f};
	struct op_outcome hold = {0}, del = {0}, del_again = {0};
	spool_commit(f->sp, a, commit_cb, &oa);
	spool_commit(f->sp, b, commit_cb, &ob);
	spool_op(f->sp, SPOOL_OP_HOLD, qa, op_cb, &hold);
	spool_op(f->sp, SPOOL_OP_DELETE, qb, op_cb, &del);
	spool_op(f->sp, SPOOL_OP_DELETE, qb, op_cb, &del_again);
	run_until(f, &del_again.calls, 1);
	assert_int_equal(oa.result, SPOOL_OK);
	assert_int_equal(ob.result, SPOOL_OK);
	assert_int_equal(hold.result, SPOOL_OK);
	assert_int_equal(del.result, SPOOL_OK);
	assert_int_equal(del_again.result, SPOOL_NOTFOUND);
	bool held = false;
	assert_int_equal(view_state(f->dir, qa, &held), QUEUE_VIEW_OK);
	assert_true(held);
	assert_int_equal(view_state(f->dir, qb, NULL), QUEUE_VIEW_NOTFOUND);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.committed, 2);
}

/* --- failures -------------------------------------------------------- */

static void test_duplicate_fails_alone(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE];
	assert_int_equal(commit_one(f, new_msg(f->sp, 1, 14, 300), qa), SPOOL_OK);
	/* b reuses a's id (a bug, or two daemons on one folder): it fails,
	 * and only it; c in the same batch commits. */
	struct spool_msg *b = new_msg(f->sp, 2, 15, SPOOL_INMEM_MAX + 5);
	struct spool_msg *c = new_msg(f->sp, 1, 16, 300);
	memcpy(spool_msg_envelope(b)->qid, qa, QID_SIZE);
	int done = 0;
	struct outcome ob = {.f = f, .counter = &done}, oc = {.f = f, .counter = &done};
	spool_commit(f->sp, b, commit_cb, &ob);
	spool_commit(f->sp, c, commit_cb, &oc);
	run_until(f, &done, 2);
	assert_int_equal(ob.result, SPOOL_TEMPFAIL);
	assert_int_equal(oc.result, SPOOL_OK);
	assert_int_equal(tmp_count(f->dir), 0);
	/* a is untouched: its body, its single recipient. */
	check_body(f->dir, qa, 14, 300);
	check_body(f->dir, oc.qid, 16, 300);
	const char *err = NULL;
	struct queue_view *v = queue_view_open(f->dir, &err);
	struct queue_view_msg *vm = NULL;
	assert_int_equal(queue_view_get(v, qa, &vm, &err), QUEUE_VIEW_OK);
	assert_int_equal(vm->rcpt_count, 1);
	queue_view_msg_free(&vm);
	queue_view_close(&v);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.committed, 2);
}

/* set_fsize - the file size limit, standing in for a full disk: writes past
 * it fail with EFBIG, which the queue treats like ENOSPC. */
static void set_fsize(rlim_t limit)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = limit;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static off_t file_size(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 ? st.st_size : 0;
}

static void test_spill_write_fails(void **state)
{
	struct fixture *f = *state;
	signal(SIGXFSZ, SIG_IGN);
	struct spool_msg *m = new_msg(f->sp, 1, 17, 1000);
	set_fsize(SPOOL_INMEM_MAX + SPOOL_CHUNK);
	unsigned char buf[4096];
	memset(buf, 'x', sizeof(buf));
	int r = 0;
	for (int i = 0; i < 200 && r == 0; i++)
		r = spool_msg_append(m, buf, sizeof(buf));
	int err = errno;
	set_fsize(RLIM_INFINITY);
	assert_int_equal(r, -1);
	assert_int_equal(err, EFBIG);
	/* Sticky: the body has a hole now. */
	assert_int_equal(spool_msg_append(m, "y", 1), -1);
	char qid[QID_SIZE];
	memcpy(qid, spool_msg_envelope(m)->qid, QID_SIZE);
	assert_int_equal(commit_one(f, m, NULL), SPOOL_NOSPACE);
	assert_int_equal(tmp_count(f->dir), 0);
	assert_int_equal(view_state(f->dir, qid, NULL), QUEUE_VIEW_NOTFOUND);
	/* The spool goes on working. */
	assert_int_equal(commit_one(f, new_msg(f->sp, 1, 18, 10), NULL), SPOOL_OK);
}

/* fail_batch - a batch that cannot be written (the file size limit stands
 * in for a full disk) fails as a whole, for every message in it, and the
 * queue goes on working. A 5 MB body fits the page cache and fails at
 * COMMIT; a 12 MB one spills pages into the WAL and fails while its blob is
 * written, inside the batch. */
static void fail_batch(struct fixture *f, uint64_t big_size)
{
	signal(SIGXFSZ, SIG_IGN);
	char keep[QID_SIZE];
	assert_int_equal(commit_one(f, new_msg(f->sp, 1, 19, 1000), keep), SPOOL_OK);
	struct spool_msg *small = new_msg(f->sp, 1, 20, 100);
	struct spool_msg *big = new_msg(f->sp, 1, 21, big_size);
	char qsmall[QID_SIZE], qbig[QID_SIZE];
	memcpy(qsmall, spool_msg_envelope(small)->qid, QID_SIZE);
	memcpy(qbig, spool_msg_envelope(big)->qid, QID_SIZE);

	/* Hold the write lock from another connection, so that the writer
	 * waits in BEGIN (busy_timeout) with `first`, and small and big are
	 * queued behind it: they will form the next batch together. */
	char path[512];
	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	sqlite3 *lock = NULL;
	assert_int_equal(sqlite3_open(path, &lock), SQLITE_OK);
	assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	int done = 0;
	struct outcome of = {.f = f, .counter = &done};
	struct outcome os = {.f = f, .counter = &done}, ob = {.f = f, .counter = &done};
	spool_commit(f->sp, new_msg(f->sp, 1, 23, 10), commit_cb, &of);
	usleep(200 * 1000);
	spool_commit(f->sp, small, commit_cb, &os);
	spool_commit(f->sp, big, commit_cb, &ob);
	/* The spill file (big_size) still fits; the WAL cannot, since each
	 * 4 KiB page of the blob costs a 24-byte frame header more there. */
	assert_true(file_size(f->dir, "queue.db-wal") < MB);
	assert_true(file_size(f->dir, "queue.db") < MB);
	set_fsize((rlim_t)big_size + 8192);
	assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	run_until(f, &done, 3);
	set_fsize(RLIM_INFINITY);
	assert_int_equal(of.result, SPOOL_OK);
	assert_int_equal(ob.result, SPOOL_NOSPACE);
	assert_int_equal(os.result, SPOOL_NOSPACE); /* same batch: never half of it */
	assert_int_equal(tmp_count(f->dir), 0);
	assert_int_equal(view_state(f->dir, qbig, NULL), QUEUE_VIEW_NOTFOUND);
	assert_int_equal(view_state(f->dir, qsmall, NULL), QUEUE_VIEW_NOTFOUND);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.pending, 0);

	/* Afterwards the queue works, and a reopen finds exactly what was
	 * acknowledged. */
	char again[QID_SIZE];
	assert_int_equal(commit_one(f, new_msg(f->sp, 1, 22, 2 * MB), again), SPOOL_OK);
	spool_close(&f->sp);
	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err);
	assert_non_null(f->sp);
	check_body(f->dir, keep, 19, 1000);
	check_body(f->dir, again, 22, 2 * MB);
	assert_int_equal(view_state(f->dir, qbig, NULL), QUEUE_VIEW_NOTFOUND);
	assert_int_equal(view_state(f->dir, qsmall, NULL), QUEUE_VIEW_NOTFOUND);
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 3);
}

static void test_commit_fails_whole_batch(void **state)
{
	fail_batch(*state, 5 * MB);
}

static void test_write_fails_inside_batch(void **state)
{
	fail_batch(*state, 12 * MB);
}

/* --- lifetime -------------------------------------------------------- */

static void test_reopen_keeps_everything(void **state)
{
	struct fixture *f = *state;
	char q[3][QID_SIZE];
	uint64_t sizes[3] = {10, SPOOL_INMEM_MAX * 3, 70000};
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    commit_one(f, new_msg(f->sp, i + 1, 30 + (uint32_t)i, sizes[i]), q[i]),
		    SPOOL_OK);
	assert_int_equal(run_op(f, SPOOL_OP_HOLD, q[1]), SPOOL_OK);
	spool_close(&f->sp);
	assert_null(f->sp);
	spool_close(&f->sp); /* NULL is fine */

	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err);
	assert_non_null(f->sp);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 3);
	assert_int_equal(st.committed, 0);
	for (int i = 0; i < 3; i++)
		check_body(f->dir, q[i], 30 + (uint32_t)i, sizes[i]);
	bool held = false;
	assert_int_equal(view_state(f->dir, q[1], &held), QUEUE_VIEW_OK);
	assert_true(held);
	/* New ids sort after the old ones. */
	struct spool_msg *m = spool_msg_new(f->sp);
	assert_true(strcmp(spool_msg_envelope(m)->qid, q[2]) > 0);
	spool_msg_free(&m);
}

/* A callback that, like a session with a pipelined next message, hands
 * over another commit and an operation: during spool_close. */
struct chain {
	struct fixture *f;
	int calls;
	enum spool_result results[3];
	struct op_outcome op;
};

static void chain_cb(void *arg, enum spool_result result, const char *qid)
{
	struct chain *c = arg;
	(void)qid;
	c->results[c->calls++] = result;
	if (c->calls < 3)
		spool_commit(c->f->sp, new_msg(c->f->sp, 1, 50, SPOOL_INMEM_MAX * 2), chain_cb, c);
	else
		spool_op(c->f->sp, SPOOL_OP_DELETE, "0000000000000000", op_cb, &c->op);
}

static void test_close_refuses_late_jobs(void **state)
{
	struct fixture *f = *state;
	struct chain c = {.f = f};
	spool_commit(f->sp, new_msg(f->sp, 1, 51, 10), chain_cb, &c);
	spool_close(&f->sp);
	assert_int_equal(c.calls, 3);
	assert_int_equal(c.results[0], SPOOL_OK);
	assert_int_equal(c.results[1], SPOOL_TEMPFAIL);
	assert_int_equal(c.results[2], SPOOL_TEMPFAIL);
	assert_int_equal(c.op.calls, 1);
	assert_int_equal(c.op.result, SPOOL_TEMPFAIL);
	assert_int_equal(tmp_count(f->dir), 0);
	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err);
	assert_non_null(f->sp);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 1);
}

static void test_close_runs_pending_callbacks(void **state)
{
	struct fixture *f = *state;
	/* Handed over, loop never run: close waits for the commit and gives
	 * the session its answer (on this, the loop's thread). */
	struct outcome o = {.f = f};
	struct spool_msg *m = new_msg(f->sp, 1, 40, SPOOL_INMEM_MAX + 1);
	char qid[QID_SIZE];
	memcpy(qid, spool_msg_envelope(m)->qid, QID_SIZE);
	spool_commit(f->sp, m, commit_cb, &o);
	struct spool_msg *c = new_msg(f->sp, 1, 41, 10);
	struct outcome oc = {.f = f};
	spool_commit(f->sp, c, commit_cb, &oc);
	spool_cancel(f->sp, c);
	spool_close(&f->sp);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.result, SPOOL_OK);
	assert_true(o.on_loop_thread);
	assert_int_equal(oc.calls, 0);
	assert_int_equal(tmp_count(f->dir), 0);
	check_body(f->dir, qid, 40, SPOOL_INMEM_MAX + 1);
	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err); /* for teardown */
	assert_non_null(f->sp);
}

/* Callback that hands over the next message, like a session that received
 * another one: keeps `inflight` commits outstanding. */
struct bench {
	struct fixture *f;
	int started, done, total;
	int failed;
	unsigned char body[4096];
};

static void bench_next(struct bench *b);

static void bench_cb(void *arg, enum spool_result result, const char *qid)
{
	struct bench *b = arg;
	(void)qid;
	b->done++;
	if (result != SPOOL_OK)
		b->failed++;
	if (b->started < b->total)
		bench_next(b);
}

static void bench_next(struct bench *b)
{
	struct spool_msg *m = spool_msg_new(b->f->sp);
	spool_msg_envelope(m)->sender = xstrdup("bench@example.org");
	spool_msg_add_rcpt(m, "sink@example.net", 0, NULL);
	assert_int_equal(spool_msg_append(m, b->body, sizeof(b->body)), 0);
	b->started++;
	spool_commit(b->f->sp, m, bench_cb, b);
}

static void test_throughput(void **state)
{
	struct fixture *f = *state;
	static const int inflight[] = {1, 16, 128};
	for (size_t k = 0; k < ARRAY_SIZE(inflight); k++) {
		struct bench b = {.f = f, .total = inflight[k] == 1 ? 200 : 2000};
		memset(b.body, 'a', sizeof(b.body));
		struct spool_stats before, after;
		spool_get_stats(f->sp, &before);
		int64_t start = mono_ms();
		for (int i = 0; i < inflight[k]; i++)
			bench_next(&b);
		run_until(f, &b.done, b.total);
		int64_t ms = mono_ms() - start;
		spool_get_stats(f->sp, &after);
		assert_int_equal(b.failed, 0);
		print_message("# 4 KiB messages, %d in flight: %d in %lld ms = %.0f msg/s, "
		              "%llu batches\n",
		              inflight[k], b.total, (long long)ms,
		              ms > 0 ? b.total * 1000.0 / (double)ms : 0.0,
		              (unsigned long long)(after.batches - before.batches));
	}
}

int main(void)
{
	log_open("test_spool", true, LOG_LEVEL_INFO);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qid_valid),
	    cmocka_unit_test_setup_teardown(test_qid_unique_ordered, setup, teardown),
	    cmocka_unit_test(test_qid_clock_steps_back),
	    cmocka_unit_test_setup_teardown(test_commit_small, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_minimal_envelope, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_at_inmem_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_5mb, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_30mb, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msg_free_removes_spill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_spill_removed_at_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ops_in_order_with_commits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_fails_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spill_write_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_fails_whole_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_fails_inside_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_runs_pending_callbacks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_refuses_late_jobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
