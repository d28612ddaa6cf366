/* SPDX-License-Identifier: ISC */
/* common.c - see detour.h */
#include "cmd/detour/detour.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_client.h"

char *detour_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	/* XDG Base Directory: a relative value is invalid and ignored. */
	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/detour", xdg);
	const char *home = getenv("HOME");
	if (home == NULL || home[0] == '\0') {
		errno = ENOENT;
		return NULL;
	}
	return xasprintf("%s/.local/state/detour", home);
}

int detour_mkdirs(const char *path, unsigned mode)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(p, saved == '\0' ? mode : 0700) < 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	int e = errno;
	free(p);
	errno = e;
	return rc;
}

const char *detour_ehlo_name(void)
{
	static char name[256];
	if (name[0] != '\0')
		return name;
	if (gethostname(name, sizeof(name) - 1) != 0 ||
	    !smtp_domain_valid(name, strnlen(name, sizeof(name)), false))
		str_copy(name, "localhost", sizeof(name));
	return name;
}

void detour_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("detour: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

char *detour_printable(char *dst, size_t size, const char *src)
{
	size_t n = 0;
	if (size == 0)
		return dst;
	for (; src != NULL && *src != '\0' && n + 1 < size; src++) {
		unsigned char ch = (unsigned char)*src;
		dst[n++] = ch < 0x20 || ch > 0x7e ? '?' : (char)ch;
	}
	dst[n] = '\0';
	return dst;
}

char *detour_reply_text(char *dst, size_t size, const struct smtp_client_result *r)
{
	char text[SMTP_REPLYLINE_MAX];
	detour_printable(text, sizeof(text), r->text);
	if (r->remote)
		snprintf(dst, size, "%d%s%s %s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
		         text);
	else
		snprintf(dst, size, "%s", text);
	return dst;
}

char *detour_expand_home(const char *path)
{
	const char *home = getenv("HOME");
	if (path[0] == '~' && path[1] == '/' && home != NULL && home[0] != '\0')
		return xasprintf("%s%s", home, path + 1);
	return xstrdup(path);
}

bool detour_is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}
