/* SPDX-License-Identifier: ISC */
/*
 * smtp_data.h - the message-data state machine: DATA's dot-stuffing and
 * end-of-data detection (RFC 5321 4.1.1.4, 4.5.2), and the same line checks
 * for BDAT chunks (RFC 3030).
 *
 * Owns: the only definition of where a message ends, and the rejection of
 * everything that could make two parsers disagree about it (SMTP smuggling):
 * the end is <CRLF>.<CRLF> and nothing else; a bare LF, a bare CR or a NUL
 * anywhere marks the message as refused but scanning continues to the real
 * end, so nothing after a fake end is ever read as a command.
 * Pure: byte arrays in, byte arrays out. Any thread.
 */
#ifndef DETOUR_SMTP_DATA_H
#define DETOUR_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error bits collected while scanning; any of them refuses the message. */
#define SMTP_DATA_ERR_BARE_LF 0x1
#define SMTP_DATA_ERR_BARE_CR 0x2
#define SMTP_DATA_ERR_NUL 0x4
#define SMTP_DATA_ERR_LONG_LINE 0x8 /* a line over SMTP_DATALINE_MAX incl CRLF */

enum smtp_data_mode {
	SMTP_DATA_DOT,	 /* DATA: dot-unstuffing, ends at <CRLF>.<CRLF> */
	SMTP_DATA_CHUNK, /* BDAT: bytes taken as they are, the caller counts */
};

struct smtp_data {
	enum smtp_data_mode mode;
	int state;	  /* private */
	size_t line_len;  /* octets in the current line so far */
	unsigned errors;  /* SMTP_DATA_ERR_* seen so far */
	uint64_t out_len; /* message octets produced so far */
};

enum smtp_data_result { SMTP_DATA_MORE, SMTP_DATA_END };

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode);

/*
 * smtp_data_feed - scan in[0..len). Message bytes (unstuffed, CRLF kept,
 * the final "." line excluded) are written to out, which must have room for
 * len + 2 bytes (bytes held back at the end of one call, such as a CR waiting
 * for its LF, come out in the next). *out_len_r is the count written.
 * *consumed_r is how much of in was used: all of it unless SMTP_DATA_END is
 * returned, in which case the bytes after the terminating <CRLF>.<CRLF>
 * belong to the next command. In CHUNK mode it never returns END.
 */
enum smtp_data_result smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
				     size_t *out_len_r, size_t *consumed_r);

/*
 * smtp_data_finish - CHUNK mode, after the last chunk: flush what is held
 * back into out (room for 2 bytes). A CR held at the very end is a bare CR
 * and sets SMTP_DATA_ERR_BARE_CR. Returns the number of bytes written.
 */
size_t smtp_data_finish(struct smtp_data *d, char *out);

#endif
