/* SPDX-License-Identifier: ISC */
/*
 * spool.c - the event-loop side of the spool: opening and recovery, building
 * messages while they are received, handing them to the writer thread
 * (spool_writer.c) and running the completion callbacks.
 *
 * Results come back through a mutex-protected list and an eventfd watched by
 * the loop, so callbacks always run on the loop thread and never inside
 * spool_commit or spool_op themselves: a session can call them from any
 * state without being re-entered.
 */
#include "queue/spool_internal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

/* spool_open's message when it returns NULL: per thread, so two threads
 * opening spools (tests) do not overwrite each other's. */
static _Thread_local char open_error[512];

/* clean_tmp - remove every spill file left by a previous run: their
 * messages were never committed, so no client got a 250 for them and the
 * client still has the message. Returns the number removed, -1 on error. */
static int clean_tmp(const char *tmp_dir, char *err, size_t errlen)
{
	if (mkdir(tmp_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", tmp_dir, strerror(errno));
		return -1;
	}
	DIR *d = opendir(tmp_dir);
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", tmp_dir, strerror(errno));
		return -1;
	}
	int removed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			removed++;
		} else {
			struct logline l;
			logline_init(&l, "queue.recover");
			logline_str(&l, "file", de->d_name);
			logline_str(&l, "error", strerror(errno));
			logline_emit(&l, LOG_LEVEL_WARN);
		}
	}
	closedir(d);
	return removed;
}

static void msg_destroy(struct spool_msg *m);

/* job_update_free - what an update job owns besides itself. */
static void job_update_free(struct spool_job *job)
{
	for (size_t i = 0; i < job->n_updates; i++)
		free((char *)job->updates[i].last_result);
	free(job->updates);
	if (job->bounce != NULL)
		msg_destroy(job->bounce);
}

/* spool_deliver - run the callbacks of every finished job, in the order
 * the jobs were handed over, and free them. */
static void spool_deliver(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	struct spool_job *job = sp->done_head;
	sp->done_head = sp->done_tail = NULL;
	pthread_mutex_unlock(&sp->lock);

	sp->delivering = true;
	while (job != NULL) {
		struct spool_job *next = job->next;
		if (job->kind == SPOOL_JOB_COMMIT) {
			struct spool_msg *m = (struct spool_msg *)job;
			if (!m->canceled && job->commit_cb != NULL)
				job->commit_cb(job->arg, job->result, m->env.qid);
			msg_destroy(m);
		} else if (job->kind == SPOOL_JOB_FETCH) {
			job->fetch_cb(job->arg, job->result, job->fetch_list,
				      job->fetch_next_due_ms);
			free(job);
		} else {
			if (job->op_cb != NULL)
				job->op_cb(job->arg, job->result);
			if (job->kind == SPOOL_JOB_UPDATE)
				job_update_free(job);
			free(job);
		}
		job = next;
	}
	sp->delivering = false;
}

/* spool_wake_cb - the writer posted results (loop thread). */
static void spool_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	uint64_t count;
	(void)what;
	/* Reset the eventfd first: results posted after this read wake us
	 * again, so none can be missed. */
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
		log_event(LOG_LEVEL_WARN, "queue.error", "step=wake errno=%d", errno);
	}
	spool_deliver(sp);
}

/* spool_free - release a spool whose writer thread is not running. */
static void spool_free(struct spool *sp)
{
	sqlite3_finalize(sp->reader_rowid);
	if (sp->reader != NULL)
		sqlite3_close(sp->reader);
	writer_close(&sp->writer);
	if (sp->wake_ev != NULL)
		event_free(sp->wake_ev);
	if (sp->wake_fd >= 0)
		close(sp->wake_fd);
	pthread_cond_destroy(&sp->cond);
	pthread_mutex_destroy(&sp->lock);
	free(sp->state_dir);
	free(sp->tmp_dir);
	free(sp);
}

struct spool *spool_open(const char *state_dir, struct event_base *base, const char **error_r)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	char *db_path = NULL;
	uint64_t messages = 0;

	sp->state_dir = xstrdup(state_dir);
	sp->tmp_dir = xasprintf("%s/tmp", state_dir);
	sp->base = base;
	sp->wake_fd = -1;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	*error_r = open_error;

	struct stat st;
	if (stat(state_dir, &st) < 0) {
		snprintf(open_error, sizeof(open_error), "%s: %s", state_dir, strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(open_error, sizeof(open_error), "%s: not a directory", state_dir);
		goto fail;
	}
	int removed = clean_tmp(sp->tmp_dir, open_error, sizeof(open_error));
	if (removed < 0)
		goto fail;

	/* SQLite replays a committed WAL, and ignores an uncommitted tail of
	 * it, when the connection first reads the database. */
	db_path = xasprintf("%s/queue.db", state_dir);
	/* Mail is private: create the database 0600 ourselves (SQLite would
	 * use 0644 minus the umask); its -wal and -shm files take its mode. */
	int fd = open(db_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
	} else if (errno != EEXIST) {
		snprintf(open_error, sizeof(open_error), "%s: %s", db_path, strerror(errno));
		goto fail;
	}
	sp->writer = writer_open(sp, db_path, &messages, open_error, sizeof(open_error));
	if (sp->writer == NULL)
		goto fail;
	atomic_store(&sp->messages, messages);
	/* queue.db, queue.db-wal and queue.db-shm exist now: make their names
	 * durable before the first 250 depends on them. */
	if (fsync_dir(state_dir) < 0) {
		snprintf(open_error, sizeof(open_error), "%s: fsync: %s", state_dir,
		         strerror(errno));
		goto fail;
	}

	sp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sp->wake_fd < 0) {
		snprintf(open_error, sizeof(open_error), "eventfd: %s", strerror(errno));
		goto fail;
	}
	sp->wake_ev = event_new(base, sp->wake_fd, EV_READ | EV_PERSIST, spool_wake_cb, sp);
	if (sp->wake_ev == NULL || event_add(sp->wake_ev, NULL) < 0) {
		snprintf(open_error, sizeof(open_error), "cannot add the spool's event");
		goto fail;
	}
	int rc = pthread_create(&sp->thread, NULL, writer_main, sp);
	if (rc != 0) {
		snprintf(open_error, sizeof(open_error), "starting the writer thread: %s",
		         strerror(rc));
		goto fail;
	}
	sp->thread_started = true;

	struct logline l;
	logline_init(&l, "queue.open");
	logline_str(&l, "path", db_path);
	logline_int(&l, "messages", (long long)messages);
	logline_int(&l, "spill_removed", removed);
	logline_emit(&l, LOG_LEVEL_INFO);
	free(db_path);
	*error_r = NULL;
	return sp;
fail:
	free(db_path);
	spool_free(sp);
	return NULL;
}

void spool_close(struct spool **spp)
{
	struct spool *sp = *spp;
	if (sp == NULL)
		return;
	/* A callback may not close the spool that is running it. */
	assert(!sp->delivering);
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->lock);
		sp->stopping = true;
		pthread_cond_signal(&sp->cond);
		pthread_mutex_unlock(&sp->lock);
		/* The writer commits everything already handed over first. */
		pthread_join(sp->thread, NULL);
	}
	sp->closed = true;
	/* Their data is durable (or failed); give each waiting session its
	 * answer now, since the loop will not hear from us again. Jobs those
	 * callbacks hand over are refused and answered here too. */
	for (;;) {
		pthread_mutex_lock(&sp->lock);
		bool more = sp->done_head != NULL;
		pthread_mutex_unlock(&sp->lock);
		if (!more)
			break;
		spool_deliver(sp);
	}
	spool_free(sp);
	*spp = NULL;
}

struct spool_msg *spool_msg_new(struct spool *sp)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));
	m->sp = sp;
	m->job.kind = SPOOL_JOB_COMMIT;
	m->state = SPOOL_MSG_RECEIVING;
	m->spill_fd = -1;
	m->env.arrival_ms = now_ms();
	qid_next(m->env.qid);
	return m;
}

struct spool_envelope *spool_msg_envelope(struct spool_msg *m)
{
	return &m->env;
}

void spool_msg_add_rcpt(struct spool_msg *m, const char *address, unsigned notify,
                        const char *orcpt)
{
	if (m->rcpt_count == m->rcpt_cap) {
		m->rcpt_cap = m->rcpt_cap ? m->rcpt_cap * 2 : 4;
		m->rcpts = xreallocarray(m->rcpts, m->rcpt_cap, sizeof(*m->rcpts));
	}
	struct spool_rcpt *r = &m->rcpts[m->rcpt_count++];
	r->address = xstrdup(address);
	r->notify = notify;
	/* smtp_rcpt_params keeps "" for "no ORCPT"; the queue keeps NULL. */
	r->orcpt = orcpt != NULL && *orcpt != '\0' ? xstrdup(orcpt) : NULL;
}

size_t spool_msg_rcpt_count(const struct spool_msg *m)
{
	return m->rcpt_count;
}

/* spill_flush - write the buffered tail of a spilled body to its file. */
static int spill_flush(struct spool_msg *m)
{
	if (m->mem_len == 0)
		return 0;
	if (write_all(m->spill_fd, m->mem, m->mem_len) < 0)
		return -1;
	m->mem_len = 0;
	return 0;
}

/* spill_open - the message outgrew memory: create state_dir/tmp/QID. What
 * is in mem stays there as the first contents of the write buffer. */
static int spill_open(struct spool_msg *m)
{
	char *path = xasprintf("%s/%s", m->sp->tmp_dir, m->env.qid);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int saved = errno;
		free(path);
		errno = saved;
		return -1;
	}
	m->spill_fd = fd;
	m->spill_path = path;
	if (m->mem_cap < SPOOL_CHUNK) {
		m->mem_cap = SPOOL_CHUNK;
		m->mem = xrealloc(m->mem, m->mem_cap);
	}
	return 0;
}

int spool_msg_append(struct spool_msg *m, const void *data, size_t len)
{
	assert(m->state == SPOOL_MSG_RECEIVING);
	if (m->append_errno != 0) {
		errno = m->append_errno;
		return -1;
	}
	if (len == 0)
		return 0;
	if (m->spill_fd < 0 && m->size + len <= SPOOL_INMEM_MAX) {
		if (m->mem_len + len > m->mem_cap) {
			size_t cap = m->mem_cap ? m->mem_cap : 4096;
			while (cap < m->mem_len + len)
				cap *= 2;
			m->mem_cap = cap < SPOOL_INMEM_MAX ? cap : SPOOL_INMEM_MAX;
			m->mem = xrealloc(m->mem, m->mem_cap);
		}
		memcpy(m->mem + m->mem_len, data, len);
		m->mem_len += len;
		m->size += len;
		return 0;
	}
	if (m->spill_fd < 0 && spill_open(m) < 0)
		goto fail;
	if (m->mem_len + len > m->mem_cap) {
		if (spill_flush(m) < 0)
			goto fail;
		if (len >= m->mem_cap) {
			/* Large appends go straight to the file, uncopied. */
			if (write_all(m->spill_fd, data, len) < 0)
				goto fail;
			m->size += len;
			return 0;
		}
	}
	memcpy(m->mem + m->mem_len, data, len);
	m->mem_len += len;
	m->size += len;
	return 0;
fail:
	/* The body is incomplete from here on: later appends and the commit
	 * fail with the same error. */
	m->append_errno = errno != 0 ? errno : EIO;
	errno = m->append_errno;
	return -1;
}

uint64_t spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

void spool_msg_release_body(struct spool_msg *m)
{
	if (m->spill_fd >= 0) {
		close(m->spill_fd);
		m->spill_fd = -1;
	}
	if (m->spill_path != NULL) {
		unlink(m->spill_path);
		free(m->spill_path);
		m->spill_path = NULL;
	}
	free(m->mem);
	m->mem = NULL;
	m->mem_len = m->mem_cap = 0;
}

void spool_msg_free(struct spool_msg **mp)
{
	struct spool_msg *m = *mp;
	if (m == NULL)
		return;
	/* Once committed, the spool owns the message and frees it itself. */
	assert(m->state == SPOOL_MSG_RECEIVING);
	msg_destroy(m);
	*mp = NULL;
}

/* msg_destroy - free a message in any state (its job is off every list). */
static void msg_destroy(struct spool_msg *m)
{
	spool_msg_release_body(m);
	struct spool_envelope *env = &m->env;
	free(env->sender);
	free(env->envid);
	free(env->client_addr);
	free(env->helo);
	free(env->listener);
	free(env->tls);
	free(env->account);
	for (size_t i = 0; i < m->rcpt_count; i++) {
		free(m->rcpts[i].address);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m);
}

/* spool_refuse - a job handed over while spool_close runs the last
 * callbacks (a session answered by one of them went on to its next,
 * pipelined message): the writer is gone, so it fails with SPOOL_TEMPFAIL
 * (the client retries later), through its callback like any result. */
static void spool_refuse(struct spool *sp, struct spool_job *job)
{
	job->result = SPOOL_TEMPFAIL;
	if (job->kind == SPOOL_JOB_FETCH)
		job->fetch_next_due_ms = INT64_MAX;
	if (job->kind == SPOOL_JOB_COMMIT) {
		struct spool_msg *m = (struct spool_msg *)job;
		log_event(LOG_LEVEL_WARN, "queue.error", "qid=%s step=closing result=tempfail",
		          m->env.qid);
		spool_msg_release_body(m);
		atomic_fetch_sub(&sp->pending, 1);
	}
	pthread_mutex_lock(&sp->lock);
	if (sp->done_tail != NULL)
		sp->done_tail->next = job;
	else
		sp->done_head = job;
	sp->done_tail = job;
	pthread_mutex_unlock(&sp->lock);
}

/* spool_enqueue - hand a job to the writer thread. */
static void spool_enqueue(struct spool *sp, struct spool_job *job)
{
	job->next = NULL;
	if (sp->closed) {
		spool_refuse(sp, job);
		return;
	}
	pthread_mutex_lock(&sp->lock);
	if (sp->queue_tail != NULL)
		sp->queue_tail->next = job;
	else
		sp->queue_head = job;
	sp->queue_tail = job;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
}

void spool_commit(struct spool *sp, struct spool_msg *m, spool_commit_cb *cb, void *arg)
{
	/* A message without a MAIL FROM or a recipient is a session bug. */
	assert(m->sp == sp && m->state == SPOOL_MSG_RECEIVING);
	assert(m->env.sender != NULL && m->rcpt_count > 0);
	/* The writer reads the spill file with pread; give it every byte. */
	if (m->spill_fd >= 0 && m->append_errno == 0 && spill_flush(m) < 0)
		m->append_errno = errno != 0 ? errno : EIO;
	m->state = SPOOL_MSG_COMMITTING;
	m->job.commit_cb = cb;
	m->job.arg = arg;
	atomic_fetch_add(&sp->pending, 1);
	spool_enqueue(sp, &m->job);
}

void spool_cancel(struct spool *sp, struct spool_msg *m)
{
	assert(m->sp == sp && m->state == SPOOL_MSG_COMMITTING);
	/* Only the loop thread reads this flag (spool_deliver), so no lock. */
	m->canceled = true;
}

void spool_op(struct spool *sp, enum spool_op op, const char *qid, spool_op_cb *cb, void *arg)
{
	struct spool_job *job = xcalloc(1, sizeof(*job));
	job->kind = SPOOL_JOB_OP;
	job->op = op;
	job->op_cb = cb;
	job->arg = arg;
	/* A malformed id matches nothing; do not let a truncated copy of it
	 * match a real one. */
	if (spool_qid_valid(qid))
		memcpy(job->op_qid, qid, QID_SIZE);
	else if (op != SPOOL_OP_FLUSH_ALL) /* the one operation without an id */
		job->op_invalid = true;
	spool_enqueue(sp, job);
}

void spool_fetch(struct spool *sp, int64_t now_ms, size_t max, spool_fetch_cb *cb, void *arg)
{
	struct spool_job *job = xcalloc(1, sizeof(*job));
	job->kind = SPOOL_JOB_FETCH;
	job->fetch_now_ms = now_ms;
	job->fetch_max = max > SPOOL_FETCH_MAX ? SPOOL_FETCH_MAX : max;
	job->fetch_cb = cb;
	job->arg = arg;
	spool_enqueue(sp, job);
}

void spool_work_free(struct spool_work **wp)
{
	struct spool_work *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	for (size_t i = 0; i < w->n_rcpts; i++) {
		free(w->rcpts[i].address);
		free(w->rcpts[i].orcpt);
	}
	free(w->rcpts);
	free(w->sender);
	free(w->envid);
	free(w->data);
	free(w->client_addr);
	free(w->helo);
	free(w);
}

void spool_update(struct spool *sp, const char *qid, const struct spool_rcpt_update *updates,
		  size_t n, struct spool_msg *bounce, spool_op_cb *cb, void *arg)
{
	struct spool_job *job = xcalloc(1, sizeof(*job));
	job->kind = SPOOL_JOB_UPDATE;
	job->op_cb = cb;
	job->arg = arg;
	if (spool_qid_valid(qid))
		memcpy(job->op_qid, qid, QID_SIZE);
	else
		job->op_invalid = true;
	if (n > 0) {
		job->updates = xcalloc(n, sizeof(*job->updates));
		for (size_t i = 0; i < n; i++) {
			job->updates[i] = updates[i];
			job->updates[i].last_result =
				updates[i].last_result ? xstrdup(updates[i].last_result) : NULL;
		}
	}
	job->n_updates = n;
	if (bounce != NULL) {
		assert(bounce->sp == sp && bounce->state == SPOOL_MSG_RECEIVING);
		if (bounce->spill_fd >= 0 && bounce->append_errno == 0 && spill_flush(bounce) < 0)
			bounce->append_errno = errno != 0 ? errno : EIO;
		bounce->state = SPOOL_MSG_COMMITTING;
		job->bounce = bounce;
	}
	spool_enqueue(sp, job);
}

/* reader_open - the loop's own read-only connection, for large bodies. */
static int reader_open(struct spool *sp)
{
	if (sp->reader != NULL)
		return 0;
	char *path = xasprintf("%s/queue.db", sp->state_dir);
	int rc = sqlite3_open_v2(path, &sp->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				 NULL);
	free(path);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(sp->reader, SPOOL_BUSY_TIMEOUT_MS);
		rc = sqlite3_prepare_v2(sp->reader, "SELECT rowid FROM body WHERE message_id = ?1",
					-1, &sp->reader_rowid, NULL);
	}
	if (rc != SQLITE_OK) {
		log_event(LOG_LEVEL_WARN, "queue.error", "step=reader error=\"%s\"",
			  sp->reader ? sqlite3_errmsg(sp->reader) : sqlite3_errstr(rc));
		sqlite3_finalize(sp->reader_rowid);
		sp->reader_rowid = NULL;
		sqlite3_close(sp->reader);
		sp->reader = NULL;
		return -1;
	}
	return 0;
}

long spool_read_body(struct spool *sp, const char *qid, uint64_t off, void *buf, size_t len)
{
	if (reader_open(sp) < 0)
		return -1;
	sqlite3_bind_text(sp->reader_rowid, 1, qid, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(sp->reader_rowid);
	sqlite3_int64 rowid = rc == SQLITE_ROW ? sqlite3_column_int64(sp->reader_rowid, 0) : 0;
	sqlite3_reset(sp->reader_rowid);
	if (rc != SQLITE_ROW)
		return -1;
	/* One short read transaction per piece: a slow delivery never pins an
	 * old snapshot, which would keep the WAL from being checkpointed. */
	sqlite3_blob *blob = NULL;
	if (sqlite3_blob_open(sp->reader, "main", "body", "data", rowid, 0, &blob) != SQLITE_OK) {
		sqlite3_blob_close(blob);
		return -1;
	}
	int size = sqlite3_blob_bytes(blob);
	long n = 0;
	if (off < (uint64_t)size) {
		size_t avail = (size_t)size - (size_t)off;
		n = (long)(len < avail ? len : avail);
		if (sqlite3_blob_read(blob, buf, (int)n, (int)off) != SQLITE_OK)
			n = -1;
	}
	sqlite3_blob_close(blob);
	return n;
}

void spool_get_stats(struct spool *sp, struct spool_stats *stats_r)
{
	stats_r->messages = atomic_load(&sp->messages);
	stats_r->committed = atomic_load(&sp->committed);
	stats_r->batches = atomic_load(&sp->batches);
	stats_r->pending = atomic_load(&sp->pending);
}
