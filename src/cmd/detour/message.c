/* SPDX-License-Identifier: ISC */
/* message.c - see message.h */
#include "cmd/detour/message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

static void grow(struct message *m, size_t need)
{
	if (m->cap - m->len >= need)
		return;
	size_t cap = m->cap ? m->cap : 65536;
	while (cap - m->len < need)
		cap *= 2;
	m->data = xrealloc(m->data, cap);
	m->cap = cap;
}

void message_reader_init(struct message_reader *r, bool dot_ends, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->dot_ends = dot_ends;
	r->max = max;
	grow(&r->msg, 1);
}

enum message_read_result message_reader_feed(struct message_reader *r, const char *buf, size_t len)
{
	struct message *m = &r->msg;
	if (r->ended)
		return MESSAGE_READ_OK; /* the rest of the input is not the message */
	if (len > r->max + 1 - m->len)
		len = r->max + 1 - m->len; /* enough to know it is too big */
	grow(m, len);
	size_t old = m->len;
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	if (r->dot_ends) {
		/* sendmail(8) without -i: a line with a single dot is the end
		 * of the input, and is not part of the message. */
		for (size_t i = old; i < m->len; i++) {
			if (m->data[i] != '\n')
				continue;
			size_t l = i - r->line_start;
			const char *s = m->data + r->line_start;
			if ((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '\r')) {
				m->len = r->line_start;
				r->ended = true;
				return MESSAGE_READ_OK;
			}
			r->line_start = i + 1;
		}
	}
	return m->len > r->max ? MESSAGE_READ_TOO_BIG : MESSAGE_READ_OK;
}

void message_reader_finish(struct message_reader *r, struct message *msg_r)
{
	struct message *m = &r->msg;
	/* A final lone "." without a line end ends it too. */
	if (r->dot_ends && !r->ended && m->len - r->line_start == 1 &&
	    m->data[r->line_start] == '.')
		m->len = r->line_start;
	*msg_r = *m;
	memset(m, 0, sizeof(*m));
}

enum message_read_result message_read(int fd, bool dot_ends, size_t max, struct message *msg_r)
{
	struct message_reader r;
	char buf[65536];
	message_reader_init(&r, dot_ends, max);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			message_reader_finish(&r, msg_r);
			return MESSAGE_READ_ERROR;
		}
		if (n == 0)
			break;
		if (message_reader_feed(&r, buf, (size_t)n) == MESSAGE_READ_TOO_BIG) {
			message_reader_finish(&r, msg_r);
			return MESSAGE_READ_TOO_BIG;
		}
	}
	message_reader_finish(&r, msg_r);
	return MESSAGE_READ_OK;
}

void message_free(struct message *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}

/* line_end - offset just past the line starting at off (past its LF, or
 * the end of the message). */
static size_t line_end(const struct message *m, size_t off)
{
	const char *nl = memchr(m->data + off, '\n', m->len - off);
	return nl != NULL ? (size_t)(nl - m->data) + 1 : m->len;
}

static bool is_empty_line(const struct message *m, size_t off, size_t end)
{
	size_t l = end - off;
	return l == 0 || (l == 1 && m->data[off] == '\n') ||
	       (l == 2 && m->data[off] == '\r' && m->data[off + 1] == '\n');
}

/* field_name_len - RFC 5322 3.6.8: printable ASCII but ':', then ':'.
 * 0 when the line at off does not start a field. */
static size_t field_name_len(const struct message *m, size_t off, size_t end)
{
	size_t i = off;
	while (i < end && m->data[i] > ' ' && m->data[i] < 127 && m->data[i] != ':')
		i++;
	if (i == off || i >= end || m->data[i] != ':')
		return 0;
	return i - off;
}

size_t message_header_end(const struct message *m)
{
	size_t off = 0;
	while (off < m->len) {
		size_t end = line_end(m, off);
		if (is_empty_line(m, off, end))
			return end;
		bool cont = m->data[off] == ' ' || m->data[off] == '\t';
		if (!cont && field_name_len(m, off, end) == 0)
			return off; /* not a field: the header ends here (0: none) */
		if (cont && off == 0)
			return 0;
		off = end;
	}
	return m->len;
}

/* Walks the fields of the header: calls fn for each, with the offsets of
 * the field (first line to past its last continuation line). fn returns
 * false to stop. */
struct field {
	size_t start, end;  /* the whole field, line ends included */
	size_t name_len;    /* data[start .. start + name_len) */
	size_t value_start; /* just past the ':' */
};

static bool next_field(const struct message *m, size_t *off, size_t hend, struct field *f)
{
	while (*off < hend) {
		size_t end = line_end(m, *off);
		if (is_empty_line(m, *off, end))
			return false;
		size_t nl = field_name_len(m, *off, end);
		if (nl == 0) {
			*off = end; /* a stray continuation line */
			continue;
		}
		f->start = *off;
		f->name_len = nl;
		f->value_start = *off + nl + 1;
		while (end < hend && (m->data[end] == ' ' || m->data[end] == '\t'))
			end = line_end(m, end);
		f->end = end;
		*off = end;
		return true;
	}
	return false;
}

static bool name_is(const struct message *m, const struct field *f, const char *name)
{
	return mem_ieq(m->data + f->start, f->name_len, name);
}

bool message_has_field(const struct message *m, const char *name)
{
	size_t hend = message_header_end(m), off = 0;
	struct field f;
	while (next_field(m, &off, hend, &f))
		if (name_is(m, &f, name))
			return true;
	return false;
}

size_t message_field_addrs(const struct message *m, const char *name, struct addr_list *list)
{
	size_t hend = message_header_end(m), off = 0, n = 0;
	struct field f;
	while (next_field(m, &off, hend, &f))
		if (name_is(m, &f, name))
			n += message_parse_addrs(m->data + f.value_start, f.end - f.value_start,
			                         list);
	return n;
}

size_t message_remove_field(struct message *m, const char *name)
{
	size_t hend = message_header_end(m), off = 0, n = 0;
	struct field f;
	while (next_field(m, &off, hend, &f)) {
		if (!name_is(m, &f, name))
			continue;
		size_t cut = f.end - f.start;
		memmove(m->data + f.start, m->data + f.end, m->len - f.end);
		m->len -= cut;
		hend -= cut;
		off = f.start;
		n++;
	}
	return n;
}

void message_prepend(struct message *m, const char *text)
{
	bool no_header = message_header_end(m) == 0;
	size_t tl = strlen(text);
	size_t add = tl + (no_header ? 1 : 0);
	grow(m, add);
	memmove(m->data + add, m->data, m->len);
	memcpy(m->data, text, tl);
	if (no_header)
		m->data[tl] = '\n';
	m->len += add;
}

bool message_is_8bit(const struct message *m)
{
	for (size_t i = 0; i < m->len; i++)
		if ((unsigned char)m->data[i] > 0x7f)
			return true;
	return false;
}

void addr_list_add(struct addr_list *list, const char *addr, size_t len)
{
	list->addrs = xreallocarray(list->addrs, list->n + 1, sizeof(*list->addrs));
	list->addrs[list->n++] = xstrndup(addr, len);
}

void addr_list_free(struct addr_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->addrs[i]);
	free(list->addrs);
	list->addrs = NULL;
	list->n = 0;
}

/* emit - one address: the contents of the last <...> if there was one,
 * otherwise the text outside comments with folding white space removed
 * (an addr-spec may not hold spaces, except inside a quoted local part). */
static size_t emit(const char *buf, size_t len, bool bare, struct addr_list *list)
{
	size_t s = 0, e = len;
	while (s < e && (buf[s] == ' ' || buf[s] == '\t'))
		s++;
	while (e > s && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
		e--;
	if (s == e)
		return 0;
	const char *a = buf + s;
	size_t alen = e - s;
	if (bare) {
		/* Words outside quotes ("John Doe" with no <address>) are a
		 * display name, not an address. */
		bool quoted = false;
		for (size_t i = 0; i < alen; i++) {
			if (a[i] == '\\' && quoted)
				i++;
			else if (a[i] == '"')
				quoted = !quoted;
			else if (a[i] == ' ' && !quoted)
				return 0;
		}
	}
	/* RFC 5322 4.4 obsolete route: "@r1,@r2:user@x" keeps user@x. */
	if (alen > 0 && a[0] == '@') {
		const char *colon = memchr(a, ':', alen);
		if (colon != NULL) {
			alen -= (size_t)(colon + 1 - a);
			a = colon + 1;
		}
	}
	if (alen == 0)
		return 0;
	addr_list_add(list, a, alen);
	return 1;
}

size_t message_parse_addrs(const char *v, size_t len, struct addr_list *list)
{
	/* cur collects the address-ish text of the current element: quoted
	 * strings kept whole, comments dropped, line ends dropped; angle holds
	 * the contents of a <...>. */
	char *cur = xmalloc(len + 1), *angle = xmalloc(len + 1);
	size_t clen = 0, alen = 0, n = 0;
	bool in_angle = false, have_angle = false;
	for (size_t i = 0; i < len; i++) {
		char ch = v[i];
		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == '"') {
			/* a quoted-string, with quoted-pairs (RFC 5322 3.2.4) */
			char *dst = in_angle ? angle : cur;
			size_t *dl = in_angle ? &alen : &clen;
			dst[(*dl)++] = '"';
			for (i++; i < len && v[i] != '"'; i++) {
				if (v[i] == '\r' || v[i] == '\n')
					continue;
				if (v[i] == '\\' && i + 1 < len)
					dst[(*dl)++] = v[i++];
				dst[(*dl)++] = v[i];
			}
			dst[(*dl)++] = '"';
			continue;
		}
		if (ch == '(') {
			/* a comment, nested (RFC 5322 3.2.2) */
			int depth = 1;
			for (i++; i < len && depth > 0; i++) {
				if (v[i] == '\\')
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')')
					depth--;
			}
			i--;
			continue;
		}
		if (in_angle) {
			if (ch == '>') {
				in_angle = false;
				have_angle = true;
			} else if (ch != ' ' && ch != '\t') {
				angle[alen++] = ch;
			}
			continue;
		}
		if (ch == '<') {
			in_angle = true;
			alen = 0;
			continue;
		}
		if (ch == ':') {
			/* a group's display name: what came before is not an address */
			clen = 0;
			have_angle = false;
			continue;
		}
		if (ch == ',' || ch == ';') {
			n += have_angle ? emit(angle, alen, false, list)
			                : emit(cur, clen, true, list);
			clen = 0;
			alen = 0;
			have_angle = false;
			continue;
		}
		if (ch == ' ' || ch == '\t') {
			/* a display name's words are never an addr-spec; keep a
			 * space so "John Doe" stays two words, dropped below */
			if (clen > 0 && cur[clen - 1] != ' ')
				cur[clen++] = ' ';
			continue;
		}
		cur[clen++] = ch;
	}
	if (have_angle)
		n += emit(angle, alen, false, list);
	else if (!in_angle)
		n += emit(cur, clen, true, list);
	free(cur);
	free(angle);
	return n;
}
