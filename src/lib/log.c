/* SPDX-License-Identifier: ISC */
/* log.c - see log.h */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool log_to_stderr = true;
static enum log_level log_min = LOG_LEVEL_INFO;
static const char *log_ident = "detour";
static int log_pid; /* cached: the pid is in every line and never changes after detaching */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_open(const char *ident, bool to_stderr, enum log_level min_level)
{
	log_ident = ident;
	log_pid = (int)getpid();
	log_to_stderr = to_stderr;
	log_min = min_level;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level min_level)
{
	log_min = min_level;
}

/* log_write - send one finished line (without newline) to its destination. */
static void log_write(enum log_level level, const char *line, size_t len)
{
	if (!log_to_stderr) {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
		syslog(prio[level], "%s %.*s", level_names[level], (int)len, line);
		return;
	}
	char out[LOG_LINE_MAX + 128];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: %s %.*s\n",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000, log_ident,
	                 log_pid ? log_pid : (int)getpid(), level_names[level], (int)len, line);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(out)) {
		n = sizeof(out) - 1;
		out[n - 1] = '\n';
	}
	/* One write per line, so that lines from several threads never mix. */
	if (write(STDERR_FILENO, out, (size_t)n) < 0) {
		/* a log that cannot be written has nowhere to report to */
	}
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	if (level > log_min)
		return;
	struct logline l;
	logline_init(&l, event);
	if (fmt != NULL && *fmt != '\0') {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(l.buf + l.len + 1, sizeof(l.buf) - l.len - 1, fmt, ap);
		va_end(ap);
		if (n > 0) {
			l.buf[l.len] = ' ';
			l.len += 1 + (size_t)n;
			if (l.len >= sizeof(l.buf))
				l.len = sizeof(l.buf) - 1;
		}
	}
	log_write(level, l.buf, l.len);
}

static void logline_put(struct logline *l, const char *s, size_t n)
{
	if (l->len + n >= sizeof(l->buf)) {
		l->truncated = true;
		n = sizeof(l->buf) - 1 - l->len;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

void logline_init(struct logline *l, const char *event)
{
	l->len = 0;
	l->truncated = false;
	l->buf[0] = '\0';
	logline_put(l, event, strlen(event));
}

/* needs_quotes - true unless every byte is in a conservative safe set. */
static bool needs_quotes(const char *v, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=')
			return true;
	}
	return false;
}

char *log_quote(char *dst, size_t size, const char *v, size_t len)
{
	size_t o = 0;
	bool quote = needs_quotes(v, len);
	if (size == 0)
		return dst;
#define PUT(ch)                                                                                    \
	do {                                                                                       \
		if (o + 1 < size)                                                                  \
			dst[o++] = (ch);                                                           \
	} while (0)
	if (quote)
		PUT('"');
	for (size_t i = 0; i < len && o + 5 < size; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT((char)c);
		} else if (c < ' ' || c == 0x7f) {
			static const char hex[] = "0123456789abcdef";
			PUT('\\');
			PUT('x');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else {
			/* UTF-8 is kept as is: SMTPUTF8 addresses stay readable. */
			PUT((char)c);
		}
	}
	if (quote)
		PUT('"');
#undef PUT
	dst[o] = '\0';
	return dst;
}

void logline_mem(struct logline *l, const char *key, const char *value, size_t len)
{
	char q[LOG_LINE_MAX];
	logline_put(l, " ", 1);
	logline_put(l, key, strlen(key));
	logline_put(l, "=", 1);
	log_quote(q, sizeof(q), value ? value : "", value ? len : 0);
	logline_put(l, q, strlen(q));
}

void logline_str(struct logline *l, const char *key, const char *value)
{
	logline_mem(l, key, value, value ? strlen(value) : 0);
}

void logline_int(struct logline *l, const char *key, long long value)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", value);
	logline_mem(l, key, num, strlen(num));
}

void logline_fmt(struct logline *l, const char *key, const char *fmt, ...)
{
	char v[LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(v))
		n = sizeof(v) - 1;
	logline_mem(l, key, v, (size_t)n);
}

void logline_emit(struct logline *l, enum log_level level)
{
	if (level > log_min)
		return;
	log_write(level, l->buf, l->len);
}
