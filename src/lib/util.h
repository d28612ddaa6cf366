/* SPDX-License-Identifier: ISC */
/*
 * util.h - allocation that never returns NULL, and small string helpers.
 *
 * Allocation policy (docs/architecture.md): every allocation is bounded by a
 * limit in limits.h, and the queue is crash-safe by construction, so running
 * out of memory aborts with a log line instead of threading NULL checks
 * through every caller. Nothing acknowledged can be lost by that abort.
 */
#ifndef DETOUR_UTIL_H
#define DETOUR_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* xreallocarray - resize to count*size bytes, aborting on overflow. */
void *xreallocarray(void *p, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* strlcpy-like: copies at most size-1 bytes, always terminates; returns
 * false when the source did not fit. */
bool str_copy(char *dst, const char *src, size_t size);
/* ASCII case-insensitive comparisons that ignore the locale. */
bool str_ieq(const char *a, const char *b);
bool mem_ieq(const char *a, size_t alen, const char *b);
/* Does s (length n) start with prefix, ignoring ASCII case? */
bool mem_istarts(const char *s, size_t n, const char *prefix);
void str_lower(char *s);
/* str_hash - FNV-1a of a NUL-terminated string, for in-memory hash tables
 * (not for anything an attacker must not predict). */
uint32_t str_hash(const char *s);

/* now_ms - wall-clock milliseconds since the epoch. */
int64_t now_ms(void);
/* mono_ms - monotonic milliseconds, for durations. */
int64_t mono_ms(void);

/* fsync_dir - make the directory entry changes under path durable. */
int fsync_dir(const char *path);

/* write_all - write(2) all of data to fd, retrying after EINTR and short
 * writes. Returns 0, or -1 with errno. */
int write_all(int fd, const void *data, size_t len);

#endif
