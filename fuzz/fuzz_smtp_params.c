/* SPDX-License-Identifier: ISC */
/*
 * fuzz_smtp_params.c - ESMTP parameters of MAIL and RCPT and the xtext codec
 * (src/smtp/smtp_params.c): the place where CR, LF or NUL could be smuggled
 * into a stored envelope.
 *
 * Input: byte 0 is the set of advertised extensions (SMTP_EXT_*), byte 1
 * picks the output size for the bounded xtext calls; the rest is the
 * parameter text as it follows the path. Properties: MAIL and RCPT either
 * succeed with values that hold no control octet (C0, DEL) and respect their
 * limits, or fail with a defined reply and an all-zero result; a parameter
 * of an extension that was not advertised is never accepted. xtext: what
 * decodes has no control octet and re-encodes to text that decodes to the
 * same value (and encoding is canonical: encode(decode(encode(x))) is
 * encode(x)); any octets without controls survive encode then decode; the
 * bounded calls never write past their size and leave "" on failure.
 */
#include <stdbool.h>

#include "lib/limits.h"
#include "smtp/smtp_params.h"
#include "smtp/smtp_reply.h"
#include "fuzz.h"

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static void check_text(const char *s, size_t size, const char *what)
{
	size_t n = strnlen(s, size);
	FUZZ_CHECK(n < size, "%s not terminated", what);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(!is_control((unsigned char)s[i]), "%s holds 0x%02x at %zu", what,
		           (unsigned char)s[i], i);
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static bool has_param(const char *s, size_t len, const char *key)
{
	/* Case-insensitive "KEY" at a word start followed by '=' or the end
	 * of the word: a coarse look, good enough to say "was it there". */
	size_t k = strlen(key);
	for (size_t i = 0; i + k <= len; i++) {
		if ((i == 0 || s[i - 1] == ' ') && strncasecmp(s + i, key, k) == 0 &&
		    (i + k == len || s[i + k] == '=' || s[i + k] == ' '))
			return true;
	}
	return false;
}

static void check_mail(const char *s, size_t len, unsigned ext)
{
	struct smtp_mail_params mp;
	enum smtp_reply_id err = SMTP_R_COUNT;

	memset(&mp, 0xa5, sizeof(mp));
	int r = smtp_params_parse_mail(s, len, ext, &mp, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -1 && err < SMTP_R_COUNT, "MAIL error %d, reply %d", r, (int)err);
		FUZZ_CHECK(all_zero(&mp, sizeof(mp)), "refused MAIL left values behind");
		return;
	}
	FUZZ_CHECK(r == 0, "MAIL returned %d", r);
	check_text(mp.envid, sizeof(mp.envid), "ENVID");
	check_text(mp.auth, sizeof(mp.auth), "AUTH");
	FUZZ_CHECK(strlen(mp.envid) <= SMTP_ENVID_MAX, "ENVID of %zu", strlen(mp.envid));
	FUZZ_CHECK(mp.body <= SMTP_BODY_8BITMIME && mp.ret <= SMTP_RET_HDRS, "enum out of range");
	FUZZ_CHECK(!mp.has_size || (ext & SMTP_EXT_SIZE), "SIZE without the extension");
	FUZZ_CHECK(mp.body == SMTP_BODY_UNSPECIFIED || (ext & SMTP_EXT_8BITMIME),
	           "BODY without 8BITMIME");
	FUZZ_CHECK(!mp.smtputf8 || (ext & SMTP_EXT_SMTPUTF8), "SMTPUTF8 not advertised");
	FUZZ_CHECK((mp.ret == SMTP_RET_UNSPECIFIED && mp.envid[0] == '\0') || (ext & SMTP_EXT_DSN),
	           "DSN parameters without DSN");
	FUZZ_CHECK(!mp.has_auth || (ext & SMTP_EXT_AUTH), "AUTH= without AUTH");
	/* Accepted with some extensions: accepted with all of them too. */
	struct smtp_mail_params all;
	FUZZ_CHECK(smtp_params_parse_mail(s, len, SMTP_EXT_ALL, &all, &err) == 0 &&
	               memcmp(&all, &mp, sizeof(all)) == 0,
	           "MAIL accepted with %#x but not the same with all extensions", ext);
	/* A keyword of an extension not advertised was refused. */
	static const struct {
		const char *key;
		unsigned ext;
	} keys[] = {{"SIZE", SMTP_EXT_SIZE},         {"BODY", SMTP_EXT_8BITMIME},
	            {"SMTPUTF8", SMTP_EXT_SMTPUTF8}, {"RET", SMTP_EXT_DSN},
	            {"ENVID", SMTP_EXT_DSN},         {"AUTH", SMTP_EXT_AUTH}};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		FUZZ_CHECK((ext & keys[i].ext) || !has_param(s, len, keys[i].key),
		           "%s accepted without its extension", keys[i].key);
}

static void check_rcpt(const char *s, size_t len, unsigned ext)
{
	struct smtp_rcpt_params rp;
	enum smtp_reply_id err = SMTP_R_COUNT;

	memset(&rp, 0xa5, sizeof(rp));
	int r = smtp_params_parse_rcpt(s, len, ext, &rp, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -1 && err < SMTP_R_COUNT, "RCPT error %d, reply %d", r, (int)err);
		FUZZ_CHECK(all_zero(&rp, sizeof(rp)), "refused RCPT left values behind");
		return;
	}
	FUZZ_CHECK(r == 0, "RCPT returned %d", r);
	check_text(rp.orcpt, sizeof(rp.orcpt), "ORCPT");
	FUZZ_CHECK((rp.notify == 0 && rp.orcpt[0] == '\0') || (ext & SMTP_EXT_DSN),
	           "DSN parameters without DSN");
	FUZZ_CHECK((rp.notify & ~0xfu) == 0, "NOTIFY bits %#x", rp.notify);
	FUZZ_CHECK(!(rp.notify & SMTP_NOTIFY_NEVER) || rp.notify == SMTP_NOTIFY_NEVER,
	           "NEVER with other NOTIFY values");
	if (rp.orcpt[0] != '\0') {
		const char *semi = strchr(rp.orcpt, ';');
		FUZZ_CHECK(semi != NULL && semi != rp.orcpt && semi[1] != '\0',
		           "ORCPT \"%s\" is not type;address", rp.orcpt);
	}
}

/* xtext_codec - the properties of decode and encode on s[0..len). */
static void xtext_codec(const char *s, size_t len, size_t small)
{
	size_t big = 3 * len + 1;
	char *dec = xmalloc(big), *enc = xmalloc(big), *dec2 = xmalloc(big), *enc2 = xmalloc(big);
	char *tiny = xmalloc(small);

	int d = smtp_xtext_decode(s, len, dec, big);
	if (d >= 0) {
		FUZZ_CHECK((size_t)d <= len && strlen(dec) == (size_t)d, "decoded %d of %zu", d,
		           len);
		check_text(dec, big, "decoded xtext");
		int e = smtp_xtext_encode(dec, (size_t)d, enc, big);
		FUZZ_CHECK(e >= 0 && strlen(enc) == (size_t)e, "re-encode failed");
		int d2 = smtp_xtext_decode(enc, (size_t)e, dec2, big);
		FUZZ_CHECK(d2 == d && memcmp(dec, dec2, (size_t)d) == 0,
		           "decode(encode(decode(s))) != decode(s)");
		int e2 = smtp_xtext_encode(dec2, (size_t)d2, enc2, big);
		FUZZ_CHECK(e2 == e && strcmp(enc, enc2) == 0, "encoding not canonical");
	} else {
		FUZZ_CHECK(d == -1 && dec[0] == '\0', "failed decode returned %d, left \"%s\"", d,
		           dec);
	}

	/* Any octets: encode is total (given room) and its output is xtext
	 * that decodes back unless the octets held a control. */
	int e = smtp_xtext_encode(s, len, enc, big);
	FUZZ_CHECK(e >= 0 && (size_t)e <= 3 * len && strlen(enc) == (size_t)e,
	           "encode of %zu octets: %d", len, e);
	for (int i = 0; i < e; i++) {
		unsigned char c = (unsigned char)enc[i];
		FUZZ_CHECK(c >= 33 && c <= 126 && c != '=', "encoded octet 0x%02x", c);
	}
	bool controls = memchr(s, '\0', len) != NULL;
	for (size_t i = 0; i < len; i++)
		controls |= is_control((unsigned char)s[i]);
	int back = smtp_xtext_decode(enc, (size_t)e, dec2, big);
	if (controls)
		FUZZ_CHECK(back == -1, "a control octet survived encode then decode");
	else
		FUZZ_CHECK(back == (int)len && memcmp(dec2, s, len) == 0,
		           "encode then decode lost octets");

	/* Bounded: same answer when it fits, -1 and "" when it does not. */
	memset(tiny, 'Z', small ? small : 1);
	int t = smtp_xtext_decode(s, len, tiny, small);
	if (small == 0)
		FUZZ_CHECK(t == -1, "decode into 0 bytes returned %d", t);
	else if (d >= 0 && (size_t)d < small)
		FUZZ_CHECK(t == d && memcmp(tiny, dec, (size_t)d + 1) == 0,
		           "bounded decode differs");
	else
		FUZZ_CHECK(t == -1 && tiny[0] == '\0', "bounded decode returned %d", t);
	memset(tiny, 'Z', small ? small : 1);
	t = smtp_xtext_encode(s, len, tiny, small);
	if (small == 0)
		FUZZ_CHECK(t == -1, "encode into 0 bytes returned %d", t);
	else if ((size_t)e < small)
		FUZZ_CHECK(t == e && memcmp(tiny, enc, (size_t)e + 1) == 0,
		           "bounded encode differs");
	else
		FUZZ_CHECK(t == -1 && tiny[0] == '\0', "bounded encode returned %d", t);

	free(tiny);
	free(enc2);
	free(dec2);
	free(enc);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 8192)
		return 0;
	unsigned ext = data[0] & SMTP_EXT_ALL;
	size_t small = data[1];
	char *s = fuzz_dup(data + 2, size - 2);
	size_t len = size - 2;

	check_mail(s, len, ext);
	check_rcpt(s, len, ext);
	xtext_codec(s, len, small);
	free(s);
	return 0;
}
