/* SPDX-License-Identifier: ISC */
/*
 * smtp_addr.h - reverse-path and forward-path parsing (RFC 5321 4.1.2,
 * with the UTF-8 extensions of RFC 6531 3.3).
 *
 * Owns: what a syntactically valid mailbox is, and its length limits. Does
 * not own: whether an address may be used (policy) or whether it exists.
 * Pure: no I/O, no globals. Any thread.
 */
#ifndef DETOUR_SMTP_ADDR_H
#define DETOUR_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/limits.h"

/* Flags for smtp_addr_parse_path and smtp_addr_parse_mailbox. */
#define SMTP_ADDR_ALLOW_NULL       0x1 /* "<>" is valid (MAIL FROM) */
#define SMTP_ADDR_ALLOW_UTF8       0x2 /* non-ASCII UTF-8 allowed (SMTPUTF8 given) */
#define SMTP_ADDR_ALLOW_POSTMASTER 0x4 /* "<Postmaster>" is valid (RCPT TO) */

enum smtp_addr_result {
	SMTP_ADDR_OK,
	SMTP_ADDR_SYNTAX,       /* not a valid path or mailbox */
	SMTP_ADDR_TOO_LONG,     /* local part > 64, domain > 255 or path > 256 */
	SMTP_ADDR_SOURCE_ROUTE, /* "<@a,@b:user@c>": refused, not ignored */
	SMTP_ADDR_NEEDS_UTF8,   /* valid UTF-8 but SMTP_ADDR_ALLOW_UTF8 not set */
	SMTP_ADDR_NULL,         /* "<>" where it is not allowed */
};

struct smtp_addr {
	/* The mailbox without angle brackets, NUL-terminated, exactly as the
	 * client wrote it (quoting kept). Empty for the null path. */
	char mailbox[SMTP_PATH_MAX + 1];
	size_t len;
	size_t local_len;        /* bytes before the '@' that separates the domain */
	bool is_null;            /* "<>" */
	bool is_postmaster;      /* "<Postmaster>" without a domain (any case) */
	bool is_quoted;          /* local part is a Quoted-string */
	bool is_literal;         /* domain is an address literal "[...]" */
	bool is_general_literal; /* ...of the general form "[tag:content]", not
	                          * IPv4 or IPv6: valid syntax, but no tag is
	                          * registered, so there is nowhere to deliver */
	bool has_utf8;           /* contains non-ASCII (needs SMTPUTF8 downstream) */
};

/*
 * smtp_addr_parse_path - parse "<mailbox>" (or "<>") at the start of s[0..len).
 * One optional space before '<' is tolerated (many clients send
 * "MAIL FROM: <a@b>"); nothing else is. On SMTP_ADDR_OK, *consumed_r is the
 * offset just past '>'. Domains are checked as LDH labels (RFC 5321 4.1.2)
 * or U-labels when UTF-8 is allowed; address literals as IPv4, IPv6 or the
 * general form (RFC 5321 4.1.3).
 */
enum smtp_addr_result smtp_addr_parse_path(const char *s, size_t len, unsigned flags,
                                           struct smtp_addr *addr_r, size_t *consumed_r);

/* smtp_addr_parse_mailbox - the same for a bare mailbox (all of s[0..len),
 * no brackets), as found in configuration and account names. */
enum smtp_addr_result smtp_addr_parse_mailbox(const char *s, size_t len, unsigned flags,
                                              struct smtp_addr *addr_r);

/* smtp_addr_domain - the domain part of a parsed mailbox ("" for null). */
const char *smtp_addr_domain(const struct smtp_addr *addr);

/* smtp_domain_valid - is s[0..len) a syntactically valid domain name
 * (LDH labels; U-labels too if utf8)? */
bool smtp_domain_valid(const char *s, size_t len, bool utf8);

/* smtp_utf8_valid - is s[0..len) well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF)? */
bool smtp_utf8_valid(const char *s, size_t len);

#endif
