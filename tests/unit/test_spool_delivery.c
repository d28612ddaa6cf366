/* SPDX-License-Identifier: ISC */
/*
 * test_spool_delivery.c - the delivery side of the spool: spool_fetch
 * claims due messages (small bodies inline, large ones read back with
 * spool_read_body, byte for byte), a claimed message is not fetched twice,
 * spool_update records each recipient's result (DELIVERED deletes a
 * finished message, DEFERRED hides it until next_attempt_ms, FAILED with a
 * bounce inserts the bounce in the same transaction) and releases the claim
 * even with no results, held messages are never fetched, FLUSH and
 * FLUSH_ALL make deferred work due now, a reopen keeps every state but
 * no claim, a recipient's delay-warning mark is set once and kept, and a
 * queue of schema version 1 is upgraded in place (a future one refused).
 *
 * As in test_spool.c, each test gets a fresh state folder under $TMPDIR
 * (default /tmp) and a real libevent base driven with event_base_loop;
 * what was stored is read back through queue_view, as detourctl would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/queue_view.h"
#include "queue/spool.h"
#include "unit_fixture.h"

#define HOUR_MS (3600LL * 1000)

struct fixture {
	char dir[256];
	struct event_base *base;
	struct event *tick;
	struct spool *sp;
};

static void open_spool(struct fixture *f)
{
	const char *err = NULL;
	f->sp = spool_open(f->dir, f->base, &err);
	if (f->sp == NULL)
		fail_msg("spool_open: %s", err);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	assert_non_null(unit_mkdtemp(f->dir, sizeof(f->dir), "spool-dlv"));
	f->base = unit_loop_new(&f->tick, 50);
	assert_non_null(f->base);
	open_spool(f);
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

/* run_until - drive the loop until *counter reaches want (or 60 s pass). */
static void run_until(struct fixture *f, const int *counter, int want)
{
	assert_int_equal(unit_run_until(f->base, counter, want, 60), want);
}

/* pattern - byte i of body number seed: not text, so that any changed,
 * dropped or reordered byte shows. */
static unsigned char pattern(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + ((uint64_t)seed << 32)) * UINT64_C(0x9E3779B97F4A7C15);
	return (unsigned char)(x >> 56);
}

/* --- committing ---------------------------------------------------------- */

struct commit_outcome {
	int calls;
	enum spool_result result;
	char qid[QID_SIZE];
};

static void commit_cb(void *arg, enum spool_result result, const char *qid)
{
	struct commit_outcome *o = arg;
	o->calls++;
	o->result = result;
	str_copy(o->qid, qid, sizeof(o->qid));
}

/* new_msg - a message with nrcpt recipients (rcptI@example.net) and a body
 * of size bytes of pattern(seed). Recipient 0 has NOTIFY and ORCPT. */
static struct spool_msg *new_msg(struct spool *sp, int nrcpt, uint32_t seed, uint64_t size)
{
	struct spool_msg *m = spool_msg_new(sp);
	struct spool_envelope *env = spool_msg_envelope(m);
	env->sender = xstrdup("alice@example.org");
	env->body = SMTP_BODY_8BITMIME;
	env->smtputf8 = true;
	env->ret = SMTP_RET_HDRS;
	env->envid = xstrdup("env-7");
	env->client_addr = xstrdup("192.0.2.7");
	env->helo = xstrdup("laptop.example.org");
	env->listener = xstrdup("submission");
	for (int i = 0; i < nrcpt; i++) {
		char addr[64];
		snprintf(addr, sizeof(addr), "rcpt%d@example.net", i);
		spool_msg_add_rcpt(m, addr, i == 0 ? SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY : 0,
		                   i == 0 ? "rfc822;orig@example.net" : NULL);
	}
	unsigned char buf[4096];
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(seed, off + i);
		assert_int_equal(spool_msg_append(m, buf, n), 0);
		off += n;
	}
	return m;
}

/* commit - commit a new message and return its id in qid_r. */
static void commit(struct fixture *f, int nrcpt, uint32_t seed, uint64_t size, char qid_r[QID_SIZE])
{
	struct commit_outcome o = {0};
	spool_commit(f->sp, new_msg(f->sp, nrcpt, seed, size), commit_cb, &o);
	run_until(f, &o.calls, 1);
	assert_int_equal(o.result, SPOOL_OK);
	memcpy(qid_r, o.qid, QID_SIZE);
}

/* --- fetch, update, operations ------------------------------------------ */

struct fetch_outcome {
	int calls;
	enum spool_result result;
	struct spool_work *list;
	int64_t next_due_ms;
};

static void fetch_cb(void *arg, enum spool_result result, struct spool_work *list,
                     int64_t next_due_ms)
{
	struct fetch_outcome *o = arg;
	o->calls++;
	o->result = result;
	o->list = list;
	o->next_due_ms = next_due_ms;
}

/* fetch - claim due work at now_ms; returns the list (free with free_list). */
static struct spool_work *fetch(struct fixture *f, int64_t now_ms, size_t max, int64_t *next_due_r)
{
	struct fetch_outcome o = {0};
	spool_fetch(f->sp, now_ms, max, fetch_cb, &o);
	run_until(f, &o.calls, 1);
	assert_int_equal(o.result, SPOOL_OK);
	if (next_due_r != NULL)
		*next_due_r = o.next_due_ms;
	return o.list;
}

static size_t list_len(const struct spool_work *w)
{
	size_t n = 0;
	for (; w != NULL; w = w->next)
		n++;
	return n;
}

static const struct spool_work *find(const struct spool_work *w, const char *qid)
{
	for (; w != NULL; w = w->next)
		if (strcmp(w->qid, qid) == 0)
			return w;
	return NULL;
}

static void free_list(struct spool_work **list)
{
	while (*list != NULL) {
		struct spool_work *next = (*list)->next;
		spool_work_free(list);
		assert_null(*list);
		*list = next;
	}
}

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

static enum spool_result update(struct fixture *f, const char *qid,
                                const struct spool_rcpt_update *u, size_t n,
                                struct spool_msg *bounce)
{
	struct op_outcome o = {0};
	spool_update(f->sp, qid, u, n, bounce, op_cb, &o);
	run_until(f, &o.calls, 1);
	return o.result;
}

static enum spool_result run_op(struct fixture *f, enum spool_op op, const char *qid)
{
	struct op_outcome o = {0};
	spool_op(f->sp, op, qid, op_cb, &o);
	run_until(f, &o.calls, 1);
	return o.result;
}

/* view_get - the message as detourctl sees it, or NULL if not queued. */
static struct queue_view_msg *view_get(struct fixture *f, const char *qid)
{
	const char *err = NULL;
	struct queue_view *v = queue_view_open(f->dir, &err);
	if (v == NULL)
		fail_msg("queue_view_open: %s", err);
	struct queue_view_msg *vm = NULL;
	enum queue_view_result r = queue_view_get(v, qid, &vm, &err);
	queue_view_close(&v);
	assert_true(r == QUEUE_VIEW_OK || r == QUEUE_VIEW_NOTFOUND);
	return vm;
}

static uint64_t view_count(struct fixture *f)
{
	const char *err = NULL;
	struct queue_view *v = queue_view_open(f->dir, &err);
	assert_non_null(v);
	uint64_t n = 0;
	assert_int_equal(queue_view_count(v, &n, NULL, &err), QUEUE_VIEW_OK);
	queue_view_close(&v);
	return n;
}

/* --- the tests ----------------------------------------------------------- */

static void test_fetch_small(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 3, 1, 1234, qa);
	commit(f, 1, 2, 0, qb);
	int64_t now = now_ms(), next = 0;
	struct spool_work *list = fetch(f, now, 10, &next);
	assert_int_equal(list_len(list), 2);
	assert_int_equal(next, INT64_MAX); /* nothing else pending */

	const struct spool_work *w = find(list, qa);
	assert_non_null(w);
	assert_string_equal(w->sender, "alice@example.org");
	assert_int_equal(w->body, SMTP_BODY_8BITMIME);
	assert_true(w->smtputf8);
	assert_int_equal(w->ret, SMTP_RET_HDRS);
	assert_string_equal(w->envid, "env-7");
	assert_true(w->arrival_ms > now - 60000 && w->arrival_ms <= now + 1000);
	assert_string_equal(w->client_addr, "192.0.2.7");
	assert_string_equal(w->helo, "laptop.example.org");
	assert_int_equal(w->size, 1234);
	assert_non_null(w->data);
	for (size_t i = 0; i < 1234; i++)
		if (w->data[i] != pattern(1, i))
			fail_msg("byte %zu differs", i);
	assert_int_equal(w->n_rcpts, 3);
	for (unsigned i = 0; i < 3; i++) {
		char addr[64];
		snprintf(addr, sizeof(addr), "rcpt%u@example.net", i);
		assert_int_equal(w->rcpts[i].idx, i);
		assert_string_equal(w->rcpts[i].address, addr);
		assert_int_equal(w->rcpts[i].attempts, 0);
		assert_int_equal(w->rcpts[i].state, SPOOL_RCPT_QUEUED);
	}
	assert_int_equal(w->rcpts[0].notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_string_equal(w->rcpts[0].orcpt, "rfc822;orig@example.net");
	assert_int_equal(w->rcpts[1].notify, 0);
	assert_null(w->rcpts[1].orcpt);

	/* an empty body comes back as zero bytes, inline */
	w = find(list, qb);
	assert_non_null(w);
	assert_int_equal(w->size, 0);
	assert_non_null(w->data);
	assert_int_equal(w->n_rcpts, 1);
	free_list(&list);
	struct spool_work *none = NULL;
	spool_work_free(&none); /* NULL is fine */
}

static void test_fetch_large_body(void **state)
{
	struct fixture *f = *state;
	/* at the inline limit and one past it */
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 1, 3, SPOOL_WORK_INMEM_MAX, qa);
	commit(f, 1, 4, SPOOL_WORK_INMEM_MAX + 1, qb);
	struct spool_work *list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 2);
	const struct spool_work *a = find(list, qa), *b = find(list, qb);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->size, SPOOL_WORK_INMEM_MAX);
	assert_non_null(a->data);
	for (size_t i = 0; i < SPOOL_WORK_INMEM_MAX; i++)
		if (a->data[i] != pattern(3, i))
			fail_msg("inline byte %zu differs", i);
	assert_int_equal(b->size, SPOOL_WORK_INMEM_MAX + 1);
	assert_null(b->data);
	free_list(&list);

	/* a larger body, read back in pieces of uneven sizes */
	char qc[QID_SIZE];
	uint64_t size = 3 * 1024 * 1024 + 17;
	commit(f, 2, 5, size, qc);
	list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qc);
	assert_int_equal(list->size, size);
	assert_null(list->data);
	static const size_t pieces[] = {1, 4095, 65536, 100000, 7, 65535};
	unsigned char *buf = xmalloc(100000);
	uint64_t off = 0;
	for (size_t k = 0; off < size; k++) {
		size_t want = pieces[k % ARRAY_SIZE(pieces)];
		long n = spool_read_body(f->sp, qc, off, buf, want);
		size_t expect = size - off < want ? (size_t)(size - off) : want;
		assert_int_equal(n, (long)expect);
		for (long i = 0; i < n; i++)
			if (buf[i] != pattern(5, off + (uint64_t)i))
				fail_msg("byte %llu differs",
				         (unsigned long long)(off + (uint64_t)i));
		off += (uint64_t)n;
	}
	assert_int_equal(off, size);
	/* at and past the end: 0 */
	assert_int_equal(spool_read_body(f->sp, qc, size, buf, 100), 0);
	assert_int_equal(spool_read_body(f->sp, qc, size + 1000, buf, 100), 0);
	/* the small one too, though it came inline */
	assert_int_equal(spool_read_body(f->sp, qa, 10, buf, 5), 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(buf[i], pattern(3, 10 + (uint64_t)i));
	/* an unknown message: -1 */
	assert_int_equal(spool_read_body(f->sp, "0000000000000000", 0, buf, 100), -1);
	free(buf);
	free_list(&list);
}

static void test_claimed_not_fetched_twice(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 1, 6, 100, qa);
	int64_t now = now_ms(), next = 0;
	struct spool_work *list = fetch(f, now, 10, &next);
	assert_int_equal(list_len(list), 1);
	/* claimed: not returned again, and not counted as due */
	struct spool_work *again = fetch(f, now + 1000, 10, &next);
	assert_null(again);
	assert_int_equal(next, INT64_MAX);
	/* a new message is */
	commit(f, 1, 7, 100, qb);
	again = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(again), 1);
	assert_string_equal(again->qid, qb);
	free_list(&again);
	/* an update with no results only releases the claim */
	assert_int_equal(update(f, qa, NULL, 0, NULL), SPOOL_OK);
	again = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(again), 1);
	assert_string_equal(again->qid, qa);
	assert_int_equal(again->rcpts[0].attempts, 0); /* nothing was counted */
	assert_int_equal(again->rcpts[0].state, SPOOL_RCPT_QUEUED);
	free_list(&again);
	free_list(&list);
}

static void test_fetch_max_and_order(void **state)
{
	struct fixture *f = *state;
	char q[5][QID_SIZE];
	for (int i = 0; i < 5; i++)
		commit(f, 1, 10 + (uint32_t)i, 50, q[i]);
	int64_t now = now_ms();
	/* Give them different due times in the past: q[3] is the oldest due,
	 * then q[1], then the never-tried ones (due at 0) first of all. */
	struct spool_work *list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 5);
	free_list(&list);
	struct spool_rcpt_update u = {.idx = 0, .state = SPOOL_RCPT_DEFERRED};
	for (int i = 0; i < 5; i++) {
		u.next_attempt_ms = now - 1000 * (int64_t)(i == 3 ? 50 : i == 1 ? 40 : 10 - i);
		u.last_result = "451 4.3.0 try later";
		assert_int_equal(update(f, q[i], &u, 1, NULL), SPOOL_OK);
	}
	/* due order: q[3] (now-50s), q[1] (now-40s), q[4] (now-6s)... */
	int64_t next = 0;
	list = fetch(f, now, 2, &next);
	assert_int_equal(list_len(list), 2);
	assert_string_equal(list->qid, q[3]);
	assert_string_equal(list->next->qid, q[1]);
	assert_int_equal(list->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(list->rcpts[0].attempts, 1);
	/* more is due now */
	assert_true(next <= now);
	struct spool_work *rest = fetch(f, now, 10, &next);
	assert_int_equal(list_len(rest), 3);
	assert_string_equal(rest->qid, q[0]);             /* now - 10 s */
	assert_string_equal(rest->next->qid, q[2]);       /* now - 8 s */
	assert_string_equal(rest->next->next->qid, q[4]); /* now - 6 s */
	assert_int_equal(next, INT64_MAX);
	free_list(&rest);
	free_list(&list);
	/* max larger than SPOOL_FETCH_MAX is capped, not an error */
	for (int i = 0; i < 5; i++)
		assert_int_equal(update(f, q[i], NULL, 0, NULL), SPOOL_OK);
	list = fetch(f, now, SIZE_MAX, NULL);
	assert_int_equal(list_len(list), 5);
	free_list(&list);
}

static void test_delivered_deletes(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 2, 20, 300, qa);
	commit(f, 1, 21, 300, qb);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 2);
	struct spool_work *list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 2);
	struct spool_rcpt_update u[2] = {
	    {.idx = 0, .state = SPOOL_RCPT_DELIVERED, .last_result = "250 2.0.0 ok 1"},
	    {.idx = 1, .state = SPOOL_RCPT_DELIVERED, .last_result = "250 2.0.0 ok 2"},
	};
	assert_int_equal(update(f, qa, u, 2, NULL), SPOOL_OK);
	struct queue_view_msg *vm = view_get(f, qa);
	assert_null(vm);
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 1);
	assert_int_equal(view_count(f), 1);
	char byte;
	assert_int_equal(spool_read_body(f->sp, qa, 0, &byte, 1), -1);
	/* an update for the deleted message finds nothing */
	assert_int_equal(update(f, qa, u, 1, NULL), SPOOL_NOTFOUND);
	/* a malformed id neither */
	assert_int_equal(update(f, "not-an-id", u, 1, NULL), SPOOL_NOTFOUND);
	/* b is still claimed, so nothing is due */
	int64_t next = 0;
	struct spool_work *none = fetch(f, now_ms(), 10, &next);
	assert_null(none);
	assert_int_equal(next, INT64_MAX);
	free_list(&list);
}

static void test_deferred_hidden_until_due(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE];
	commit(f, 3, 22, 500, qa);
	int64_t now = now_ms();
	struct spool_work *list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 1);
	free_list(&list);
	/* 0 delivered, 1 deferred by an hour, 2 deferred by two */
	struct spool_rcpt_update u[3] = {
	    {.idx = 0, .state = SPOOL_RCPT_DELIVERED, .last_result = "250 ok"},
	    {.idx = 1,
	     .state = SPOOL_RCPT_DEFERRED,
	     .next_attempt_ms = now + HOUR_MS,
	     .last_result = "451 4.7.1 greylisted"},
	    {.idx = 2,
	     .state = SPOOL_RCPT_DEFERRED,
	     .next_attempt_ms = now + 2 * HOUR_MS,
	     .last_result = "421 4.3.2 busy"},
	};
	assert_int_equal(update(f, qa, u, 3, NULL), SPOOL_OK);
	/* stored as given */
	struct queue_view_msg *vm = view_get(f, qa);
	assert_non_null(vm);
	assert_int_equal(vm->rcpt_count, 3);
	assert_string_equal(vm->rcpts[0].state, "delivered");
	assert_int_equal(vm->rcpts[0].attempts, 1);
	assert_string_equal(vm->rcpts[0].last_result, "250 ok");
	assert_string_equal(vm->rcpts[1].state, "deferred");
	assert_int_equal(vm->rcpts[1].next_attempt_ms, now + HOUR_MS);
	assert_string_equal(vm->rcpts[1].last_result, "451 4.7.1 greylisted");
	assert_string_equal(vm->rcpts[2].state, "deferred");
	assert_int_equal(vm->rcpts[2].next_attempt_ms, now + 2 * HOUR_MS);
	queue_view_msg_free(&vm);
	/* not due now; next_due_ms says when */
	int64_t next = 0;
	list = fetch(f, now, 10, &next);
	assert_null(list);
	assert_int_equal(next, now + HOUR_MS);
	list = fetch(f, now + HOUR_MS - 1, 10, &next);
	assert_null(list);
	assert_int_equal(next, now + HOUR_MS);
	/* at the time: the message, with only the recipient that is due */
	list = fetch(f, now + HOUR_MS, 10, &next);
	assert_int_equal(list_len(list), 1);
	assert_int_equal(list->n_rcpts, 1);
	assert_int_equal(list->rcpts[0].idx, 1);
	assert_string_equal(list->rcpts[0].address, "rcpt1@example.net");
	assert_int_equal(list->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(list->rcpts[0].attempts, 1);
	assert_int_equal(next, INT64_MAX); /* the rest belongs to the claimed message */
	free_list(&list);
	assert_int_equal(update(f, qa, NULL, 0, NULL), SPOOL_OK);
	/* both due later on */
	list = fetch(f, now + 3 * HOUR_MS, 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_int_equal(list->n_rcpts, 2);
	assert_int_equal(list->rcpts[0].idx, 1);
	assert_int_equal(list->rcpts[1].idx, 2);
	free_list(&list);
}

/* bounce_msg - a delivery status notification to alice, as the engine
 * builds one. */
static struct spool_msg *bounce_msg(struct fixture *f, char qid_r[QID_SIZE])
{
	struct spool_msg *b = spool_msg_new(f->sp);
	struct spool_envelope *env = spool_msg_envelope(b);
	env->sender = xstrdup("");
	env->client_addr = xstrdup("127.0.0.1");
	env->helo = xstrdup("localhost");
	spool_msg_add_rcpt(b, "alice@example.org", SMTP_NOTIFY_NEVER, NULL);
	static const char text[] = "Subject: Undelivered Mail Returned to Sender\r\n\r\nsorry\r\n";
	assert_int_equal(spool_msg_append(b, text, sizeof(text) - 1), 0);
	memcpy(qid_r, env->qid, QID_SIZE);
	return b;
}

static void test_failed_with_bounce(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qbounce[QID_SIZE];
	commit(f, 2, 23, 700, qa);
	struct spool_work *list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 1);
	free_list(&list);
	/* 0 failed, 1 delivered: the message is done, the bounce queued */
	struct spool_rcpt_update u[2] = {
	    {.idx = 0, .state = SPOOL_RCPT_FAILED, .last_result = "550 5.1.1 no such user"},
	    {.idx = 1, .state = SPOOL_RCPT_DELIVERED, .last_result = "250 ok"},
	};
	struct spool_msg *b = bounce_msg(f, qbounce);
	assert_int_equal(update(f, qa, u, 2, b), SPOOL_OK);
	assert_null(view_get(f, qa));
	struct queue_view_msg *vm = view_get(f, qbounce);
	assert_non_null(vm);
	assert_string_equal(vm->sender, "");
	assert_int_equal(vm->rcpt_count, 1);
	assert_string_equal(vm->rcpts[0].address, "alice@example.org");
	assert_string_equal(vm->rcpts[0].state, "queued");
	queue_view_msg_free(&vm);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 1); /* the original went, the bounce came */
	/* the bounce is fetchable like any message */
	list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qbounce);
	assert_string_equal(list->sender, "");
	assert_int_equal(list->n_rcpts, 1);
	assert_int_equal(list->rcpts[0].notify, SMTP_NOTIFY_NEVER);
	static const char text[] = "Subject: Undelivered Mail Returned to Sender\r\n\r\nsorry\r\n";
	assert_int_equal(list->size, sizeof(text) - 1);
	assert_memory_equal(list->data, text, sizeof(text) - 1);
	free_list(&list);
}

static void test_failed_partial_with_bounce(void **state)
{
	struct fixture *f = *state;
	/* one recipient failed, one still deferred: the message stays, with
	 * the failure recorded, and the bounce is queued beside it */
	char qa[QID_SIZE], qbounce[QID_SIZE];
	commit(f, 2, 24, 100, qa);
	int64_t now = now_ms();
	struct spool_work *list = fetch(f, now, 10, NULL);
	free_list(&list);
	struct spool_rcpt_update u[2] = {
	    {.idx = 0, .state = SPOOL_RCPT_FAILED, .last_result = "550 5.1.1 unknown"},
	    {.idx = 1,
	     .state = SPOOL_RCPT_DEFERRED,
	     .next_attempt_ms = now + HOUR_MS,
	     .last_result = "451 later"},
	};
	assert_int_equal(update(f, qa, u, 2, bounce_msg(f, qbounce)), SPOOL_OK);
	struct queue_view_msg *vm = view_get(f, qa);
	assert_non_null(vm);
	assert_string_equal(vm->rcpts[0].state, "failed");
	assert_string_equal(vm->rcpts[0].last_result, "550 5.1.1 unknown");
	assert_string_equal(vm->rcpts[1].state, "deferred");
	queue_view_msg_free(&vm);
	vm = view_get(f, qbounce);
	assert_non_null(vm);
	queue_view_msg_free(&vm);
	assert_int_equal(view_count(f), 2);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 2);
	/* now: only the bounce is due */
	int64_t next = 0;
	list = fetch(f, now, 10, &next);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qbounce);
	assert_int_equal(next, now + HOUR_MS);
	free_list(&list);
}

static void test_bounce_only_with_its_failure(void **state)
{
	struct fixture *f = *state;
	/* "a failure is recorded if and only if its bounce is queued": when
	 * the message is gone (an operator deleted it while it was out for
	 * delivery), no failure is recorded, so no bounce may be queued. */
	char qa[QID_SIZE], qbounce[QID_SIZE];
	commit(f, 1, 25, 100, qa);
	struct spool_work *list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 1);
	free_list(&list);
	assert_int_equal(run_op(f, SPOOL_OP_DELETE, qa), SPOOL_OK);
	struct spool_rcpt_update u = {
	    .idx = 0, .state = SPOOL_RCPT_FAILED, .last_result = "550 5.1.1 unknown"};
	assert_int_equal(update(f, qa, &u, 1, bounce_msg(f, qbounce)), SPOOL_NOTFOUND);
	struct queue_view_msg *vm = view_get(f, qbounce);
	if (vm != NULL) {
		queue_view_msg_free(&vm);
		fail_msg("bounce %s was queued for message %s, which was not in the queue", qbounce,
		         qa);
	}
	assert_int_equal(view_count(f), 0);
	/* the same with a malformed id */
	assert_int_equal(update(f, "bad", &u, 1, bounce_msg(f, qbounce)), SPOOL_NOTFOUND);
	assert_null(view_get(f, qbounce));
}

static void test_held_never_fetched(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 1, 26, 100, qa);
	commit(f, 1, 27, 100, qb);
	assert_int_equal(run_op(f, SPOOL_OP_HOLD, qa), SPOOL_OK);
	int64_t next = 0;
	struct spool_work *list = fetch(f, now_ms(), 10, &next);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qb);
	free_list(&list);
	/* not later either, nor after a flush */
	assert_null(fetch(f, now_ms() + 100 * HOUR_MS, 10, NULL));
	assert_int_equal(run_op(f, SPOOL_OP_FLUSH, qa), SPOOL_OK);
	assert_null(fetch(f, now_ms(), 10, &next));
	assert_int_equal(next, INT64_MAX);
	/* released: due again */
	assert_int_equal(run_op(f, SPOOL_OP_RELEASE, qa), SPOOL_OK);
	list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qa);
	free_list(&list);
	/* a message held while it is out for delivery: the update is
	 * recorded, and it is not fetched again until released */
	assert_int_equal(run_op(f, SPOOL_OP_HOLD, qa), SPOOL_OK);
	struct spool_rcpt_update u = {
	    .idx = 0, .state = SPOOL_RCPT_DEFERRED, .next_attempt_ms = 1, .last_result = "451"};
	assert_int_equal(update(f, qa, &u, 1, NULL), SPOOL_OK);
	assert_null(fetch(f, now_ms(), 10, NULL));
}

static void test_flush(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 1, 28, 100, qa);
	commit(f, 1, 29, 100, qb);
	int64_t now = now_ms();
	struct spool_work *list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 2);
	free_list(&list);
	struct spool_rcpt_update u = {.idx = 0,
	                              .state = SPOOL_RCPT_DEFERRED,
	                              .next_attempt_ms = now + HOUR_MS,
	                              .last_result = "451"};
	assert_int_equal(update(f, qa, &u, 1, NULL), SPOOL_OK);
	u.next_attempt_ms = now + 2 * HOUR_MS;
	assert_int_equal(update(f, qb, &u, 1, NULL), SPOOL_OK);
	int64_t next = 0;
	assert_null(fetch(f, now, 10, &next));
	assert_int_equal(next, now + HOUR_MS);
	/* FLUSH one: only it is due now, its state and attempts kept */
	assert_int_equal(run_op(f, SPOOL_OP_FLUSH, qb), SPOOL_OK);
	list = fetch(f, now, 10, &next);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qb);
	assert_int_equal(list->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(list->rcpts[0].attempts, 1);
	assert_int_equal(next, now + HOUR_MS);
	free_list(&list);
	/* unknown ids */
	assert_int_equal(run_op(f, SPOOL_OP_FLUSH, "0000000000000000"), SPOOL_NOTFOUND);
	assert_int_equal(run_op(f, SPOOL_OP_FLUSH, "junk"), SPOOL_NOTFOUND);
}

static void test_flush_all(void **state)
{
	struct fixture *f = *state;
	char q[3][QID_SIZE];
	int64_t now = now_ms();
	for (int i = 0; i < 3; i++)
		commit(f, 1, 30 + (uint32_t)i, 100, q[i]);
	struct spool_work *list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 3);
	free_list(&list);
	for (int i = 0; i < 3; i++) {
		struct spool_rcpt_update u = {.idx = 0,
		                              .state = SPOOL_RCPT_DEFERRED,
		                              .next_attempt_ms = now + (i + 1) * HOUR_MS,
		                              .last_result = "451"};
		assert_int_equal(update(f, q[i], &u, 1, NULL), SPOOL_OK);
	}
	assert_null(fetch(f, now, 10, NULL));
	/* "qid is ignored": detourctl's `queue flush` passes "" */
	assert_int_equal(run_op(f, SPOOL_OP_FLUSH_ALL, ""), SPOOL_OK);
	int64_t next = 0;
	list = fetch(f, now, 10, &next);
	assert_int_equal(list_len(list), 3);
	assert_int_equal(next, INT64_MAX);
	free_list(&list);
}

static void test_flush_all_with_any_id(void **state)
{
	struct fixture *f = *state;
	/* with a well-formed id of no message it works too */
	char qa[QID_SIZE];
	int64_t now = now_ms();
	commit(f, 1, 33, 100, qa);
	struct spool_work *list = fetch(f, now, 10, NULL);
	free_list(&list);
	struct spool_rcpt_update u = {.idx = 0,
	                              .state = SPOOL_RCPT_DEFERRED,
	                              .next_attempt_ms = now + HOUR_MS,
	                              .last_result = "451"};
	assert_int_equal(update(f, qa, &u, 1, NULL), SPOOL_OK);
	assert_int_equal(run_op(f, SPOOL_OP_FLUSH_ALL, "0000000000000000"), SPOOL_OK);
	list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 1);
	free_list(&list);
}

static void test_reopen_keeps_states(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE], qc[QID_SIZE];
	int64_t now = now_ms();
	commit(f, 2, 40, 100, qa);
	commit(f, 1, 41, SPOOL_WORK_INMEM_MAX + 10, qb);
	commit(f, 1, 42, 100, qc);
	struct spool_work *list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 3);
	free_list(&list);
	/* a: one delivered, one deferred an hour; b: held; c: left claimed */
	struct spool_rcpt_update u[2] = {
	    {.idx = 0, .state = SPOOL_RCPT_DELIVERED, .last_result = "250 ok"},
	    {.idx = 1,
	     .state = SPOOL_RCPT_DEFERRED,
	     .next_attempt_ms = now + HOUR_MS,
	     .last_result = "451 later"},
	};
	assert_int_equal(update(f, qa, u, 2, NULL), SPOOL_OK);
	assert_int_equal(update(f, qb, NULL, 0, NULL), SPOOL_OK);
	assert_int_equal(run_op(f, SPOOL_OP_HOLD, qb), SPOOL_OK);
	assert_null(fetch(f, now, 10, NULL));

	spool_close(&f->sp);
	open_spool(f);
	/* claims do not survive: c is due again; a is still deferred, b held */
	int64_t next = 0;
	list = fetch(f, now, 10, &next);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qc);
	assert_int_equal(list->rcpts[0].attempts, 0);
	assert_int_equal(next, now + HOUR_MS);
	free_list(&list);
	list = fetch(f, now + HOUR_MS, 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qa);
	assert_int_equal(list->n_rcpts, 1);
	assert_int_equal(list->rcpts[0].idx, 1);
	assert_int_equal(list->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(list->rcpts[0].attempts, 1);
	free_list(&list);
	struct queue_view_msg *vm = view_get(f, qa);
	assert_non_null(vm);
	assert_string_equal(vm->rcpts[0].state, "delivered");
	assert_string_equal(vm->rcpts[0].last_result, "250 ok");
	assert_string_equal(vm->rcpts[1].last_result, "451 later");
	queue_view_msg_free(&vm);
	vm = view_get(f, qb);
	assert_non_null(vm);
	assert_true(vm->held);
	queue_view_msg_free(&vm);
	/* and b's large body still reads back whole after release */
	assert_int_equal(run_op(f, SPOOL_OP_RELEASE, qb), SPOOL_OK);
	list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qb);
	assert_null(list->data);
	unsigned char buf[1000];
	assert_int_equal(spool_read_body(f->sp, qb, SPOOL_WORK_INMEM_MAX, buf, sizeof(buf)), 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(buf[i], pattern(41, SPOOL_WORK_INMEM_MAX + (uint64_t)i));
	free_list(&list);
	struct spool_stats st;
	spool_get_stats(f->sp, &st);
	assert_int_equal(st.messages, 3);
}

/* The warned mark: set by the update that queues the warning, never
 * cleared by a later update that does not set it, and kept on reopen. */
static void test_warned_is_kept(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE], qb[QID_SIZE];
	commit(f, 2, 60, 100, qa);
	int64_t now = now_ms();
	struct spool_work *list = fetch(f, now, 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_false(list->rcpts[0].warned);
	assert_false(list->rcpts[1].warned);
	free_list(&list);
	struct spool_rcpt_update u[2] = {
	    {.idx = 0,
	     .state = SPOOL_RCPT_DEFERRED,
	     .next_attempt_ms = now,
	     .last_result = "451 later",
	     .warned = true},
	    {.idx = 1, .state = SPOOL_RCPT_DEFERRED, .next_attempt_ms = now, .last_result = "451"},
	};
	assert_int_equal(update(f, qa, u, 2, bounce_msg(f, qb)), SPOOL_OK);
	list = fetch(f, now, 10, NULL);
	const struct spool_work *a = find(list, qa);
	assert_non_null(a);
	assert_true(a->rcpts[0].warned);
	assert_false(a->rcpts[1].warned);
	free_list(&list);
	u[0].warned = false;
	assert_int_equal(update(f, qa, u, 2, NULL), SPOOL_OK);
	spool_close(&f->sp);
	open_spool(f);
	list = fetch(f, now, 10, NULL);
	a = find(list, qa);
	assert_non_null(a);
	assert_true(a->rcpts[0].warned);
	assert_false(a->rcpts[1].warned);
	assert_int_equal(a->rcpts[0].attempts, 2);
	free_list(&list);
	/* detourctl sees the mark too */
	struct queue_view_msg *vm = view_get(f, qa);
	assert_non_null(vm);
	assert_int_equal(vm->rcpt_count, 2);
	assert_true(vm->rcpts[0].warned);
	assert_false(vm->rcpts[1].warned);
	queue_view_msg_free(&vm);
}

/* set_schema - run sql on the closed queue's file, then read its version. */
static int64_t set_schema(struct fixture *f, const char *sql)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	if (sql != NULL)
		assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t version = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return version;
}

/* A queue written before delay warnings (version 1: no recipient.warned)
 * is upgraded when the daemon opens it, and its mail is still there; a
 * version this program does not know is refused and left alone. */
static void test_schema_upgrade(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE];
	commit(f, 1, 61, 100, qa);
	spool_close(&f->sp);
	assert_int_equal(set_schema(f, NULL), 2);
	assert_int_equal(
	    set_schema(f, "ALTER TABLE recipient DROP COLUMN warned; PRAGMA user_version=1"), 1);
	/* detourctl reads a version 1 queue as it is, with nobody warned */
	struct queue_view_msg *vm = view_get(f, qa);
	assert_non_null(vm);
	assert_int_equal(vm->rcpt_count, 1);
	assert_false(vm->rcpts[0].warned);
	queue_view_msg_free(&vm);
	open_spool(f);
	struct spool_work *list = fetch(f, now_ms(), 10, NULL);
	assert_int_equal(list_len(list), 1);
	assert_string_equal(list->qid, qa);
	assert_false(list->rcpts[0].warned);
	free_list(&list);
	spool_close(&f->sp);
	assert_int_equal(set_schema(f, NULL), 2);

	assert_int_equal(set_schema(f, "PRAGMA user_version=3"), 3);
	const char *err = NULL;
	assert_null(spool_open(f->dir, f->base, &err));
	assert_non_null(strstr(err, "schema version 3"));
	assert_int_equal(set_schema(f, NULL), 3);
	assert_int_equal(set_schema(f, "PRAGMA user_version=2"), 2);
	open_spool(f);
}

static void test_close_with_pending_fetch(void **state)
{
	struct fixture *f = *state;
	char qa[QID_SIZE];
	commit(f, 1, 50, 100, qa);
	/* a fetch handed over but not yet answered gets its answer in close */
	struct fetch_outcome o = {0};
	spool_fetch(f->sp, now_ms(), 10, fetch_cb, &o);
	spool_close(&f->sp);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.result, SPOOL_OK);
	assert_int_equal(list_len(o.list), 1);
	free_list(&o.list);
	open_spool(f);
}

int main(void)
{
	log_open("test_spool_delivery", true, LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fetch_small, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fetch_large_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claimed_not_fetched_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fetch_max_and_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delivered_deletes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_hidden_until_due, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_with_bounce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_partial_with_bounce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounce_only_with_its_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_never_fetched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_all_with_any_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_keeps_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_with_pending_fetch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_warned_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_upgrade, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
