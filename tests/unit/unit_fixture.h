/* SPDX-License-Identifier: ISC */
/*
 * unit_fixture.h - what the unit tests that need a state folder or an event
 * loop share: a fresh folder under $TMPDIR (default /tmp) and its removal,
 * and a libevent base with a short tick, so that EVLOOP_ONCE never blocks
 * for long while a test waits for callbacks from other threads.
 *
 * Header-only (static inline): every unit test is a program of its own.
 */
#ifndef DETOUR_UNIT_FIXTURE_H
#define DETOUR_UNIT_FIXTURE_H

#include <event2/event.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "lib/util.h"

static inline int unit_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* unit_rm_tree - remove dir and everything below it. */
static inline void unit_rm_tree(const char *dir)
{
	nftw(dir, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* unit_mkdtemp - create $TMPDIR/detour-NAME-XXXXXX into dir[0..size);
 * returns dir, or NULL (errno set) if it could not be created. */
static inline char *unit_mkdtemp(char *dir, size_t size, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, size, "%s/detour-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	return mkdtemp(dir);
}

static inline void unit_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* unit_loop_new - an event base whose persistent tick (every tick_ms) keeps
 * EVLOOP_ONCE from blocking longer than that; *tick_r is for unit_loop_free.
 * NULL if libevent could not make one. */
static inline struct event_base *unit_loop_new(struct event **tick_r, int tick_ms)
{
	struct event_base *base = event_base_new();
	if (base == NULL)
		return NULL;
	*tick_r = event_new(base, -1, EV_PERSIST, unit_tick_cb, NULL);
	struct timeval tv = {tick_ms / 1000, (tick_ms % 1000) * 1000};
	event_add(*tick_r, &tv);
	return base;
}

static inline void unit_loop_free(struct event_base **base, struct event **tick)
{
	event_free(*tick);
	*tick = NULL;
	event_base_free(*base);
	*base = NULL;
}

/* unit_run_until - run the loop until *counter reaches want or seconds
 * pass; returns *counter, for the caller to assert on. */
static inline int unit_run_until(struct event_base *base, const int *counter, int want, int seconds)
{
	int64_t deadline = mono_ms() + (int64_t)seconds * 1000;
	while (*counter < want && mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	return *counter;
}

#endif
