/* SPDX-License-Identifier: ISC */
/* smtp_cmd.c - see smtp_cmd.h */
#include "smtp/smtp_cmd.h"

#include <assert.h>
#include <string.h>

#include "lib/util.h"

/*
 * smtp_line_scan - find one CRLF-terminated line.
 *
 * The first LF decides where the line ends, so a bare LF is reported as soon
 * as it is seen and the session resynchronises on it. Inside a line that
 * does end in CRLF a stray CR is reported before a NUL: both are refused
 * with a 500, and a fixed order keeps the answer deterministic.
 */
enum smtp_line_result smtp_line_scan(const char *buf, size_t len, size_t max, size_t *line_len_r,
                                     size_t *consumed_r)
{
	assert(max >= 2);
	size_t window = len < max ? len : max;
	const char *lf = memchr(buf, '\n', window);

	if (lf == NULL) {
		/* RFC 5321 4.5.3.1.4: a line of max octets including CRLF is
		 * the longest allowed, so max bytes without LF can never become
		 * a valid line. */
		return len >= max ? SMTP_LINE_TOO_LONG : SMTP_LINE_PARTIAL;
	}

	size_t at = (size_t)(lf - buf);
	*consumed_r = at + 1;
	if (at == 0 || buf[at - 1] != '\r') {
		*line_len_r = at;
		return SMTP_LINE_BARE_LF;
	}
	*line_len_r = at - 1;
	if (memchr(buf, '\r', at - 1) != NULL)
		return SMTP_LINE_BARE_CR;
	if (memchr(buf, '\0', at - 1) != NULL)
		return SMTP_LINE_NUL;
	return SMTP_LINE_OK;
}

struct verb_row {
	const char *name;
	enum smtp_verb verb;
};

/* RFC 5321 4.1 and the extensions detour offers (RFC 3030 BDAT, RFC 3207
 * STARTTLS, RFC 4954 AUTH). Matching is on the whole first word. */
static const struct verb_row verbs[] = {
    {"HELO", SMTP_VERB_HELO},         {"EHLO", SMTP_VERB_EHLO}, {"MAIL", SMTP_VERB_MAIL},
    {"RCPT", SMTP_VERB_RCPT},         {"DATA", SMTP_VERB_DATA}, {"BDAT", SMTP_VERB_BDAT},
    {"RSET", SMTP_VERB_RSET},         {"NOOP", SMTP_VERB_NOOP}, {"QUIT", SMTP_VERB_QUIT},
    {"VRFY", SMTP_VERB_VRFY},         {"EXPN", SMTP_VERB_EXPN}, {"HELP", SMTP_VERB_HELP},
    {"STARTTLS", SMTP_VERB_STARTTLS}, {"AUTH", SMTP_VERB_AUTH},
};

/* Methods of HTTP (RFC 9110 9.3, RFC 5789): a browser or a cross-protocol
 * attack talking to an SMTP port. Only recognised when followed by SP, as a
 * request line is. */
static const char *const http_methods[] = {
    "GET", "POST", "HEAD", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

/* trim_trailing_sp - length of s[0..len) without trailing spaces. */
static size_t trim_trailing_sp(const char *s, size_t len)
{
	while (len > 0 && s[len - 1] == ' ')
		len--;
	return len;
}

void smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd_r)
{
	const char *sp = memchr(line, ' ', len);
	size_t word = sp != NULL ? (size_t)(sp - line) : len;
	/* The argument starts after the single SP that ends the verb; further
	 * spaces belong to the argument, whose parser refuses them. */
	const char *rest = sp != NULL ? sp + 1 : line + len;
	size_t rest_len = (size_t)(line + len - rest);

	cmd_r->verb = SMTP_VERB_UNKNOWN;
	cmd_r->arg = rest;
	cmd_r->arg_len = rest_len;
	cmd_r->malformed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		if (mem_ieq(line, word, verbs[i].name)) {
			cmd_r->verb = verbs[i].verb;
			break;
		}
	}

	if (cmd_r->verb == SMTP_VERB_MAIL || cmd_r->verb == SMTP_VERB_RCPT) {
		/* RFC 5321 4.1.1.2-3: "MAIL FROM:" and "RCPT TO:" are fixed
		 * strings; the path follows the colon. */
		const char *kw = cmd_r->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:";
		size_t kw_len = strlen(kw);
		if (mem_istarts(rest, rest_len, kw)) {
			cmd_r->arg = rest + kw_len;
			cmd_r->arg_len = rest_len - kw_len;
		} else {
			cmd_r->malformed = 1;
		}
	} else if (cmd_r->verb == SMTP_VERB_UNKNOWN && sp != NULL) {
		for (size_t i = 0; i < ARRAY_SIZE(http_methods); i++) {
			if (mem_ieq(line, word, http_methods[i])) {
				cmd_r->verb = SMTP_VERB_HTTP;
				break;
			}
		}
	}

	cmd_r->arg_len = trim_trailing_sp(cmd_r->arg, cmd_r->arg_len);
}

const char *smtp_verb_name(enum smtp_verb verb)
{
	switch (verb) {
	case SMTP_VERB_UNKNOWN:
		return "UNKNOWN";
	case SMTP_VERB_HTTP:
		return "HTTP";
	default:
		break;
	}
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}
