/* SPDX-License-Identifier: ISC */
/*
 * smtp_sasl.h - decoding the SASL PLAIN (RFC 4616) and LOGIN responses of
 * SMTP AUTH (RFC 4954).
 *
 * Owns: what a well-formed response is. Credentials are copied into fixed
 * buffers that the caller wipes (explicit_bzero) as soon as they are used.
 * Does not own: checking them (the account database does).
 * Pure. Any thread.
 */
#ifndef DETOUR_SMTP_SASL_H
#define DETOUR_SMTP_SASL_H

#include <stddef.h>

/* Longest user name and password accepted. */
#define SASL_USER_MAX     256
#define SASL_PASSWORD_MAX 1024

enum sasl_result {
	SASL_OK,
	SASL_BAD_BASE64, /* not canonical base64 (501 5.5.2) */
	SASL_MALFORMED,  /* decoded, but not a valid response (501 5.5.2) */
	SASL_CANCELLED,  /* "*" (501 5.0.0) */
	SASL_AUTHZID,    /* well formed, but asks to act as another user (535 5.7.8) */
};

struct sasl_credentials {
	char user[SASL_USER_MAX + 1];
	char password[SASL_PASSWORD_MAX + 1];
};

/* sasl_plain_decode - "[authzid] NUL authcid NUL passwd" in base64. An
 * authorization identity other than empty or the user itself is refused:
 * nobody may act for another account. */
enum sasl_result sasl_plain_decode(const char *b64, size_t len, struct sasl_credentials *cred_r);

/* sasl_login_decode - one base64 field of AUTH LOGIN (user or password)
 * into out (size bytes incl. NUL). */
enum sasl_result sasl_login_decode(const char *b64, size_t len, char *out, size_t size);

#endif
