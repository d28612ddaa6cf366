/* SPDX-License-Identifier: ISC */
/* smtp_replyparse.c - see smtp_replyparse.h */
#include "smtp/smtp_replyparse.h"

#include <assert.h>
#include <string.h>

/* Offsets and lengths in text[] are kept as uint16_t. */
_Static_assert(SMTP_REPLY_TEXT_MAX < UINT16_MAX, "reply text offsets must fit in 16 bits");
_Static_assert(SMTP_REPLYLINE_MAX >= 6, "a reply line holds at least a code and CRLF");

static void reply_clear(struct smtp_parsed_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
	r->text[0] = '\0';
	r->text_len = 0;
}

void smtp_replyparse_init(struct smtp_replyparse *p)
{
	reply_clear(&p->reply);
	p->line_len = 0;
	p->cr = false;
	p->complete = false;
	p->error = SMTP_REPLYPARSE_ERR_NONE;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* digits - length of the run of 1..3 digits at s[0..len), 0 if none or if
 * there are more than 3. */
static size_t digits(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && is_digit(s[n]))
		n++;
	return n <= 3 ? n : 0;
}

/*
 * enhanced_len - RFC 3463 2: does s[0..len) start with "class.subject.detail"
 * followed by SP or the end? class is "2", "4" or "5" and must be the
 * class of the reply (RFC 3463 2: "the class ... must match the first digit
 * of the reply code"), subject and detail are 1*3digit. Returns the length
 * of the code (without the space), or 0.
 */
static size_t enhanced_len(const char *s, size_t len, char klass)
{
	size_t i, n;

	if (len < 5 || s[0] != klass || s[1] != '.')
		return 0;
	i = 2;
	if ((n = digits(s + i, len - i)) == 0)
		return 0;
	i += n;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	if ((n = digits(s + i, len - i)) == 0)
		return 0;
	i += n;
	if (i < len && s[i] != ' ')
		return 0;
	assert(i <= SMTP_ENHCODE_MAX);
	return i;
}

/*
 * end_line - a whole line is in p->line (CRLF removed). Check it, add its
 * text to the reply. Returns 1 when it was the last line of the reply, 0
 * when more lines follow, -1 on a malformed line (p->error set).
 */
static int end_line(struct smtp_replyparse *p)
{
	struct smtp_parsed_reply *r = &p->reply;
	const char *s = p->line;
	size_t len = p->line_len;
	bool last;

	/* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39. The second digit
	 * is taken as any digit: a client must act on the code's classes, and
	 * refusing "260" would gain nothing. */
	if (len < 3 || s[0] < '2' || s[0] > '5' || !is_digit(s[1]) || !is_digit(s[2])) {
		p->error = SMTP_REPLYPARSE_ERR_BAD_CODE;
		return -1;
	}
	int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		p->error = SMTP_REPLYPARSE_ERR_MIXED_CODES;
		return -1;
	}
	if (len == 3) {
		last = true; /* "250" alone: a last line without text */
	} else if (s[3] == ' ' || s[3] == '-') {
		last = s[3] == ' ';
	} else {
		p->error = SMTP_REPLYPARSE_ERR_BAD_SEPARATOR;
		return -1;
	}
	if (!last && r->nlines + 1 >= SMTP_REPLY_LINES_MAX) {
		/* This is line SMTP_REPLY_LINES_MAX and announces another. */
		p->error = SMTP_REPLYPARSE_ERR_TOO_MANY_LINES;
		return -1;
	}

	const char *text = len > 4 ? s + 4 : s + len;
	size_t text_len = len > 4 ? len - 4 : 0;
	if (r->nlines == 0) {
		r->code = code;
		size_t n = enhanced_len(text, text_len, s[0]);
		if (n > 0) {
			memcpy(r->enhanced, text, n);
			r->enhanced[n] = '\0';
		}
	}
	size_t enh = strlen(r->enhanced);
	if (enh > 0 && text_len >= enh && memcmp(text, r->enhanced, enh) == 0 &&
	    (text_len == enh || text[enh] == ' ')) {
		size_t skip = text_len == enh ? enh : enh + 1;
		text += skip;
		text_len -= skip;
	}

	if (r->nlines > 0)
		r->text[r->text_len++] = SMTP_REPLY_LINE_SEP;
	assert(r->text_len + text_len <= SMTP_REPLY_TEXT_MAX);
	r->line_off[r->nlines] = (uint16_t)r->text_len;
	r->line_len[r->nlines] = (uint16_t)text_len;
	memcpy(r->text + r->text_len, text, text_len);
	r->text_len += text_len;
	r->text[r->text_len] = '\0';
	r->nlines++;
	return last ? 1 : 0;
}

enum smtp_replyparse_result smtp_replyparse_feed(struct smtp_replyparse *p, const char *buf,
                                                 size_t len, size_t *consumed_r,
                                                 const struct smtp_parsed_reply **reply_r)
{
	*consumed_r = 0;
	*reply_r = NULL;
	if (p->error != SMTP_REPLYPARSE_ERR_NONE)
		return SMTP_REPLYPARSE_MALFORMED;
	if (p->complete) {
		reply_clear(&p->reply);
		p->complete = false;
	}

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (p->cr) {
			/* RFC 5321 2.3.8: CR only ever comes as part of CRLF. */
			if (c != '\n') {
				p->error = SMTP_REPLYPARSE_ERR_BARE_CR;
				return SMTP_REPLYPARSE_MALFORMED;
			}
			p->cr = false;
			int last = end_line(p);
			p->line_len = 0;
			if (last < 0)
				return SMTP_REPLYPARSE_MALFORMED;
			if (last > 0) {
				p->complete = true;
				*consumed_r = i + 1;
				*reply_r = &p->reply;
				return SMTP_REPLYPARSE_REPLY;
			}
			continue;
		}
		switch (c) {
		case '\r':
			/* line_len <= SMTP_REPLYLINE_MAX - 2 here, so with
			 * the CRLF the line fits. */
			p->cr = true;
			break;
		case '\n':
			p->error = SMTP_REPLYPARSE_ERR_BARE_LF;
			return SMTP_REPLYPARSE_MALFORMED;
		case '\0':
			p->error = SMTP_REPLYPARSE_ERR_NUL;
			return SMTP_REPLYPARSE_MALFORMED;
		default:
			/* RFC 5321 4.5.3.1.5: 512 octets with the CRLF. */
			if (p->line_len >= SMTP_REPLYLINE_MAX - 2) {
				p->error = SMTP_REPLYPARSE_ERR_TOO_LONG;
				return SMTP_REPLYPARSE_MALFORMED;
			}
			p->line[p->line_len++] = c;
			break;
		}
	}
	*consumed_r = len;
	return SMTP_REPLYPARSE_MORE;
}

const char *smtp_replyparse_line(const struct smtp_parsed_reply *r, size_t i, size_t *len_r)
{
	assert(i < r->nlines);
	*len_r = r->line_len[i];
	return r->text + r->line_off[i];
}

const char *smtp_replyparse_error_text(enum smtp_replyparse_error error)
{
	switch (error) {
	case SMTP_REPLYPARSE_ERR_NONE:
		return "no error";
	case SMTP_REPLYPARSE_ERR_TOO_LONG:
		return "reply line too long";
	case SMTP_REPLYPARSE_ERR_TOO_MANY_LINES:
		return "too many lines in one reply";
	case SMTP_REPLYPARSE_ERR_BARE_LF:
		return "bare LF in reply";
	case SMTP_REPLYPARSE_ERR_BARE_CR:
		return "bare CR in reply";
	case SMTP_REPLYPARSE_ERR_NUL:
		return "NUL in reply";
	case SMTP_REPLYPARSE_ERR_BAD_CODE:
		return "missing or invalid reply code";
	case SMTP_REPLYPARSE_ERR_MIXED_CODES:
		return "different reply codes in one reply";
	case SMTP_REPLYPARSE_ERR_BAD_SEPARATOR:
		return "invalid character after the reply code";
	}
	return "unknown error";
}
