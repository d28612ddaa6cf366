/* SPDX-License-Identifier: ISC */
/* errlist.c - see errlist.h */
#include "lib/errlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* Longest message kept of one problem. */
#define ERRLIST_MESSAGE_MAX 600

void errlist_addv(struct errlist *el, const char *file, int line, const char *fmt, va_list ap)
{
	char msg[ERRLIST_MESSAGE_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	char *entry =
	    line > 0 ? xasprintf("%s:%d: %s\n", file, line, msg) : xasprintf("%s: %s\n", file, msg);
	size_t n = strlen(entry);
	el->text = xrealloc(el->text, el->len + n + 1);
	memcpy(el->text + el->len, entry, n + 1);
	el->len += n;
	el->count++;
	free(entry);
}

char *errlist_take(struct errlist *el)
{
	char *t = el->text;
	el->text = NULL;
	el->len = 0;
	el->count = 0;
	return t;
}
