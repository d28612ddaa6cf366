/* SPDX-License-Identifier: ISC */
/* portmem.c - see portmem.h */
#include "cmd/detour/portmem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

/* A value may not hold spaces or '='; what we store never does. */
static bool word_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == '=' || (unsigned char)*s >= 127)
			return false;
	return true;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *v_r)
{
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*v_r = v;
	return true;
}

static bool parse_intercepted(char *v, struct portmem_entry *e)
{
	for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *at = strchr(tok, '@');
		uint64_t port, when;
		if (at == NULL)
			return false;
		*at = '\0';
		if (!parse_uint(tok, 65535, &port) || port == 0 ||
		    !parse_uint(at + 1, INT64_MAX, &when))
			return false;
		if (e->nintercepted < DETOUR_PORTS_MAX) {
			e->intercepted[e->nintercepted] = (unsigned)port;
			e->intercepted_when[e->nintercepted] = (int64_t)when;
			e->nintercepted++;
		}
	}
	return true;
}

static bool parse_line(char *line, struct portmem_entry *e)
{
	memset(e, 0, sizeof(*e));
	unsigned seen = 0;
	for (char *save = NULL, *w = strtok_r(line, " \t", &save); w != NULL;
	     w = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(w, '=');
		if (eq == NULL)
			return false;
		*eq = '\0';
		const char *k = w;
		char *v = eq + 1;
		uint64_t n;
		if (strcmp(k, "gw") == 0) {
			if (!word_ok(v))
				return false;
			seen |= 1;
			str_copy(e->id.gw, v, sizeof(e->id.gw));
		} else if (strcmp(k, "mac") == 0) {
			if (!word_ok(v))
				return false;
			seen |= 2;
			str_copy(e->id.mac, v, sizeof(e->id.mac));
		} else if (strcmp(k, "net") == 0) {
			if (!word_ok(v))
				return false;
			seen |= 4;
			str_copy(e->id.net, v, sizeof(e->id.net));
		} else if (strcmp(k, "host") == 0) {
			if (!word_ok(v))
				return false;
			seen |= 8;
			str_copy(e->host, v, sizeof(e->host));
		} else if (strcmp(k, "port") == 0) {
			if (!parse_uint(v, 65535, &n))
				return false;
			e->port = (unsigned)n;
		} else if (strcmp(k, "tls") == 0) {
			e->implicit = strcmp(v, "implicit") == 0;
		} else if (strcmp(k, "when") == 0) {
			if (!parse_uint(v, INT64_MAX, &n))
				return false;
			e->when = (int64_t)n;
		} else if (strcmp(k, "intercepted") == 0) {
			if (!parse_intercepted(v, e))
				return false;
		}
		/* unknown keys: from a newer detour; ignored */
	}
	str_copy(e->id.iface, "?", sizeof(e->id.iface));
	return seen == 15;
}

void portmem_parse(const char *text, struct portmem *pm)
{
	memset(pm, 0, sizeof(*pm));
	const char *p = text;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (len > 0 && len < PORTMEM_LINE_MAX && p[0] != '#' &&
		    pm->n < PORTMEM_ENTRIES_MAX) {
			char line[PORTMEM_LINE_MAX];
			memcpy(line, p, len);
			line[len] = '\0';
			struct portmem_entry e;
			if (parse_line(line, &e)) {
				pm->e = xreallocarray(pm->e, pm->n + 1, sizeof(*pm->e));
				pm->e[pm->n++] = e;
			}
		}
		p += len + (nl != NULL);
	}
}

char *portmem_format(const struct portmem *pm)
{
	size_t cap = 256 + pm->n * PORTMEM_LINE_MAX, len = 0;
	char *out = xmalloc(cap);
	len += (size_t)snprintf(out, cap,
	                        "# detour: the port that last worked, per network and relay "
	                        "(see detour(1))\n");
	for (size_t i = 0; i < pm->n; i++) {
		const struct portmem_entry *e = &pm->e[i];
		char line[PORTMEM_LINE_MAX];
		int w = snprintf(line, sizeof(line),
		                 "gw=%s mac=%s net=%s host=%s port=%u tls=%s when=%" PRId64,
		                 e->id.gw, e->id.mac, e->id.net, e->host, e->port,
		                 e->implicit ? "implicit" : "starttls", e->when);
		size_t l = w > 0 ? (size_t)w : 0;
		for (size_t k = 0; k < e->nintercepted && l < sizeof(line); k++) {
			w = snprintf(line + l, sizeof(line) - l, "%s%u@%" PRId64,
			             k == 0 ? " intercepted=" : ",", e->intercepted[k],
			             e->intercepted_when[k]);
			l += w > 0 ? (size_t)w : 0;
		}
		if (l >= sizeof(line) - 1)
			continue; /* cannot happen with the fields' bounds */
		memcpy(out + len, line, l);
		len += l;
		out[len++] = '\n';
	}
	out[len] = '\0';
	return out;
}

static bool known(const char *v)
{
	return strcmp(v, "?") != 0;
}

struct portmem_entry *portmem_find(struct portmem *pm, const struct netid *id, const char *host)
{
	struct portmem_entry *best = NULL;
	bool best_exact = false;
	for (size_t i = 0; i < pm->n; i++) {
		struct portmem_entry *e = &pm->e[i];
		if (!str_ieq(e->host, host) || strcmp(e->id.gw, id->gw) != 0 ||
		    strcmp(e->id.net, id->net) != 0)
			continue;
		bool exact = strcmp(e->id.mac, id->mac) == 0;
		/* Two known MACs that differ are two networks (two routers
		 * with the same address); an unknown one matches either. */
		if (!exact && known(e->id.mac) && known(id->mac))
			continue;
		if (best == NULL || (exact && !best_exact) ||
		    (exact == best_exact && e->when > best->when)) {
			best = e;
			best_exact = exact;
		}
	}
	return best;
}

struct portmem_entry *portmem_touch(struct portmem *pm, const struct netid *id, const char *host,
                                    int64_t now)
{
	struct portmem_entry *e = portmem_find(pm, id, host);
	if (e == NULL) {
		if (pm->n >= PORTMEM_ENTRIES_MAX) {
			size_t oldest = 0;
			for (size_t i = 1; i < pm->n; i++)
				if (pm->e[i].when < pm->e[oldest].when)
					oldest = i;
			pm->e[oldest] = pm->e[pm->n - 1];
			pm->n--;
		}
		pm->e = xreallocarray(pm->e, pm->n + 1, sizeof(*pm->e));
		e = &pm->e[pm->n++];
		memset(e, 0, sizeof(*e));
		e->id = *id;
		str_copy(e->host, host, sizeof(e->host));
		e->when = now;
	}
	if (!known(e->id.mac) && known(id->mac))
		str_copy(e->id.mac, id->mac, sizeof(e->id.mac));
	str_copy(e->id.iface, id->iface, sizeof(e->id.iface));
	return e;
}

void portmem_set_winner(struct portmem_entry *e, unsigned port, bool implicit, int64_t now)
{
	e->port = port;
	e->implicit = implicit;
	e->when = now;
	portmem_clear_intercepted(e, port);
}

void portmem_clear_intercepted(struct portmem_entry *e, unsigned port)
{
	for (size_t k = 0; k < e->nintercepted; k++) {
		if (e->intercepted[k] != port)
			continue;
		e->intercepted[k] = e->intercepted[e->nintercepted - 1];
		e->intercepted_when[k] = e->intercepted_when[e->nintercepted - 1];
		e->nintercepted--;
		return;
	}
}

void portmem_mark_intercepted(struct portmem_entry *e, unsigned port, int64_t now)
{
	if (e->port == port)
		e->port = 0;
	for (size_t k = 0; k < e->nintercepted; k++) {
		if (e->intercepted[k] == port) {
			e->intercepted_when[k] = now;
			return;
		}
	}
	if (e->nintercepted == DETOUR_PORTS_MAX) {
		size_t oldest = 0;
		for (size_t k = 1; k < e->nintercepted; k++)
			if (e->intercepted_when[k] < e->intercepted_when[oldest])
				oldest = k;
		e->intercepted[oldest] = port;
		e->intercepted_when[oldest] = now;
		return;
	}
	e->intercepted[e->nintercepted] = port;
	e->intercepted_when[e->nintercepted] = now;
	e->nintercepted++;
}

bool portmem_is_intercepted(const struct portmem_entry *e, unsigned port, int64_t now)
{
	for (size_t k = 0; k < e->nintercepted; k++)
		if (e->intercepted[k] == port &&
		    now - e->intercepted_when[k] < DETOUR_INTERCEPTED_TTL)
			return true;
	return false;
}

int portmem_load(const char *path, struct portmem *pm)
{
	memset(pm, 0, sizeof(*pm));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	size_t max = (size_t)PORTMEM_ENTRIES_MAX * PORTMEM_LINE_MAX;
	char *buf = xmalloc(max + 1);
	size_t len = 0;
	while (len < max) {
		ssize_t r = read(fd, buf + len, max - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	portmem_parse(buf, pm);
	free(buf);
	return 0;
}

int portmem_save(const char *path, const struct portmem *pm)
{
	char *text = portmem_format(pm);
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0 && close(fd) == 0) {
			fd = -1;
			rc = rename(tmp, path);
		}
		if (fd >= 0)
			close(fd);
		if (rc < 0) {
			unlink(tmp);
		} else {
			/* The new name must survive a crash too. */
			const char *slash = strrchr(path, '/');
			char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
			fsync_dir(*dir ? dir : "/");
			free(dir);
		}
	}
	free(text);
	free(tmp);
	return rc;
}

void portmem_free(struct portmem *pm)
{
	free(pm->e);
	pm->e = NULL;
	pm->n = 0;
}
