/* SPDX-License-Identifier: ISC */
/*
 * bounce.h - delivery status notifications (RFC 3464, with the DSN options
 * of RFC 3461): the message sent back to a sender from MAIL FROM:<>.
 *
 * Owns: the notification's text: headers, the human part, the
 * message/delivery-status part with one block per recipient, and the
 * returned original (the whole message or only its headers, per RET and a
 * size bound). Text from remote servers is sanitised here: control
 * characters and line breaks are replaced, so a hostile reply cannot add
 * headers or MIME parts. Does not own: deciding who gets a notification
 * (bounce_wanted helps) or queueing it (the delivery engine).
 * Pure: writes through a callback; reads the original through a callback.
 */
#ifndef DETOUR_BOUNCE_H
#define DETOUR_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "smtp/smtp_params.h"

/* The whole original is returned only up to this size; a larger message
 * comes back as its headers (as Postfix's bounce_size_limit does). */
#define BOUNCE_FULL_MAX (128 * 1024)
/* Longest diagnostic text kept from a remote reply. */
#define BOUNCE_DIAGNOSTIC_MAX 512

enum bounce_kind {
	BOUNCE_FAILED,  /* permanent failure, or given up after max_age */
	BOUNCE_DELAYED, /* still trying (a delay warning) */
	BOUNCE_RELAYED, /* NOTIFY=SUCCESS, passed to a server without DSN */
};

struct bounce_rcpt {
	enum bounce_kind kind; /* this recipient's Action: failed, delayed, relayed */
	const char *address;
	const char *orcpt;      /* "rfc822;user@example.org" as stored, or NULL */
	const char *status;     /* RFC 3463 code: "5.1.1" */
	const char *remote_mta; /* host name of the server that answered, or NULL */
	const char *diagnostic; /* the remote's reply ("550 5.1.1 No such user") or our reason */
	bool diagnostic_smtp;   /* diagnostic is an SMTP reply (else our own text) */
	time_t last_attempt;
	time_t will_retry_until; /* a delayed recipient's give-up time, or 0 */
};

struct bounce_info {
	enum bounce_kind kind;     /* the subject and introduction: the worst of the recipients' */
	const char *reporting_mta; /* our hostname */
	const char *qid;           /* of the original */
	const char *sender;        /* the original's sender: the notification's recipient */
	const char *envid;         /* RFC 3461 ENVID, or NULL */
	enum smtp_ret ret;
	bool smtputf8; /* the original needed SMTPUTF8 */
	time_t arrival;
	time_t now;
	const struct bounce_rcpt *rcpts;
	size_t n_rcpts;
	uint64_t original_size;
};

typedef void bounce_put_fn(void *arg, const void *data, size_t len);
/* Read the original at off; returns bytes read, 0 at the end, -1 on error. */
typedef long bounce_read_fn(void *arg, uint64_t off, void *buf, size_t len);

/*
 * bounce_compose - write the whole notification (CRLF line endings) through
 * put. The original message is read through read (from offset 0). Returns 0,
 * or -1 if reading the original failed (the caller then queues nothing and
 * tries again later).
 */
int bounce_compose(const struct bounce_info *bi, bounce_put_fn *put, void *put_arg,
                   bounce_read_fn *read, void *read_arg);

/* bounce_wanted - does the recipient's NOTIFY ask for this kind of
 * notification? (RFC 3461 4.1: absent NOTIFY means FAILURE and maybe DELAY.) */
bool bounce_wanted(unsigned notify, enum bounce_kind kind);

/* bounce_sanitize - copy text into out (size bytes) with control
 * characters and line breaks replaced by spaces, octets outside US-ASCII
 * by '?', runs of spaces folded, and at most size-1 bytes. */
void bounce_sanitize(const char *text, char *out, size_t size);

#endif
