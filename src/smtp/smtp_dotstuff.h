/* SPDX-License-Identifier: ISC */
/*
 * smtp_dotstuff.h - turning a stored message into the content of DATA:
 * dot-stuffing and the terminating <CRLF>.<CRLF> (RFC 5321 4.1.1.4, 4.5.2),
 * streaming, chunk by chunk.
 *
 * Owns: the guarantee that the next hop finds the end of the message where
 * we put it and nowhere else. Line ends on the wire are always CRLF: a bare
 * LF, or a bare CR, in the input is sent as CRLF. detour's server refuses
 * them, so queued mail never holds one; if one ever gets here (a message
 * handed over by `detour send`, a bug), this makes the next hop see exactly
 * the lines our own parser (smtp_data) would see, and a '.' after it is a
 * '.' at a line start and is stuffed. So no input, whatever its octets,
 * yields "<CRLF>.<CRLF>" anywhere but at the very end (SMTP smuggling).
 * NUL octets and long lines pass through unchanged: they are the sender's
 * business, and the server checked them when the message came in.
 * Does not own: reading the message (the caller streams it), BDAT (RFC 3030
 * chunks need no stuffing and are not used by smtp_client).
 * Pure: no I/O, no globals. Any thread.
 */
#ifndef DETOUR_SMTP_DOTSTUFF_H
#define DETOUR_SMTP_DOTSTUFF_H

#include <stddef.h>
#include <stdint.h>

/*
 * Output sizing. Every input octet gives at most two output octets (a '.'
 * at a line start becomes "..", a bare CR or LF becomes CRLF), and nothing
 * is held back between calls, so one smtp_dotstuff_feed of len octets writes
 * at most SMTP_DOTSTUFF_FEED_MAX(len). smtp_dotstuff_finish writes at most
 * SMTP_DOTSTUFF_FINISH_MAX ("\r\n.\r\n" when the message did not end in a
 * line end). A whole message of n octets becomes at most 2n + 5 octets.
 */
#define SMTP_DOTSTUFF_FEED_MAX(len) (2 * (size_t)(len))
#define SMTP_DOTSTUFF_FINISH_MAX    5

struct smtp_dotstuff {
	int state;        /* private */
	uint64_t in_len;  /* octets read so far */
	uint64_t out_len; /* octets written so far, the terminator included */
};

/* smtp_dotstuff_init - a new message starts at a line start: the DATA
 * command's CRLF precedes it (RFC 5321 4.1.1.4). */
void smtp_dotstuff_init(struct smtp_dotstuff *ds);

/* smtp_dotstuff_feed - transform in[0..len) into out, which has room for
 * SMTP_DOTSTUFF_FEED_MAX(len) octets. Returns the number written. Chunk
 * boundaries may fall anywhere (between CR and LF, before a dot). */
size_t smtp_dotstuff_feed(struct smtp_dotstuff *ds, const char *in, size_t len, char *out);

/* smtp_dotstuff_finish - after the last chunk: write the end of the data
 * into out (room for SMTP_DOTSTUFF_FINISH_MAX): ".\r\n" if the message ended
 * in a line end (or was empty), "\r\n.\r\n" otherwise. Returns the number
 * written. Nothing may be fed afterwards (init starts a new message). */
size_t smtp_dotstuff_finish(struct smtp_dotstuff *ds, char *out);

#endif
