/* SPDX-License-Identifier: ISC */
/*
 * errlist.h - the "FILE:LINE: problem" lines collected while a file is read
 * (the relay's configuration, the client tool's), so that every problem is
 * reported at once and not only the first.
 * Owns: the text. Any thread; one list per reader.
 */
#ifndef DETOUR_ERRLIST_H
#define DETOUR_ERRLIST_H

#include <stdarg.h>
#include <stddef.h>

struct errlist {
	char *text; /* the lines so far, each ending in LF; NULL while empty */
	size_t len;
	int count;
};

/* errlist_addv - append "file:line: message\n" ("file: message\n" when
 * line is 0). */
void errlist_addv(struct errlist *el, const char *file, int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* errlist_take - the text (malloc'ed, the caller frees it; NULL if none);
 * the list is empty afterwards. */
char *errlist_take(struct errlist *el);

#endif
