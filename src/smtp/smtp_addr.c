/* SPDX-License-Identifier: ISC */
/* smtp_addr.c - see smtp_addr.h */
#include "smtp/smtp_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "lib/util.h"

/*
 * Precedence when an input has several problems, so that the session always
 * gives the same answer for the same input:
 *   1. NULL ("<>" not allowed) and SOURCE_ROUTE (a well-formed A-d-l),
 *   2. SYNTAX (including malformed UTF-8, and a missing '>'),
 *   3. TOO_LONG (local part, domain, then the whole mailbox),
 *   4. NEEDS_UTF8 (well-formed non-ASCII without SMTP_ADDR_ALLOW_UTF8).
 * Length limits are checked after syntax so that a long but broken address
 * is reported as broken, and before UTF-8 so that the client is not told to
 * retry with SMTPUTF8 an address that would fail anyway.
 */

/* A mailbox is at most the path less its two angle brackets (RFC 5321
 * 4.5.3.1.3: the path, brackets included, is at most 256 octets). */
#define MAILBOX_MAX (SMTP_PATH_MAX - 2)
/* RFC 1035 2.3.4: a label is at most 63 octets. */
#define LABEL_MAX 63
/* Longest text form of an IPv6 address (INET6_ADDRSTRLEN less its NUL). */
#define IPV6_TEXT_MAX 45

/* What the scanner learnt about a mailbox, besides its extent. */
struct scan {
	const unsigned char *s;
	size_t len;
	size_t pos;
	bool utf8;    /* a non-ASCII byte was seen (all of them well-formed) */
	bool quoted;  /* the local part is a Quoted-string */
	bool literal; /* the domain is an address literal */
	bool general; /* ...of the general form "[tag:content]" */
	size_t local_len;
	size_t domain_len;
};

/* utf8_seq - length of the well-formed UTF-8 sequence at s[0..len), or 0.
 * RFC 3629 4: the second byte's range excludes overlongs (E0, F0),
 * surrogates (ED) and code points above U+10FFFF (F4); C0, C1 and F5..FF
 * never start a sequence. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

bool smtp_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_let_dig(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* is_atext - RFC 5322 3.2.3 atext, the characters of a Dot-string atom. */
static bool is_atext(unsigned char c)
{
	return is_let_dig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* scan_utf8 - take one non-ASCII UTF-8 sequence at the scan position (RFC
 * 6531 3.3 UTF8-non-ascii). False if it is malformed. */
static bool scan_utf8(struct scan *sc)
{
	size_t n = utf8_seq(sc->s + sc->pos, sc->len - sc->pos);
	if (n == 0)
		return false;
	sc->pos += n;
	sc->utf8 = true;
	return true;
}

/* scan_atom - 1*atext, with UTF-8 as RFC 6531 3.3 extends atext. */
static bool scan_atom(struct scan *sc)
{
	size_t start = sc->pos;

	while (sc->pos < sc->len) {
		unsigned char c = sc->s[sc->pos];
		if (is_atext(c))
			sc->pos++;
		else if (c >= 0x80) {
			if (!scan_utf8(sc))
				return false;
		} else
			break;
	}
	return sc->pos > start;
}

/* scan_quoted - RFC 5321 4.1.2 Quoted-string: qtextSMTP (%d32-33 / %d35-91
 * / %d93-126, plus UTF-8 per RFC 6531) and quoted-pairSMTP (backslash and
 * %d32-126). */
static bool scan_quoted(struct scan *sc)
{
	sc->pos++; /* the opening DQUOTE */
	while (sc->pos < sc->len) {
		unsigned char c = sc->s[sc->pos];
		if (c == '"') {
			sc->pos++;
			return true;
		}
		if (c == '\\') {
			if (sc->pos + 1 >= sc->len)
				return false;
			unsigned char q = sc->s[sc->pos + 1];
			if (q < 32 || q > 126)
				return false;
			sc->pos += 2;
		} else if (c >= 32 && c <= 126) {
			sc->pos++;
		} else if (c >= 0x80) {
			if (!scan_utf8(sc))
				return false;
		} else {
			return false;
		}
	}
	return false;
}

/* scan_local - Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2).
 * Dots may only separate atoms: no leading, trailing or double dots. */
static bool scan_local(struct scan *sc)
{
	size_t start = sc->pos;

	if (sc->pos < sc->len && sc->s[sc->pos] == '"') {
		sc->quoted = true;
		if (!scan_quoted(sc))
			return false;
	} else {
		if (!scan_atom(sc))
			return false;
		while (sc->pos < sc->len && sc->s[sc->pos] == '.') {
			sc->pos++;
			if (!scan_atom(sc))
				return false;
		}
	}
	sc->local_len = sc->pos - start;
	return true;
}

/*
 * domain_syntax - RFC 5321 4.1.2 Domain: sub-domain *("." sub-domain),
 * sub-domain = Let-dig [Ldh-str]; with utf8_ok a label may also contain
 * UTF-8 (a U-label, RFC 6531 3.3). Labels are 1..63 octets, do not start or
 * end with a hyphen, and a trailing dot (the DNS root) is not part of the
 * SMTP grammar. Sets *utf8_r if non-ASCII was seen. Length is not checked.
 */
static bool domain_syntax(const unsigned char *s, size_t len, bool *utf8_r)
{
	size_t label = 0;

	*utf8_r = false;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			i++;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return false;
		} else if (c >= 0x80) {
			size_t n = utf8_seq(s + i, len - i);
			if (n == 0)
				return false;
			*utf8_r = true;
			label += n;
			i += n;
			if (label > LABEL_MAX)
				return false;
			continue;
		} else if (!is_let_dig(c)) {
			return false;
		}
		label++;
		i++;
		if (label > LABEL_MAX)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

bool smtp_domain_valid(const char *s, size_t len, bool utf8)
{
	bool has_utf8;

	if (len > SMTP_DOMAIN_MAX)
		return false;
	if (!domain_syntax((const unsigned char *)s, len, &has_utf8))
		return false;
	return utf8 || !has_utf8;
}

/* ipv4_literal - IPv4-address-literal, RFC 5321 4.1.3: four Snum, each
 * 0..255. Leading zeros are refused although 1*3DIGIT allows them: "010"
 * means 8 to inet_aton and 10 to inet_pton, and a literal must not mean two
 * different hosts to two parts of the relay. */
static bool ipv4_literal(const unsigned char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		size_t start = i;
		unsigned value = 0;
		while (i < len && is_digit(s[i]) && i - start < 3)
			value = value * 10 + (unsigned)(s[i++] - '0');
		if (i == start || value > 255)
			return false;
		if (i - start > 1 && s[start] == '0')
			return false;
	}
	return i == len;
}

/* ipv6_literal - the part after "IPv6:", checked by the C library's own
 * parser (RFC 4291 2.2 forms, as RFC 5321 4.1.3 IPv6-addr lists them). */
static bool ipv6_literal(const unsigned char *s, size_t len)
{
	char text[IPV6_TEXT_MAX + 1];
	struct in6_addr in6;

	if (len == 0 || len > IPV6_TEXT_MAX)
		return false;
	/* inet_pton stops at a NUL: look at every octet first, so that
	 * "[IPv6:::\0anything]" is not taken for "[IPv6:::]". */
	for (size_t i = 0; i < len; i++)
		if (!isxdigit(s[i]) && s[i] != ':' && s[i] != '.')
			return false;
	memcpy(text, s, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, &in6) == 1;
}

/* general_literal - General-address-literal = Standardized-tag ":"
 * 1*dcontent (RFC 5321 4.1.3); the tag is an Ldh-str (ends in Let-dig),
 * dcontent is %d33-90 / %d94-126. */
static bool general_literal(const unsigned char *s, size_t len, size_t colon)
{
	if (colon == 0 || !is_let_dig(s[colon - 1]))
		return false;
	for (size_t i = 0; i < colon; i++)
		if (!is_let_dig(s[i]) && s[i] != '-')
			return false;
	if (colon + 1 >= len)
		return false;
	for (size_t i = colon + 1; i < len; i++)
		if (s[i] < 33 || s[i] > 126 || (s[i] >= 91 && s[i] <= 93))
			return false;
	return true;
}

/* address_literal - the text between '[' and ']'. Without a colon it can
 * only be IPv4; a tag of "IPv6" (ABNF strings are case-insensitive) must be
 * a real IPv6 address and never falls back to the general form, which sets
 * *general_r. */
static bool address_literal(const unsigned char *s, size_t len, bool *general_r)
{
	const unsigned char *colon = memchr(s, ':', len);

	*general_r = false;
	if (colon == NULL)
		return ipv4_literal(s, len);
	size_t at = (size_t)(colon - s);
	if (mem_ieq((const char *)s, at, "IPv6"))
		return ipv6_literal(colon + 1, len - at - 1);
	*general_r = true;
	return general_literal(s, len, at);
}

/* scan_domain - the domain of a mailbox: an address literal or a dotted
 * domain. The domain ends at the first byte that cannot be part of one. */
static bool scan_domain(struct scan *sc)
{
	size_t start = sc->pos;

	if (sc->pos < sc->len && sc->s[sc->pos] == '[') {
		const unsigned char *close =
		    memchr(sc->s + sc->pos + 1, ']', sc->len - sc->pos - 1);
		if (close == NULL)
			return false;
		size_t end = (size_t)(close - sc->s);
		if (!address_literal(sc->s + start + 1, end - start - 1, &sc->general))
			return false;
		sc->literal = true;
		sc->pos = end + 1;
	} else {
		bool utf8;
		while (sc->pos < sc->len) {
			unsigned char c = sc->s[sc->pos];
			if (!is_let_dig(c) && c != '-' && c != '.' && c < 0x80)
				break;
			sc->pos++;
		}
		if (!domain_syntax(sc->s + start, sc->pos - start, &utf8))
			return false;
		sc->utf8 |= utf8;
	}
	sc->domain_len = sc->pos - start;
	return true;
}

/* scan_mailbox - Mailbox = Local-part "@" ( Domain / address-literal ). */
static bool scan_mailbox(struct scan *sc)
{
	if (!scan_local(sc))
		return false;
	if (sc->pos >= sc->len || sc->s[sc->pos] != '@')
		return false;
	sc->pos++;
	return scan_domain(sc);
}

/* scan_adl - A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain,
 * followed by ':' (RFC 5321 4.1.2). UTF-8 is tolerated here: the route is
 * refused whatever it contains. */
static bool scan_adl(struct scan *sc)
{
	for (;;) {
		if (sc->pos >= sc->len || sc->s[sc->pos] != '@')
			return false;
		sc->pos++;
		size_t start = sc->pos;
		bool utf8;
		while (sc->pos < sc->len) {
			unsigned char c = sc->s[sc->pos];
			if (!is_let_dig(c) && c != '-' && c != '.' && c < 0x80)
				break;
			sc->pos++;
		}
		if (!domain_syntax(sc->s + start, sc->pos - start, &utf8))
			return false;
		if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
			sc->pos++;
			continue;
		}
		if (sc->pos < sc->len && sc->s[sc->pos] == ':') {
			sc->pos++;
			return true;
		}
		return false;
	}
}

/* addr_reset - the result fields, before anything is known. */
static void addr_reset(struct smtp_addr *a)
{
	a->mailbox[0] = '\0';
	a->len = 0;
	a->local_len = 0;
	a->is_null = false;
	a->is_postmaster = false;
	a->is_quoted = false;
	a->is_literal = false;
	a->is_general_literal = false;
	a->has_utf8 = false;
}

/* finish - apply limits and the UTF-8 rule to a syntactically valid mailbox
 * s[0..len) and fill in the result. */
static enum smtp_addr_result finish(const struct scan *sc, const char *s, size_t len,
                                    unsigned flags, struct smtp_addr *a)
{
	a->has_utf8 = sc->utf8;
	/* RFC 5321 4.5.3.1.1-3 */
	if (sc->local_len > SMTP_LOCALPART_MAX || sc->domain_len > SMTP_DOMAIN_MAX ||
	    len > MAILBOX_MAX)
		return SMTP_ADDR_TOO_LONG;
	/* RFC 6531 3.4: non-ASCII only after the SMTPUTF8 parameter. */
	if (sc->utf8 && !(flags & SMTP_ADDR_ALLOW_UTF8))
		return SMTP_ADDR_NEEDS_UTF8;
	memcpy(a->mailbox, s, len);
	a->mailbox[len] = '\0';
	a->len = len;
	a->local_len = sc->local_len;
	a->is_quoted = sc->quoted;
	a->is_literal = sc->literal;
	a->is_general_literal = sc->literal && sc->general;
	return SMTP_ADDR_OK;
}

/* postmaster - "Postmaster" alone, any case (RFC 5321 4.1.1.3): the one
 * recipient that needs no domain. */
static enum smtp_addr_result postmaster(const char *s, unsigned flags, struct smtp_addr *a)
{
	/* Without the flag it is simply a mailbox without '@'. */
	if (!(flags & SMTP_ADDR_ALLOW_POSTMASTER))
		return SMTP_ADDR_SYNTAX;
	memcpy(a->mailbox, s, 10);
	a->mailbox[10] = '\0';
	a->len = 10;
	a->local_len = 10;
	a->is_postmaster = true;
	return SMTP_ADDR_OK;
}

/* null_path - "<>" (RFC 5321 4.1.1.2 reverse-path, 4.5.5). */
static enum smtp_addr_result null_path(unsigned flags, struct smtp_addr *a)
{
	if (!(flags & SMTP_ADDR_ALLOW_NULL))
		return SMTP_ADDR_NULL;
	a->is_null = true;
	return SMTP_ADDR_OK;
}

enum smtp_addr_result smtp_addr_parse_path(const char *s, size_t len, unsigned flags,
                                           struct smtp_addr *addr_r, size_t *consumed_r)
{
	struct scan sc = {.s = (const unsigned char *)s, .len = len};
	enum smtp_addr_result r;
	size_t open;

	addr_reset(addr_r);
	*consumed_r = 0;

	/* "MAIL FROM: <a@b>" is common enough to accept one SP, no more. */
	open = (len > 0 && s[0] == ' ') ? 1 : 0;
	if (open >= len || s[open] != '<')
		return SMTP_ADDR_SYNTAX;
	sc.pos = open + 1;

	if (sc.pos < len && s[sc.pos] == '>') {
		r = null_path(flags, addr_r);
		if (r == SMTP_ADDR_OK)
			*consumed_r = sc.pos + 1;
		return r;
	}
	if (len - sc.pos > 10 && mem_ieq(s + sc.pos, 10, "postmaster") && s[sc.pos + 10] == '>') {
		r = postmaster(s + sc.pos, flags, addr_r);
		if (r == SMTP_ADDR_OK)
			*consumed_r = sc.pos + 11;
		return r;
	}
	if (sc.pos < len && s[sc.pos] == '@') {
		/* RFC 5321 4.1.2 and Appendix C: source routes are obsolete;
		 * detour refuses a well-formed one by name rather than
		 * relaying along it or silently dropping it. */
		if (!scan_adl(&sc) || !scan_mailbox(&sc) || sc.pos >= len || s[sc.pos] != '>')
			return SMTP_ADDR_SYNTAX;
		return SMTP_ADDR_SOURCE_ROUTE;
	}

	size_t start = sc.pos;
	if (!scan_mailbox(&sc) || sc.pos >= len || s[sc.pos] != '>')
		return SMTP_ADDR_SYNTAX;
	r = finish(&sc, s + start, sc.pos - start, flags, addr_r);
	if (r == SMTP_ADDR_OK)
		*consumed_r = sc.pos + 1;
	return r;
}

enum smtp_addr_result smtp_addr_parse_mailbox(const char *s, size_t len, unsigned flags,
                                              struct smtp_addr *addr_r)
{
	struct scan sc = {.s = (const unsigned char *)s, .len = len};

	addr_reset(addr_r);
	/* An empty mailbox is the null address, as "<>" is for a path. */
	if (len == 0)
		return null_path(flags, addr_r);
	if (mem_ieq(s, len, "postmaster"))
		return postmaster(s, flags, addr_r);
	if (!scan_mailbox(&sc) || sc.pos != len)
		return SMTP_ADDR_SYNTAX;
	return finish(&sc, s, len, flags, addr_r);
}

const char *smtp_addr_domain(const struct smtp_addr *addr)
{
	if (addr->is_null || addr->is_postmaster || addr->local_len >= addr->len)
		return "";
	return addr->mailbox + addr->local_len + 1;
}
