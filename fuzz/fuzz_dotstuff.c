/* SPDX-License-Identifier: ISC */
/*
 * fuzz_dotstuff.c - the dot-stuffer the client sends messages through
 * (src/smtp/smtp_dotstuff.c), checked against our own receiver
 * (src/smtp/smtp_data.c): a round trip.
 *
 * Input: byte 0: bits 0-1 the piece size class for the stuffer, bits 2-3
 * for the receiver; bytes 1..4 seed the split points; the rest is a stored
 * message, any octets. Properties:
 *   - each feed writes at most SMTP_DOTSTUFF_FEED_MAX(len), finish at most
 *     SMTP_DOTSTUFF_FINISH_MAX; in_len and out_len count what went through;
 *   - the output is the same whatever the split points;
 *   - smtp_data reads it back to END exactly at its last octet (so nothing
 *     in a message can end the data early: SMTP smuggling), with no bare CR
 *     or bare LF flagged, and the message it yields is the input with line
 *     ends made CRLF (a bare CR or LF becomes CRLF, CR LF stays) and a CRLF
 *     added when the input did not end with a line end. For an input with
 *     CRLF line ends only, ending in CRLF (or empty), that is the input
 *     itself.
 */
#include <stdbool.h>

#include "smtp/smtp_data.h"
#include "smtp/smtp_dotstuff.h"
#include "fuzz.h"

/* stuff - the stuffer over s[0..n), in pieces; returns a malloc'ed
 * buffer and its length. */
static char *stuff(const char *s, size_t n, struct fuzz_rng *rng, size_t chunk_max, size_t *len_r)
{
	struct smtp_dotstuff ds;
	char *all = xmalloc(2 * n + SMTP_DOTSTUFF_FINISH_MAX + 1);
	size_t total = 0, pos = 0;

	smtp_dotstuff_init(&ds);
	while (pos < n) {
		size_t len = fuzz_chunk(rng, chunk_max, n - pos);
		char *in = fuzz_dup(s + pos, len);
		char *out = xmalloc(SMTP_DOTSTUFF_FEED_MAX(len));
		size_t w = smtp_dotstuff_feed(&ds, in, len, out);
		FUZZ_CHECK(w <= SMTP_DOTSTUFF_FEED_MAX(len), "feed of %zu wrote %zu", len, w);
		memcpy(all + total, out, w);
		total += w;
		pos += len;
		free(out);
		free(in);
	}
	char *fin = xmalloc(SMTP_DOTSTUFF_FINISH_MAX);
	size_t w = smtp_dotstuff_finish(&ds, fin);
	FUZZ_CHECK(w <= SMTP_DOTSTUFF_FINISH_MAX, "finish wrote %zu", w);
	memcpy(all + total, fin, w);
	total += w;
	free(fin);
	FUZZ_CHECK(ds.in_len == n && ds.out_len == total, "counted %llu in, %llu out; was %zu, %zu",
	           (unsigned long long)ds.in_len, (unsigned long long)ds.out_len, n, total);
	*len_r = total;
	return all;
}

/* normalize - what the receiver must see: CRLF line ends, one added at the
 * end if missing (nothing for an empty message). */
static char *normalize(const char *s, size_t n, size_t *len_r)
{
	char *o = xmalloc(2 * n + 2 + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			o[k++] = '\r';
			o[k++] = '\n';
			if (i + 1 < n && s[i + 1] == '\n')
				i++;
		} else if (s[i] == '\n') {
			o[k++] = '\r';
			o[k++] = '\n';
		} else {
			o[k++] = s[i];
		}
	}
	if (k > 0 && !(k >= 2 && o[k - 2] == '\r' && o[k - 1] == '\n')) {
		o[k++] = '\r';
		o[k++] = '\n';
	}
	*len_r = k;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rng rng;
	const char *s;
	size_t n;
	if (!fuzz_split_input(data, size, 65536, &rng, &s, &n))
		return 0;
	unsigned mode = data[0];

	size_t wire_len, split_len;
	char *wire = stuff(s, n, NULL, 0, &wire_len);
	char *split = stuff(s, n, &rng, fuzz_chunk_max(mode), &split_len);
	FUZZ_CHECK(wire_len == split_len && memcmp(wire, split, wire_len) == 0,
	           "stuffing depends on the split points");
	FUZZ_CHECK(wire_len <= 2 * n + 5, "%zu octets became %zu", n, wire_len);

	/* Read it back as detour's server would. */
	struct smtp_data d;
	char *msg = xmalloc(wire_len + 2);
	size_t msg_len = 0, pos = 0;
	bool ended = false;
	smtp_data_init(&d, SMTP_DATA_DOT);
	while (pos < wire_len && !ended) {
		size_t len = fuzz_chunk(&rng, fuzz_chunk_max(mode >> 2), wire_len - pos);
		char *in = fuzz_dup(wire + pos, len);
		char *out = xmalloc(len + 2);
		size_t out_len, used;
		ended = smtp_data_feed(&d, in, len, out, &out_len, &used) == SMTP_DATA_END;
		memcpy(msg + msg_len, out, out_len);
		msg_len += out_len;
		pos += used;
		free(out);
		free(in);
	}
	FUZZ_CHECK(ended, "the receiver did not find the end of the data");
	FUZZ_CHECK(pos == wire_len, "the data ended at %zu of %zu: smuggling", pos, wire_len);
	FUZZ_CHECK((d.errors & (SMTP_DATA_ERR_BARE_CR | SMTP_DATA_ERR_BARE_LF)) == 0,
	           "the receiver saw bare CR/LF (errors %#x)", d.errors);

	size_t want_len;
	char *want = normalize(s, n, &want_len);
	FUZZ_CHECK(msg_len == want_len && memcmp(msg, want, want_len) == 0,
	           "read back %zu octets, expected %zu", msg_len, want_len);
	if (n == 0 || (n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n')) {
		bool crlf_only = true;
		for (size_t i = 0; i < n && crlf_only; i++)
			if ((s[i] == '\r') != (i + 1 < n && s[i + 1] == '\n') ||
			    (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')))
				crlf_only = false;
		if (crlf_only)
			FUZZ_CHECK(msg_len == n && memcmp(msg, s, n) == 0,
			           "a CRLF message did not come back unchanged");
	}
	free(want);
	free(msg);
	free(split);
	free(wire);
	return 0;
}
