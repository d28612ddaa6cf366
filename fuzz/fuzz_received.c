/* SPDX-License-Identifier: ISC */
/*
 * fuzz_received.c - counting the Received: headers of a message as it
 * arrives (received_counter, src/server/received.c), the mail-loop check.
 *
 * Input: byte 0 picks the piece size class, bytes 1..4 seed the split
 * points; the rest is the start of a message. Properties: the count and the
 * end-of-headers flag are the same fed whole, one byte at a time and in
 * random pieces, and equal a plain model: lines end at LF, CR octets are
 * not looked at, the header section ends at the first empty line, and a
 * header counts when its line starts with "Received:" in any case. The
 * count never exceeds the number of lines.
 */
#include <stdbool.h>

#include "server/received.h"
#include "fuzz.h"

static void model(const char *s, size_t n, unsigned *count_r, bool *done_r)
{
	static const char name[] = "received:";
	unsigned count = 0;
	size_t i = 0;

	*done_r = false;
	while (i < n) {
		/* One line without its CRs, up to LF or the end. */
		char line[sizeof(name)];
		size_t k = 0;
		bool any = false;
		for (; i < n && s[i] != '\n'; i++) {
			if (s[i] == '\r')
				continue;
			any = true;
			if (k < sizeof(name) - 1) {
				char c = s[i];
				line[k++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
			}
		}
		bool lf = i < n;
		if (lf && !any) {
			*done_r = true;
			break;
		}
		if (k == sizeof(name) - 1 && memcmp(line, name, k) == 0)
			count++;
		i++; /* the LF */
	}
	*count_r = count;
}

static void feed(const char *s, size_t n, struct fuzz_rng *rng, size_t chunk_max,
                 struct received_counter *rc)
{
	size_t pos = 0;

	received_counter_init(rc);
	while (pos < n) {
		size_t len = fuzz_chunk(rng, chunk_max, n - pos);
		char *p = fuzz_dup(s + pos, len);
		received_counter_feed(rc, p, len);
		free(p);
		pos += len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rng rng;
	const char *s;
	size_t n;
	if (!fuzz_split_input(data, size, 16384, &rng, &s, &n))
		return 0;
	size_t chunk_max = fuzz_chunk_max(data[0]);
	struct received_counter whole, bytes, split;

	feed(s, n, NULL, 0, &whole);
	feed(s, n, &rng, 1, &bytes);
	feed(s, n, &rng, chunk_max, &split);
	FUZZ_CHECK(whole.count == bytes.count && whole.done == bytes.done,
	           "whole %u/%d, byte at a time %u/%d", whole.count, whole.done, bytes.count,
	           bytes.done);
	FUZZ_CHECK(whole.count == split.count && whole.done == split.done,
	           "whole %u/%d, split %u/%d", whole.count, whole.done, split.count, split.done);

	unsigned count;
	bool done;
	model(s, n, &count, &done);
	FUZZ_CHECK(whole.count == count && whole.done == done, "counted %u/%d, model %u/%d",
	           whole.count, whole.done, count, done);
	size_t lines = 1;
	for (size_t i = 0; i < n; i++)
		lines += s[i] == '\n';
	FUZZ_CHECK(whole.count <= lines, "%u Received: in %zu lines", whole.count, lines);
	return 0;
}
