/* SPDX-License-Identifier: ISC */
/* test_smtp_dotstuff.c - unit tests for smtp_dotstuff.c: dot-stuffing, the
 * terminator, chunk boundaries, bare CR/LF, and a property test against our
 * own DATA parser (smtp_data) */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_data.h"
#include "smtp/smtp_dotstuff.h"

#define S(lit) lit, sizeof(lit) - 1

struct out {
	char *buf;
	size_t len;
};

/*
 * stuff - run in[0..len) through the stuffer in pieces (cuts[] as in the
 * other tests), each call with a heap output buffer of exactly the size the
 * header promises is enough, so ASan catches a byte too many.
 */
static struct out stuff(const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
	struct smtp_dotstuff ds;
	struct out o = {malloc(2 * len + SMTP_DOTSTUFF_FINISH_MAX + 1), 0};
	size_t pos = 0;

	smtp_dotstuff_init(&ds);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t n = end - pos;
		char *piece = malloc(n ? n : 1);
		char *dst = malloc(n ? SMTP_DOTSTUFF_FEED_MAX(n) : 1);
		memcpy(piece, in + pos, n);
		size_t w = smtp_dotstuff_feed(&ds, piece, n, dst);
		assert_true(w <= SMTP_DOTSTUFF_FEED_MAX(n));
		memcpy(o.buf + o.len, dst, w);
		o.len += w;
		free(piece);
		free(dst);
		pos = end;
	}
	char *tail = malloc(SMTP_DOTSTUFF_FINISH_MAX);
	size_t w = smtp_dotstuff_finish(&ds, tail);
	assert_true(w <= SMTP_DOTSTUFF_FINISH_MAX);
	memcpy(o.buf + o.len, tail, w);
	o.len += w;
	free(tail);
	/* the whole-message bound, and the counters */
	assert_true(o.len <= 2 * len + 5);
	assert_true(ds.in_len == len);
	assert_true(ds.out_len == o.len);
	return o;
}

/* stuff_all_splits - whole, byte by byte, every two- and (short inputs)
 * three-piece split give the same output; that output is returned. */
static struct out stuff_all_splits(const char *in, size_t len)
{
	struct out whole = stuff(in, len, NULL, 0);
	size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));

	for (size_t i = 1; i < len; i++)
		cuts[i - 1] = i;
	struct out bytes = stuff(in, len, cuts, len ? len - 1 : 0);
	free(cuts);
	if (bytes.len != whole.len || memcmp(bytes.buf, whole.buf, whole.len) != 0)
		fail_msg("byte-at-a-time differs for \"%.*s\"", (int)len, in);
	free(bytes.buf);
	for (size_t a = 1; a < len; a++) {
		struct out two = stuff(in, len, &a, 1);
		if (two.len != whole.len || memcmp(two.buf, whole.buf, whole.len) != 0)
			fail_msg("split at %zu differs for \"%.*s\"", a, (int)len, in);
		free(two.buf);
		for (size_t b = a + 1; b < len && len <= 24; b++) {
			size_t c2[2] = {a, b};
			struct out three = stuff(in, len, c2, 2);
			if (three.len != whole.len || memcmp(three.buf, whole.buf, whole.len) != 0)
				fail_msg("split at %zu,%zu differs", a, b);
			free(three.buf);
		}
	}
	return whole;
}

struct stuff_case {
	const char *in;
	size_t len;
	const char *out;
	size_t out_len;
};

static const struct stuff_case cases[] = {
    /* the terminator (RFC 5321 4.1.1.4) */
    {S(""), S(".\r\n")},
    {S("a\r\n"), S("a\r\n.\r\n")},
    {S("a"), S("a\r\n.\r\n")},
    {S("a\r\nb"), S("a\r\nb\r\n.\r\n")},
    {S("\r\n"), S("\r\n.\r\n")},
    /* stuffing (RFC 5321 4.5.2) */
    {S("."), S("..\r\n.\r\n")},
    {S(".."), S("...\r\n.\r\n")},
    {S(".\r\n"), S("..\r\n.\r\n")},
    {S("..\r\n"), S("...\r\n.\r\n")},
    {S(".a\r\n"), S("..a\r\n.\r\n")},
    {S("a.\r\n"), S("a.\r\n.\r\n")},
    {S("a.b\r\n.c\r\n"), S("a.b\r\n..c\r\n.\r\n")},
    {S("a\r\n.\r\nb\r\n"), S("a\r\n..\r\nb\r\n.\r\n")},
    {S("a\r\n."), S("a\r\n..\r\n.\r\n")},
    {S("\r\n.\r\n"), S("\r\n..\r\n.\r\n")},
    {S(".\r\n.\r\n"), S("..\r\n..\r\n.\r\n")},
    {S("a\r\n\r\n.\r\n\r\n"), S("a\r\n\r\n..\r\n\r\n.\r\n")},
    /* bare LF and bare CR become CRLF, and a dot after them is stuffed */
    {S("\n"), S("\r\n.\r\n")},
    {S("a\n.\nb"), S("a\r\n..\r\nb\r\n.\r\n")},
    {S("a\r.\rb"), S("a\r\n..\r\nb\r\n.\r\n")},
    {S("a\r"), S("a\r\n.\r\n")},
    {S("\r"), S("\r\n.\r\n")},
    {S("\r\r\n."), S("\r\n\r\n..\r\n.\r\n")},
    {S("\n\r\n.\n"), S("\r\n\r\n..\r\n.\r\n")},
    {S("\n\r."), S("\r\n\r\n..\r\n.\r\n")},
    {S("a\r\n.\r"), S("a\r\n..\r\n.\r\n")},
    {S("a\r\n.\n"), S("a\r\n..\r\n.\r\n")},
    /* NUL and other octets pass */
    {S("\0.\r\n"), S("\0.\r\n.\r\n")},
    {S("\xff.\x01"), S("\xff.\x01\r\n.\r\n")},
};

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct stuff_case *t = &cases[i];
		struct out o = stuff_all_splits(t->in, t->len);
		if (o.len != t->out_len || memcmp(o.buf, t->out, o.len) != 0)
			fail_msg("case %zu: got \"%.*s\"", i, (int)o.len, o.buf);
		free(o.buf);
	}
}

/* The documented worst cases are reached, and not passed. */
static void test_bounds(void **state)
{
	struct out o = stuff(S("."), NULL, 0);
	assert_int_equal(o.len, 2 * 1 + 5);
	free(o.buf);

	/* every octet doubles within one call */
	char in[64];
	memset(in, '\n', sizeof(in));
	struct smtp_dotstuff ds;
	char out[2 * sizeof(in)];
	smtp_dotstuff_init(&ds);
	assert_int_equal(smtp_dotstuff_feed(&ds, in, sizeof(in), out), SMTP_DOTSTUFF_FEED_MAX(64));
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = i % 2 ? '\r' : '.';
	smtp_dotstuff_init(&ds);
	assert_int_equal(smtp_dotstuff_feed(&ds, in, sizeof(in), out), SMTP_DOTSTUFF_FEED_MAX(64));
	/* a CR at the end of one chunk holds nothing back */
	smtp_dotstuff_init(&ds);
	assert_int_equal(smtp_dotstuff_feed(&ds, "a\r", 2, out), 3);
	assert_memory_equal(out, "a\r\n", 3);
	assert_int_equal(smtp_dotstuff_feed(&ds, "\n.", 2, out), 2);
	assert_memory_equal(out, "..", 2);
}

/* reference - the message our own parser must read back: every bare CR and
 * bare LF a CRLF, CRLF kept, and a CRLF added at the end if missing. */
static size_t reference(const char *in, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r') {
			if (i + 1 < len && in[i + 1] == '\n')
				i++;
			out[n++] = '\r';
			out[n++] = '\n';
		} else if (in[i] == '\n') {
			out[n++] = '\r';
			out[n++] = '\n';
		} else {
			out[n++] = in[i];
		}
	}
	if (n > 0 && !(n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n')) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	return n;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * The property: for any input and any chunking, our own DATA parser reads
 * the output as exactly one message that ends at the very last octet (so no
 * "<CRLF>.<CRLF>" hides anywhere before it), with no bare CR or LF in it,
 * and unstuffs it back to the reference message.
 */
static void test_property_against_smtp_data(void **state)
{
	static const char alphabet[] = "..\r\n\r\na\0";
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	char in[48];
	char ref[2 * sizeof(in) + 2];

	for (int iter = 0; iter < 30000; iter++) {
		size_t len = rnd(&seed) % (sizeof(in) + 1);
		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
		size_t cuts[4], ncuts = 0;
		size_t at = 0;
		while (ncuts < 4 && len > at + 1) {
			at += 1 + rnd(&seed) % (len - at - 1);
			if (at >= len)
				break;
			cuts[ncuts++] = at;
		}
		struct out o = stuff(in, len, cuts, ncuts);

		struct smtp_data d;
		char *msg = malloc(o.len + 2);
		size_t msg_len, consumed;
		smtp_data_init(&d, SMTP_DATA_DOT);
		enum smtp_data_result r =
		    smtp_data_feed(&d, o.buf, o.len, msg, &msg_len, &consumed);
		if (r != SMTP_DATA_END || consumed != o.len)
			fail_msg("iteration %d: end at %zu of %zu", iter, consumed, o.len);
		assert_int_equal(d.errors & (SMTP_DATA_ERR_BARE_LF | SMTP_DATA_ERR_BARE_CR), 0);
		size_t ref_len = reference(in, len, ref);
		if (msg_len != ref_len || memcmp(msg, ref, ref_len) != 0)
			fail_msg("iteration %d: read back differs", iter);
		free(msg);
		free(o.buf);
	}
}

/* A large message in 4 KiB chunks: the line structure survives. */
static void test_large(void **state)
{
	size_t len = 1 << 20;
	char *in = malloc(len);
	for (size_t i = 0; i < len; i++)
		in[i] = i % 78 == 76 ? '\r' : i % 78 == 77 ? '\n' : i % 78 == 0 ? '.' : 'x';
	size_t ncuts = len / 4096 - 1;
	size_t *cuts = malloc(ncuts * sizeof(*cuts));
	for (size_t k = 0; k < ncuts; k++)
		cuts[k] = (k + 1) * 4096 - 1; /* odd offsets: splits CRLFs */
	struct out o = stuff(in, len, cuts, ncuts);
	size_t lines = (len + 77) / 78;
	/* every line starts with a dot: one more each; the message ends
	 * mid-line, so CRLF . CRLF */
	assert_int_equal(o.len, len + lines + 5);
	free(cuts);
	free(in);
	free(o.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_property_against_smtp_data),
	    cmocka_unit_test(test_large),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
