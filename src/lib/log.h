/* SPDX-License-Identifier: ISC */
/*
 * log.h - one line per event: "area.event key=value ...".
 *
 * Owns: the log format and where lines go (stderr in the foreground, syslog
 * otherwise). Values that come from the network are quoted and escaped here,
 * so a hostile HELO name or reply text can never forge a second log line.
 * Secrets never reach this module: callers pass only what may be printed.
 * Safe to call from any thread; each line is written with one write(2).
 */
#ifndef DETOUR_LOG_H
#define DETOUR_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

#define LOG_LINE_MAX 2048

/* log_open - choose the destination. ident is the program name. */
void log_open(const char *ident, bool to_stderr, enum log_level min_level);
void log_set_level(enum log_level min_level);

/* log_event - a line whose key=value part comes from a printf format. Use
 * only with values that are known to be safe (numbers, queue ids, names from
 * the configuration); network input goes through struct logline. */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line built key by key; every value is quoted if it needs to be. */
struct logline {
	char buf[LOG_LINE_MAX];
	size_t len;
	bool truncated;
};

void logline_init(struct logline *l, const char *event);
void logline_str(struct logline *l, const char *key, const char *value);
void logline_mem(struct logline *l, const char *key, const char *value, size_t len);
void logline_int(struct logline *l, const char *key, long long value);
void logline_fmt(struct logline *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void logline_emit(struct logline *l, enum log_level level);

/* log_quote - write value, quoted as in log lines, into dst (for messages
 * that are not log lines, such as detourctl output). Returns dst. */
char *log_quote(char *dst, size_t size, const char *value, size_t len);

#endif
