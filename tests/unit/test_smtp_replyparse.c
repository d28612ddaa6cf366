/* SPDX-License-Identifier: ISC */
/* test_smtp_replyparse.c - unit tests for smtp_replyparse.c: reply lines,
 * multi-line replies, enhanced status codes, and every malformation, fed
 * whole, one byte at a time and in random pieces */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/limits.h"
#include "smtp/smtp_replyparse.h"

#define S(lit) lit, sizeof(lit) - 1

/* What a run over an input produced: the replies, then how it ended. */
#define RUN_REPLIES_MAX 8
struct run {
	size_t nreplies;
	int code[RUN_REPLIES_MAX];
	char enhanced[RUN_REPLIES_MAX][SMTP_ENHCODE_MAX + 1];
	size_t nlines[RUN_REPLIES_MAX];
	char *text[RUN_REPLIES_MAX];
	size_t text_len[RUN_REPLIES_MAX];
	size_t end_offset[RUN_REPLIES_MAX]; /* input offset just after each reply */
	bool malformed;
	enum smtp_replyparse_error error;
	size_t consumed; /* input taken in all */
};

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->nreplies; i++)
		free(r->text[i]);
	memset(r, 0, sizeof(*r));
}

/* check_reply_invariants - what every reply must satisfy. */
static void check_reply_invariants(const struct smtp_parsed_reply *rp)
{
	assert_true(rp->code >= 200 && rp->code <= 599);
	assert_true(rp->nlines >= 1 && rp->nlines <= SMTP_REPLY_LINES_MAX);
	assert_true(rp->text_len <= SMTP_REPLY_TEXT_MAX);
	assert_int_equal(strlen(rp->text), rp->text_len);
	assert_null(memchr(rp->text, '\r', rp->text_len));
	assert_null(memchr(rp->text, '\n', rp->text_len));
	assert_true(strlen(rp->enhanced) <= SMTP_ENHCODE_MAX);
	if (rp->enhanced[0] != '\0')
		assert_int_equal(rp->enhanced[0], '0' + rp->code / 100);
	for (size_t i = 0; i < rp->nlines; i++) {
		size_t len;
		const char *s = smtp_replyparse_line(rp, i, &len);
		assert_true(s >= rp->text && s + len <= rp->text + rp->text_len);
		assert_true(len <= SMTP_REPLY_LINETEXT_MAX);
		if (i + 1 < rp->nlines)
			assert_int_equal(s[len], SMTP_REPLY_LINE_SEP);
	}
}

/*
 * run - feed in[0..len) in pieces: cuts[] lists where new calls start
 * (ascending, in (0, len)). Every call gets a heap copy of exactly its bytes,
 * so ASan sees any read outside them. A REPLY in the middle of a piece is
 * followed by a call with the rest of the piece.
 */
static struct run run(const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
	struct smtp_replyparse *p = malloc(sizeof(*p));
	struct run o = {0};
	size_t pos = 0;

	smtp_replyparse_init(p);
	for (size_t k = 0; k <= ncuts && !o.malformed; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t n = end - pos;
		char *piece = malloc(n ? n : 1);
		memcpy(piece, in + pos, n);
		size_t off = 0;
		do {
			size_t used = 12345;
			const struct smtp_parsed_reply *rp = (const void *)1;
			enum smtp_replyparse_result res =
			    smtp_replyparse_feed(p, piece + off, n - off, &used, &rp);
			if (res == SMTP_REPLYPARSE_MALFORMED) {
				o.malformed = true;
				o.error = p->error;
				assert_int_not_equal(p->error, SMTP_REPLYPARSE_ERR_NONE);
				/* stays failed, takes nothing */
				res = smtp_replyparse_feed(p, S("250 ok\r\n"), &used, &rp);
				assert_int_equal(res, SMTP_REPLYPARSE_MALFORMED);
				assert_int_equal(used, 0);
				break;
			}
			assert_true(used <= n - off);
			off += used;
			if (res == SMTP_REPLYPARSE_MORE) {
				assert_null(rp);
				assert_int_equal(off, n);
				break;
			}
			assert_int_equal(res, SMTP_REPLYPARSE_REPLY);
			assert_true(used > 0);
			check_reply_invariants(rp);
			assert_true(o.nreplies < RUN_REPLIES_MAX);
			size_t i = o.nreplies++;
			o.code[i] = rp->code;
			strcpy(o.enhanced[i], rp->enhanced);
			o.nlines[i] = rp->nlines;
			o.text[i] = malloc(rp->text_len + 1);
			memcpy(o.text[i], rp->text, rp->text_len + 1);
			o.text_len[i] = rp->text_len;
			o.end_offset[i] = pos + off;
		} while (off < n);
		if (!o.malformed)
			pos = end;
		free(piece);
	}
	o.consumed = pos;
	free(p);
	return o;
}

static bool same(const struct run *a, const struct run *b)
{
	if (a->nreplies != b->nreplies || a->malformed != b->malformed || a->error != b->error)
		return false;
	if (!a->malformed && a->consumed != b->consumed)
		return false;
	for (size_t i = 0; i < a->nreplies; i++)
		if (a->code[i] != b->code[i] || strcmp(a->enhanced[i], b->enhanced[i]) != 0 ||
		    a->nlines[i] != b->nlines[i] || a->text_len[i] != b->text_len[i] ||
		    memcmp(a->text[i], b->text[i], a->text_len[i]) != 0 ||
		    a->end_offset[i] != b->end_offset[i])
			return false;
	return true;
}

static struct run run_whole(const char *in, size_t len)
{
	return run(in, len, NULL, 0);
}

static struct run run_bytes(const char *in, size_t len)
{
	size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
	for (size_t i = 1; i < len; i++)
		cuts[i - 1] = i;
	struct run o = run(in, len, cuts, len ? len - 1 : 0);
	free(cuts);
	return o;
}

/* run_checked - whole, byte by byte and every two-piece split agree; the
 * whole run is returned. */
static struct run run_checked(const char *in, size_t len)
{
	struct run whole = run_whole(in, len);
	struct run bytes = run_bytes(in, len);
	if (!same(&whole, &bytes))
		fail_msg("byte-at-a-time differs for \"%.*s\"", (int)(len > 80 ? 80 : len), in);
	run_free(&bytes);
	if (len <= 200) {
		for (size_t a = 1; a < len; a++) {
			struct run two = run(in, len, &a, 1);
			if (!same(&whole, &two))
				fail_msg("split at %zu differs for \"%.*s\"", a, (int)len, in);
			run_free(&two);
		}
	}
	return whole;
}

struct ok_case {
	const char *in;
	size_t len;
	int code;
	const char *enhanced;
	size_t nlines;
	const char *text;
};

static const struct ok_case ok_cases[] = {
    {S("220 mx.example.org ESMTP ready\r\n"), 220, "", 1, "mx.example.org ESMTP ready"},
    {S("250\r\n"), 250, "", 1, ""},
    {S("250 \r\n"), 250, "", 1, ""},
    {S("354 End data with <CR><LF>.<CR><LF>\r\n"), 354, "", 1, "End data with <CR><LF>.<CR><LF>"},
    /* RFC 5321 4.2.1 multi-line */
    {S("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"), 250, "", 4,
     "mx.example.org PIPELINING SIZE 1000 8BITMIME"},
    {S("250-\r\n250 ok\r\n"), 250, "", 2, " ok"},
    {S("250-a\r\n250\r\n"), 250, "", 2, "a "},
    /* RFC 3463 enhanced codes */
    {S("550 5.1.1 No such user\r\n"), 550, "5.1.1", 1, "No such user"},
    {S("250 2.0.0\r\n"), 250, "2.0.0", 1, ""},
    {S("250 2.0.0 \r\n"), 250, "2.0.0", 1, ""},
    {S("250 2.0.0  two spaces\r\n"), 250, "2.0.0", 1, " two spaces"},
    {S("452 4.5.3 Too many recipients\r\n"), 452, "4.5.3", 1, "Too many recipients"},
    {S("554 5.123.456 longest\r\n"), 554, "5.123.456", 1, "longest"},
    {S("550-5.1.1 The account\r\n550-5.1.1 does not exist\r\n550 5.1.1 https://x\r\n"), 550,
     "5.1.1", 3, "The account does not exist https://x"},
    /* only the first line has it */
    {S("550-5.7.1 Blocked\r\n550 see http://x\r\n"), 550, "5.7.1", 2, "Blocked see http://x"},
    /* a later line with another code keeps it */
    {S("550-5.7.1 Blocked\r\n550 5.7.2 other\r\n"), 550, "5.7.1", 2, "Blocked 5.7.2 other"},
    /* not on the first line: none */
    {S("550-Blocked\r\n550 5.7.1 see\r\n"), 550, "", 2, "Blocked 5.7.1 see"},
    /* not an enhanced code */
    {S("550 4.1.1 class differs\r\n"), 550, "", 1, "4.1.1 class differs"},
    {S("250 2.0.0x\r\n"), 250, "", 1, "2.0.0x"},
    {S("250 2.1234.0 x\r\n"), 250, "", 1, "2.1234.0 x"},
    {S("250 2.0.1234 x\r\n"), 250, "", 1, "2.0.1234 x"},
    {S("250 2..0 x\r\n"), 250, "", 1, "2..0 x"},
    {S("250 2.0. x\r\n"), 250, "", 1, "2.0. x"},
    {S("250 2.0 x\r\n"), 250, "", 1, "2.0 x"},
    {S("250 3.0.0 x\r\n"), 250, "", 1, "3.0.0 x"},
    /* any digits after the first */
    {S("299 odd\r\n"), 299, "", 1, "odd"},
    {S("560 odd\r\n"), 560, "", 1, "odd"},
    /* text may hold any octet but CR, LF and NUL */
    {S("250 \x01\x7f\xff\t-\r\n"), 250, "", 1, "\x01\x7f\xff\t-"},
};

static void test_ok_table(void **state)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *t = &ok_cases[i];
		struct run o = run_checked(t->in, t->len);
		if (o.malformed || o.nreplies != 1)
			fail_msg("case %zu: malformed=%d replies=%zu", i, o.malformed, o.nreplies);
		assert_int_equal(o.code[0], t->code);
		assert_string_equal(o.enhanced[0], t->enhanced);
		assert_int_equal(o.nlines[0], t->nlines);
		assert_string_equal(o.text[0], t->text);
		assert_int_equal(o.end_offset[0], t->len);
		run_free(&o);
	}
}

static void test_lines_access(void **state)
{
	struct smtp_replyparse *p = malloc(sizeof(*p));
	const struct smtp_parsed_reply *rp;
	size_t used, len;
	static const char in[] = "250-mx.example.org greets you\r\n250-PIPELINING\r\n250-AUTH "
	                         "PLAIN LOGIN\r\n250 DSN\r\n";

	smtp_replyparse_init(p);
	assert_int_equal(smtp_replyparse_feed(p, in, sizeof(in) - 1, &used, &rp),
	                 SMTP_REPLYPARSE_REPLY);
	assert_int_equal(used, sizeof(in) - 1);
	assert_int_equal(rp->nlines, 4);
	const char *s = smtp_replyparse_line(rp, 0, &len);
	assert_int_equal(len, strlen("mx.example.org greets you"));
	assert_memory_equal(s, "mx.example.org greets you", len);
	s = smtp_replyparse_line(rp, 2, &len);
	assert_int_equal(len, strlen("AUTH PLAIN LOGIN"));
	assert_memory_equal(s, "AUTH PLAIN LOGIN", len);
	s = smtp_replyparse_line(rp, 3, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(s, "DSN", 3);
	free(p);
}

/* Several replies in one buffer (RFC 2920 pipelining): each call stops
 * after one, and the next call starts afresh. */
static void test_pipelined(void **state)
{
	static const char in[] = "250 2.1.0 ok\r\n250-a\r\n250 b\r\n550 5.1.1 no\r\n354 go\r\n25";
	struct run o = run_checked(in, sizeof(in) - 1);

	assert_false(o.malformed);
	assert_int_equal(o.nreplies, 4);
	assert_int_equal(o.code[0], 250);
	assert_string_equal(o.enhanced[0], "2.1.0");
	assert_string_equal(o.text[1], "a b");
	assert_string_equal(o.enhanced[1], "");
	assert_int_equal(o.code[2], 550);
	assert_string_equal(o.text[2], "no");
	assert_int_equal(o.code[3], 354);
	assert_int_equal(o.end_offset[3], sizeof(in) - 3);
	/* "25" is buffered: MORE took everything */
	assert_int_equal(o.consumed, sizeof(in) - 1);
	run_free(&o);
}

struct bad_case {
	const char *in;
	size_t len;
	enum smtp_replyparse_error error;
};

static const struct bad_case bad_cases[] = {
    {S("25\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("abc ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("2a0 ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("25a ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("150 ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("650 ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("050 ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S(" 250 ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("250-a\r\nok\r\n"), SMTP_REPLYPARSE_ERR_BAD_CODE},
    {S("250x\r\n"), SMTP_REPLYPARSE_ERR_BAD_SEPARATOR},
    {S("250\tok\r\n"), SMTP_REPLYPARSE_ERR_BAD_SEPARATOR},
    {S("2500 ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_SEPARATOR},
    {S("250_ok\r\n"), SMTP_REPLYPARSE_ERR_BAD_SEPARATOR},
    {S("250-a\r\n251 b\r\n"), SMTP_REPLYPARSE_ERR_MIXED_CODES},
    {S("250-a\r\n250-b\r\n550 c\r\n"), SMTP_REPLYPARSE_ERR_MIXED_CODES},
    {S("250 a\n"), SMTP_REPLYPARSE_ERR_BARE_LF},
    {S("\n"), SMTP_REPLYPARSE_ERR_BARE_LF},
    {S("250-a\r\n250 b\n"), SMTP_REPLYPARSE_ERR_BARE_LF},
    {S("250-a\n250 b\r\n"), SMTP_REPLYPARSE_ERR_BARE_LF},
    {S("250 a\rb\r\n"), SMTP_REPLYPARSE_ERR_BARE_CR},
    {S("250 a\r\r\n"), SMTP_REPLYPARSE_ERR_BARE_CR},
    {S("250 a\r250 b\r\n"), SMTP_REPLYPARSE_ERR_BARE_CR},
    {S("250 a\0b\r\n"), SMTP_REPLYPARSE_ERR_NUL},
    {S("\0"), SMTP_REPLYPARSE_ERR_NUL},
};

static void test_bad_table(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *t = &bad_cases[i];
		struct run o = run_checked(t->in, t->len);
		if (!o.malformed || o.error != t->error)
			fail_msg("case %zu: malformed=%d error=%d, want %d", i, o.malformed,
			         (int)o.error, (int)t->error);
		assert_int_equal(o.nreplies, 0);
		assert_non_null(smtp_replyparse_error_text(o.error));
		run_free(&o);
	}
}

/* A good reply, then a bad one: the first still comes out. */
static void test_good_then_bad(void **state)
{
	struct run o = run_checked(S("250 ok\r\n250 a\nmore"));

	assert_int_equal(o.nreplies, 1);
	assert_true(o.malformed);
	assert_int_equal(o.error, SMTP_REPLYPARSE_ERR_BARE_LF);
	run_free(&o);
}

/* make_line - "CODE<sep>" and text up to total octets including CRLF. */
static size_t make_line(char *buf, const char *code_sep, size_t total)
{
	size_t n = strlen(code_sep);
	memcpy(buf, code_sep, n);
	while (n < total - 2)
		buf[n++] = 'x';
	buf[n++] = '\r';
	buf[n++] = '\n';
	return n;
}

/* RFC 5321 4.5.3.1.5: 512 octets with CRLF is the longest line. */
static void test_line_length_limit(void **state)
{
	char buf[SMTP_REPLYLINE_MAX + 8];
	size_t n = make_line(buf, "250 ", SMTP_REPLYLINE_MAX);

	struct run o = run_checked(buf, n);
	assert_false(o.malformed);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(o.text_len[0], SMTP_REPLY_LINETEXT_MAX);
	run_free(&o);

	n = make_line(buf, "250 ", SMTP_REPLYLINE_MAX + 1);
	o = run_checked(buf, n);
	assert_true(o.malformed);
	assert_int_equal(o.error, SMTP_REPLYPARSE_ERR_TOO_LONG);
	run_free(&o);

	/* reported as soon as the octet arrives, with no line end in sight */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "250 ", 4);
	struct smtp_replyparse *p = malloc(sizeof(*p));
	const struct smtp_parsed_reply *rp;
	size_t used;
	smtp_replyparse_init(p);
	assert_int_equal(smtp_replyparse_feed(p, buf, SMTP_REPLYLINE_MAX - 2, &used, &rp),
	                 SMTP_REPLYPARSE_MORE);
	assert_int_equal(smtp_replyparse_feed(p, buf, 1, &used, &rp), SMTP_REPLYPARSE_MALFORMED);
	assert_int_equal(p->error, SMTP_REPLYPARSE_ERR_TOO_LONG);
	/* a continuation line too */
	n = make_line(buf, "250 ", 10);
	smtp_replyparse_init(p);
	assert_int_equal(smtp_replyparse_feed(p, "250-a\r\n", 7, &used, &rp), SMTP_REPLYPARSE_MORE);
	n = make_line(buf, "250-", SMTP_REPLYLINE_MAX + 1);
	assert_int_equal(smtp_replyparse_feed(p, buf, n, &used, &rp), SMTP_REPLYPARSE_MALFORMED);
	assert_int_equal(p->error, SMTP_REPLYPARSE_ERR_TOO_LONG);
	free(p);
}

/* make_reply - nlines lines of total octets each; the last has SP when
 * last_sp, '-' otherwise (a reply announcing more). */
static char *make_reply(size_t nlines, size_t total, bool last_sp, size_t *len_r)
{
	char *buf = malloc(nlines * total + 1);
	size_t n = 0;
	for (size_t i = 0; i < nlines; i++)
		n += make_line(buf + n, i + 1 == nlines && last_sp ? "250 " : "250-", total);
	*len_r = n;
	return buf;
}

static void test_lines_limit(void **state)
{
	size_t len;
	char *buf = make_reply(SMTP_REPLY_LINES_MAX, 20, true, &len);
	struct run o = run_checked(buf, len);
	assert_false(o.malformed);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(o.nlines[0], SMTP_REPLY_LINES_MAX);
	run_free(&o);
	free(buf);

	/* 101 lines */
	buf = make_reply(SMTP_REPLY_LINES_MAX + 1, 20, true, &len);
	o = run_checked(buf, len);
	assert_true(o.malformed);
	assert_int_equal(o.error, SMTP_REPLYPARSE_ERR_TOO_MANY_LINES);
	run_free(&o);
	free(buf);

	/* reported at line 100 when it announces more */
	buf = make_reply(SMTP_REPLY_LINES_MAX, 20, false, &len);
	o = run_checked(buf, len);
	assert_true(o.malformed);
	assert_int_equal(o.error, SMTP_REPLYPARSE_ERR_TOO_MANY_LINES);
	run_free(&o);
	free(buf);
}

/* The largest reply there can be fills text[] exactly. */
static void test_largest_reply(void **state)
{
	size_t len;
	char *buf = make_reply(SMTP_REPLY_LINES_MAX, SMTP_REPLYLINE_MAX, true, &len);
	struct run o = run_checked(buf, len);

	assert_false(o.malformed);
	assert_int_equal(o.nlines[0], SMTP_REPLY_LINES_MAX);
	assert_int_equal(o.text_len[0], SMTP_REPLY_TEXT_MAX);
	run_free(&o);
	free(buf);
}

/* xorshift: deterministic, no libc state */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* pick - one of the strings of a NULL-terminated list. */
static const char *pick(uint64_t *seed, const char *const *list)
{
	size_t n = 0;
	while (list[n] != NULL)
		n++;
	return list[rnd(seed) % n];
}

/* Random inputs built from line-shaped pieces, mostly well-formed, with
 * every kind of damage now and then: whatever comes in, no crash, the
 * invariants hold and every way of cutting agrees. */
static void test_random(void **state)
{
	static const char *const codes[] = {"250", "250", "250", "550", "452", "251",
	                                    "2a0", "150", "25",  "",    NULL};
	static const char *const seps[] = {" ", " ", "-", "-", "-", "", "x", NULL};
	static const char *const texts[] = {"",     "ok",   "5.1.1 no", "2.0.0", "a b",
	                                    "x\ry", "x\ty", "4.5.3 ",   "\n",    NULL};
	static const char *const ends[] = {"\r\n", "\r\n", "\r\n",   "\r\n", "\r\n",
	                                   "\n",   "\r",   "\r\r\n", NULL};
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	char buf[256];
	size_t replies = 0, malformed = 0;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = 0;
		size_t nlines = 1 + rnd(&seed) % 6;
		for (size_t i = 0; i < nlines; i++) {
			const char *parts[4] = {pick(&seed, codes), pick(&seed, seps),
			                        pick(&seed, texts), pick(&seed, ends)};
			for (size_t k = 0; k < 4; k++) {
				size_t n = strlen(parts[k]);
				memcpy(buf + len, parts[k], n);
				len += n;
			}
			if (rnd(&seed) % 50 == 0)
				buf[len++] = '\0';
		}
		/* sometimes cut the input short */
		if (rnd(&seed) % 4 == 0 && len > 0)
			len = rnd(&seed) % len;
		struct run whole = run_whole(buf, len);
		struct run bytes = run_bytes(buf, len);
		size_t cuts[3];
		size_t ncuts = 0;
		if (len > 3) {
			cuts[0] = 1 + rnd(&seed) % (len - 3);
			cuts[1] = cuts[0] + 1 + rnd(&seed) % (len - cuts[0] - 2);
			ncuts = 2;
		}
		struct run some = run(buf, len, cuts, ncuts);
		if (!same(&whole, &bytes) || !same(&whole, &some))
			fail_msg("iteration %d: pieces disagree", iter);
		replies += whole.nreplies;
		malformed += whole.malformed;
		run_free(&whole);
		run_free(&bytes);
		run_free(&some);
	}
	/* the generator reaches both outcomes */
	assert_true(replies > 1000);
	assert_true(malformed > 1000);
}

static void test_error_texts(void **state)
{
	for (int e = SMTP_REPLYPARSE_ERR_NONE; e <= SMTP_REPLYPARSE_ERR_BAD_SEPARATOR; e++) {
		const char *s = smtp_replyparse_error_text((enum smtp_replyparse_error)e);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ok_table),      cmocka_unit_test(test_lines_access),
	    cmocka_unit_test(test_pipelined),     cmocka_unit_test(test_bad_table),
	    cmocka_unit_test(test_good_then_bad), cmocka_unit_test(test_line_length_limit),
	    cmocka_unit_test(test_lines_limit),   cmocka_unit_test(test_largest_reply),
	    cmocka_unit_test(test_random),        cmocka_unit_test(test_error_texts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
