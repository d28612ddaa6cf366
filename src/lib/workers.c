/* SPDX-License-Identifier: ISC */
/* workers.c - see workers.h */
#include "lib/workers.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/util.h"

struct job {
	struct job *next;
	worker_run_fn *run;
	worker_done_fn *done;
	void *arg;
};

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *todo, *todo_tail; /* waiting for a thread */
	struct job *finished;         /* run, waiting for the loop */
	pthread_t *threads;
	unsigned nthreads;
	bool stopping;
	int pipe_r, pipe_w; /* a byte written here wakes the loop */
	struct event *ev;
};

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->todo == NULL && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->todo == NULL)
			break;
		struct job *j = w->todo;
		w->todo = j->next;
		if (w->todo == NULL)
			w->todo_tail = NULL;
		pthread_mutex_unlock(&w->lock);
		j->run(j->arg);
		pthread_mutex_lock(&w->lock);
		bool was_empty = w->finished == NULL;
		j->next = w->finished;
		w->finished = j;
		if (was_empty) {
			char b = 1;
			/* Non-blocking: if the pipe is full the loop is already due. */
			if (write(w->pipe_w, &b, 1) < 0 && errno != EAGAIN) {
				/* nothing more can be done from here */
			}
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* run_finished - call done for every finished job, in the order they
 * finished. */
static void run_finished(struct workers *w)
{
	pthread_mutex_lock(&w->lock);
	struct job *list = w->finished;
	w->finished = NULL;
	pthread_mutex_unlock(&w->lock);
	struct job *rev = NULL;
	while (list != NULL) {
		struct job *n = list->next;
		list->next = rev;
		rev = list;
		list = n;
	}
	while (rev != NULL) {
		struct job *n = rev->next;
		rev->done(rev->arg);
		free(rev);
		rev = n;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	run_finished(arg);
}

struct workers *workers_new(struct event_base *base, unsigned nthreads)
{
	struct workers *w = xcalloc(1, sizeof(*w));
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		abort(); /* out of descriptors at start-up */
	w->pipe_r = fds[0];
	w->pipe_w = fds[1];
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->ev = event_new(base, w->pipe_r, EV_READ | EV_PERSIST, on_wake, w);
	event_add(w->ev, NULL);
	w->nthreads = nthreads;
	w->threads = xcalloc(nthreads, sizeof(*w->threads));
	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&w->threads[i], NULL, worker_main, w);
	return w;
}

void workers_submit(struct workers *w, worker_run_fn *run, worker_done_fn *done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	if (w->todo_tail != NULL)
		w->todo_tail->next = j;
	else
		w->todo = j;
	w->todo_tail = j;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void workers_free(struct workers **wp)
{
	struct workers *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	run_finished(w);
	event_free(w->ev);
	close(w->pipe_r);
	close(w->pipe_w);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w->threads);
	free(w);
}
