/* SPDX-License-Identifier: ISC */
/*
 * smtp_cmd.h - splitting SMTP input into command lines, and lines into a verb
 * and its argument (RFC 5321 4.1).
 *
 * Owns: the strict line discipline: a line ends only with CRLF; a bare LF,
 * a bare CR or a NUL inside a line is reported, never repaired. Does not own:
 * what a command means in a given state (the session), argument syntax beyond
 * the verb (smtp_addr, smtp_params).
 * Pure: works on byte arrays, no sockets, clocks or globals. Any thread.
 */
#ifndef DETOUR_SMTP_CMD_H
#define DETOUR_SMTP_CMD_H

#include <stddef.h>

enum smtp_line_result {
	SMTP_LINE_OK,	    /* a complete line: line_len_r excludes CRLF */
	SMTP_LINE_PARTIAL,  /* no line end yet and fewer than max bytes: wait */
	SMTP_LINE_TOO_LONG, /* max bytes without a line end; nothing consumed */
	SMTP_LINE_BARE_LF,  /* LF without CR before it; the line is consumed */
	SMTP_LINE_BARE_CR,  /* CR not followed by LF inside the line; consumed */
	SMTP_LINE_NUL,	    /* NUL inside the line; consumed */
};

/*
 * smtp_line_scan - look for one command line at the start of buf[0..len).
 * max is the longest line allowed, CRLF included (SMTP_CMDLINE_MAX, or
 * SMTP_AUTHLINE_MAX while an AUTH exchange runs). On every result except
 * PARTIAL and TOO_LONG, *consumed_r is the number of bytes the line takes,
 * LF included. A line of exactly max octets including CRLF is OK; one more
 * octet is TOO_LONG.
 */
enum smtp_line_result smtp_line_scan(const char *buf, size_t len, size_t max, size_t *line_len_r,
				     size_t *consumed_r);

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_HTTP, /* GET, POST, HEAD, PUT, CONNECT, OPTIONS...: not SMTP at all */
};

struct smtp_cmd {
	enum smtp_verb verb;
	/* For MAIL and RCPT the argument starts after "FROM:" / "TO:" (those
	 * keywords are matched case-insensitively and are part of the verb);
	 * for the others after the single space that follows the verb. It
	 * points into the line; arg_len may be 0. */
	const char *arg;
	size_t arg_len;
	/* MAIL without "FROM:" or RCPT without "TO:" parses as the verb with
	 * malformed set, so the session can answer 501 instead of 500. */
	int malformed;
};

/*
 * smtp_cmd_parse - split line[0..len) (no CRLF) into verb and argument.
 * Verbs are case-insensitive (RFC 5321 2.4). A verb must be followed by the
 * end of the line or by one SP. Unknown verbs give SMTP_VERB_UNKNOWN.
 * Trailing spaces after the argument are removed from arg_len.
 */
void smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd_r);

/* smtp_verb_name - upper-case name of a verb, for logs and replies. */
const char *smtp_verb_name(enum smtp_verb verb);

#endif
