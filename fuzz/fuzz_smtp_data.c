/* SPDX-License-Identifier: ISC */
/*
 * fuzz_smtp_data.c - the message-data state machine (src/smtp/smtp_data.c):
 * where a message ends, dot-unstuffing, and the bare CR / bare LF / NUL /
 * long-line flags that refuse a message (SMTP smuggling).
 *
 * Input: byte 0: bit 0 the mode (DATA or BDAT chunk), bits 1-2 the size
 * class of the pieces, bits 3-4 how many bytes of room are spared beyond
 * the contract (none, so ASan sees any overrun); bytes 1..4 seed the split
 * points; the rest is what the client sends after DATA (or in BDAT chunks).
 * Properties, checked against a plain reference model written here from
 * RFC 5321 4.1.1.4 / 4.5.2:
 *   - each call writes at most len + 2 octets and takes all of its input
 *     unless it returns END; out_len counts what was written;
 *   - END is returned exactly when CRLF "." CRLF (the first CRLF may be the
 *     implicit one before the data) is complete, consumed ends just after
 *     it, and never anywhere else: no bare CR/LF variant ends the data;
 *   - the output is the input up to that point, dot-unstuffed, without
 *     the final "." line; in BDAT mode it is the input, unchanged;
 *   - the error flags are exactly those of the reference;
 *   - feeding the input whole and in random pieces gives the same result.
 */
#include <stdbool.h>

#include "lib/limits.h"
#include "smtp/smtp_data.h"
#include "fuzz.h"

struct outcome {
	bool ended;
	size_t consumed;
	unsigned errors;
	char *out;
	size_t out_len;
	uint64_t counted;
};

/* reference - the model: where the data ends, what comes out, what is
 * flagged. Lines end only in CRLF. */
static void reference(bool dot, const char *s, size_t n, struct outcome *o)
{
	size_t end = n; /* octets of s that belong to the message */

	o->ended = false;
	if (dot) {
		/* The first CRLF "." CRLF in CRLF + s. */
		for (size_t k = 0; k + 3 <= n + 2; k++) {
			/* position k in CRLF + s */
			char t[5];
			bool fits = k + 5 <= n + 2;
			if (!fits)
				break;
			for (int j = 0; j < 5; j++) {
				size_t p = k + (size_t)j;
				t[j] = p < 2 ? "\r\n"[p] : s[p - 2];
			}
			if (memcmp(t, "\r\n.\r\n", 5) == 0) {
				o->ended = true;
				end = k + 5 - 2;
				break;
			}
		}
	}
	o->consumed = end;
	/* The message proper: without the final ".\r\n". */
	size_t body = o->ended ? end - 3 : end;
	o->out = xmalloc(n + 1);
	o->out_len = 0;
	o->errors = 0;
	bool line_start = dot;
	size_t line_len = 0;
	for (size_t i = 0; i < end; i++) {
		unsigned char c = (unsigned char)s[i];
		bool dropped = false;
		if (line_start && c == '.') {
			/* the stuffed dot: dropped, and not counted */
			dropped = true;
		}
		line_start = false;
		if (c == '\r' && i + 1 < end && s[i + 1] == '\n') {
			/* CRLF: the line ends with the LF */
		} else if (c == '\r' && i + 1 < end) {
			o->errors |= SMTP_DATA_ERR_BARE_CR;
		} else if (c == '\n' && (i == 0 || s[i - 1] != '\r')) {
			o->errors |= SMTP_DATA_ERR_BARE_LF;
		} else if (c == '\0') {
			o->errors |= SMTP_DATA_ERR_NUL;
		}
		if (!dropped) {
			line_len++;
			if (i < body)
				o->out[o->out_len++] = (char)c;
		}
		if (line_len > SMTP_DATALINE_MAX)
			o->errors |= SMTP_DATA_ERR_LONG_LINE;
		if (c == '\n' && i > 0 && s[i - 1] == '\r') {
			line_len = 0;
			line_start = dot;
		}
	}
	/* A CR at the very end waits for its LF (DATA), or is flushed and
	 * called bare by smtp_data_finish (BDAT). */
	if (end > 0 && s[end - 1] == '\r' && !o->ended) {
		if (dot) {
			o->out_len--; /* held back */
		} else {
			o->errors |= SMTP_DATA_ERR_BARE_CR;
		}
	}
	/* A "\r\n." not followed by "\r\n" at the end of the input: the
	 * dropped dot is not output yet either way, nothing to adjust. */
	o->counted = o->out_len;
}

/* run - feed s[0..n) through smtp_data in pieces (or whole). */
static void run(bool dot, const char *s, size_t n, struct fuzz_rng *rng, size_t chunk_max,
                size_t spare, struct outcome *o)
{
	struct smtp_data d;
	size_t pos = 0;

	o->out = xmalloc(n + 3);
	o->out_len = 0;
	o->ended = false;
	smtp_data_init(&d, dot ? SMTP_DATA_DOT : SMTP_DATA_CHUNK);
	FUZZ_CHECK(d.errors == 0 && d.out_len == 0, "init left state");
	while (pos < n && !o->ended) {
		size_t len = fuzz_chunk(rng, chunk_max, n - pos);
		char *in = fuzz_dup(s + pos, len);
		char *out = xmalloc(len + 2 + spare);
		size_t out_len = (size_t)-1, consumed = (size_t)-1;
		uint64_t before = d.out_len;
		enum smtp_data_result r = smtp_data_feed(&d, in, len, out, &out_len, &consumed);
		FUZZ_CHECK(out_len <= len + 2, "wrote %zu for %zu in", out_len, len);
		FUZZ_CHECK(d.out_len == before + out_len, "out_len not counted");
		FUZZ_CHECK(consumed <= len, "consumed %zu of %zu", consumed, len);
		FUZZ_CHECK(r == SMTP_DATA_MORE || r == SMTP_DATA_END, "result %d", (int)r);
		if (r == SMTP_DATA_END) {
			FUZZ_CHECK(dot, "END in CHUNK mode");
			o->ended = true;
		} else {
			FUZZ_CHECK(consumed == len, "MORE took %zu of %zu", consumed, len);
		}
		FUZZ_CHECK(o->out_len + out_len <= n + 2, "more out than in");
		memcpy(o->out + o->out_len, out, out_len);
		o->out_len += out_len;
		pos += consumed;
		free(out);
		free(in);
	}
	if (!dot) {
		char tail[2 + 1];
		size_t t = smtp_data_finish(&d, tail);
		FUZZ_CHECK(t <= 2, "finish wrote %zu", t);
		memcpy(o->out + o->out_len, tail, t);
		o->out_len += t;
	}
	o->consumed = pos;
	o->errors = d.errors;
	o->counted = d.out_len;
}

static void compare(const struct outcome *a, const struct outcome *b, const char *what)
{
	FUZZ_CHECK(a->ended == b->ended, "%s: ended %d vs %d", what, a->ended, b->ended);
	FUZZ_CHECK(a->consumed == b->consumed, "%s: consumed %zu vs %zu", what, a->consumed,
	           b->consumed);
	FUZZ_CHECK(a->errors == b->errors, "%s: errors %#x vs %#x", what, a->errors, b->errors);
	FUZZ_CHECK(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0,
	           "%s: output of %zu vs %zu octets differs", what, a->out_len, b->out_len);
	FUZZ_CHECK(a->counted == b->counted, "%s: out_len %llu vs %llu", what,
	           (unsigned long long)a->counted, (unsigned long long)b->counted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rng rng;
	const char *s;
	size_t n;
	if (!fuzz_split_input(data, size, 65536, &rng, &s, &n))
		return 0;
	unsigned mode = data[0];
	bool dot = (mode & 1) == 0;
	size_t spare = (mode >> 3) & 3;
	struct outcome ref, whole, split;

	reference(dot, s, n, &ref);
	run(dot, s, n, NULL, 0, spare, &whole);
	run(dot, s, n, &rng, fuzz_chunk_max(mode >> 1), spare, &split);
	compare(&ref, &whole, "reference vs whole");
	compare(&whole, &split, "whole vs split");
	if (whole.ended) {
		const char *e = s + whole.consumed;
		FUZZ_CHECK(whole.consumed >= 3 && memcmp(e - 3, ".\r\n", 3) == 0 &&
		               (whole.consumed == 3 || memcmp(e - 5, "\r\n", 2) == 0),
		           "END not after CRLF.CRLF");
	}
	free(ref.out);
	free(whole.out);
	free(split.out);
	return 0;
}
