/* SPDX-License-Identifier: ISC */
/* smtp_data.c - see smtp_data.h */
#include "smtp/smtp_data.h"

#include <assert.h>
#include <string.h>

#include "lib/limits.h"

/*
 * The scanner is a small state machine over octets. Only CR LF ends a line
 * (RFC 5321 2.3.8): a bare LF or a bare CR is kept in the output (the
 * message is refused anyway), flagged, and treated as an ordinary octet of
 * the current line. So "\n.\n", "\r.\r" and every mix of them are text, and
 * the only end of the message is CR LF "." CR LF, where the first CR LF may
 * be the implicit line start at the beginning of the data (RFC 5321
 * 4.1.1.4). Line lengths count octets as received, the stuffed dot and the
 * CR LF included (RFC 5321 4.5.3.1.6).
 */
enum data_state {
	ST_LINE_START, /* after CR LF, or at the start of DATA */
	ST_TEXT,       /* inside a line */
	ST_CR,         /* inside a line, a CR held back until the next octet */
	ST_DOT,        /* a '.' at line start was taken (and dropped) */
	ST_DOT_CR,     /* "." CR at line start: one LF from the end */
	ST_DONE,       /* the end was found; nothing more may be fed */
};

/* Octets that stop a run of ordinary text. */
static const unsigned char stop[256] = {['\0'] = 1, ['\r'] = 1, ['\n'] = 1};

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode)
{
	d->mode = mode;
	d->state = mode == SMTP_DATA_DOT ? ST_LINE_START : ST_TEXT;
	d->line_len = 0;
	d->errors = 0;
	d->out_len = 0;
}

/* scan_run - length of the run of ordinary octets at p[0..n). Unrolled by
 * hand because this loop is where a large message spends its time. */
static size_t scan_run(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (n - i >= 4) {
		if (stop[p[i]])
			return i;
		if (stop[p[i + 1]])
			return i + 1;
		if (stop[p[i + 2]])
			return i + 2;
		if (stop[p[i + 3]])
			return i + 3;
		i += 4;
	}
	while (i < n && !stop[p[i]])
		i++;
	return i;
}

enum smtp_data_result smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
                                     size_t *out_len_r, size_t *consumed_r)
{
	const unsigned char *p = (const unsigned char *)in;
	const unsigned char *end = p + len;
	char *o = out;
	enum data_state state = (enum data_state)d->state;
	size_t line_len = d->line_len;
	unsigned errors = d->errors;
	bool dot = d->mode == SMTP_DATA_DOT;
	enum smtp_data_result result = SMTP_DATA_MORE;

	assert(state != ST_DONE);
	while (p < end && result == SMTP_DATA_MORE) {
		switch (state) {
		case ST_LINE_START:
			state = ST_TEXT;
			if (*p == '.') {
				/* RFC 5321 4.5.2: drop the first dot of a
				 * line; if the line is only ".", it ends the
				 * data. RFC 5321 4.5.3.1.6: the line limit does
				 * not count that dot, so it is not counted. */
				p++;
				state = ST_DOT;
			}
			break;
		case ST_TEXT: {
			size_t n = scan_run(p, (size_t)(end - p));
			memcpy(o, p, n);
			o += n;
			p += n;
			line_len += n;
			if (p < end) {
				unsigned char c = *p++;
				line_len++;
				if (c == '\r') {
					state = ST_CR;
				} else {
					errors |=
					    c == '\n' ? SMTP_DATA_ERR_BARE_LF : SMTP_DATA_ERR_NUL;
					*o++ = (char)c;
				}
			}
			if (line_len > SMTP_DATALINE_MAX)
				errors |= SMTP_DATA_ERR_LONG_LINE;
			break;
		}
		case ST_CR:
			*o++ = '\r';
			if (*p == '\n') {
				*o++ = '\n';
				p++;
				if (++line_len > SMTP_DATALINE_MAX)
					errors |= SMTP_DATA_ERR_LONG_LINE;
				line_len = 0;
				state = dot ? ST_LINE_START : ST_TEXT;
			} else {
				/* The octet after a bare CR is read as text. */
				errors |= SMTP_DATA_ERR_BARE_CR;
				state = ST_TEXT;
			}
			break;
		case ST_DOT:
			if (*p == '\r') {
				p++;
				line_len++;
				state = ST_DOT_CR;
			} else {
				state = ST_TEXT;
			}
			break;
		case ST_DOT_CR:
			if (*p == '\n') {
				p++;
				line_len = 0;
				state = ST_DONE;
				result = SMTP_DATA_END;
			} else {
				/* "." CR x: the line goes on after the dot. */
				errors |= SMTP_DATA_ERR_BARE_CR;
				*o++ = '\r';
				state = ST_TEXT;
			}
			break;
		case ST_DONE:
			break;
		}
	}

	d->state = (int)state;
	d->line_len = line_len;
	d->errors = errors;
	*out_len_r = (size_t)(o - out);
	d->out_len += *out_len_r;
	*consumed_r = (size_t)(p - (const unsigned char *)in);
	return result;
}

size_t smtp_data_finish(struct smtp_data *d, char *out)
{
	size_t n = 0;

	/* A CR held at the very end never met its LF. */
	if (d->state == ST_CR || d->state == ST_DOT_CR) {
		d->errors |= SMTP_DATA_ERR_BARE_CR;
		out[n++] = '\r';
		d->state = ST_TEXT;
	}
	d->out_len += n;
	return n;
}
