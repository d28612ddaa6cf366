/* SPDX-License-Identifier: ISC */
/*
 * smtp_params.h - ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY
 * (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET, ENVID, NOTIFY and ORCPT
 * (RFC 3461), AUTH (RFC 4954 5), and xtext decoding (RFC 3461 4).
 *
 * Owns: parameter syntax, duplicates, and decoding. Decoded values never
 * contain CR, LF, NUL or other control characters: such values are refused,
 * so nothing smuggled through xtext can reach a stored envelope. Does not
 * own: whether the size is acceptable (the session compares it with the
 * configured limit).
 * Pure: no I/O, no globals. Any thread.
 */
#ifndef DETOUR_SMTP_PARAMS_H
#define DETOUR_SMTP_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/limits.h"
#include "smtp/smtp_reply.h"

/* Extensions the server advertised on this session; a parameter of an
 * extension that was not advertised is refused with 555. */
#define SMTP_EXT_SIZE     0x01
#define SMTP_EXT_8BITMIME 0x02
#define SMTP_EXT_SMTPUTF8 0x04
#define SMTP_EXT_DSN      0x08
#define SMTP_EXT_AUTH     0x10
#define SMTP_EXT_CHUNKING 0x20
/* Every extension above: what a parser test or fuzzer offers. */
#define SMTP_EXT_ALL                                                                               \
	(SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN | SMTP_EXT_AUTH |    \
	 SMTP_EXT_CHUNKING)

enum smtp_body { SMTP_BODY_UNSPECIFIED, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_UNSPECIFIED, SMTP_RET_FULL, SMTP_RET_HDRS };

/* NOTIFY bits; 0 means NOTIFY was not given (RFC 3461 default applies). */
#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

struct smtp_mail_params {
	bool has_size;
	uint64_t size; /* SIZE=, as declared */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* decoded; "" if not given */
	bool has_auth;
	char auth[SMTP_PATH_MAX + 1]; /* AUTH=, decoded; "<>" kept as is */
};

struct smtp_rcpt_params {
	unsigned notify; /* SMTP_NOTIFY_* bits, 0 if not given */
	/* ORCPT=addr-type;xtext, decoded: "rfc822;user@example.org". */
	char orcpt[SMTP_ORCPT_MAX + 1];
};

/*
 * smtp_params_parse_mail - parse the parameters after the reverse-path:
 * s[0..len) is what follows '>' (leading spaces allowed, keywords
 * case-insensitive). Returns 0, or -1 with *error_r set to the reply to send
 * (555 unknown or not advertised, 501 syntax or duplicate, BINARYMIME 555).
 */
int smtp_params_parse_mail(const char *s, size_t len, unsigned extensions,
                           struct smtp_mail_params *params_r, enum smtp_reply_id *error_r);

/* smtp_params_parse_rcpt - the same for RCPT TO (NOTIFY, ORCPT). */
int smtp_params_parse_rcpt(const char *s, size_t len, unsigned extensions,
                           struct smtp_rcpt_params *params_r, enum smtp_reply_id *error_r);

/*
 * smtp_xtext_decode - decode RFC 3461 xtext s[0..len) into out (size bytes
 * incl. NUL). Returns the decoded length, or -1 on bad syntax (a '+' not
 * followed by two upper-case hex digits, a character outside 33..126, '=')
 * or on a decoded control character, or if it does not fit.
 */
int smtp_xtext_decode(const char *s, size_t len, char *out, size_t size);

/* smtp_xtext_encode - the reverse, for relaying ENVID and ORCPT onward.
 * Returns the encoded length, or -1 if it does not fit. */
int smtp_xtext_encode(const char *s, size_t len, char *out, size_t size);

#endif
