/* SPDX-License-Identifier: ISC */
/* bounce.c - see bounce.h */
#include "delivery/bounce.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct out {
	bounce_put_fn *put;
	void *arg;
};

static void __attribute__((format(printf, 2, 3))) outf(struct out *o, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	o->put(o->arg, buf, (size_t)n);
}

void bounce_sanitize(const char *text, char *out, size_t size)
{
	size_t o = 0;
	bool space = false;
	if (size == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)text; *p && o + 1 < size; p++) {
		unsigned char c = *p;
		if (c < 0x20 || c == 0x7f) {
			c = ' ';
		} else if (c >= 0x80) {
			/* RFC 3464 2.1.2: the report's fields are US-ASCII, and a
			 * remote's octets need not be UTF-8 at all. */
			c = '?';
		}
		if (c == ' ') {
			if (space || o == 0)
				continue;
			space = true;
		} else {
			space = false;
		}
		out[o++] = (char)c;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

bool bounce_wanted(unsigned notify, enum bounce_kind kind)
{
	if (notify & SMTP_NOTIFY_NEVER)
		return false;
	switch (kind) {
	case BOUNCE_FAILED:
		return notify == 0 || (notify & SMTP_NOTIFY_FAILURE);
	case BOUNCE_DELAYED:
		return notify == 0 || (notify & SMTP_NOTIFY_DELAY);
	case BOUNCE_RELAYED:
		return (notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

static void rfc5322_date(time_t t, char *out, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Headers returned for RET=HDRS are cut off at this size. */
#define BOUNCE_HEADERS_MAX (64 * 1024)

/* copy_original - the returned message: whole, or its header section (the
 * lines before the first empty line, each ending in CRLF as stored). */
static int copy_original(struct out *o, bool headers_only, bounce_read_fn *read, void *read_arg)
{
	char *buf = xmalloc(BOUNCE_HEADERS_MAX);
	int rc = 0;
	uint64_t off = 0;
	if (headers_only) {
		size_t got = 0;
		while (got < BOUNCE_HEADERS_MAX) {
			long n = read(read_arg, got, buf + got, BOUNCE_HEADERS_MAX - got);
			if (n < 0) {
				rc = -1;
				goto out;
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		const char *end = memmem(buf, got, "\r\n\r\n", 4);
		size_t take = end != NULL ? (size_t)(end - buf) + 2 : got;
		if (end == NULL) {
			/* No end of headers within the bound: stop after the last
			 * whole line, so the part never ends inside a line. */
			const char *last = NULL;
			for (const char *p = buf;
			     (p = memmem(p, got - (size_t)(p - buf), "\r\n", 2)); p += 2)
				last = p;
			take = last != NULL ? (size_t)(last - buf) + 2 : 0;
		}
		o->put(o->arg, buf, take);
		goto out;
	}
	for (;;) {
		long n = read(read_arg, off, buf, BOUNCE_HEADERS_MAX);
		if (n <= 0) {
			rc = n < 0 ? -1 : 0;
			break;
		}
		o->put(o->arg, buf, (size_t)n);
		off += (uint64_t)n;
	}
out:
	free(buf);
	return rc;
}

int bounce_compose(const struct bounce_info *bi, bounce_put_fn *put, void *put_arg,
                   bounce_read_fn *read, void *read_arg)
{
	struct out o = {put, put_arg};
	char date[64], arrival[64];
	char boundary[64];
	rfc5322_date(bi->now, date, sizeof(date));
	rfc5322_date(bi->arrival, arrival, sizeof(arrival));
	/* The queue id makes the boundary unique per message; it cannot occur
	 * in our own text, and a returned original that contains it by chance
	 * sits inside a message/rfc822 part with its own structure. */
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", bi->qid, (long long)bi->now,
	         bi->reporting_mta);

	static const char *const subjects[] = {
	    "Undelivered Mail Returned to Sender",
	    "Delayed Mail (still being retried)",
	    "Successful Mail Delivery Report",
	};
	outf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", bi->reporting_mta);
	outf(&o, "To: <%s>\r\n", bi->sender);
	outf(&o, "Subject: %s\r\n", subjects[bi->kind]);
	outf(&o, "Date: %s\r\n", date);
	outf(&o, "Message-ID: <%s.%lld.dsn@%s>\r\n", bi->qid, (long long)bi->now,
	     bi->reporting_mta);
	/* RFC 3834 5: automatic responses must not trigger further ones. */
	outf(&o, "Auto-Submitted: auto-replied\r\n");
	outf(&o, "MIME-Version: 1.0\r\n");
	outf(&o,
	     "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	     "\tboundary=\"%s\"\r\n",
	     boundary);
	outf(&o, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* The human-readable part. */
	outf(&o,
	     "--%s\r\nContent-Description: Notification\r\n"
	     "Content-Type: text/plain; charset=utf-8\r\n\r\n",
	     boundary);
	outf(&o, "This is the mail system at host %s.\r\n\r\n", bi->reporting_mta);
	switch (bi->kind) {
	case BOUNCE_FAILED:
		outf(&o, "I'm sorry to have to inform you that your message could not\r\n"
		         "be delivered to one or more recipients. It's attached below.\r\n");
		break;
	case BOUNCE_DELAYED:
		outf(&o, "Your message could not be delivered yet to one or more\r\n"
		         "recipients. Delivery will be tried again; you do not need to\r\n"
		         "send it again.\r\n");
		break;
	case BOUNCE_RELAYED:
		outf(&o, "Your message was passed on to a mail system that does not\r\n"
		         "send delivery notifications; no further notice will follow.\r\n");
		break;
	}
	outf(&o, "\r\n");
	for (size_t i = 0; i < bi->n_rcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		char diag[BOUNCE_DIAGNOSTIC_MAX + 1];
		bounce_sanitize(r->diagnostic ? r->diagnostic : "", diag, sizeof(diag));
		outf(&o, "<%s>: %s\r\n", r->address, diag);
	}
	outf(&o, "\r\n");

	/* The machine-readable part (RFC 3464 2). */
	outf(&o,
	     "--%s\r\nContent-Description: Delivery report\r\n"
	     "Content-Type: message/%s\r\n\r\n",
	     boundary, bi->smtputf8 ? "global-delivery-status" : "delivery-status");
	outf(&o, "Reporting-MTA: dns; %s\r\n", bi->reporting_mta);
	outf(&o, "X-Detour-Queue-ID: %s\r\n", bi->qid);
	if (bi->envid != NULL && *bi->envid) {
		char envid[SMTP_ENVID_MAX * 3 + 1];
		bounce_sanitize(bi->envid, envid, sizeof(envid));
		outf(&o, "Original-Envelope-Id: %s\r\n", envid);
	}
	outf(&o, "Arrival-Date: %s\r\n", arrival);
	static const char *const actions[] = {"failed", "delayed", "relayed"};
	for (size_t i = 0; i < bi->n_rcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		char text[BOUNCE_DIAGNOSTIC_MAX + 1];
		char last[64];
		outf(&o, "\r\n");
		/* RFC 6533 3: a UTF-8 address is typed utf-8. */
		bool utf8 = false;
		for (const unsigned char *p = (const unsigned char *)r->address; *p; p++)
			utf8 |= *p >= 0x80;
		outf(&o, "Final-Recipient: %s; %s\r\n", utf8 ? "utf-8" : "rfc822", r->address);
		if (r->orcpt != NULL && *r->orcpt) {
			bounce_sanitize(r->orcpt, text, sizeof(text));
			/* stored as "type;address" */
			char *semi = strchr(text, ';');
			if (semi != NULL)
				outf(&o, "Original-Recipient: %.*s; %s\r\n", (int)(semi - text),
				     text, semi + 1);
		}
		outf(&o, "Action: %s\r\n", actions[r->kind]);
		outf(&o, "Status: %s\r\n", r->status);
		if (r->remote_mta != NULL && *r->remote_mta) {
			bounce_sanitize(r->remote_mta, text, sizeof(text));
			outf(&o, "Remote-MTA: dns; %s\r\n", text);
		}
		if (r->diagnostic != NULL && *r->diagnostic) {
			bounce_sanitize(r->diagnostic, text, sizeof(text));
			outf(&o, "Diagnostic-Code: %s; %s\r\n",
			     r->diagnostic_smtp ? "smtp" : "x-detour", text);
		}
		if (r->last_attempt != 0) {
			rfc5322_date(r->last_attempt, last, sizeof(last));
			outf(&o, "Last-Attempt-Date: %s\r\n", last);
		}
		/* RFC 3464 2.3.8: only for "delayed". */
		if (r->kind == BOUNCE_DELAYED && r->will_retry_until != 0) {
			rfc5322_date(r->will_retry_until, last, sizeof(last));
			outf(&o, "Will-Retry-Until: %s\r\n", last);
		}
	}
	outf(&o, "\r\n");

	/* The original (RFC 3462 / RFC 6532 for UTF-8 messages). */
	/* A delay warning carries the headers only, as Postfix's does: the
	 * message is still on its way, the sender needs to recognise it, not
	 * to get it back. */
	bool headers_only = bi->ret == SMTP_RET_HDRS || bi->original_size > BOUNCE_FULL_MAX ||
	                    bi->kind == BOUNCE_DELAYED;
	const char *type = headers_only
	                       ? (bi->smtputf8 ? "message/global-headers" : "text/rfc822-headers")
	                       : (bi->smtputf8 ? "message/global" : "message/rfc822");
	outf(&o, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n\r\n", boundary,
	     bi->kind == BOUNCE_DELAYED ? "Delayed Message Headers"
	     : headers_only             ? "Undelivered Message Headers"
	                                : "Undelivered Message",
	     type);
	if (copy_original(&o, headers_only, read, read_arg) < 0)
		return -1;
	outf(&o, "\r\n--%s--\r\n", boundary);
	return 0;
}
