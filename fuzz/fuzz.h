/* SPDX-License-Identifier: ISC */
/*
 * fuzz.h - what every libFuzzer driver in fuzz/ shares: the entry point's
 * prototype, a check that aborts with a message (libFuzzer saves the input
 * as a crash), and a small deterministic generator that turns bytes of the
 * input into split points, so that a crash found with some splits replays
 * with exactly the same splits.
 *
 * Owns nothing of detour; only the drivers include it. Header-only, so that
 * every .c file in fuzz/ stays one target (the Makefile builds each one).
 * Allocation is detour's own (lib/util.h: xmalloc and the rest abort when
 * memory runs out, and never return NULL).
 */
#ifndef DETOUR_FUZZ_H
#define DETOUR_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* FUZZ_CHECK - a property of the code under test. On failure, say which and
 * where, then abort: libFuzzer reports a deadly signal and writes the input
 * to crash-<sha1>. Always on (not assert: NDEBUG must not disable it). */
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "\nPROPERTY VIOLATED %s:%d: %s\n  ", __FILE__, __LINE__,   \
			        #cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* fuzz_rng - xorshift32 seeded from input bytes. Never 0. */
struct fuzz_rng {
	uint32_t s;
};

static inline void fuzz_rng_init(struct fuzz_rng *r, const uint8_t *seed, size_t n)
{
	uint32_t s = 0x9e3779b9u;
	for (size_t i = 0; i < n; i++)
		s = (s ^ seed[i]) * 0x01000193u;
	r->s = s != 0 ? s : 1;
}

static inline uint32_t fuzz_rng_next(struct fuzz_rng *r)
{
	uint32_t x = r->s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	r->s = x;
	return x;
}

/* fuzz_chunk - the length of the next piece: 1..max (max >= 1), or all
 * that is left when less remains. Without a generator (r NULL) the piece
 * is all that is left: the input fed whole. */
static inline size_t fuzz_chunk(struct fuzz_rng *r, size_t max, size_t left)
{
	if (r == NULL)
		return left;
	size_t n = 1 + fuzz_rng_next(r) % max;
	return n < left ? n : left;
}

/* fuzz_chunk_max - a piece size class from two bits: one byte at a time,
 * a few bytes, about a line, or large. */
static inline size_t fuzz_chunk_max(unsigned bits)
{
	static const size_t max[4] = {1, 7, 100, 4096};
	return max[bits & 3];
}

/*
 * fuzz_split_input - the input of a driver that feeds its payload in
 * pieces: byte 0 is the driver's mode (it reads data[0] itself), bytes
 * 1..4 seed *rng, the split points; the payload, from byte 5 on, is
 * returned in *s and *n. Returns false, and the driver skips the input,
 * when size is under those 5 bytes or over max.
 */
static inline bool fuzz_split_input(const uint8_t *data, size_t size, size_t max,
                                    struct fuzz_rng *rng, const char **s, size_t *n)
{
	if (size < 5 || size > max)
		return false;
	fuzz_rng_init(rng, data + 1, 4);
	*s = (const char *)data + 5;
	*n = size - 5;
	return true;
}

/* fuzz_dup - a heap copy of exactly n bytes (at least one allocated), so
 * that ASan sees any read past the piece a function was given. */
static inline char *fuzz_dup(const void *p, size_t n)
{
	char *q = xmalloc(n);
	memcpy(q, p, n);
	return q;
}

/* fuzz_trace - is FUZZ_TRACE set in the environment, to something other
 * than "" or "0"? Drivers that can print what an input does print it then.
 * Read once. */
static inline bool fuzz_trace(void)
{
	static int on = -1;
	if (on < 0) {
		const char *t = getenv("FUZZ_TRACE");
		on = t != NULL && *t != '\0' && strcmp(t, "0") != 0;
	}
	return on;
}

/* fuzz_rmtree - remove path and everything under it; errors are ignored. */
static inline void fuzz_rmtree(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char *sub = xasprintf("%s/%s", path, e->d_name);
			struct stat st;
			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				fuzz_rmtree(sub);
			else
				unlink(sub);
			free(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

/*
 * fuzz_tmpdir - a new directory for a driver's files, on tmpfs when there
 * is one: $TMPDIR, else /dev/shm, else /tmp, named detour-fuzz-NAME.PID.
 * A crash ends the process without atexit handlers, so directories of the
 * same NAME whose process is gone are removed first. Returns a malloc'ed
 * path; the caller removes it with fuzz_rmtree at exit.
 */
static inline char *fuzz_tmpdir(const char *name)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || *base == '\0')
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "detour-fuzz-%s.", name);
	size_t plen = strlen(prefix);

	DIR *d = opendir(base);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, prefix, plen) != 0)
				continue;
			char *end;
			long pid = strtol(e->d_name + plen, &end, 10);
			if (*end != '\0' || pid <= 0 || pid == (long)getpid() ||
			    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
				continue;
			char *old = xasprintf("%s/%s", base, e->d_name);
			fuzz_rmtree(old);
			free(old);
		}
		closedir(d);
	}

	char *dir = xasprintf("%s/%s%ld", base, prefix, (long)getpid());
	fuzz_rmtree(dir);
	if (mkdir(dir, 0700) < 0) {
		fprintf(stderr, "fuzz: cannot create %s: %s\n", dir, strerror(errno));
		exit(1);
	}
	return dir;
}

#endif
