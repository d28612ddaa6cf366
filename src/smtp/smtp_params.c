/* SPDX-License-Identifier: ISC */
/* smtp_params.c - see smtp_params.h */
#include "smtp/smtp_params.h"

#include <string.h>

#include "lib/util.h"

/*
 * Parameters are read left to right and the first problem is the answer.
 * For one parameter the checks run in this order: keyword and value
 * characters (501 PARAM_SYNTAX), keyword known to this command (555
 * PARAM_UNKNOWN), extension advertised (555 PARAM_UNKNOWN), keyword seen
 * before (501 PARAM_DUPLICATE), value syntax (501 PARAM_SYNTAX, or 555
 * BODY_BINARY for BODY=BINARYMIME).
 */

/* The keywords detour knows; the bit doubles as the duplicate marker. */
enum param_key {
	KEY_SIZE = 0x01,
	KEY_BODY = 0x02,
	KEY_SMTPUTF8 = 0x04,
	KEY_RET = 0x08,
	KEY_ENVID = 0x10,
	KEY_AUTH = 0x20,
	KEY_NOTIFY = 0x40,
	KEY_ORCPT = 0x80,
};

struct key_row {
	const char *name;
	enum param_key key;
	unsigned ext; /* the extension that must have been advertised */
};

/* RFC 1870, RFC 6152, RFC 6531 3.4, RFC 3461 4.3-4.4, RFC 4954 5 */
static const struct key_row mail_keys[] = {
    {"SIZE", KEY_SIZE, SMTP_EXT_SIZE},
    {"BODY", KEY_BODY, SMTP_EXT_8BITMIME},
    {"SMTPUTF8", KEY_SMTPUTF8, SMTP_EXT_SMTPUTF8},
    {"RET", KEY_RET, SMTP_EXT_DSN},
    {"ENVID", KEY_ENVID, SMTP_EXT_DSN},
    {"AUTH", KEY_AUTH, SMTP_EXT_AUTH},
};

/* RFC 3461 4.1-4.2 */
static const struct key_row rcpt_keys[] = {
    {"NOTIFY", KEY_NOTIFY, SMTP_EXT_DSN},
    {"ORCPT", KEY_ORCPT, SMTP_EXT_DSN},
};

/* One "KEYWORD[=VALUE]" split out of the parameter list. */
struct param {
	const char *key;
	size_t key_len;
	const char *value; /* NULL when there was no '=' */
	size_t value_len;
};

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* param_syntax - RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT)
 * *(ALPHA / DIGIT / "-"), esmtp-value = 1*(%d33-60 / %d62-126). */
static bool param_syntax(const struct param *p)
{
	if (p->key_len == 0 || !is_alnum((unsigned char)p->key[0]))
		return false;
	for (size_t i = 1; i < p->key_len; i++)
		if (!is_alnum((unsigned char)p->key[i]) && p->key[i] != '-')
			return false;
	if (p->value == NULL)
		return true;
	if (p->value_len == 0)
		return false;
	for (size_t i = 0; i < p->value_len; i++) {
		unsigned char c = (unsigned char)p->value[i];
		if (c < 33 || c > 126 || c == '=')
			return false;
	}
	return true;
}

/*
 * next_param - split the next parameter off s[*pos..len). Parameters are
 * separated by one or more SP, and the list must start with one: after
 * "<a@b>" something other than SP is not a parameter (RFC 5321 4.1.1.2
 * Reverse-path [SP Mail-parameters]). Returns 0 at the end, 1 for a
 * parameter, -1 on a missing separator.
 */
static int next_param(const char *s, size_t len, size_t *pos, struct param *p)
{
	size_t i = *pos;
	size_t start;

	if (i < len && s[i] != ' ')
		return -1;
	while (i < len && s[i] == ' ')
		i++;
	if (i == len) {
		*pos = i;
		return 0;
	}
	start = i;
	const char *sp = memchr(s + i, ' ', len - i);
	size_t end = sp != NULL ? (size_t)(sp - s) : len;
	const char *eq = memchr(s + start, '=', end - start);

	p->key = s + start;
	if (eq != NULL) {
		p->key_len = (size_t)(eq - p->key);
		p->value = eq + 1;
		p->value_len = (size_t)(s + end - p->value);
	} else {
		p->key_len = end - start;
		p->value = NULL;
		p->value_len = 0;
	}
	*pos = end;
	return 1;
}

/* find_key - look a keyword up, case-insensitively (RFC 5321 2.4). */
static const struct key_row *find_key(const struct key_row *rows, size_t n, const struct param *p)
{
	for (size_t i = 0; i < n; i++)
		if (mem_ieq(p->key, p->key_len, rows[i].name))
			return &rows[i];
	return NULL;
}

/* parse_size - RFC 1870 6: size-value = 1*20DIGIT, which can exceed 64
 * bits, so the multiplication is checked. */
static bool parse_size(const char *s, size_t len, uint64_t *size_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return false;
	bool overflow = false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			overflow = true;
	}
	/* RFC 1870 6 allows 20 digits, more than 64 bits hold: such a size is
	 * valid syntax and simply larger than any limit, so it saturates
	 * (and gets 552 5.3.4, not 501). */
	*size_r = overflow ? UINT64_MAX : v;
	return true;
}

static bool is_hex_upper(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static unsigned hex_value(unsigned char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

/*
 * smtp_xtext_decode - RFC 3461 4: xtext = *( xchar / hexchar ), xchar is
 * %d33-126 except '+' and '=', hexchar is '+' and two upper-case hex digits.
 * A decoded control character is refused: CR, LF or NUL in an ENVID or
 * ORCPT would otherwise travel into the queue and onward in a DSN.
 */
int smtp_xtext_decode(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (len - i < 3 || !is_hex_upper((unsigned char)s[i + 1]) ||
			    !is_hex_upper((unsigned char)s[i + 2]))
				goto bad;
			c = (unsigned char)(hex_value((unsigned char)s[i + 1]) << 4 |
			                    hex_value((unsigned char)s[i + 2]));
			i += 2;
			if (c < 32 || c == 127)
				goto bad;
		} else if (c < 33 || c > 126 || c == '=') {
			goto bad;
		}
		if (o + 1 >= size)
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
bad:
	/* Leave nothing half-decoded behind for a careless caller. */
	out[0] = '\0';
	return -1;
}

/* smtp_xtext_encode - every octet that is not an xchar becomes "+XX". */
int smtp_xtext_encode(const char *s, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (size == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 33 && c <= 126 && c != '+' && c != '=') {
			if (o + 1 >= size)
				goto full;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= size)
				goto full;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		}
	}
	out[o] = '\0';
	return (int)o;
full:
	out[0] = '\0';
	return -1;
}

/* parse_notify - RFC 3461 4.1: "NEVER" alone, or a comma list of SUCCESS,
 * FAILURE and DELAY, each at most once. */
static bool parse_notify(const char *s, size_t len, unsigned *notify_r)
{
	unsigned bits = 0;
	size_t i = 0;

	for (;;) {
		const char *comma = memchr(s + i, ',', len - i);
		size_t end = comma != NULL ? (size_t)(comma - s) : len;
		unsigned bit;
		if (mem_ieq(s + i, end - i, "NEVER"))
			bit = SMTP_NOTIFY_NEVER;
		else if (mem_ieq(s + i, end - i, "SUCCESS"))
			bit = SMTP_NOTIFY_SUCCESS;
		else if (mem_ieq(s + i, end - i, "FAILURE"))
			bit = SMTP_NOTIFY_FAILURE;
		else if (mem_ieq(s + i, end - i, "DELAY"))
			bit = SMTP_NOTIFY_DELAY;
		else
			return false;
		if (bits & bit)
			return false;
		bits |= bit;
		if (comma == NULL)
			break;
		i = end + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return false;
	*notify_r = bits;
	return true;
}

/* is_atext - RFC 5322 3.2.3 atext (ASCII), the characters of an atom. */
static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* parse_orcpt - RFC 3461 4.2: ORCPT=addr-type ";" xtext, at most 500
 * characters as sent. addr-type is an atom ("rfc822", "utf-8"...). The
 * result is "addr-type;decoded-address". */
static bool parse_orcpt(const char *s, size_t len, char *out, size_t size)
{
	const char *semi = memchr(s, ';', len);

	if (len > SMTP_ORCPT_MAX || semi == NULL || semi == s)
		return false;
	size_t type_len = (size_t)(semi - s);
	for (size_t i = 0; i < type_len; i++)
		if (!is_atext((unsigned char)s[i]))
			return false;
	/* An empty original recipient says nothing: refuse it. */
	if (type_len + 1 >= len || type_len + 1 >= size)
		return false;
	memcpy(out, s, type_len + 1);
	return smtp_xtext_decode(semi + 1, len - type_len - 1, out + type_len + 1,
	                         size - type_len - 1) >= 0;
}

/* check_key - the common checks before a value is looked at: known,
 * advertised, not seen before. */
static int check_key(const struct key_row *rows, size_t n, const struct param *p,
                     unsigned extensions, unsigned *seen, const struct key_row **row_r,
                     enum smtp_reply_id *error_r)
{
	if (!param_syntax(p)) {
		*error_r = SMTP_R_PARAM_SYNTAX;
		return -1;
	}
	const struct key_row *row = find_key(rows, n, p);
	if (row == NULL || !(extensions & row->ext)) {
		*error_r = SMTP_R_PARAM_UNKNOWN;
		return -1;
	}
	if (*seen & row->key) {
		*error_r = SMTP_R_PARAM_DUPLICATE;
		return -1;
	}
	*seen |= row->key;
	*row_r = row;
	return 0;
}

/* mail_value - interpret one MAIL parameter whose keyword passed. */
static int mail_value(enum param_key key, const struct param *p, struct smtp_mail_params *m,
                      enum smtp_reply_id *error_r)
{
	const char *v = p->value;
	size_t vl = p->value_len;

	*error_r = SMTP_R_PARAM_SYNTAX;
	/* Only SMTPUTF8 stands alone (RFC 6531 3.4); the rest need a value. */
	if (key == KEY_SMTPUTF8) {
		if (v != NULL)
			return -1;
		m->smtputf8 = true;
		return 0;
	}
	if (v == NULL)
		return -1;
	switch (key) {
	case KEY_SIZE:
		if (!parse_size(v, vl, &m->size))
			return -1;
		m->has_size = true;
		return 0;
	case KEY_BODY:
		/* RFC 6152 2, RFC 3030 3: BINARYMIME is not offered. */
		if (mem_ieq(v, vl, "7BIT"))
			m->body = SMTP_BODY_7BIT;
		else if (mem_ieq(v, vl, "8BITMIME"))
			m->body = SMTP_BODY_8BITMIME;
		else if (mem_ieq(v, vl, "BINARYMIME")) {
			*error_r = SMTP_R_BODY_BINARY;
			return -1;
		} else
			return -1;
		return 0;
	case KEY_RET:
		if (mem_ieq(v, vl, "FULL"))
			m->ret = SMTP_RET_FULL;
		else if (mem_ieq(v, vl, "HDRS"))
			m->ret = SMTP_RET_HDRS;
		else
			return -1;
		return 0;
	case KEY_ENVID:
		/* RFC 3461 4.4: 100 characters, counted as xtext. */
		if (vl > SMTP_ENVID_MAX || smtp_xtext_decode(v, vl, m->envid, sizeof(m->envid)) < 0)
			return -1;
		return 0;
	case KEY_AUTH:
		/* RFC 4954 5: AUTH=<> or an xtext-encoded addr-spec. Whether
		 * it is believed is policy, not syntax. */
		if (smtp_xtext_decode(v, vl, m->auth, sizeof(m->auth)) < 0)
			return -1;
		m->has_auth = true;
		return 0;
	default:
		return -1;
	}
}

int smtp_params_parse_mail(const char *s, size_t len, unsigned extensions,
                           struct smtp_mail_params *params_r, enum smtp_reply_id *error_r)
{
	size_t pos = 0;
	unsigned seen = 0;
	struct param p;
	int r;

	memset(params_r, 0, sizeof(*params_r));
	while ((r = next_param(s, len, &pos, &p)) != 0) {
		const struct key_row *row;
		if (r < 0) {
			*error_r = SMTP_R_PARAM_SYNTAX;
			goto bad;
		}
		if (check_key(mail_keys, ARRAY_SIZE(mail_keys), &p, extensions, &seen, &row,
		              error_r) < 0)
			goto bad;
		if (mail_value(row->key, &p, params_r, error_r) < 0)
			goto bad;
	}
	return 0;
bad:
	/* Nothing from a refused command may be used by mistake. */
	memset(params_r, 0, sizeof(*params_r));
	return -1;
}

int smtp_params_parse_rcpt(const char *s, size_t len, unsigned extensions,
                           struct smtp_rcpt_params *params_r, enum smtp_reply_id *error_r)
{
	size_t pos = 0;
	unsigned seen = 0;
	struct param p;
	int r;

	memset(params_r, 0, sizeof(*params_r));
	while ((r = next_param(s, len, &pos, &p)) != 0) {
		const struct key_row *row;
		if (r < 0) {
			*error_r = SMTP_R_PARAM_SYNTAX;
			goto bad;
		}
		if (check_key(rcpt_keys, ARRAY_SIZE(rcpt_keys), &p, extensions, &seen, &row,
		              error_r) < 0)
			goto bad;
		*error_r = SMTP_R_PARAM_SYNTAX;
		if (p.value == NULL)
			goto bad;
		if (row->key == KEY_NOTIFY) {
			if (!parse_notify(p.value, p.value_len, &params_r->notify))
				goto bad;
		} else if (!parse_orcpt(p.value, p.value_len, params_r->orcpt,
		                        sizeof(params_r->orcpt))) {
			goto bad;
		}
	}
	return 0;
bad:
	memset(params_r, 0, sizeof(*params_r));
	return -1;
}
