/* SPDX-License-Identifier: ISC */
/*
 * workers.h - a small pool of threads for work that blocks or burns CPU on
 * purpose (password hashing), so the event loop never waits for it.
 *
 * Owns: the threads, the job queue and the hand-back to the loop. A job's
 * run function executes on a worker thread; its done function then executes
 * on the event-loop thread, in the order the jobs finished (with several
 * threads a quick job does not wait for a slow one submitted before it). Jobs are never cancelled:
 * whoever submitted one and went away marks that in the job's own data, which done sees. Threads:
 * workers_new, workers_submit and workers_free on the loop thread.
 */
#ifndef DETOUR_WORKERS_H
#define DETOUR_WORKERS_H

struct event_base;
struct workers;

typedef void worker_run_fn(void *arg);
typedef void worker_done_fn(void *arg);

/* workers_new - start nthreads threads; results come back through base. */
struct workers *workers_new(struct event_base *base, unsigned nthreads);

/* workers_submit - run(arg) on a worker, then done(arg) on the loop. */
void workers_submit(struct workers *w, worker_run_fn *run, worker_done_fn *done, void *arg);

/* workers_free - finish queued and running jobs (their done functions run
 * here, on the calling thread), stop the threads. Sets *w to NULL. */
void workers_free(struct workers **w);

#endif
