/* SPDX-License-Identifier: ISC */
/* localqueue.c - see localqueue.h */
#include "cmd/detour/localqueue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/detour/detour.h"
#include "lib/util.h"

#define LOCALQUEUE_MAGIC "detour-queue 1\n"
/* The header of a queue file: the envelope, bounded by the recipients. */
#define LOCALQUEUE_HEADER_MAX ((size_t)(DETOUR_RCPTS_MAX + 8) * 300)
/* Files left in tmp/ by a crash are removed after this many seconds. */
#define LOCALQUEUE_TMP_AGE (24 * 3600)

char *localqueue_format(const char *account, const char *from, const struct addr_list *rcpts,
                        int64_t created, size_t *len_r)
{
	size_t cap = 256 + strlen(account) + strlen(from);
	for (size_t i = 0; i < rcpts->n; i++)
		cap += strlen(rcpts->addrs[i]) + 8;
	char *out = xmalloc(cap);
	size_t len =
	    (size_t)snprintf(out, cap, "%saccount %s\nfrom %s\n", LOCALQUEUE_MAGIC, account, from);
	for (size_t i = 0; i < rcpts->n; i++)
		len += (size_t)snprintf(out + len, cap - len, "rcpt %s\n", rcpts->addrs[i]);
	len += (size_t)snprintf(out + len, cap - len, "created %" PRId64 "\n\n", created);
	*len_r = len;
	return out;
}

int localqueue_parse(const char *data, size_t len, struct localqueue_entry *e)
{
	size_t mlen = strlen(LOCALQUEUE_MAGIC);
	if (len < mlen || memcmp(data, LOCALQUEUE_MAGIC, mlen) != 0)
		return -1;
	size_t off = mlen;
	bool have_account = false, have_from = false;
	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		if (nl == NULL)
			return -1;
		size_t l = (size_t)(nl - (data + off));
		const char *s = data + off;
		off += l + 1;
		if (l == 0) {
			if (!have_account || !have_from || e->rcpts.n == 0)
				return -1;
			e->msg.len = len - off;
			e->msg.cap = e->msg.len + 1;
			e->msg.data = xmalloc(e->msg.cap);
			memcpy(e->msg.data, data + off, e->msg.len);
			return 0;
		}
		if (l > 8 && memcmp(s, "account ", 8) == 0 && !have_account) {
			e->account = xstrndup(s + 8, l - 8);
			have_account = true;
		} else if (l >= 5 && memcmp(s, "from ", 5) == 0 && !have_from) {
			e->from = xstrndup(s + 5, l - 5);
			have_from = true;
		} else if (l > 5 && memcmp(s, "rcpt ", 5) == 0) {
			if (e->rcpts.n == DETOUR_RCPTS_MAX)
				return -1;
			addr_list_add(&e->rcpts, s + 5, l - 5);
		} else if (l > 8 && memcmp(s, "created ", 8) == 0) {
			e->created = strtoll(s + 8, NULL, 10);
		}
		/* other lines: from a newer detour, ignored */
	}
	return -1;
}

/* new_id - "SECONDS-NANOS-PID-RANDOM": sorts by age, unique. */
static char *new_id(void)
{
	struct timespec ts;
	uint32_t rnd = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
	return xasprintf("%011lld-%09ld-%ld-%08x", (long long)ts.tv_sec, ts.tv_nsec, (long)getpid(),
	                 rnd);
}

/* sweep_tmp - remove what a crash left in tmp/ long ago. */
static void sweep_tmp(const char *tmpdir)
{
	DIR *d = opendir(tmpdir);
	if (d == NULL)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		if (S_ISREG(st.st_mode) && now - st.st_mtime > LOCALQUEUE_TMP_AGE)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* store - write header + message as dir/id, durably. */
static int store(const char *dir, const char *id, const char *header, size_t hlen,
                 const struct message *msg, char *err, size_t errlen)
{
	char *tmpdir = xasprintf("%s/tmp", dir);
	char *tmp = xasprintf("%s/%s", tmpdir, id);
	char *final = xasprintf("%s/%s", dir, id);
	int rc = -1;
	if (detour_mkdirs(tmpdir, 0700) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmpdir, strerror(errno));
		goto out;
	}
	sweep_tmp(tmpdir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* write, fsync, close, rename, fsync the folder: the rename makes
	 * the whole file appear at once, and only once it is on disk. */
	if (write_all(fd, header, hlen) < 0 || write_all(fd, msg->data, msg->len) < 0 ||
	    fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, final) < 0 || fsync_dir(dir) < 0) {
		snprintf(err, errlen, "cannot store %s: %s", final, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmpdir);
	free(tmp);
	free(final);
	return rc;
}

int localqueue_add(const char *dir, const char *account, const char *from,
                   const struct addr_list *rcpts, const struct message *msg, char **id_r, char *err,
                   size_t errlen)
{
	if (detour_mkdirs(dir, 0700) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	size_t hlen;
	char *header = localqueue_format(account, from, rcpts, (int64_t)time(NULL), &hlen);
	char *id = new_id();
	int rc = store(dir, id, header, hlen, msg, err, errlen);
	free(header);
	if (rc < 0) {
		free(id);
		return -1;
	}
	*id_r = id;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t localqueue_list(const char *dir, char ***ids_r)
{
	*ids_r = NULL;
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue; /* ".", "..", "tmp" */
		*ids_r = xreallocarray(*ids_r, n + 1, sizeof(**ids_r));
		(*ids_r)[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(*ids_r, n, sizeof(**ids_r), cmp_str);
	return n;
}

int localqueue_load(const char *dir, const char *id, struct localqueue_entry *e, char *err,
                    size_t errlen)
{
	memset(e, 0, sizeof(*e));
	e->fd = -1;
	e->path = xasprintf("%s/%s", dir, id);
	e->id = xstrdup(id);
	e->fd = open(e->path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		int gone = errno == ENOENT;
		snprintf(err, errlen, "%s: %s", e->path, strerror(errno));
		localqueue_entry_free(e);
		return gone ? 0 : -1;
	}
	if (flock(e->fd, LOCK_EX | LOCK_NB) < 0) {
		localqueue_entry_free(e);
		return 0; /* another detour is sending it */
	}
	/* Locked; still there (the other one may have removed it just
	 * before we opened it)? */
	struct stat st, st2;
	if (fstat(e->fd, &st) < 0 || stat(e->path, &st2) < 0 || st.st_ino != st2.st_ino) {
		localqueue_entry_free(e);
		return 0;
	}
	if ((uint64_t)st.st_size > DETOUR_MESSAGE_MAX + LOCALQUEUE_HEADER_MAX) {
		snprintf(err, errlen, "%s: too large", e->path);
		localqueue_entry_free(e);
		return -1;
	}
	size_t size = (size_t)st.st_size, len = 0;
	char *buf = xmalloc(size + 1);
	while (len < size) {
		ssize_t r = read(e->fd, buf + len, size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	int rc = len == size ? localqueue_parse(buf, len, e) : -1;
	free(buf);
	if (rc < 0) {
		snprintf(err, errlen, "%s: not a detour queue file (left in place)", e->path);
		localqueue_entry_free(e);
		return -1;
	}
	return 1;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash != NULL ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
}

int localqueue_rewrite(struct localqueue_entry *e, const struct addr_list *rcpts, char *err,
                       size_t errlen)
{
	char *dir = dir_of(e->path);
	size_t hlen;
	char *header = localqueue_format(e->account, e->from, rcpts, e->created, &hlen);
	/* A new name sorting where the old one did would be nicer, but the
	 * rename over the old file is what makes the change atomic. */
	int rc = store(dir, e->id, header, hlen, &e->msg, err, errlen);
	free(header);
	free(dir);
	if (rc == 0) {
		addr_list_free(&e->rcpts);
		for (size_t i = 0; i < rcpts->n; i++)
			addr_list_add(&e->rcpts, rcpts->addrs[i], strlen(rcpts->addrs[i]));
	}
	return rc;
}

int localqueue_remove(struct localqueue_entry *e)
{
	char *dir = dir_of(e->path);
	int rc = unlink(e->path);
	if (rc == 0)
		rc = fsync_dir(dir);
	free(dir);
	return rc;
}

void localqueue_entry_free(struct localqueue_entry *e)
{
	if (e->fd >= 0)
		close(e->fd); /* releases the lock */
	free(e->path);
	free(e->id);
	free(e->account);
	free(e->from);
	addr_list_free(&e->rcpts);
	message_free(&e->msg);
	memset(e, 0, sizeof(*e));
	e->fd = -1;
}
