/* SPDX-License-Identifier: ISC */
/* test_smtp_data.c - unit tests for smtp_data.c: end of data, dot-unstuffing,
 * bare CR/LF, NUL and long-line detection, BDAT chunks */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lib/limits.h"
#include "smtp/smtp_data.h"

#define S(lit) lit, sizeof(lit) - 1

#define LF   SMTP_DATA_ERR_BARE_LF
#define CR   SMTP_DATA_ERR_BARE_CR
#define NUL  SMTP_DATA_ERR_NUL
#define LONG SMTP_DATA_ERR_LONG_LINE

/* What one run over an input produced. */
struct outcome {
	bool ended;
	size_t consumed; /* of the whole input */
	unsigned errors;
	char *out;
	size_t out_len;
	uint64_t counted; /* d.out_len */
};

static void outcome_free(struct outcome *o)
{
	free(o->out);
	o->out = NULL;
}

/*
 * run - feed in[0..len) in pieces: cuts[] lists the offsets where a new
 * call starts (ascending, in (0, len)). Every call gets its own heap copy
 * of exactly its bytes and an output buffer of exactly n + 2, so ASan
 * catches any read or write outside what the contract allows. In CHUNK
 * mode smtp_data_finish ends the run.
 */
static struct outcome run(enum smtp_data_mode mode, const char *in, size_t len, const size_t *cuts,
                          size_t ncuts)
{
	struct smtp_data d;
	struct outcome o = {0};
	size_t pos = 0, cap = len + 16;

	o.out = malloc(cap);
	smtp_data_init(&d, mode);
	for (size_t k = 0; k <= ncuts && !o.ended; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t n = end - pos;
		char *piece = malloc(n ? n : 1);
		char *out = malloc(n + 2);
		size_t out_len = 99999, consumed = 99999;
		memcpy(piece, in + pos, n);
		enum smtp_data_result r = smtp_data_feed(&d, piece, n, out, &out_len, &consumed);
		assert_true(out_len <= n + 2);
		assert_true(consumed <= n);
		if (r == SMTP_DATA_END) {
			o.ended = true;
		} else {
			assert_int_equal(r, SMTP_DATA_MORE);
			assert_int_equal(consumed, n); /* MORE takes everything */
		}
		assert_true(o.out_len + out_len <= cap);
		memcpy(o.out + o.out_len, out, out_len);
		o.out_len += out_len;
		pos += consumed;
		free(piece);
		free(out);
	}
	if (mode == SMTP_DATA_CHUNK) {
		char tail[2];
		size_t n = smtp_data_finish(&d, tail);
		assert_true(n <= 2);
		memcpy(o.out + o.out_len, tail, n);
		o.out_len += n;
	}
	o.consumed = pos;
	o.errors = d.errors;
	o.counted = d.out_len;
	assert_true(o.counted == o.out_len);
	return o;
}

static struct outcome run_whole(enum smtp_data_mode mode, const char *in, size_t len)
{
	return run(mode, in, len, NULL, 0);
}

/* run_bytes - one octet per call. */
static struct outcome run_bytes(enum smtp_data_mode mode, const char *in, size_t len)
{
	size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
	for (size_t i = 1; i < len; i++)
		cuts[i - 1] = i;
	struct outcome o = run(mode, in, len, cuts, len ? len - 1 : 0);
	free(cuts);
	return o;
}

static bool same(const struct outcome *a, const struct outcome *b)
{
	return a->ended == b->ended && a->consumed == b->consumed && a->errors == b->errors &&
	       a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0;
}

/* check_all_splits - whole, byte by byte, every two-piece split, and every
 * three-piece split of a short input all agree. */
static void check_all_splits(enum smtp_data_mode mode, const char *in, size_t len)
{
	struct outcome whole = run_whole(mode, in, len);
	struct outcome bytes = run_bytes(mode, in, len);
	if (!same(&whole, &bytes))
		fail_msg("byte-at-a-time differs for \"%.*s\"", (int)len, in);
	outcome_free(&bytes);
	for (size_t a = 1; a < len; a++) {
		struct outcome two = run(mode, in, len, &a, 1);
		if (!same(&whole, &two))
			fail_msg("split at %zu differs for \"%.*s\"", a, (int)len, in);
		outcome_free(&two);
		if (len > 40)
			continue;
		for (size_t b = a + 1; b < len; b++) {
			size_t cuts[2] = {a, b};
			struct outcome three = run(mode, in, len, cuts, 2);
			if (!same(&whole, &three))
				fail_msg("split at %zu,%zu differs", a, b);
			outcome_free(&three);
		}
	}
	outcome_free(&whole);
}

struct data_case {
	const char *in;
	size_t len;
	bool ended;
	size_t consumed; /* when ended; else the whole input */
	const char *out;
	size_t out_len;
	unsigned errors;
};

/* DATA mode. Inputs start right after the 354 reply, so the data begins at
 * a line start. */
static const struct data_case dot_cases[] = {
    /* the end, and what follows it stays unconsumed (RFC 2920 pipelining) */
    {S(".\r\n"), true, 3, S(""), 0},
    {S(".\r\nQUIT\r\n"), true, 3, S(""), 0},
    {S("a\r\n.\r\n"), true, 6, S("a\r\n"), 0},
    {S("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), true, 6, S("a\r\n"), 0},
    {S("\r\n.\r\n"), true, 5, S("\r\n"), 0},
    {S("a\r\nb\r\n.\r\n.\r\n"), true, 9, S("a\r\nb\r\n"), 0},
    /* dot-unstuffing (RFC 5321 4.5.2) */
    {S("..\r\n.\r\n"), true, 7, S(".\r\n"), 0},
    {S("...\r\n.\r\n"), true, 8, S("..\r\n"), 0},
    {S("..a\r\n.\r\n"), true, 8, S(".a\r\n"), 0},
    {S(".a\r\n.\r\n"), true, 7, S("a\r\n"), 0},
    {S(". \r\n.\r\n"), true, 7, S(" \r\n"), 0},
    {S("a\r\n..\r\n.\r\n"), true, 10, S("a\r\n.\r\n"), 0},
    {S("a.\r\n.\r\n"), true, 7, S("a.\r\n"), 0},
    {S("a\r\nb.c\r\n..d\r\n.\r\n"), true, 16, S("a\r\nb.c\r\n.d\r\n"), 0},
    /* not finished yet: held bytes do not come out */
    {S(""), false, 0, S(""), 0},
    {S("a"), false, 1, S("a"), 0},
    {S("a\r"), false, 2, S("a"), 0},
    {S("a\r\n"), false, 3, S("a\r\n"), 0},
    {S("a\r\n."), false, 4, S("a\r\n"), 0},
    {S("a\r\n.\r"), false, 5, S("a\r\n"), 0},
    {S("a\r\n.."), false, 5, S("a\r\n."), 0},
    {S("."), false, 1, S(""), 0},
    /* smuggling: none of these is an end, every one is flagged, and the
     * real end afterwards is found with the bytes after it untouched */
    {S("\n.\n"), false, 3, S("\n.\n"), LF},
    {S("\n.\r\n"), false, 4, S("\n.\r\n"), LF},
    {S("\r\n.\n"), false, 4, S("\r\n\n"), LF},
    {S("\r.\r\n"), false, 4, S("\r.\r\n"), CR},
    {S("\r\n.\r"), false, 4, S("\r\n"), 0}, /* CR still held: could be the end */
    {S("\r\n.\rX"), false, 5, S("\r\n\rX"), CR},
    {S("\r\n\0.\r\n"), false, 6, S("\r\n\0.\r\n"), NUL},
    {S("a\n.\nb\r\n.\r\nQUIT\r\n"), true, 10, S("a\n.\nb\r\n"), LF},
    {S("a\n.\r\nb\r\n.\r\nQUIT\r\n"), true, 11, S("a\n.\r\nb\r\n"), LF},
    {S("a\r\n.\nb\r\n.\r\nQUIT\r\n"), true, 11, S("a\r\n\nb\r\n"), LF},
    {S("a\r.\r\nb\r\n.\r\nQUIT\r\n"), true, 11, S("a\r.\r\nb\r\n"), CR},
    {S("a\r\n.\rb\r\n.\r\nQUIT\r\n"), true, 11, S("a\r\n\rb\r\n"), CR},
    {S("a\r\n.\r\rb\r\n.\r\nQUIT\r\n"), true, 12, S("a\r\n\r\rb\r\n"), CR},
    {S("a\r\n\0.\r\nb\r\n.\r\nQUIT\r\n"), true, 13, S("a\r\n\0.\r\nb\r\n"), NUL},
    {S("a\r\n.\0\r\nb\r\n.\r\nQUIT\r\n"), true, 13, S("a\r\n\0\r\nb\r\n"), NUL},
    {S("a\r\n.\r\0\nb\r\n.\r\nQUIT\r\n"), true, 13, S("a\r\n\r\0\nb\r\n"), CR | NUL | LF},
    {S("a\n\n.\n\nb\r\n.\r\nQUIT\r\n"), true, 12, S("a\n\n.\n\nb\r\n"), LF},
    {S("a\r\r.\r\r\nb\r\n.\r\nQUIT\r\n"), true, 13, S("a\r\r.\r\r\nb\r\n"), CR},
    {S("a\n\r.\n\r\nb\r\n.\r\nQUIT\r\n"), true, 13, S("a\n\r.\n\r\nb\r\n"), LF | CR},
    {S(".\n.\r\n"), false, 5, S("\n.\r\n"), LF}, /* ".\n" at the start is text */
    {S(".\r.\r\n"), false, 5, S("\r.\r\n"), CR},
    {S(" .\r\n.\r\n"), true, 7, S(" .\r\n"), 0},
    {S("\x7f.\r\n"), false, 4, S("\x7f.\r\n"), 0},
    /* the bytes that make the real end are literally CR LF . CR LF, even
     * when errors came before them */
    {S("a\r\r\n.\r\nQUIT\r\n"), true, 7, S("a\r\r\n"), CR},
    {S("a\n\r\n.\r\nQUIT\r\n"), true, 7, S("a\n\r\n"), LF},
    {S("a\0\r\n.\r\nQUIT\r\n"), true, 7, S("a\0\r\n"), NUL},
    {S("\r\n.\n\r\n.\r\nQUIT\r\n"), true, 9, S("\r\n\n\r\n"), LF},
};

/* CHUNK mode (BDAT): no dots, no end, the same line checks, and the held CR
 * is flushed by smtp_data_finish. */
static const struct data_case chunk_cases[] = {
    {S(""), false, 0, S(""), 0},
    {S("a\r\nb\r\n"), false, 6, S("a\r\nb\r\n"), 0},
    {S(".\r\n"), false, 3, S(".\r\n"), 0},
    {S("..\r\n"), false, 4, S("..\r\n"), 0},
    {S("a\r\n.\r\nQUIT\r\n"), false, 12, S("a\r\n.\r\nQUIT\r\n"), 0},
    {S("no line end"), false, 11, S("no line end"), 0},
    {S("a\nb"), false, 3, S("a\nb"), LF},
    {S("a\rb"), false, 3, S("a\rb"), CR},
    {S("a\r"), false, 2, S("a\r"), CR}, /* finish flushes a bare CR */
    {S("\r"), false, 1, S("\r"), CR},
    {S("a\r\r"), false, 3, S("a\r\r"), CR},
    {S("a\r\n"), false, 3, S("a\r\n"), 0},
    {S("a\0b\r\n"), false, 5, S("a\0b\r\n"), NUL},
    {S("\n.\n"), false, 3, S("\n.\n"), LF},
    {S("\r\n\0.\r\n\r"), false, 7, S("\r\n\0.\r\n\r"), NUL | CR},
};

static void check_case(enum smtp_data_mode mode, const struct data_case *c, size_t i)
{
	struct outcome o = run_whole(mode, c->in, c->len);
	if (o.ended != c->ended || o.consumed != c->consumed || o.errors != c->errors ||
	    o.out_len != c->out_len || memcmp(o.out, c->out, o.out_len) != 0)
		fail_msg("%s case %zu: ended %d consumed %zu errors %#x out \"%.*s\" (%zu)",
		         mode == SMTP_DATA_DOT ? "dot" : "chunk", i, o.ended, o.consumed, o.errors,
		         (int)o.out_len, o.out, o.out_len);
	outcome_free(&o);
	check_all_splits(mode, c->in, c->len);
}

static void test_dot_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++)
		check_case(SMTP_DATA_DOT, &dot_cases[i], i);
}

static void test_chunk_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++)
		check_case(SMTP_DATA_CHUNK, &chunk_cases[i], i);
}

/*
 * Every fake end from a list, followed by more text, the real end and a
 * pipelined command: the message never ends early, the fake is flagged,
 * and the command is left for the command parser.
 */
static void test_smuggling_matrix(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
		bool legal; /* a stuffed or indented dot: text, not an error */
	} fakes[] = {
	    {S("\n.\n"), false},       {S("\n.\r\n"), false},     {S("\r\n.\n"), false},
	    {S("\r.\r\n"), false},     {S("\r\n.\r"), false},     {S("\r.\r"), false},
	    {S("\n.\r"), false},       {S("\r.\n"), false},       {S("\r\n\0.\r\n"), false},
	    {S("\r\n.\0\r\n"), false}, {S("\r\n.\r\0\n"), false}, {S("\n\r.\r\n"), false},
	    {S("\r\r\n.\n"), false},   {S("\r\n.\n\r"), false},   {S("\r\n\n.\r\n"), false},
	    {S("\r\n.\r\r\n"), false}, {S("\r\n..\r\n"), true},   {S("\r\n .\r\n"), true},
	};
	static const char tail[] = "\r\n.\r\nRSET\r\n";
	for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++) {
		char in[128];
		size_t len = 0;
		memcpy(in, "Subject: x", 10);
		len = 10;
		memcpy(in + len, fakes[i].s, fakes[i].len);
		len += fakes[i].len;
		memcpy(in + len, "RCPT TO:<evil@x>", 16);
		len += 16;
		memcpy(in + len, tail, sizeof(tail) - 1);
		len += sizeof(tail) - 1;
		struct outcome o = run_whole(SMTP_DATA_DOT, in, len);
		assert_true(o.ended);
		if (o.consumed != len - 6)
			fail_msg("fake %zu: ended at %zu of %zu", i, o.consumed, len);
		if (fakes[i].legal)
			assert_int_equal(o.errors, 0);
		else if (o.errors == 0)
			fail_msg("fake %zu not flagged", i);
		/* the smuggled command is inside the message, not after it */
		assert_non_null(memmem(o.out, o.out_len, "RCPT TO:<evil@x>", 16));
		outcome_free(&o);
		check_all_splits(SMTP_DATA_DOT, in, len);
	}
}

/* line - n octets of text (optionally starting with a stuffed dot), CRLF. */
static size_t line(char *buf, size_t n, bool dot)
{
	memset(buf, 'x', n);
	if (dot && n > 0)
		buf[0] = '.';
	buf[n] = '\r';
	buf[n + 1] = '\n';
	return n + 2;
}

/* RFC 5321 4.5.3.1.6: 1000 octets including CRLF, a stuffed dot not counted. */
static void test_long_lines(void **state)
{
	(void)state;
	static char buf[4096];
	static const enum smtp_data_mode modes[] = {SMTP_DATA_DOT, SMTP_DATA_CHUNK};
	for (size_t m = 0; m < 2; m++) {
		enum smtp_data_mode mode = modes[m];
		struct outcome o;
		size_t len;

		len = line(buf, SMTP_DATALINE_MAX - 2, false);
		memcpy(buf + len, ".\r\n", 3);
		o = run_whole(mode, buf, len + 3);
		assert_int_equal(o.errors, 0);
		outcome_free(&o);
		o = run_bytes(mode, buf, len + 3);
		assert_int_equal(o.errors, 0);
		outcome_free(&o);

		len = line(buf, SMTP_DATALINE_MAX - 1, false);
		memcpy(buf + len, ".\r\n", 3);
		o = run_whole(mode, buf, len + 3);
		assert_int_equal(o.errors, LONG);
		outcome_free(&o);
		o = run_bytes(mode, buf, len + 3);
		assert_int_equal(o.errors, LONG);
		outcome_free(&o);

		/* RFC 5321 4.5.3.1.6: the dot added for transparency does not
		 * count. DATA: 1001 octets as received are a 1000-octet line;
		 * BDAT has no stuffing, so there the dot is text and counts. */
		len = line(buf, SMTP_DATALINE_MAX - 1, true);
		memcpy(buf + len, ".\r\n", 3);
		o = run_whole(mode, buf, len + 3);
		assert_int_equal(o.errors, mode == SMTP_DATA_DOT ? 0 : LONG);
		if (mode == SMTP_DATA_DOT)
			assert_int_equal(o.out_len, SMTP_DATALINE_MAX);
		outcome_free(&o);
		o = run_bytes(mode, buf, len + 3);
		assert_int_equal(o.errors, mode == SMTP_DATA_DOT ? 0 : LONG);
		outcome_free(&o);
		len = line(buf, SMTP_DATALINE_MAX, true);
		memcpy(buf + len, ".\r\n", 3);
		o = run_whole(mode, buf, len + 3);
		assert_int_equal(o.errors, LONG);
		outcome_free(&o);

		/* a long line anywhere, and the message still ends where it ends */
		len = line(buf, 10, false);
		len += line(buf + len, 3000, false);
		len += line(buf + len, 10, false);
		memcpy(buf + len, ".\r\nQUIT\r\n", 9);
		o = run_whole(mode, buf, len + 9);
		assert_int_equal(o.errors, LONG);
		if (mode == SMTP_DATA_DOT) {
			assert_true(o.ended);
			assert_int_equal(o.consumed, len + 3);
		}
		outcome_free(&o);

		/* a bare LF does not end a line: 500 + LF + 500 + CRLF is 1003 */
		memset(buf, 'y', 1001);
		buf[500] = '\n';
		memcpy(buf + 1001, "\r\n.\r\n", 5);
		o = run_whole(mode, buf, 1006);
		assert_int_equal(o.errors, LONG | LF);
		outcome_free(&o);

		/* many lines exactly at the limit */
		len = 0;
		for (int i = 0; i < 4; i++)
			len += line(buf + len, SMTP_DATALINE_MAX - 2, i % 2 == 1);
		memcpy(buf + len, ".\r\n", 3);
		o = run_bytes(mode, buf, len + 3);
		assert_int_equal(o.errors, 0);
		outcome_free(&o);
	}

	/* CHUNK: the last line of the last chunk without CRLF */
	memset(buf, 'z', SMTP_DATALINE_MAX + 1);
	struct outcome o = run_whole(SMTP_DATA_CHUNK, buf, SMTP_DATALINE_MAX);
	assert_int_equal(o.errors, 0);
	outcome_free(&o);
	o = run_whole(SMTP_DATA_CHUNK, buf, SMTP_DATALINE_MAX + 1);
	assert_int_equal(o.errors, LONG);
	outcome_free(&o);
}

/* Splitting the classic places: between CR and LF, and between "\r\n." and
 * "\r\n", with whatever piece sizes; also a CR held across a call in CHUNK
 * mode is not a bare CR. */
static void test_held_bytes(void **state)
{
	(void)state;
	struct smtp_data d;
	char out[16];
	size_t out_len, consumed;

	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_feed(&d, "ab\r", 3, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 2);
	assert_int_equal(consumed, 3);
	assert_int_equal(smtp_data_feed(&d, "\n", 1, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 2); /* the held CR and its LF: one byte in, two out */
	assert_memory_equal(out, "\r\n", 2);
	assert_int_equal(smtp_data_feed(&d, ".\r", 2, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 0);
	assert_int_equal(smtp_data_feed(&d, "\nX", 2, out, &out_len, &consumed), SMTP_DATA_END);
	assert_int_equal(consumed, 1);
	assert_int_equal(out_len, 0);
	assert_int_equal(d.errors, 0);
	assert_true(d.out_len == 4);

	/* a held CR that turns out bare comes out with the next octet */
	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_feed(&d, "a\r", 2, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(smtp_data_feed(&d, "b", 1, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 2);
	assert_memory_equal(out, "\rb", 2);
	assert_int_equal(d.errors, CR);

	/* an empty feed changes nothing */
	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_feed(&d, "", 0, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 0);
	assert_int_equal(consumed, 0);
	assert_int_equal(smtp_data_feed(&d, ".\r\n", 3, out, &out_len, &consumed), SMTP_DATA_END);

	/* CHUNK: CR at the end of one BDAT chunk, LF at the start of the next */
	smtp_data_init(&d, SMTP_DATA_CHUNK);
	assert_int_equal(smtp_data_feed(&d, "a\r", 2, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 1);
	assert_int_equal(smtp_data_feed(&d, "\n", 1, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 2);
	assert_int_equal(smtp_data_finish(&d, out), 0);
	assert_int_equal(d.errors, 0);
	assert_true(d.out_len == 3);

	/* CHUNK: never END, even on ".\r\n" */
	smtp_data_init(&d, SMTP_DATA_CHUNK);
	assert_int_equal(smtp_data_feed(&d, "\r\n.\r\n", 5, out, &out_len, &consumed),
	                 SMTP_DATA_MORE);
	assert_int_equal(consumed, 5);
	assert_int_equal(out_len, 5);
	assert_int_equal(smtp_data_finish(&d, out), 0);

	/* CHUNK: a CR held at the very end is bare */
	smtp_data_init(&d, SMTP_DATA_CHUNK);
	assert_int_equal(smtp_data_feed(&d, "ab\r", 3, out, &out_len, &consumed), SMTP_DATA_MORE);
	assert_int_equal(out_len, 2);
	assert_int_equal(smtp_data_finish(&d, out), 1);
	assert_int_equal(out[0], '\r');
	assert_int_equal(d.errors, CR);
	assert_true(d.out_len == 3);
}

/* xorshift - a small deterministic generator for the random tests. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t xorshift(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/*
 * reference - the rules written as plainly as possible, over the whole
 * input at once, to check the fast scanner against: only CR LF ends a line;
 * at a line start "." CR LF is the end and any other "." is dropped; bare
 * CR, bare LF and NUL are flagged and kept; a line over 1000 octets, not
 * counting a stuffed dot, is flagged. In CHUNK mode a CR as the very last octet is bare
 * (smtp_data_finish).
 */
static struct outcome reference(enum smtp_data_mode mode, const char *in, size_t len)
{
	struct outcome o = {0};
	bool start = true;
	size_t line_len = 0;
	o.out = malloc(len + 1);
	for (size_t i = 0; i < len;) {
		if (mode == SMTP_DATA_DOT && start && in[i] == '.') {
			if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
				o.ended = true;
				o.consumed = i + 3;
				break;
			}
			i++; /* the stuffed dot: not counted (RFC 5321 4.5.3.1.6) */
			start = false;
			continue;
		}
		start = false;
		char c = in[i];
		if (c == '\r' && i + 1 < len && in[i + 1] == '\n') {
			o.out[o.out_len++] = '\r';
			o.out[o.out_len++] = '\n';
			line_len += 2;
			if (line_len > SMTP_DATALINE_MAX)
				o.errors |= LONG;
			line_len = 0;
			start = true;
			i += 2;
			continue;
		}
		if (c == '\r')
			o.errors |= CR;
		else if (c == '\n')
			o.errors |= LF;
		else if (c == '\0')
			o.errors |= NUL;
		o.out[o.out_len++] = c;
		if (++line_len > SMTP_DATALINE_MAX)
			o.errors |= LONG;
		i++;
	}
	if (!o.ended)
		o.consumed = len;
	o.counted = o.out_len;
	return o;
}

/* random_message - text made mostly of the octets that matter here. */
static size_t random_message(char *buf, size_t max)
{
	static const char alphabet[] = "\r\n.\r\n.\r\nab\0x";
	size_t len = (size_t)(xorshift() % max);
	for (size_t i = 0; i < len; i++) {
		uint64_t r = xorshift();
		if (r % 97 == 0) {
			/* now and then a long run, to reach the line limit */
			size_t run_len = (size_t)(r % 1200);
			if (i + run_len > len)
				run_len = len - i;
			memset(buf + i, 'L', run_len);
			i += run_len;
			if (i >= len)
				break;
		}
		buf[i] = alphabet[(r >> 8) % (sizeof(alphabet) - 1)];
	}
	return len;
}

/* Thousands of random inputs cut at random places agree with the plain
 * reference, in both modes. For DOT inputs without an end the reference
 * is run on the input with the real end appended. */
static void test_random_against_reference(void **state)
{
	(void)state;
	static char buf[4096];
	for (int iter = 0; iter < 4000; iter++) {
		size_t len = random_message(buf, 3000);
		enum smtp_data_mode mode = iter % 3 == 0 ? SMTP_DATA_CHUNK : SMTP_DATA_DOT;
		if (mode == SMTP_DATA_DOT) {
			memcpy(buf + len, "\r\n.\r\nQUIT\r\n", 11);
			len += 11;
		}
		size_t cuts[16], ncuts = 0;
		size_t n = (size_t)(xorshift() % 16);
		for (size_t k = 0; k < n && len > 1; k++) {
			size_t c = 1 + (size_t)(xorshift() % (len - 1));
			if (ncuts == 0 || c > cuts[ncuts - 1])
				cuts[ncuts++] = c;
		}
		struct outcome want = reference(mode, buf, len);
		struct outcome got = run(mode, buf, len, cuts, ncuts);
		if (!same(&want, &got))
			fail_msg("iteration %d (mode %d, %zu octets): ended %d/%d consumed %zu/%zu "
			         "errors %#x/%#x out %zu/%zu",
			         iter, mode, len, want.ended, got.ended, want.consumed,
			         got.consumed, want.errors, got.errors, want.out_len, got.out_len);
		if (iter % 50 == 0) {
			struct outcome bytes = run_bytes(mode, buf, len);
			assert_true(same(&want, &bytes));
			outcome_free(&bytes);
		}
		outcome_free(&want);
		outcome_free(&got);
	}
}

/* A realistic large message: 30 MB of 76-octet lines, some dot-stuffed,
 * fed in 64 KiB reads. The scanner's speed is a benchmark matter; this
 * only guards against a gross regression (the bound allows for the
 * sanitizer build) and prints the rate. */
static void test_large_message(void **state)
{
	(void)state;
	const size_t total = 30u << 20;
	char *msg = malloc(total + 16);
	char *out = malloc(65536 + 2);
	size_t len = 0, lines = 0;
	while (len + 80 < total) {
		if (lines % 50 == 0)
			msg[len++] = '.';
		for (int i = 0; i < 76; i++)
			msg[len++] = (char)('A' + (lines + (size_t)i) % 26);
		msg[len++] = '\r';
		msg[len++] = '\n';
		lines++;
	}
	memcpy(msg + len, ".\r\n", 3);
	len += 3;

	struct smtp_data d;
	struct timespec t0, t1;
	enum smtp_data_result r = SMTP_DATA_MORE;
	size_t pos = 0;
	smtp_data_init(&d, SMTP_DATA_DOT);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (pos < len && r == SMTP_DATA_MORE) {
		size_t n = len - pos < 65536 ? len - pos : 65536;
		size_t out_len, consumed;
		r = smtp_data_feed(&d, msg + pos, n, out, &out_len, &consumed);
		pos += consumed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("# 30 MiB DATA scanned in %.1f ms\n", ms);
	assert_int_equal(r, SMTP_DATA_END);
	assert_int_equal(pos, len);
	assert_int_equal(d.errors, 0);
	/* every stuffed dot removed, the final ".\r\n" excluded */
	size_t stuffed = (lines + 49) / 50;
	assert_true(d.out_len == len - 3 - stuffed);
	assert_true(ms < 2000.0);
	free(msg);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dot_table),
	    cmocka_unit_test(test_chunk_table),
	    cmocka_unit_test(test_smuggling_matrix),
	    cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_held_bytes),
	    cmocka_unit_test(test_random_against_reference),
	    cmocka_unit_test(test_large_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
