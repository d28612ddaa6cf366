/* SPDX-License-Identifier: ISC */
/*
 * smtp_replyparse.h - reading the replies of an SMTP server, on the client
 * side (RFC 5321 4.2, 4.5.3.1.5), with their RFC 3463 enhanced status codes
 * (RFC 2034).
 *
 * Owns: what a well-formed reply is, incrementally: bytes go in as they
 * arrive, complete replies come out. Strict and bounded: a reply line is at
 * most SMTP_REPLYLINE_MAX octets including CRLF, a reply at most
 * SMTP_REPLY_LINES_MAX lines, lines end only in CRLF, and every line
 * carries the same three-digit code. Anything else is MALFORMED, and the
 * parser stays failed: the client treats that as a temporary failure of the
 * connection (never a crash, never unbounded memory). The memory is fixed:
 * one struct smtp_replyparse, about 51 KiB, holds everything.
 * Does not own: what a reply means for a command (smtp_client), making the
 * remote's text safe to log or to put in a bounce (the text is kept raw:
 * any octet but CR, LF and NUL may be in it; callers sanitize).
 * Pure: no I/O, no clocks, no globals. Any thread.
 */
#ifndef DETOUR_SMTP_REPLYPARSE_H
#define DETOUR_SMTP_REPLYPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/limits.h"

/* RFC 3463 2: class "." subject "." detail, subject and detail 1 to 3
 * digits: "5.123.456" is the longest. */
#define SMTP_ENHCODE_MAX 9

/* Longest text of one line: the line less its code, separator and CRLF. */
#define SMTP_REPLY_LINETEXT_MAX (SMTP_REPLYLINE_MAX - 6)

/* Longest joined text of a reply: every line at its longest, one separator
 * between two lines. The bound is structural, so nothing is ever truncated
 * here. */
#define SMTP_REPLY_TEXT_MAX                                                                        \
	(SMTP_REPLY_LINES_MAX * SMTP_REPLY_LINETEXT_MAX + SMTP_REPLY_LINES_MAX - 1)

/* The separator put between the texts of two lines in smtp_parsed_reply.text:
 * one space, as a multi-line reply is one message folded over lines. */
#define SMTP_REPLY_LINE_SEP ' '

/*
 * A complete reply.
 *
 * Enhanced status code rule (RFC 2034 4, RFC 3463 2): it is taken from the
 * first line only, when that line's text starts with "c.s.d" followed by a
 * space or the end of the line and its class c equals the first digit of
 * the reply code (a "550 4.1.1" does not carry one). It is then removed from
 * the text of the first line and of every later line that starts with the
 * same code; later lines without it, or with another one, keep their text
 * as sent. So "550-5.1.1 No such user\r\n550 5.1.1 See the FAQ\r\n" gives
 * code 550, enhanced "5.1.1", text "No such user See the FAQ", and a reply
 * whose first line has no code has none, whatever the later lines say.
 * Enhanced codes are read whether or not the server advertised
 * ENHANCEDSTATUSCODES; the syntax alone is specific enough.
 */
struct smtp_parsed_reply {
	int code;                            /* 200..599 */
	char enhanced[SMTP_ENHCODE_MAX + 1]; /* "5.1.1", or "" */
	size_t nlines;                       /* 1..SMTP_REPLY_LINES_MAX */
	/* The text of every line (after the code, the separator and a
	 * stripped enhanced code), joined with SMTP_REPLY_LINE_SEP and
	 * NUL-terminated. Raw: may hold any octet but CR, LF and NUL. */
	char text[SMTP_REPLY_TEXT_MAX + 1];
	size_t text_len;
	/* Where each line's text is in text[] (smtp_replyparse_line). */
	uint16_t line_off[SMTP_REPLY_LINES_MAX];
	uint16_t line_len[SMTP_REPLY_LINES_MAX];
};

enum smtp_replyparse_result {
	SMTP_REPLYPARSE_MORE,      /* all input taken, no complete reply yet */
	SMTP_REPLYPARSE_REPLY,     /* a complete reply; see *consumed_r */
	SMTP_REPLYPARSE_MALFORMED, /* the input broke a rule; see error */
};

enum smtp_replyparse_error {
	SMTP_REPLYPARSE_ERR_NONE,
	SMTP_REPLYPARSE_ERR_TOO_LONG,       /* a line over SMTP_REPLYLINE_MAX incl. CRLF */
	SMTP_REPLYPARSE_ERR_TOO_MANY_LINES, /* over SMTP_REPLY_LINES_MAX lines */
	SMTP_REPLYPARSE_ERR_BARE_LF,        /* LF without CR before it */
	SMTP_REPLYPARSE_ERR_BARE_CR,        /* CR not followed by LF */
	SMTP_REPLYPARSE_ERR_NUL,            /* a NUL octet */
	SMTP_REPLYPARSE_ERR_BAD_CODE,       /* not three digits, first one 2..5 */
	SMTP_REPLYPARSE_ERR_MIXED_CODES,    /* a line with another code than the first */
	SMTP_REPLYPARSE_ERR_BAD_SEPARATOR,  /* code followed by other than '-', ' ' or CRLF */
};

/* The parser. Fields are private but public for embedding (no allocation);
 * `error` may be read after MALFORMED. */
struct smtp_replyparse {
	struct smtp_parsed_reply reply; /* the reply being built */
	char line[SMTP_REPLYLINE_MAX];  /* the current line, without CRLF */
	size_t line_len;
	bool cr;       /* the last octet was a CR */
	bool complete; /* reply is complete: start afresh on next feed */
	enum smtp_replyparse_error error;
};

/* smtp_replyparse_init - ready to read the first reply. Also resets a parser
 * (after STARTTLS, RFC 3207 4.2, nothing read before may count). */
void smtp_replyparse_init(struct smtp_replyparse *p);

/*
 * smtp_replyparse_feed - read buf[0..len).
 *
 * MORE: every octet was taken (*consumed_r == len) and buffered.
 * REPLY: a reply was completed by the octet at buf[*consumed_r - 1];
 * *reply_r points to it, valid until the next call. The octets after it
 * (RFC 2920 pipelined replies) were not read: call again with the rest.
 * MALFORMED: p->error says why; the parser stays failed and every later
 * call returns MALFORMED, taking nothing.
 *
 * Rules (RFC 5321 4.2, 4.5.3.1.5): Reply-line = code [ ("-" / SP) text ]
 * CRLF; every line but the last has "-", the last has SP or nothing. The
 * first digit of the code must be 2 to 5 (a 1xx reply has no place in SMTP);
 * the other two are any digits. A line is at most SMTP_REPLYLINE_MAX octets
 * with its CRLF (exactly that many is fine, one more is TOO_LONG, reported
 * as soon as the octet arrives); more than SMTP_REPLY_LINES_MAX lines is
 * TOO_MANY_LINES, reported when line SMTP_REPLY_LINES_MAX says that more
 * follow. Errors in one line are checked in the order the octets arrive.
 */
enum smtp_replyparse_result smtp_replyparse_feed(struct smtp_replyparse *p, const char *buf,
                                                 size_t len, size_t *consumed_r,
                                                 const struct smtp_parsed_reply **reply_r);

/* smtp_replyparse_line - the text of line i (0-based, < r->nlines) of a
 * reply, as stored in r->text (not NUL-terminated: see *len_r). */
const char *smtp_replyparse_line(const struct smtp_parsed_reply *r, size_t i, size_t *len_r);

/* smtp_replyparse_error_text - a short English description, for logs and
 * error messages ("line too long"...). Never NULL. */
const char *smtp_replyparse_error_text(enum smtp_replyparse_error error);

#endif
