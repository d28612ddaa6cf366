/* SPDX-License-Identifier: ISC */
/*
 * received.h - the Received: trace header we add (RFC 5321 4.4) and the count
 * of Received: headers already in a message (loop detection).
 *
 * Owns: the header's text and the protocol name of RFC 3848 / RFC 6531
 * (SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, and their UTF8 forms). Does not own:
 * where the header goes (the session writes it before the message bytes).
 * Pure: no I/O; the date is passed in. Any thread.
 */
#ifndef DETOUR_RECEIVED_H
#define DETOUR_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct received_info {
	const char *helo;        /* client's EHLO/HELO argument */
	const char *client_addr; /* "192.0.2.1" or "2001:db8::1" */
	const char *hostname;    /* ours */
	const char *qid;
	const char *tls;     /* "TLSv1.3 with cipher X", NULL if plaintext */
	const char *account; /* authenticated account, NULL if none */
	bool esmtp;          /* EHLO, not HELO */
	bool authenticated;
	bool smtputf8;
	const char *for_rcpt; /* the one recipient, or NULL if several */
	time_t when;
};

/* received_protocol - "ESMTPSA", "UTF8SMTPS", ... for the "with" clause. */
const char *received_protocol(const struct received_info *ri);

/* received_format - write the header, folded, ending in CRLF, into out.
 * Returns its length, or 0 if it does not fit in size bytes. */
size_t received_format(const struct received_info *ri, char *out, size_t size);

/*
 * Counting Received: headers in the header section of a message that
 * arrives in pieces. Scanning stops at the first empty line (the end of
 * the header section, RFC 5322 2.1).
 */
struct received_counter {
	unsigned count;
	size_t pos; /* bytes matched of "received:" at a line start; SIZE_MAX: not matching */
	bool at_line_start;
	bool prev_cr;
	bool done; /* reached the body */
};

void received_counter_init(struct received_counter *rc);
void received_counter_feed(struct received_counter *rc, const char *p, size_t len);

#endif
