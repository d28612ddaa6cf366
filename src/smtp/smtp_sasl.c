/* SPDX-License-Identifier: ISC */
/* smtp_sasl.c - see smtp_sasl.h */
#include "smtp/smtp_sasl.h"

#include <string.h>

#include "lib/base64.h"
#include "lib/limits.h"

/* Decoded responses are at most this long (they fit in an AUTH line). */
#define SASL_DECODED_MAX (SMTP_AUTHLINE_MAX / 4 * 3)

static enum sasl_result decode(const char *b64, size_t len, unsigned char *out, size_t *n_r)
{
	if (len == 1 && b64[0] == '*')
		return SASL_CANCELLED;
	/* RFC 4954 4: "=" is an empty initial response. */
	if (len == 1 && b64[0] == '=') {
		*n_r = 0;
		return SASL_OK;
	}
	long n = base64_decode(b64, len, out, SASL_DECODED_MAX);
	if (n < 0)
		return SASL_BAD_BASE64;
	*n_r = (size_t)n;
	return SASL_OK;
}

/* text_ok - a user name or password: no NUL, no CR or LF. */
static int text_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\0' || p[i] == '\r' || p[i] == '\n')
			return 0;
	return 1;
}

enum sasl_result sasl_plain_decode(const char *b64, size_t len, struct sasl_credentials *cred_r)
{
	unsigned char buf[SASL_DECODED_MAX];
	size_t n;
	enum sasl_result r = decode(b64, len, buf, &n);
	if (r != SASL_OK)
		return r;
	r = SASL_MALFORMED;
	unsigned char *nul1 = memchr(buf, '\0', n);
	if (nul1 == NULL)
		goto out;
	unsigned char *user = nul1 + 1;
	unsigned char *nul2 = memchr(user, '\0', n - (size_t)(user - buf));
	if (nul2 == NULL)
		goto out;
	unsigned char *pass = nul2 + 1;
	size_t zlen = (size_t)(nul1 - buf), ulen = (size_t)(nul2 - user);
	size_t plen = n - (size_t)(pass - buf);
	if (ulen == 0 || ulen > SASL_USER_MAX || plen == 0 || plen > SASL_PASSWORD_MAX ||
	    !text_ok(user, ulen) || !text_ok(pass, plen) || !text_ok(buf, zlen))
		goto out;
	if (zlen != 0 && (zlen != ulen || memcmp(buf, user, ulen) != 0)) {
		r = SASL_AUTHZID;
		goto out;
	}
	memcpy(cred_r->user, user, ulen);
	cred_r->user[ulen] = '\0';
	memcpy(cred_r->password, pass, plen);
	cred_r->password[plen] = '\0';
	r = SASL_OK;
out:
	explicit_bzero(buf, sizeof(buf));
	return r;
}

enum sasl_result sasl_login_decode(const char *b64, size_t len, char *out, size_t size)
{
	unsigned char buf[SASL_DECODED_MAX];
	size_t n;
	enum sasl_result r = decode(b64, len, buf, &n);
	if (r != SASL_OK)
		return r;
	r = SASL_MALFORMED;
	if (n > 0 && n < size && text_ok(buf, n)) {
		memcpy(out, buf, n);
		out[n] = '\0';
		r = SASL_OK;
	}
	explicit_bzero(buf, sizeof(buf));
	return r;
}
