/* SPDX-License-Identifier: ISC */
/*
 * fuzz_sasl.c - SASL PLAIN and LOGIN responses of SMTP AUTH
 * (src/smtp/smtp_sasl.c) and the strict base64 under them
 * (src/lib/base64.c): the first thing an unauthenticated client reaches.
 *
 * Input: byte 0 picks the LOGIN output size (0..255, or the largest a
 * password may be); the rest is one response line as a client sends it.
 * Properties:
 *   - base64: whatever decodes re-encodes to exactly the input (only
 *     canonical base64 is accepted), and any octets encode to base64 that
 *     decodes back to them; the decoder never writes past its size;
 *   - PLAIN: on OK the user and password are non-empty, within their
 *     limits, without NUL, CR or LF, and the response was exactly
 *     base64("\0user\0password") or base64("user\0user\0password"): no
 *     other authorization identity gets through; AUTHZID only for a
 *     well-formed response whose identity is another user's;
 *   - LOGIN: on OK the value is non-empty, fits, has no NUL, CR or LF, and
 *     re-encodes to the input;
 *   - "*" cancels, and every result is one of the four defined.
 */
#include <stdbool.h>

#include "lib/base64.h"
#include "lib/limits.h"
#include "smtp/smtp_sasl.h"
#include "fuzz.h"

static bool clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return false;
	return true;
}

/* encodes_to - is base64(raw[0..n)) exactly b64[0..len)? */
static bool encodes_to(const unsigned char *raw, size_t n, const char *b64, size_t len)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	char *e = xmalloc(need);
	long k = base64_encode(raw, n, e, need);
	bool same = k >= 0 && (size_t)k == len && memcmp(e, b64, len) == 0;
	free(e);
	return same;
}

static void check_base64(const char *s, size_t len)
{
	size_t room = len / 4 * 3;
	unsigned char *dec = xmalloc(room);
	long n = base64_decode(s, len, dec, room);
	if (n >= 0) {
		FUZZ_CHECK((size_t)n <= room, "decoded %ld into %zu", n, room);
		FUZZ_CHECK(encodes_to(dec, (size_t)n, s, len),
		           "accepted base64 that is not canonical");
		/* One byte short of room is refused, not overrun. */
		if (n > 0) {
			unsigned char *tight = xmalloc((size_t)n - 1);
			FUZZ_CHECK(base64_decode(s, len, tight, (size_t)n - 1) == -1,
			           "decoded %ld octets into %ld", n, n - 1);
			free(tight);
		}
	} else {
		FUZZ_CHECK(n == -1, "decode returned %ld", n);
	}
	free(dec);

	/* Any octets round-trip. */
	size_t need = 4 * ((len + 2) / 3) + 1;
	char *enc = xmalloc(need);
	long e = base64_encode((const unsigned char *)s, len, enc, need);
	FUZZ_CHECK(e >= 0 && (size_t)e == need - 1 && enc[e] == '\0', "encode returned %ld", e);
	FUZZ_CHECK(base64_encode((const unsigned char *)s, len, enc, need - 1) == -1,
	           "encoded into too small a buffer");
	unsigned char *back = xmalloc((size_t)e / 4 * 3 + 1);
	long b = base64_decode(enc, (size_t)e, back, (size_t)e / 4 * 3);
	FUZZ_CHECK(b == (long)len && memcmp(back, s, len) == 0, "encode then decode lost octets");
	free(back);
	free(enc);
}

static void check_plain(const char *s, size_t len)
{
	struct sasl_credentials *cred = xmalloc(sizeof(*cred));
	enum sasl_result r = sasl_plain_decode(s, len, cred);

	FUZZ_CHECK(r <= SASL_AUTHZID, "result %d", (int)r);
	FUZZ_CHECK((r == SASL_CANCELLED) == (len == 1 && s[0] == '*'), "cancel is \"*\" only");
	if (r == SASL_AUTHZID) {
		/* Well formed, with an authorization identity that is not
		 * the user: "authzid NUL user NUL password". */
		size_t room = len / 4 * 3;
		char *raw = xmalloc(room);
		long n = base64_decode(s, len, (unsigned char *)raw, room);
		FUZZ_CHECK(n > 0, "AUTHZID for base64 that does not decode");
		char *nul1 = memchr(raw, '\0', (size_t)n);
		char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(raw + n - nul1 - 1)) : NULL;
		FUZZ_CHECK(nul2 != NULL, "AUTHZID without two NULs");
		size_t zl = (size_t)(nul1 - raw), ul = (size_t)(nul2 - nul1 - 1);
		size_t pl = (size_t)(raw + n - nul2 - 1);
		FUZZ_CHECK(zl > 0 && ul > 0 && ul <= SASL_USER_MAX && pl > 0 &&
		               pl <= SASL_PASSWORD_MAX && clean(raw, zl) && clean(nul1 + 1, ul) &&
		               clean(nul2 + 1, pl),
		           "AUTHZID for a malformed response");
		FUZZ_CHECK(zl != ul || memcmp(raw, nul1 + 1, ul) != 0,
		           "AUTHZID although the identity is the user");
		explicit_bzero(raw, room ? room : 1);
		free(raw);
	}
	if (r == SASL_OK) {
		size_t ul = strnlen(cred->user, sizeof(cred->user));
		size_t pl = strnlen(cred->password, sizeof(cred->password));
		FUZZ_CHECK(ul > 0 && ul <= SASL_USER_MAX && pl > 0 && pl <= SASL_PASSWORD_MAX,
		           "user %zu, password %zu octets", ul, pl);
		FUZZ_CHECK(clean(cred->user, ul) && clean(cred->password, pl), "CR or LF inside");
		/* Rebuild both allowed forms; one must be the input. */
		size_t n = 0;
		unsigned char *raw = xmalloc(2 * ul + pl + 2);
		raw[n++] = '\0';
		memcpy(raw + n, cred->user, ul);
		n += ul;
		raw[n++] = '\0';
		memcpy(raw + n, cred->password, pl);
		n += pl;
		bool ok = encodes_to(raw, n, s, len);
		if (!ok) {
			memcpy(raw, cred->user, ul);
			raw[ul] = '\0';
			memcpy(raw + ul + 1, cred->user, ul);
			raw[2 * ul + 1] = '\0';
			memcpy(raw + 2 * ul + 2, cred->password, pl);
			ok = encodes_to(raw, 2 * ul + 2 + pl, s, len);
		}
		FUZZ_CHECK(ok, "PLAIN accepted \"%s\" with another authorization identity",
		           cred->user);
		free(raw);
	}
	explicit_bzero(cred, sizeof(*cred));
	free(cred);
}

static void check_login(const char *s, size_t len, size_t size)
{
	char *out = xmalloc(size);
	enum sasl_result r = sasl_login_decode(s, len, out, size);

	FUZZ_CHECK(r <= SASL_CANCELLED, "LOGIN result %d", (int)r);
	if (r == SASL_OK) {
		size_t n = strnlen(out, size);
		FUZZ_CHECK(n > 0 && n < size && clean(out, n), "LOGIN value of %zu in %zu", n,
		           size);
		FUZZ_CHECK(encodes_to((const unsigned char *)out, n, s, len),
		           "LOGIN value does not re-encode to the input");
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > SMTP_AUTHLINE_MAX + 1)
		return 0;
	size_t login_size = data[0] == 255 ? SASL_PASSWORD_MAX + 1 : data[0];
	char *s = fuzz_dup(data + 1, size - 1);
	size_t len = size - 1;

	check_base64(s, len);
	check_plain(s, len);
	check_login(s, len, login_size);
	free(s);
	return 0;
}
