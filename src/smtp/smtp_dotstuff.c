/* SPDX-License-Identifier: ISC */
/* smtp_dotstuff.c - see smtp_dotstuff.h */
#include "smtp/smtp_dotstuff.h"

#include <assert.h>
#include <string.h>

/*
 * Three states are enough. A CR is written as CRLF at once (never held
 * back, so the output bound is exact per call); if the next octet, in this
 * chunk or the next one, is the LF of that CRLF it is dropped, and anything
 * else is read at a line start. That one rule covers CRLF split across
 * chunks, a bare CR (it became CRLF) and "\r\r\n" (two line ends, as our own
 * parser counts them).
 */
enum dotstuff_state {
	ST_LINE_START, /* at the start of a line */
	ST_TEXT,       /* inside a line */
	ST_AFTER_CR,   /* a CR was written as CRLF; an LF now belongs to it */
	ST_DONE,       /* finished */
};

void smtp_dotstuff_init(struct smtp_dotstuff *ds)
{
	ds->state = ST_LINE_START;
	ds->in_len = 0;
	ds->out_len = 0;
}

size_t smtp_dotstuff_feed(struct smtp_dotstuff *ds, const char *in, size_t len, char *out)
{
	enum dotstuff_state state = (enum dotstuff_state)ds->state;
	const char *p = in, *end = in + len;
	char *o = out;

	assert(state != ST_DONE);
	while (p < end) {
		if (state == ST_AFTER_CR) {
			state = ST_LINE_START;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		if (state == ST_LINE_START && *p == '.') {
			/* RFC 5321 4.5.2: a line that starts with a period
			 * gets one more. */
			*o++ = '.';
		}
		/* Copy the run up to the next CR or LF. */
		const char *q = p;
		while (q < end && *q != '\r' && *q != '\n')
			q++;
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		if (q > p)
			state = ST_TEXT;
		p = q;
		if (p == end)
			break;
		*o++ = '\r';
		*o++ = '\n';
		state = *p == '\r' ? ST_AFTER_CR : ST_LINE_START;
		p++;
	}
	ds->state = state;
	ds->in_len += len;
	ds->out_len += (uint64_t)(o - out);
	assert((size_t)(o - out) <= SMTP_DOTSTUFF_FEED_MAX(len));
	return (size_t)(o - out);
}

size_t smtp_dotstuff_finish(struct smtp_dotstuff *ds, char *out)
{
	size_t n = 0;

	assert(ds->state != ST_DONE);
	if (ds->state == ST_TEXT) {
		/* The message did not end in a line end: add one, so the
		 * final "." stands on a line of its own. */
		out[n++] = '\r';
		out[n++] = '\n';
	}
	out[n++] = '.';
	out[n++] = '\r';
	out[n++] = '\n';
	ds->state = ST_DONE;
	ds->out_len += n;
	return n;
}
