/* SPDX-License-Identifier: ISC */
/*
 * fuzz_bounce_sanitize.c - bounce_sanitize (src/delivery/bounce.c), which
 * makes a remote server's reply safe to put in a delivery status
 * notification.
 *
 * Input: byte 0 picks the output size (0..255, and 513 for the size the
 * bounce composer uses), the rest is the text (cut at its first NUL, as a C
 * string is). Properties: the output is NUL-terminated within size, holds no
 * control character (C0 or DEL: no CR, LF, TAB, ESC), no leading, trailing
 * or doubled space; sanitizing is idempotent; a small output is the large
 * one cut to size (then trimmed), so truncation never changes a byte.
 */
#include <stdbool.h>

#include "delivery/bounce.h"
#include "fuzz.h"

#define BIG 70000

static void check_clean(const char *out, size_t size)
{
	size_t n = strnlen(out, size);

	FUZZ_CHECK(n < size, "output not terminated within %zu bytes", size);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control 0x%02x at %zu of \"%s\"", c, i, out);
		if (c == ' ') {
			FUZZ_CHECK(i > 0 && i + 1 < n, "leading or trailing space at %zu", i);
			FUZZ_CHECK(out[i + 1] != ' ', "two spaces at %zu", i);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > BIG - 1)
		return 0;
	size_t out_size = data[0] == 255 ? BOUNCE_DIAGNOSTIC_MAX + 1 : data[0];
	char *text = xstrndup((const char *)data + 1, size - 1);
	char *out = xmalloc(out_size);
	char *big = xmalloc(BIG);
	char *again = xmalloc(BIG);

	/* A size of 0 writes nothing: leave a canary to check. */
	out[0] = 'X';
	bounce_sanitize(text, out, out_size);
	if (out_size == 0) {
		FUZZ_CHECK(out[0] == 'X', "size 0 wrote a byte");
		goto done;
	}
	check_clean(out, out_size);

	bounce_sanitize(text, big, BIG);
	check_clean(big, BIG);
	size_t big_len = strlen(big);
	FUZZ_CHECK(big_len <= strlen(text), "output longer than the input");

	/* Idempotent. */
	bounce_sanitize(big, again, BIG);
	FUZZ_CHECK(strcmp(big, again) == 0, "not idempotent: \"%s\" -> \"%s\"", big, again);

	/* The small output is the big one cut at size - 1, then trimmed. */
	size_t cut = big_len < out_size - 1 ? big_len : out_size - 1;
	while (cut > 0 && big[cut - 1] == ' ')
		cut--;
	FUZZ_CHECK(strlen(out) == cut && memcmp(out, big, cut) == 0,
	           "size %zu gives \"%s\", expected the first %zu bytes of \"%s\"", out_size, out,
	           cut, big);
done:
	free(again);
	free(big);
	free(out);
	free(text);
	return 0;
}
