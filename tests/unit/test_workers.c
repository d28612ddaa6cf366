/* SPDX-License-Identifier: ISC */
/*
 * test_workers.c - unit tests for workers.c: run functions execute on
 * worker threads, done functions on the loop thread and only from the
 * event loop, in submission order with one thread; with several threads a
 * slow job does not hold back the done function of a faster one;
 * workers_free finishes queued and running jobs and runs their done
 * functions on the calling thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/workers.h"
#include "unit_fixture.h"

#define NJOBS 200

struct fixture {
	struct event_base *base;
	struct event *tick;
	pthread_t loop_thread;
	/* done order */
	int order[NJOBS];
	int n_done;
	atomic_int n_run;
	atomic_bool run_on_loop;   /* a run function ran on the loop thread */
	atomic_bool done_off_loop; /* a done function ran elsewhere */
	sem_t gate;                /* the slow job waits for it */
};

struct job {
	struct fixture *f;
	int id;
	int sleep_us;
	bool wait_gate;
	bool open_gate;
	pthread_t ran_on;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	f->base = unit_loop_new(&f->tick, 20);
	assert_non_null(f->base);
	f->loop_thread = pthread_self();
	sem_init(&f->gate, 0, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unit_loop_free(&f->base, &f->tick);
	sem_destroy(&f->gate);
	free(f);
	return 0;
}

static void job_run(void *arg)
{
	struct job *j = arg;
	j->ran_on = pthread_self();
	if (pthread_equal(j->ran_on, j->f->loop_thread))
		atomic_store(&j->f->run_on_loop, true);
	if (j->wait_gate) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10; /* never forever, even if the test fails */
		sem_timedwait(&j->f->gate, &ts);
	}
	if (j->sleep_us > 0)
		usleep((useconds_t)j->sleep_us);
	atomic_fetch_add(&j->f->n_run, 1);
}

static void job_done(void *arg)
{
	struct job *j = arg;
	struct fixture *f = j->f;
	if (!pthread_equal(pthread_self(), f->loop_thread))
		atomic_store(&f->done_off_loop, true);
	assert_true(f->n_done < NJOBS);
	f->order[f->n_done++] = j->id;
	if (j->open_gate)
		sem_post(&f->gate);
}

static void run_until(struct fixture *f, int want)
{
	assert_int_equal(unit_run_until(f->base, &f->n_done, want, 30), want);
}

static void test_threads_and_order_one_thread(void **state)
{
	struct fixture *f = *state;
	struct workers *w = workers_new(f->base, 1);
	assert_non_null(w);
	static struct job jobs[NJOBS];
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct job){.f = f, .id = i, .sleep_us = i % 17 == 0 ? 2000 : 0};
		workers_submit(w, job_run, job_done, &jobs[i]);
	}
	run_until(f, NJOBS);
	assert_int_equal(atomic_load(&f->n_run), NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(f->order[i], i);
		assert_false(pthread_equal(jobs[i].ran_on, f->loop_thread));
		/* one thread: always the same one */
		assert_true(pthread_equal(jobs[i].ran_on, jobs[0].ran_on));
	}
	assert_false(atomic_load(&f->run_on_loop));
	assert_false(atomic_load(&f->done_off_loop));
	workers_free(&w);
	assert_null(w);
	assert_int_equal(f->n_done, NJOBS); /* nothing ran twice */
}

static void test_done_only_from_loop(void **state)
{
	struct fixture *f = *state;
	struct workers *w = workers_new(f->base, 2);
	struct job a = {.f = f, .id = 0}, b = {.f = f, .id = 1};
	workers_submit(w, job_run, job_done, &a);
	workers_submit(w, job_run, job_done, &b);
	/* both have run, but nothing calls done until the loop runs */
	int64_t deadline = mono_ms() + 10000;
	while (atomic_load(&f->n_run) < 2 && mono_ms() < deadline)
		usleep(1000);
	assert_int_equal(atomic_load(&f->n_run), 2);
	usleep(20 * 1000);
	assert_int_equal(f->n_done, 0);
	run_until(f, 2);
	assert_false(atomic_load(&f->done_off_loop));
	workers_free(&w);
}

static void test_many_threads_all_done(void **state)
{
	struct fixture *f = *state;
	struct workers *w = workers_new(f->base, 4);
	static struct job jobs[NJOBS];
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct job){.f = f, .id = i, .sleep_us = (i * 37) % 500};
		workers_submit(w, job_run, job_done, &jobs[i]);
	}
	run_until(f, NJOBS);
	/* each exactly once, none on the loop thread */
	bool seen[NJOBS] = {false};
	for (int i = 0; i < NJOBS; i++) {
		assert_false(seen[f->order[i]]);
		seen[f->order[i]] = true;
		assert_false(pthread_equal(jobs[i].ran_on, f->loop_thread));
	}
	assert_false(atomic_load(&f->done_off_loop));
	workers_free(&w);
	assert_int_equal(f->n_done, NJOBS);
}

static void test_slow_job_does_not_block_others(void **state)
{
	struct fixture *f = *state;
	/* Job 0 runs until job 1's done function opens the gate: with two
	 * threads that must happen (a slow password hash must not hold back
	 * other sessions' answers). */
	struct workers *w = workers_new(f->base, 2);
	struct job slow = {.f = f, .id = 0, .wait_gate = true};
	struct job fast = {.f = f, .id = 1, .open_gate = true};
	workers_submit(w, job_run, job_done, &slow);
	workers_submit(w, job_run, job_done, &fast);
	run_until(f, 2);
	assert_int_equal(f->order[0], 1);
	assert_int_equal(f->order[1], 0);
	assert_false(pthread_equal(slow.ran_on, fast.ran_on));
	workers_free(&w);
}

static void test_free_runs_pending(void **state)
{
	struct fixture *f = *state;
	struct workers *w = workers_new(f->base, 1);
	static struct job jobs[20];
	/* the first is running (slow), the rest wait in the queue */
	for (int i = 0; i < 20; i++) {
		jobs[i] = (struct job){.f = f, .id = i, .sleep_us = i == 0 ? 50 * 1000 : 100};
		workers_submit(w, job_run, job_done, &jobs[i]);
	}
	/* the loop never runs: workers_free finishes them all, calls every
	 * done function on this thread, in order */
	workers_free(&w);
	assert_null(w);
	assert_int_equal(atomic_load(&f->n_run), 20);
	assert_int_equal(f->n_done, 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(f->order[i], i);
	assert_false(atomic_load(&f->done_off_loop));
	/* nothing more comes from the loop afterwards */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->n_done, 20);
	/* NULL is fine */
	workers_free(&w);
}

static void test_free_idle(void **state)
{
	struct fixture *f = *state;
	/* created and freed with nothing submitted: no hang, no callback */
	struct workers *w = workers_new(f->base, 3);
	workers_free(&w);
	assert_null(w);
	assert_int_equal(f->n_done, 0);
	/* the event base is left usable */
	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_threads_and_order_one_thread, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_done_only_from_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_threads_all_done, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_job_does_not_block_others, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_runs_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_idle, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
