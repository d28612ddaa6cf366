/* SPDX-License-Identifier: ISC */
/*
 * fuzz_smtp_reply.c - the client's reply parser (src/smtp/smtp_replyparse.c):
 * everything a remote server sends is read here first.
 *
 * Input: byte 0 picks the piece size class, bytes 1..4 seed the split
 * points; the rest is what a server sends. Properties: every reply has a
 * code 200..599, 1..SMTP_REPLY_LINES_MAX lines, text without CR, LF or NUL
 * and within SMTP_REPLY_TEXT_MAX, line offsets inside the text, an enhanced
 * code that is either empty or "c.s.d" of the reply's class; the octets a
 * reply consumed are whole lines of at most SMTP_REPLYLINE_MAX octets with
 * the same code; once MALFORMED the parser stays so and takes nothing; and
 * the replies and the final error are the same fed whole and in pieces.
 */
#include <stdbool.h>

#include "lib/limits.h"
#include "smtp/smtp_replyparse.h"
#include "fuzz.h"

/* What a run saw, for comparing two runs. */
struct seen {
	size_t nreplies;
	uint32_t hash;   /* of every reply's fields, in order */
	size_t consumed; /* octets before the final state */
	enum smtp_replyparse_error error;
};

static uint32_t mix(uint32_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x01000193u;
	return h;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void check_enhanced(const char *e, int code)
{
	size_t n = strlen(e);
	if (n == 0)
		return;
	FUZZ_CHECK(n >= 5 && n <= SMTP_ENHCODE_MAX && e[0] == '0' + code / 100 && e[1] == '.',
	           "enhanced code \"%s\" for %d", e, code);
	size_t i = 2, d = 0;
	while (is_digit(e[i]))
		i++, d++;
	FUZZ_CHECK(d >= 1 && d <= 3 && e[i] == '.', "enhanced subject in \"%s\"", e);
	i++;
	d = 0;
	while (is_digit(e[i]))
		i++, d++;
	FUZZ_CHECK(d >= 1 && d <= 3 && e[i] == '\0', "enhanced detail in \"%s\"", e);
}

/* check_reply - the reply, and the octets raw[0..n) it was made from. */
static void check_reply(const struct smtp_parsed_reply *r, const char *raw, size_t n)
{
	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX, "%zu lines", r->nlines);
	FUZZ_CHECK(r->text_len <= SMTP_REPLY_TEXT_MAX && strlen(r->text) == r->text_len,
	           "text_len %zu, strlen %zu", r->text_len, strlen(r->text));
	FUZZ_CHECK(!memchr(r->text, '\r', r->text_len) && !memchr(r->text, '\n', r->text_len),
	           "CR or LF in the text");
	check_enhanced(r->enhanced, r->code);
	for (size_t i = 0; i < r->nlines; i++) {
		size_t len;
		const char *t = smtp_replyparse_line(r, i, &len);
		FUZZ_CHECK(t >= r->text && t + len <= r->text + r->text_len, "line %zu outside", i);
		FUZZ_CHECK(len <= SMTP_REPLY_LINETEXT_MAX, "line %zu of %zu", i, len);
	}
	/* The raw octets: nlines lines of the same code, each ending CRLF. */
	char code[4];
	snprintf(code, sizeof(code), "%03d", r->code);
	size_t pos = 0, lines = 0;
	while (pos < n) {
		const char *lf = memchr(raw + pos, '\n', n - pos);
		FUZZ_CHECK(lf != NULL, "reply octets do not end in LF");
		size_t end = (size_t)(lf - raw) + 1;
		FUZZ_CHECK(end - pos >= 5 && end - pos <= SMTP_REPLYLINE_MAX &&
		               raw[end - 2] == '\r',
		           "raw line of %zu octets", end - pos);
		FUZZ_CHECK(memcmp(raw + pos, code, 3) == 0, "raw line without code %s", code);
		bool last = end - pos == 5 || raw[pos + 3] == ' ';
		FUZZ_CHECK(last == (end == n), "last line marker at the wrong place");
		pos = end;
		lines++;
	}
	FUZZ_CHECK(lines == r->nlines, "%zu raw lines, %zu parsed", lines, r->nlines);
}

static void run(const char *s, size_t n, struct fuzz_rng *rng, size_t chunk_max, struct seen *seen)
{
	struct smtp_replyparse *p = xmalloc(sizeof(*p));
	size_t pos = 0, reply_start = 0;
	enum smtp_replyparse_result res = SMTP_REPLYPARSE_MORE;

	smtp_replyparse_init(p);
	memset(seen, 0, sizeof(*seen));
	seen->hash = 2166136261u;
	while (pos < n) {
		size_t len = fuzz_chunk(rng, chunk_max, n - pos);
		char *in = fuzz_dup(s + pos, len);
		size_t off = 0;
		while (off < len) {
			size_t used = (size_t)-1;
			const struct smtp_parsed_reply *r = (const void *)1;
			res = smtp_replyparse_feed(p, in + off, len - off, &used, &r);
			if (res == SMTP_REPLYPARSE_MALFORMED) {
				FUZZ_CHECK(used == 0 && r == NULL, "MALFORMED took %zu", used);
				FUZZ_CHECK(p->error != SMTP_REPLYPARSE_ERR_NONE, "no error set");
				break;
			}
			FUZZ_CHECK(used >= 1 && used <= len - off, "took %zu of %zu", used,
			           len - off);
			off += used;
			if (res == SMTP_REPLYPARSE_MORE) {
				FUZZ_CHECK(off == len && r == NULL, "MORE left octets");
				break;
			}
			FUZZ_CHECK(res == SMTP_REPLYPARSE_REPLY && r != NULL, "result %d",
			           (int)res);
			size_t end = pos + off;
			check_reply(r, s + reply_start, end - reply_start);
			reply_start = end;
			seen->nreplies++;
			seen->hash = mix(seen->hash, &r->code, sizeof(r->code));
			seen->hash = mix(seen->hash, r->enhanced, strlen(r->enhanced));
			seen->hash = mix(seen->hash, &r->nlines, sizeof(r->nlines));
			seen->hash = mix(seen->hash, r->text, r->text_len + 1);
		}
		free(in);
		if (res == SMTP_REPLYPARSE_MALFORMED) {
			pos += off;
			break;
		}
		pos += len;
	}
	if (res == SMTP_REPLYPARSE_MALFORMED) {
		/* Stays failed, takes nothing. */
		size_t used = 1;
		const struct smtp_parsed_reply *r = (const void *)1;
		FUZZ_CHECK(smtp_replyparse_feed(p, "250 ok\r\n", 8, &used, &r) ==
		                   SMTP_REPLYPARSE_MALFORMED &&
		               used == 0 && r == NULL,
		           "a failed parser took more input");
		const char *text = smtp_replyparse_error_text(p->error);
		FUZZ_CHECK(text != NULL && text[0] != '\0', "no error text");
	}
	seen->consumed = pos;
	seen->error = p->error;
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rng rng;
	const char *s;
	size_t n;
	if (!fuzz_split_input(data, size, 131072, &rng, &s, &n))
		return 0;
	struct seen whole, split;

	run(s, n, NULL, 0, &whole);
	run(s, n, &rng, fuzz_chunk_max(data[0]), &split);
	FUZZ_CHECK(whole.nreplies == split.nreplies && whole.hash == split.hash,
	           "%zu replies whole, %zu split (or their contents differ)", whole.nreplies,
	           split.nreplies);
	FUZZ_CHECK(whole.error == split.error, "error %d whole, %d split", (int)whole.error,
	           (int)split.error);
	return 0;
}
