/* SPDX-License-Identifier: ISC */
/*
 * fuzz_smtp_line.c - the server's command input: smtp_line_scan on a buffer
 * that fills as bytes arrive, and smtp_cmd_parse on every line it returns,
 * with the argument handed on as the session does (MAIL/RCPT paths and
 * parameters, AUTH initial responses).
 *
 * Input: byte 0 chooses how the bytes arrive (whole, or pieces of a size
 * class drawn from bytes 1..4 as a seed); the rest is what a client sends.
 * Properties: every result obeys its contract (an OK line ends in CRLF and
 * holds no CR, LF or NUL; a line is recognised as soon as its LF arrives and
 * not before; TOO_LONG only when max bytes hold no LF); the verb and its
 * argument lie inside the line, the argument has no trailing space; and the
 * sequence of lines and results is the same whatever the arrival pattern.
 */
#include <stdbool.h>

#include "lib/limits.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_params.h"
#include "smtp/smtp_sasl.h"
#include "fuzz.h"

/* One event of a run: where in the stream, what was found. */
struct event {
	size_t at;
	int result;
	size_t line_len, used;
	int verb, malformed;
	size_t arg_off, arg_len;
};

struct run {
	struct event *ev;
	size_t n, cap;
	size_t tail; /* bytes left unread at the end */
};

static void add(struct run *r, const struct event *e)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->ev = xreallocarray(r->ev, r->cap, sizeof(*r->ev));
	}
	r->ev[r->n++] = *e;
}

static bool has(const char *s, size_t n, char c)
{
	return memchr(s, c, n) != NULL;
}

static void check_cmd(const char *line, size_t len, const struct smtp_cmd *cmd)
{
	FUZZ_CHECK(cmd->arg >= line && cmd->arg <= line + len, "arg outside the line");
	FUZZ_CHECK(cmd->arg_len <= (size_t)(line + len - cmd->arg), "arg_len past the line");
	FUZZ_CHECK(cmd->arg_len == 0 || cmd->arg[cmd->arg_len - 1] != ' ', "trailing space in arg");
	FUZZ_CHECK(cmd->verb >= SMTP_VERB_UNKNOWN && cmd->verb <= SMTP_VERB_HTTP, "verb %d",
	           (int)cmd->verb);
	const char *name = smtp_verb_name(cmd->verb);
	FUZZ_CHECK(name != NULL && name[0] != '\0', "no verb name");
	if (cmd->verb == SMTP_VERB_UNKNOWN || cmd->verb == SMTP_VERB_HTTP) {
		FUZZ_CHECK(!cmd->malformed, "malformed unknown verb");
		return;
	}
	/* A known verb is the whole first word. */
	size_t n = strlen(name);
	FUZZ_CHECK(len >= n && mem_ieq(line, n, name) && (len == n || line[n] == ' '),
	           "verb %s does not match the line \"%.*s\"", name, (int)len, line);
	bool path = cmd->verb == SMTP_VERB_MAIL || cmd->verb == SMTP_VERB_RCPT;
	if (path && !cmd->malformed) {
		const char *kw = cmd->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:";
		FUZZ_CHECK(len > n && mem_istarts(line + n + 1, len - n - 1, kw) &&
		               cmd->arg == line + n + 1 + strlen(kw),
		           "MAIL/RCPT argument does not follow its keyword");
		return;
	}
	FUZZ_CHECK(path || !cmd->malformed, "malformed %s", name);
	if (path && len > n)
		FUZZ_CHECK(!mem_istarts(line + n + 1, len - n - 1,
		                        cmd->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:"),
		           "%s with its keyword called malformed", name);
	FUZZ_CHECK(cmd->arg == line + len || cmd->arg == line + n + 1, "%s argument at %td", name,
	           cmd->arg - line);
}

static bool same_event(const struct event *a, const struct event *b)
{
	return a->at == b->at && a->result == b->result && a->line_len == b->line_len &&
	       a->used == b->used && a->verb == b->verb && a->malformed == b->malformed &&
	       a->arg_off == b->arg_off && a->arg_len == b->arg_len;
}

/* use_line - hand the argument on as the session would. *auth_lines is set
 * when the next lines are SASL responses. */
static void use_line(const struct smtp_cmd *cmd, int *auth_lines)
{
	struct smtp_addr addr;
	size_t used = 0;

	if ((cmd->verb == SMTP_VERB_MAIL || cmd->verb == SMTP_VERB_RCPT) && !cmd->malformed) {
		bool mail = cmd->verb == SMTP_VERB_MAIL;
		unsigned flags =
		    mail ? SMTP_ADDR_ALLOW_NULL | SMTP_ADDR_ALLOW_UTF8 : SMTP_ADDR_ALLOW_POSTMASTER;
		enum smtp_addr_result ar =
		    smtp_addr_parse_path(cmd->arg, cmd->arg_len, flags, &addr, &used);
		if (ar != SMTP_ADDR_OK)
			return;
		FUZZ_CHECK(used > 0 && used <= cmd->arg_len, "path consumed %zu of %zu", used,
		           cmd->arg_len);
		enum smtp_reply_id err;
		if (mail) {
			struct smtp_mail_params mp;
			(void)smtp_params_parse_mail(cmd->arg + used, cmd->arg_len - used,
			                             SMTP_EXT_ALL, &mp, &err);
		} else {
			struct smtp_rcpt_params rp;
			(void)smtp_params_parse_rcpt(cmd->arg + used, cmd->arg_len - used,
			                             SMTP_EXT_ALL, &rp, &err);
		}
	} else if (cmd->verb == SMTP_VERB_AUTH) {
		const char *sp = memchr(cmd->arg, ' ', cmd->arg_len);
		size_t mech = sp ? (size_t)(sp - cmd->arg) : cmd->arg_len;
		const char *resp = sp ? sp + 1 : NULL;
		size_t resp_len = sp ? cmd->arg_len - mech - 1 : 0;
		if (mem_ieq(cmd->arg, mech, "PLAIN")) {
			struct sasl_credentials cred;
			if (resp != NULL)
				(void)sasl_plain_decode(resp, resp_len, &cred);
			else
				*auth_lines = 1;
		} else if (mem_ieq(cmd->arg, mech, "LOGIN")) {
			char user[SASL_USER_MAX + 1];
			if (resp != NULL) {
				(void)sasl_login_decode(resp, resp_len, user, sizeof(user));
				*auth_lines = 1;
			} else {
				*auth_lines = 2;
			}
		}
	}
}

/* scan - one call of smtp_line_scan on buf[0..avail) as the session makes
 * it, with every contract checked. Returns the result. */
static enum smtp_line_result scan(const char *buf, size_t avail, bool auth, size_t *line_len_r,
                                  size_t *used_r)
{
	bool auth_line = auth || mem_istarts(buf, avail < 5 ? avail : 5, "AUTH ");
	size_t max = auth_line ? SMTP_AUTHLINE_MAX : SMTP_CMDLINE_MAX;
	size_t look = avail < max ? avail : max;
	/* Exactly the bytes the session pulled up, on the heap. */
	char *copy = fuzz_dup(buf, look);
	size_t line_len = 0, used = 0;
	enum smtp_line_result r = smtp_line_scan(copy, look, max, &line_len, &used);
	free(copy);

	switch (r) {
	case SMTP_LINE_PARTIAL:
		FUZZ_CHECK(look < max && !has(buf, look, '\n'), "PARTIAL with %zu of %zu", look,
		           max);
		return r;
	case SMTP_LINE_TOO_LONG:
		FUZZ_CHECK(look >= max && !has(buf, max, '\n'), "TOO_LONG with an LF in reach");
		return r;
	case SMTP_LINE_OK:
		FUZZ_CHECK(used == line_len + 2 && used <= max && buf[line_len] == '\r' &&
		               buf[line_len + 1] == '\n',
		           "OK line %zu used %zu", line_len, used);
		FUZZ_CHECK(!has(buf, line_len, '\r') && !has(buf, line_len, '\n') &&
		               !has(buf, line_len, '\0'),
		           "OK line holds CR, LF or NUL");
		break;
	case SMTP_LINE_BARE_LF:
		FUZZ_CHECK(used == line_len + 1 && used <= max && buf[line_len] == '\n' &&
		               (line_len == 0 || buf[line_len - 1] != '\r') &&
		               !has(buf, line_len, '\n'),
		           "BARE_LF line %zu used %zu", line_len, used);
		break;
	case SMTP_LINE_BARE_CR:
	case SMTP_LINE_NUL:
		FUZZ_CHECK(used == line_len + 2 && used <= max && buf[line_len] == '\r' &&
		               buf[line_len + 1] == '\n' && !has(buf, line_len, '\n'),
		           "result %d line %zu used %zu", (int)r, line_len, used);
		if (r == SMTP_LINE_BARE_CR)
			FUZZ_CHECK(has(buf, line_len, '\r'), "BARE_CR without a CR");
		else
			FUZZ_CHECK(!has(buf, line_len, '\r') && has(buf, line_len, '\0'),
			           "NUL result without a NUL (or with a CR)");
		break;
	default:
		FUZZ_CHECK(0, "unknown result %d", (int)r);
	}
	/* Found as soon as its LF arrived, and not a byte earlier. */
	size_t l2 = 0, u2 = 0;
	copy = fuzz_dup(buf, used);
	FUZZ_CHECK(smtp_line_scan(copy, used, max, &l2, &u2) == r && l2 == line_len && u2 == used,
	           "line not found the same with only its own bytes");
	FUZZ_CHECK(smtp_line_scan(copy, used - 1, max, &l2, &u2) == SMTP_LINE_PARTIAL,
	           "line found before its LF");
	free(copy);
	*line_len_r = line_len;
	*used_r = used;
	return r;
}

/* run - the session's input loop over data arriving in pieces. */
static void run(const char *data, size_t size, struct fuzz_rng *rng, size_t chunk_max,
                struct run *out)
{
	char *buf = xmalloc(size);
	size_t start = 0, avail = 0, arrived = 0, at = 0;
	bool skip_line = false;
	int auth_lines = 0;

	while (arrived < size) {
		size_t n = fuzz_chunk(rng, chunk_max, size - arrived);
		/* Keep the unread bytes at the start of buf. */
		memmove(buf, buf + start, avail);
		start = 0;
		memcpy(buf + avail, data + arrived, n);
		avail += n;
		arrived += n;
		for (;;) {
			const char *b = buf + start;
			if (skip_line) {
				const char *lf = memchr(b, '\n', avail);
				size_t drop = lf ? (size_t)(lf - b) + 1 : avail;
				start += drop;
				avail -= drop;
				at += drop;
				if (lf == NULL)
					break;
				skip_line = false;
				continue;
			}
			if (avail == 0)
				break;
			size_t line_len = 0, used = 0;
			enum smtp_line_result r = scan(b, avail, auth_lines > 0, &line_len, &used);
			if (r == SMTP_LINE_PARTIAL)
				break;
			struct event e = {.at = at, .result = (int)r};
			if (r == SMTP_LINE_TOO_LONG) {
				skip_line = true;
				auth_lines = 0;
				add(out, &e);
				continue;
			}
			e.line_len = line_len;
			e.used = used;
			if (r == SMTP_LINE_OK && auth_lines > 0) {
				char resp[SASL_PASSWORD_MAX + 1];
				(void)sasl_login_decode(b, line_len, resp, sizeof(resp));
				auth_lines--;
			} else if (r == SMTP_LINE_OK) {
				struct smtp_cmd cmd;
				char *line = fuzz_dup(b, line_len);
				smtp_cmd_parse(line, line_len, &cmd);
				check_cmd(line, line_len, &cmd);
				e.verb = (int)cmd.verb;
				e.malformed = cmd.malformed;
				e.arg_off = (size_t)(cmd.arg - line);
				e.arg_len = cmd.arg_len;
				use_line(&cmd, &auth_lines);
				free(line);
			} else {
				auth_lines = 0;
			}
			add(out, &e);
			start += used;
			avail -= used;
			at += used;
		}
	}
	out->tail = avail;
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rng rng;
	const char *s;
	size_t n;
	if (!fuzz_split_input(data, size, SIZE_MAX, &rng, &s, &n))
		return 0;
	unsigned mode = data[0];
	struct run whole = {0}, split = {0};

	run(s, n, NULL, 0, &whole);
	if (mode & 4) {
		run(s, n, &rng, fuzz_chunk_max(mode), &split);
		FUZZ_CHECK(whole.n == split.n && whole.tail == split.tail,
		           "%zu events whole, %zu split", whole.n, split.n);
		for (size_t i = 0; i < whole.n; i++)
			FUZZ_CHECK(same_event(&whole.ev[i], &split.ev[i]),
			           "event %zu differs (at %zu: result %d whole, %d split)", i,
			           whole.ev[i].at, whole.ev[i].result, split.ev[i].result);
	}
	free(whole.ev);
	free(split.ev);
	return 0;
}
