/* SPDX-License-Identifier: ISC */
/*
 * test_bounce.c - unit tests for bounce.c: the delivery status notification
 * (RFC 3464) for two recipients, compared byte for byte once and then
 * checked by a small MIME reader (CRLF only, the boundary lines, the three
 * parts and their Content-Types, the per-message and per-recipient fields);
 * RET=HDRS, FULL and unspecified with a small and a large original; the
 * SMTPUTF8 types; a delay warning (Will-Retry-Until, headers only); a
 * failing reader; hostile remote text that must not add a
 * line; bounce_sanitize; and the bounce_wanted truth table (RFC 3461 4.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/bounce.h"

#define NOW      ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 UTC */
#define ARRIVAL  ((time_t)1699990000) /* 19:26:40 */
#define LAST     ((time_t)1699999000) /* 21:56:40 */
#define QID      "0123456789ABCDEF"
#define MTA      "relay.example.net"
#define BOUNDARY QID ".1700000000/" MTA

/* --- output and input through the callbacks ---------------------------- */

struct sink {
	char *buf;
	size_t len, cap;
	int calls;
};

static void put(void *arg, const void *data, size_t len)
{
	struct sink *s = arg;
	if (s->len + len + 1 > s->cap) {
		s->cap = (s->len + len + 1) * 2;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	s->calls++;
}

struct source {
	const char *data;
	size_t len;
	size_t piece;   /* largest read answered at once (short reads) */
	long fail_at;   /* offset from which reads fail, -1 never */
	size_t max_off; /* highest offset read up to */
};

static long source_read(void *arg, uint64_t off, void *buf, size_t len)
{
	struct source *s = arg;
	if (s->fail_at >= 0 && off >= (uint64_t)s->fail_at)
		return -1;
	if (off >= s->len)
		return 0;
	size_t n = s->len - (size_t)off;
	if (n > len)
		n = len;
	if (s->piece > 0 && n > s->piece)
		n = s->piece;
	memcpy(buf, s->data + off, n);
	if (off + n > s->max_off)
		s->max_off = (size_t)(off + n);
	return (long)n;
}

static const char small_original[] = "From: <alice@example.org>\r\n"
                                     "To: <bob@example.com>\r\n"
                                     "Subject: hello\r\n"
                                     "\r\n"
                                     "Body line one.\r\n"
                                     "Body line two.\r\n";
static const char small_headers[] = "From: <alice@example.org>\r\n"
                                    "To: <bob@example.com>\r\n"
                                    "Subject: hello\r\n";

static const struct bounce_rcpt two_rcpts[] = {
    {
        .kind = BOUNCE_FAILED,
        .address = "bob@example.com",
        .orcpt = "rfc822;Bob@Example.com",
        .status = "5.1.1",
        .remote_mta = "mx.example.com",
        .diagnostic = "550 5.1.1 <bob@example.com>: No such user",
        .diagnostic_smtp = true,
        .last_attempt = LAST,
    },
    {
        .kind = BOUNCE_RELAYED,
        .address = "carol@example.net",
        .orcpt = NULL,
        .status = "2.0.0",
        .remote_mta = NULL,
        .diagnostic = "delivered to a server without DSN support",
        .diagnostic_smtp = false,
        .last_attempt = 0,
    },
};

static struct bounce_info base_info(enum smtp_ret ret, uint64_t size)
{
	struct bounce_info bi = {
	    .kind = BOUNCE_FAILED,
	    .reporting_mta = MTA,
	    .qid = QID,
	    .sender = "alice@example.org",
	    .envid = "ENV-123",
	    .ret = ret,
	    .arrival = ARRIVAL,
	    .now = NOW,
	    .rcpts = two_rcpts,
	    .n_rcpts = 2,
	    .original_size = size,
	};
	return bi;
}

/* compose - run bounce_compose into a new sink; asserts it returned 0. */
static struct sink compose(const struct bounce_info *bi, struct source *src)
{
	struct sink s = {0};
	assert_int_equal(bounce_compose(bi, put, &s, source_read, src), 0);
	assert_non_null(s.buf);
	assert_int_equal(strlen(s.buf), s.len); /* no NUL inside */
	return s;
}

/* --- a small MIME reader ------------------------------------------------- */

/* crlf_only - every CR is followed by LF and every LF preceded by CR. */
static void assert_crlf_only(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			fail_msg("bare CR at %zu", i);
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			fail_msg("bare LF at %zu", i);
	}
}

struct part {
	const char *start; /* first byte after the boundary line */
	size_t len;        /* up to the CRLF before the next boundary line */
};

/* split - the message's header section, and its parts by the boundary
 * declared in Content-Type. Returns the number of parts. */
static size_t split(const char *msg, struct part parts[4], char boundary_r[128])
{
	const char *end_hdr = strstr(msg, "\r\n\r\n");
	assert_non_null(end_hdr);
	const char *ct = strstr(msg, "\r\nContent-Type: multipart/report; "
	                             "report-type=delivery-status;\r\n\tboundary=\"");
	assert_non_null(ct);
	assert_true(ct < end_hdr);
	const char *b = strchr(ct, '=');
	b = strstr(b + 1, "boundary=\"") + strlen("boundary=\"");
	const char *q = strchr(b, '"');
	assert_non_null(q);
	assert_true((size_t)(q - b) < 128);
	memcpy(boundary_r, b, (size_t)(q - b));
	boundary_r[q - b] = '\0';

	char delim[140], close[140];
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary_r);
	snprintf(close, sizeof(close), "\r\n--%s--\r\n", boundary_r);
	/* the closing delimiter ends the message */
	size_t len = strlen(msg), clen = strlen(close);
	assert_true(len > clen);
	assert_string_equal(msg + len - clen, close);
	const char *stop = msg + len - clen;
	size_t n = 0;
	const char *p = strstr(end_hdr, delim);
	while (p != NULL && p < stop) {
		const char *start = p + strlen(delim);
		const char *next = strstr(start, delim);
		if (next == NULL || next > stop)
			next = stop;
		assert_true(n < 4);
		parts[n].start = start;
		parts[n].len = (size_t)(next - start);
		n++;
		p = next < stop ? next : NULL;
	}
	/* the closing delimiter occurs exactly once */
	assert_ptr_equal(strstr(msg, close), stop);
	return n;
}

/* part_header - the value of header name in a part ("" if absent). */
static const char *part_header(const struct part *pt, const char *name, char *out, size_t size)
{
	const char *end = strstr(pt->start, "\r\n\r\n");
	assert_non_null(end);
	size_t nlen = strlen(name);
	for (const char *line = pt->start; line < end + 2;) {
		const char *eol = strstr(line, "\r\n");
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ':' && line[nlen + 1] == ' ') {
			size_t vlen = (size_t)(eol - line) - nlen - 2;
			assert_true(vlen < size);
			memcpy(out, line + nlen + 2, vlen);
			out[vlen] = '\0';
			return out;
		}
		line = eol + 2;
	}
	out[0] = '\0';
	return out;
}

/* part_body - the part's content after its header section. */
static const char *part_body(const struct part *pt, size_t *len_r)
{
	const char *end = strstr(pt->start, "\r\n\r\n");
	assert_non_null(end);
	assert_true(end < pt->start + pt->len || end == pt->start + pt->len - 2);
	const char *body = end + 4;
	*len_r = (size_t)(pt->start + pt->len - body);
	return body;
}

/* --- the tests ----------------------------------------------------------- */

static const char expected_small_full[] =
    "From: Mail Delivery System <MAILER-DAEMON@" MTA ">\r\n"
    "To: <alice@example.org>\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <" QID ".1700000000.dsn@" MTA ">\r\n"
    "Auto-Submitted: auto-replied\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
    "\tboundary=\"" BOUNDARY "\"\r\n"
    "\r\n"
    "This is a MIME-encapsulated message.\r\n"
    "\r\n"
    "--" BOUNDARY "\r\n"
    "Content-Description: Notification\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "This is the mail system at host " MTA ".\r\n"
    "\r\n"
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients. It's attached below.\r\n"
    "\r\n"
    "<bob@example.com>: 550 5.1.1 <bob@example.com>: No such user\r\n"
    "<carol@example.net>: delivered to a server without DSN support\r\n"
    "\r\n"
    "--" BOUNDARY "\r\n"
    "Content-Description: Delivery report\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; " MTA "\r\n"
    "X-Detour-Queue-ID: " QID "\r\n"
    "Original-Envelope-Id: ENV-123\r\n"
    "Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\r\n"
    "\r\n"
    "Final-Recipient: rfc822; bob@example.com\r\n"
    "Original-Recipient: rfc822; Bob@Example.com\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Remote-MTA: dns; mx.example.com\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: No such user\r\n"
    "Last-Attempt-Date: Tue, 14 Nov 2023 21:56:40 +0000\r\n"
    "\r\n"
    "Final-Recipient: rfc822; carol@example.net\r\n"
    "Action: relayed\r\n"
    "Status: 2.0.0\r\n"
    "Diagnostic-Code: x-detour; delivered to a server without DSN support\r\n"
    "\r\n"
    "--" BOUNDARY "\r\n"
    "Content-Description: Undelivered Message\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: <alice@example.org>\r\n"
    "To: <bob@example.com>\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Body line one.\r\n"
    "Body line two.\r\n"
    "\r\n"
    "--" BOUNDARY "--\r\n";

static void test_exact_small_full(void **state)
{
	(void)state;
	struct source src = {small_original, strlen(small_original), 0, -1, 0};
	struct bounce_info bi = base_info(SMTP_RET_FULL, strlen(small_original));
	struct sink s = compose(&bi, &src);
	assert_string_equal(s.buf, expected_small_full);
	assert_int_equal(src.max_off, strlen(small_original));
	free(s.buf);
	/* unspecified RET returns a small original whole too, even when the
	 * reader answers in short pieces */
	struct source src2 = {small_original, strlen(small_original), 5, -1, 0};
	bi = base_info(SMTP_RET_UNSPECIFIED, strlen(small_original));
	s = compose(&bi, &src2);
	assert_string_equal(s.buf, expected_small_full);
	free(s.buf);
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* check_structure - what every notification of base_info must satisfy,
 * with want_ct3 as the third part's type and orig[0..orig_len) as its
 * content. */
static void check_structure(const struct sink *s, const char *want_ct3, const char *orig,
                            size_t orig_len)
{
	assert_crlf_only(s->buf, s->len);
	struct part parts[4];
	char boundary[128], v[256];
	size_t n = split(s->buf, parts, boundary);
	assert_string_equal(boundary, BOUNDARY);
	assert_int_equal(n, 3);
	assert_string_equal(part_header(&parts[0], "Content-Type", v, sizeof(v)),
	                    "text/plain; charset=utf-8");
	assert_string_equal(part_header(&parts[1], "Content-Type", v, sizeof(v)),
	                    "message/delivery-status");
	assert_string_equal(part_header(&parts[2], "Content-Type", v, sizeof(v)), want_ct3);

	/* the delivery-status part: per-message block, then one block per
	 * recipient, separated by empty lines */
	size_t blen;
	const char *ds = part_body(&parts[1], &blen);
	char *status = strndup(ds, blen);
	assert_non_null(status);
	char *blocks[4];
	size_t nb = 0;
	for (char *p = status; p != NULL && nb < 4;) {
		blocks[nb++] = p;
		char *sep = strstr(p, "\r\n\r\n");
		if (sep != NULL) {
			sep[2] = '\0';
			p = sep + 4;
			if (*p == '\0')
				p = NULL;
		} else {
			p = NULL;
		}
	}
	assert_int_equal(nb, 3);
	assert_true(starts_with(blocks[0], "Reporting-MTA: dns; " MTA "\r\n"));
	assert_non_null(strstr(blocks[0], "Original-Envelope-Id: ENV-123\r\n"));
	assert_non_null(strstr(blocks[0], "Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\r\n"));
	assert_true(starts_with(blocks[1], "Final-Recipient: rfc822; bob@example.com\r\n"));
	assert_non_null(strstr(blocks[1], "\r\nAction: failed\r\n"));
	assert_non_null(strstr(blocks[1], "\r\nStatus: 5.1.1\r\n"));
	assert_non_null(strstr(blocks[1], "\r\nOriginal-Recipient: rfc822; Bob@Example.com\r\n"));
	assert_non_null(strstr(blocks[1], "\r\nDiagnostic-Code: smtp; 550 5.1.1 "
	                                  "<bob@example.com>: No such user\r\n"));
	assert_true(starts_with(blocks[2], "Final-Recipient: rfc822; carol@example.net\r\n"));
	assert_non_null(strstr(blocks[2], "\r\nAction: relayed\r\n"));
	assert_non_null(strstr(blocks[2], "\r\nStatus: 2.0.0\r\n"));
	assert_null(strstr(blocks[2], "Original-Recipient"));
	assert_null(strstr(blocks[2], "Remote-MTA"));
	assert_non_null(strstr(blocks[2], "\r\nDiagnostic-Code: x-detour; delivered to a server "
	                                  "without DSN support\r\n"));
	free(status);

	/* the returned original, byte for byte */
	const char *body3 = part_body(&parts[2], &blen);
	assert_int_equal(blen, orig_len);
	assert_memory_equal(body3, orig, orig_len);
}

static void test_ret_small(void **state)
{
	(void)state;
	size_t len = strlen(small_original);
	/* HDRS: only the header section, with its last CRLF */
	struct source src = {small_original, len, 0, -1, 0};
	struct bounce_info bi = base_info(SMTP_RET_HDRS, len);
	struct sink s = compose(&bi, &src);
	check_structure(&s, "text/rfc822-headers", small_headers, strlen(small_headers));
	assert_non_null(strstr(s.buf, "Content-Description: Undelivered Message Headers\r\n"));
	assert_null(strstr(s.buf, "Body line"));
	free(s.buf);
	/* FULL and unspecified: all of it */
	static const enum smtp_ret full[] = {SMTP_RET_FULL, SMTP_RET_UNSPECIFIED};
	for (size_t i = 0; i < 2; i++) {
		struct source src2 = {small_original, len, 7, -1, 0};
		bi = base_info(full[i], len);
		s = compose(&bi, &src2);
		check_structure(&s, "message/rfc822", small_original, len);
		free(s.buf);
	}
}

/* big_original - headers, an empty line and a body of size bytes in all. */
static char *big_original(size_t size, size_t *hdr_len_r)
{
	char *m = malloc(size + 1);
	assert_non_null(m);
	static const char hdr[] = "From: <alice@example.org>\r\nSubject: big\r\n";
	memcpy(m, hdr, sizeof(hdr) - 1);
	size_t o = sizeof(hdr) - 1;
	*hdr_len_r = o;
	memcpy(m + o, "\r\n", 2);
	o += 2;
	while (o < size) {
		static const char line[] = "0123456789abcdefghijklmnopqrstuvwxyz\r\n";
		size_t n = sizeof(line) - 1;
		if (n > size - o)
			n = size - o;
		memcpy(m + o, line, n);
		o += n;
	}
	/* end in a whole line, without a bare CR */
	if (m[size - 3] == '\r')
		m[size - 3] = 'x';
	m[size - 2] = '\r';
	m[size - 1] = '\n';
	m[size] = '\0';
	return m;
}

static void test_ret_large(void **state)
{
	(void)state;
	/* one byte over BOUNCE_FULL_MAX: headers only, whatever RET says */
	size_t size = BOUNCE_FULL_MAX + 1, hlen;
	char *orig = big_original(size, &hlen);
	static const enum smtp_ret rets[] = {SMTP_RET_FULL, SMTP_RET_UNSPECIFIED, SMTP_RET_HDRS};
	for (size_t i = 0; i < 3; i++) {
		struct source src = {orig, size, 1000, -1, 0};
		struct bounce_info bi = base_info(rets[i], size);
		struct sink s = compose(&bi, &src);
		check_structure(&s, "text/rfc822-headers", orig, hlen);
		/* the body was not copied */
		assert_null(strstr(s.buf, "0123456789abcdef"));
		free(s.buf);
	}
	free(orig);
	/* exactly BOUNCE_FULL_MAX: whole, for RET=FULL and unspecified */
	size = BOUNCE_FULL_MAX;
	orig = big_original(size, &hlen);
	for (size_t i = 0; i < 2; i++) {
		struct source src = {orig, size, 4096, -1, 0};
		struct bounce_info bi = base_info(rets[i], size);
		struct sink s = compose(&bi, &src);
		check_structure(&s, "message/rfc822", orig, size);
		free(s.buf);
	}
	free(orig);
}

static void test_headers_without_end(void **state)
{
	(void)state;
	/* RET=HDRS for a message that is all header lines (no empty line):
	 * the part stops after the last whole line it read */
	size_t size = 200 * 1024;
	char *m = malloc(size);
	assert_non_null(m);
	for (size_t o = 0; o < size; o += 40)
		memcpy(m + o, "X-Filler: 0123456789012345678901234567\r\n", 40);
	struct source src = {m, size, 0, -1, 0};
	struct bounce_info bi = base_info(SMTP_RET_HDRS, size);
	struct sink s = compose(&bi, &src);
	assert_crlf_only(s.buf, s.len);
	struct part parts[4];
	char boundary[128];
	assert_int_equal(split(s.buf, parts, boundary), 3);
	size_t blen;
	const char *body = part_body(&parts[2], &blen);
	assert_true(blen > 0);
	assert_true(blen < size);
	assert_int_equal(blen % 40, 0);
	assert_memory_equal(body, m, blen);
	free(s.buf);
	free(m);
}

static void test_smtputf8_types(void **state)
{
	(void)state;
	struct bounce_rcpt r = two_rcpts[0];
	r.address = "j\xc3\xb6rg@example.de";
	struct bounce_info bi = base_info(SMTP_RET_FULL, strlen(small_original));
	bi.smtputf8 = true;
	bi.rcpts = &r;
	bi.n_rcpts = 1;
	struct source src = {small_original, strlen(small_original), 0, -1, 0};
	struct sink s = compose(&bi, &src);
	struct part parts[4];
	char boundary[128], v[256];
	assert_int_equal(split(s.buf, parts, boundary), 3);
	assert_string_equal(part_header(&parts[1], "Content-Type", v, sizeof(v)),
	                    "message/global-delivery-status");
	assert_string_equal(part_header(&parts[2], "Content-Type", v, sizeof(v)), "message/global");
	assert_non_null(strstr(s.buf, "\r\nFinal-Recipient: utf-8; j\xc3\xb6rg@example.de\r\n"));
	free(s.buf);
	bi.ret = SMTP_RET_HDRS;
	struct source src2 = {small_original, strlen(small_original), 0, -1, 0};
	s = compose(&bi, &src2);
	assert_int_equal(split(s.buf, parts, boundary), 3);
	assert_string_equal(part_header(&parts[2], "Content-Type", v, sizeof(v)),
	                    "message/global-headers");
	free(s.buf);
}

static void test_kinds_and_subjects(void **state)
{
	(void)state;
	static const struct {
		enum bounce_kind kind;
		const char *subject;
	} kinds[] = {
	    {BOUNCE_FAILED, "Subject: Undelivered Mail Returned to Sender\r\n"},
	    {BOUNCE_DELAYED, "Subject: Delayed Mail (still being retried)\r\n"},
	    {BOUNCE_RELAYED, "Subject: Successful Mail Delivery Report\r\n"},
	};
	for (size_t i = 0; i < 3; i++) {
		struct bounce_rcpt r = two_rcpts[0];
		r.kind = kinds[i].kind;
		struct bounce_info bi = base_info(SMTP_RET_HDRS, strlen(small_original));
		bi.kind = kinds[i].kind;
		bi.envid = NULL;
		bi.rcpts = &r;
		bi.n_rcpts = 1;
		struct source src = {small_original, strlen(small_original), 0, -1, 0};
		struct sink s = compose(&bi, &src);
		assert_non_null(strstr(s.buf, kinds[i].subject));
		static const char *const actions[] = {
		    "\r\nAction: failed\r\n", "\r\nAction: delayed\r\n", "\r\nAction: relayed\r\n"};
		assert_non_null(strstr(s.buf, actions[i]));
		assert_null(strstr(s.buf, "Original-Envelope-Id"));
		free(s.buf);
	}
}

/* A delay warning: Action delayed with Will-Retry-Until, and only the
 * original's headers even when RET=FULL asked for the whole message;
 * Will-Retry-Until never appears for another action. */
static void test_delay_warning(void **state)
{
	(void)state;
	struct bounce_rcpt r = {
	    .kind = BOUNCE_DELAYED,
	    .address = "bob@example.com",
	    .status = "4.4.1",
	    .diagnostic = "connection refused",
	    .last_attempt = LAST,
	    .will_retry_until = ARRIVAL + 5 * 86400,
	};
	struct bounce_info bi = base_info(SMTP_RET_FULL, strlen(small_original));
	bi.kind = BOUNCE_DELAYED;
	bi.rcpts = &r;
	bi.n_rcpts = 1;
	struct source src = {small_original, strlen(small_original), 0, -1, 0};
	struct sink s = compose(&bi, &src);
	assert_non_null(strstr(s.buf, "\r\nAction: delayed\r\nStatus: 4.4.1\r\n"));
	/* ARRIVAL + 5 days: Sun, 19 Nov 2023 19:26:40 */
	assert_non_null(strstr(s.buf, "\r\nWill-Retry-Until: Sun, 19 Nov 2023 19:26:40 +0000\r\n"));
	char want[512];
	snprintf(want, sizeof(want),
	         "Content-Description: Delayed Message Headers\r\n"
	         "Content-Type: text/rfc822-headers\r\n\r\n%s",
	         small_headers);
	assert_non_null(strstr(s.buf, want));
	assert_null(strstr(s.buf, "Body line one."));
	assert_non_null(strstr(s.buf, "Delivery will be tried again"));
	free(s.buf);

	/* A failed recipient with a give-up time set by mistake: no field. */
	r.kind = BOUNCE_FAILED;
	bi.kind = BOUNCE_FAILED;
	struct source src2 = {small_original, strlen(small_original), 0, -1, 0};
	s = compose(&bi, &src2);
	assert_null(strstr(s.buf, "Will-Retry-Until"));
	assert_non_null(strstr(s.buf, "Body line one."));
	free(s.buf);
}

static void test_read_error(void **state)
{
	(void)state;
	static const enum smtp_ret rets[] = {SMTP_RET_FULL, SMTP_RET_HDRS};
	for (size_t i = 0; i < 2; i++) {
		/* the reader fails part way through */
		struct source src = {small_original, strlen(small_original), 10, 20, 0};
		struct bounce_info bi = base_info(rets[i], strlen(small_original));
		struct sink s = {0};
		assert_int_equal(bounce_compose(&bi, put, &s, source_read, &src), -1);
		free(s.buf);
	}
}

static void test_hostile_remote_text(void **state)
{
	(void)state;
	/* A remote reply, host name, ORCPT and ENVID that try to end the
	 * field and add header lines or a MIME boundary of their own. */
	struct bounce_rcpt r = two_rcpts[0];
	r.diagnostic = "550 nope\r\nX-Injected: yes\r\n\r\n--" BOUNDARY "\r\nContent-Type: "
	               "text/html\r\n\r\n<script>";
	r.remote_mta = "mx.example.com\r\nX-Injected-MTA: yes";
	r.orcpt = "rfc822;x@y\nX-Injected-Orcpt: yes";
	struct bounce_info bi = base_info(SMTP_RET_HDRS, strlen(small_original));
	bi.envid = "E\r\nX-Injected-Envid: yes";
	bi.rcpts = &r;
	bi.n_rcpts = 1;
	struct source src = {small_original, strlen(small_original), 0, -1, 0};
	struct sink s = compose(&bi, &src);
	assert_crlf_only(s.buf, s.len);
	/* no line starts with an injected name, and the boundary only opens
	 * our three parts */
	assert_null(strstr(s.buf, "\r\nX-Injected"));
	assert_null(strstr(s.buf, "\r\nContent-Type: text/html"));
	struct part parts[4];
	char boundary[128];
	assert_int_equal(split(s.buf, parts, boundary), 3);
	assert_non_null(strstr(s.buf,
	                       "\r\nDiagnostic-Code: smtp; 550 nope X-Injected: yes --" BOUNDARY
	                       " Content-Type: text/html <script>\r\n"));
	assert_non_null(
	    strstr(s.buf, "\r\nRemote-MTA: dns; mx.example.com X-Injected-MTA: yes\r\n"));
	assert_non_null(
	    strstr(s.buf, "\r\nOriginal-Recipient: rfc822; x@y X-Injected-Orcpt: yes\r\n"));
	assert_non_null(strstr(s.buf, "\r\nOriginal-Envelope-Id: E X-Injected-Envid: yes\r\n"));
	/* the human-readable part too */
	assert_non_null(strstr(s.buf, "\r\n<bob@example.com>: 550 nope X-Injected: yes"));
	free(s.buf);

	/* an over-long diagnostic is cut at BOUNCE_DIAGNOSTIC_MAX */
	char *longd = malloc(5000);
	assert_non_null(longd);
	memset(longd, 'd', 4999);
	longd[4999] = '\0';
	r = two_rcpts[0];
	r.diagnostic = longd;
	bi = base_info(SMTP_RET_HDRS, strlen(small_original));
	bi.rcpts = &r;
	bi.n_rcpts = 1;
	struct source src2 = {small_original, strlen(small_original), 0, -1, 0};
	s = compose(&bi, &src2);
	const char *dc = strstr(s.buf, "\r\nDiagnostic-Code: smtp; ");
	assert_non_null(dc);
	dc += strlen("\r\nDiagnostic-Code: smtp; ");
	assert_int_equal(strcspn(dc, "\r"), BOUNCE_DIAGNOSTIC_MAX);
	free(s.buf);
	free(longd);
}

static void test_sanitize(void **state)
{
	(void)state;
	char out[64];
	bounce_sanitize("plain text", out, sizeof(out));
	assert_string_equal(out, "plain text");
	bounce_sanitize("a\r\nb", out, sizeof(out));
	assert_string_equal(out, "a b");
	bounce_sanitize("a\r\n\r\n\tb", out, sizeof(out));
	assert_string_equal(out, "a b");
	bounce_sanitize("a     b", out, sizeof(out));
	assert_string_equal(out, "a b");
	bounce_sanitize("  \r\n lead and trail \t\r\n ", out, sizeof(out));
	assert_string_equal(out, "lead and trail");
	bounce_sanitize("x\x01y\x1fz\x7fw", out, sizeof(out));
	assert_string_equal(out, "x y z w");
	bounce_sanitize("\x1b[2Jclear", out, sizeof(out));
	assert_string_equal(out, "[2Jclear");
	bounce_sanitize("", out, sizeof(out));
	assert_string_equal(out, "");
	bounce_sanitize("\r\n\r\n", out, sizeof(out));
	assert_string_equal(out, "");
	/* RFC 3464 2.1.2: report fields are US-ASCII; any octet above 0x7f,
	 * UTF-8 or not, becomes '?' (one per octet) */
	bounce_sanitize("J\xc3\xb6rg \xff\xfe", out, sizeof(out));
	assert_string_equal(out, "J??rg ??");
	/* at most size - 1 bytes */
	memset(out, 'Z', sizeof(out));
	bounce_sanitize("abcdefghij", out, 5);
	assert_string_equal(out, "abcd");
	assert_int_equal(out[5], 'Z');
	bounce_sanitize("abcdefghij", out, 1);
	assert_string_equal(out, "");
	out[0] = 'Z';
	bounce_sanitize("abc", out, 0);
	assert_int_equal(out[0], 'Z');
	/* a cut that ends in a space drops it */
	bounce_sanitize("abc defg", out, 5);
	assert_string_equal(out, "abc");
	/* no control character survives, for any input byte */
	for (int c = 1; c < 256; c++) {
		char in[4] = {'a', (char)c, 'b', '\0'};
		bounce_sanitize(in, out, sizeof(out));
		for (const unsigned char *p = (const unsigned char *)out; *p; p++)
			assert_true(*p >= 0x20 && *p != 0x7f);
	}
}

static void test_wanted(void **state)
{
	(void)state;
	enum {
		N = SMTP_NOTIFY_NEVER,
		S = SMTP_NOTIFY_SUCCESS,
		F = SMTP_NOTIFY_FAILURE,
		D = SMTP_NOTIFY_DELAY
	};
	static const struct {
		unsigned notify;
		bool failed, delayed, relayed;
	} table[] = {
	    /* RFC 3461 4.1: no NOTIFY means FAILURE (and DELAY at our choice) */
	    {0, true, true, false},
	    {N, false, false, false},
	    {S, false, false, true},
	    {F, true, false, false},
	    {D, false, true, false},
	    {S | F, true, false, true},
	    {S | D, false, true, true},
	    {F | D, true, true, false},
	    {S | F | D, true, true, true},
	    /* NEVER wins over anything given with it */
	    {N | S, false, false, false},
	    {N | F, false, false, false},
	    {N | D, false, false, false},
	    {N | S | F | D, false, false, false},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		unsigned n = table[i].notify;
		if (bounce_wanted(n, BOUNCE_FAILED) != table[i].failed ||
		    bounce_wanted(n, BOUNCE_DELAYED) != table[i].delayed ||
		    bounce_wanted(n, BOUNCE_RELAYED) != table[i].relayed)
			fail_msg("notify 0x%x: got %d %d %d", n, bounce_wanted(n, BOUNCE_FAILED),
			         bounce_wanted(n, BOUNCE_DELAYED),
			         bounce_wanted(n, BOUNCE_RELAYED));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_small_full), cmocka_unit_test(test_ret_small),
	    cmocka_unit_test(test_ret_large),        cmocka_unit_test(test_headers_without_end),
	    cmocka_unit_test(test_smtputf8_types),   cmocka_unit_test(test_kinds_and_subjects),
	    cmocka_unit_test(test_read_error),       cmocka_unit_test(test_hostile_remote_text),
	    cmocka_unit_test(test_sanitize),         cmocka_unit_test(test_wanted),
	    cmocka_unit_test(test_delay_warning),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
