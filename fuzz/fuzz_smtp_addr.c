/* SPDX-License-Identifier: ISC */
/*
 * fuzz_smtp_addr.c - the path and mailbox parser (src/smtp/smtp_addr.c):
 * what a client can put in MAIL FROM and RCPT TO, and what the configuration
 * and the account database name.
 *
 * Input: byte 0 holds the flags (ALLOW_NULL, ALLOW_UTF8, ALLOW_POSTMASTER)
 * and whether the rest is a path ("<...>" and what follows) or a bare
 * mailbox. Properties: only defined results; on OK the mailbox is
 * NUL-terminated, at most 254 octets (local part 64, domain 255), holds no
 * control octet, no '<' or '>' outside quotes, is valid UTF-8 and ASCII
 * unless UTF-8 was allowed, and its domain is a valid domain or an address
 * literal; consumed ends just past a '>'; the mailbox parsed again (bare,
 * and as "<mailbox>") gives the same result; smtp_domain_valid and
 * smtp_utf8_valid agree with what the parser accepted.
 */
#include <stdbool.h>

#include "lib/limits.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "fuzz.h"

#define ALL_FLAGS (SMTP_ADDR_ALLOW_NULL | SMTP_ADDR_ALLOW_UTF8 | SMTP_ADDR_ALLOW_POSTMASTER)

static bool same_addr(const struct smtp_addr *a, const struct smtp_addr *b)
{
	return a->len == b->len && strcmp(a->mailbox, b->mailbox) == 0 &&
	       a->local_len == b->local_len && a->is_null == b->is_null &&
	       a->is_postmaster == b->is_postmaster && a->is_quoted == b->is_quoted &&
	       a->is_literal == b->is_literal && a->is_general_literal == b->is_general_literal &&
	       a->has_utf8 == b->has_utf8;
}

static void check_ok(const struct smtp_addr *a, unsigned flags)
{
	const char *m = a->mailbox;

	FUZZ_CHECK(strnlen(m, sizeof(a->mailbox)) == a->len, "len %zu, mailbox \"%s\"", a->len, m);
	if (a->is_null) {
		FUZZ_CHECK((flags & SMTP_ADDR_ALLOW_NULL) && a->len == 0, "null path not allowed");
		return;
	}
	if (a->is_postmaster) {
		FUZZ_CHECK((flags & SMTP_ADDR_ALLOW_POSTMASTER) && mem_ieq(m, a->len, "postmaster"),
		           "postmaster \"%s\"", m);
		return;
	}
	FUZZ_CHECK(a->len > 0 && a->len <= SMTP_PATH_MAX - 2, "mailbox of %zu octets", a->len);
	FUZZ_CHECK(a->local_len > 0 && a->local_len <= SMTP_LOCALPART_MAX &&
	               a->local_len < a->len && m[a->local_len] == '@',
	           "local part of %zu in \"%s\"", a->local_len, m);
	const char *domain = smtp_addr_domain(a);
	size_t dlen = strlen(domain);
	FUZZ_CHECK(domain == m + a->local_len + 1 && dlen > 0 && dlen <= SMTP_DOMAIN_MAX,
	           "domain \"%s\"", domain);
	FUZZ_CHECK(smtp_utf8_valid(m, a->len), "invalid UTF-8 accepted: \"%s\"", m);
	bool non_ascii = false;
	for (size_t i = 0; i < a->len; i++) {
		unsigned char c = (unsigned char)m[i];
		non_ascii |= c >= 0x80;
		FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control 0x%02x in \"%s\"", c, m);
		if (i < a->local_len && a->is_quoted) {
			if (c == '\\')
				i++;
			continue;
		}
		/* RFC 5321 4.1.3 dcontent (%d33-90 / %d94-126) lets a
		 * general address literal hold '<', '>' and ','. */
		if (i > a->local_len && a->is_literal)
			continue;
		FUZZ_CHECK(c != '<' && c != '>' && c != ' ' && c != ',',
		           "'%c' outside a quoted string in \"%s\"", c, m);
	}
	FUZZ_CHECK(non_ascii == a->has_utf8, "has_utf8 %d for \"%s\"", a->has_utf8, m);
	FUZZ_CHECK(!a->has_utf8 || (flags & SMTP_ADDR_ALLOW_UTF8), "UTF-8 without the flag");
	FUZZ_CHECK(a->is_quoted == (m[0] == '"'), "is_quoted %d for \"%s\"", a->is_quoted, m);
	FUZZ_CHECK(!a->is_general_literal || a->is_literal, "general literal \"%s\"", domain);
	if (a->is_literal) {
		FUZZ_CHECK(domain[0] == '[' && domain[dlen - 1] == ']', "literal \"%s\"", domain);
		/* IPv4 has no colon, IPv6 has the tag "IPv6"; anything else
		 * with a colon is the general form */
		const char *colon = memchr(domain, ':', dlen);
		bool general =
		    colon != NULL && !mem_ieq(domain + 1, (size_t)(colon - domain - 1), "IPv6");
		FUZZ_CHECK(a->is_general_literal == general, "is_general_literal %d for \"%s\"",
		           a->is_general_literal, domain);
	} else {
		FUZZ_CHECK(smtp_domain_valid(domain, dlen, (flags & SMTP_ADDR_ALLOW_UTF8) != 0),
		           "domain \"%s\" accepted in a mailbox but not by smtp_domain_valid",
		           domain);
	}
}

/* reparse - the mailbox of an accepted address parses again to itself,
 * bare and in angle brackets. */
static void reparse(const struct smtp_addr *a, unsigned flags)
{
	struct smtp_addr b;
	enum smtp_addr_result r;

	if (a->is_null)
		return;
	r = smtp_addr_parse_mailbox(a->mailbox, a->len, flags, &b);
	FUZZ_CHECK(r == SMTP_ADDR_OK && same_addr(a, &b), "\"%s\" again as a mailbox: %d",
	           a->mailbox, (int)r);
	char path[SMTP_PATH_MAX + 3];
	size_t used = 0;
	path[0] = '<';
	memcpy(path + 1, a->mailbox, a->len);
	path[a->len + 1] = '>';
	char *heap = fuzz_dup(path, a->len + 2);
	r = smtp_addr_parse_path(heap, a->len + 2, flags, &b, &used);
	FUZZ_CHECK(r == SMTP_ADDR_OK && same_addr(a, &b) && used == a->len + 2,
	           "\"<%s>\" again as a path: %d", a->mailbox, (int)r);
	free(heap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	unsigned flags = data[0] & ALL_FLAGS;
	bool path = (data[0] & 0x80) == 0;
	char *s = fuzz_dup(data + 1, size - 1);
	size_t len = size - 1;
	struct smtp_addr a;
	enum smtp_addr_result r;
	size_t used = 12345;

	if (path) {
		r = smtp_addr_parse_path(s, len, flags, &a, &used);
	} else {
		r = smtp_addr_parse_mailbox(s, len, flags, &a);
	}
	FUZZ_CHECK(r >= SMTP_ADDR_OK && r <= SMTP_ADDR_NULL, "result %d", (int)r);
	if (r == SMTP_ADDR_OK) {
		check_ok(&a, flags);
		if (path)
			FUZZ_CHECK(used >= 2 && used <= len && s[used - 1] == '>',
			           "consumed %zu of %zu", used, len);
		reparse(&a, flags);
	} else {
		FUZZ_CHECK(!path || used == 0, "consumed %zu on error %d", used, (int)r);
		FUZZ_CHECK(a.mailbox[0] == '\0' && a.len == 0, "error %d left a mailbox", (int)r);
	}
	/* The flags only ever widen what is accepted. */
	if (r == SMTP_ADDR_OK) {
		struct smtp_addr w;
		size_t u2;
		enum smtp_addr_result r2 = path ? smtp_addr_parse_path(s, len, ALL_FLAGS, &w, &u2)
		                                : smtp_addr_parse_mailbox(s, len, ALL_FLAGS, &w);
		FUZZ_CHECK(r2 == SMTP_ADDR_OK && same_addr(&a, &w), "OK with flags %u, %d with all",
		           flags, (int)r2);
	}
	/* Checked alone, the whole input as a domain and as UTF-8. */
	bool dv = smtp_domain_valid(s, len, true);
	if (dv) {
		FUZZ_CHECK(len > 0 && len <= SMTP_DOMAIN_MAX && smtp_utf8_valid(s, len),
		           "domain of %zu octets accepted", len);
		FUZZ_CHECK(s[0] != '.' && s[0] != '-' && s[len - 1] != '.' && s[len - 1] != '-',
		           "domain starts or ends with '.' or '-'");
	}
	free(s);
	return 0;
}
