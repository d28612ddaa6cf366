/* SPDX-License-Identifier: ISC */
/*
 * test_log.c - unit tests for log.c: log_quote leaves safe values bare and
 * quotes and escapes everything else, so that no value (a hostile HELO name,
 * a remote reply) can forge a second line or a key; struct logline builds
 * "event key=value" exactly and truncates at LOG_LINE_MAX; emitted lines go
 * to stderr as one line each, filtered by level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/log.h"

/* quote - log_quote of a NUL-terminated value into a large buffer. */
static const char *quote(const char *v)
{
	static char buf[1024];
	return log_quote(buf, sizeof(buf), v, strlen(v));
}

static void test_quote_bare(void **state)
{
	(void)state;
	assert_string_equal(quote("abc"), "abc");
	assert_string_equal(quote("alice@example.org"), "alice@example.org");
	assert_string_equal(quote("0123456789ABCDEF"), "0123456789ABCDEF");
	assert_string_equal(quote("[192.0.2.1]:25"), "[192.0.2.1]:25");
	assert_string_equal(quote("a-b_c.d/e+f,g;h:i'j"), "a-b_c.d/e+f,g;h:i'j");
	assert_string_equal(quote("~!#$%&*()"), "~!#$%&*()");
}

static void test_quote_quoted(void **state)
{
	(void)state;
	/* empty: quoted, so that "key=" never looks like a missing value */
	assert_string_equal(quote(""), "\"\"");
	assert_string_equal(quote("a b"), "\"a b\"");
	assert_string_equal(quote(" "), "\" \"");
	assert_string_equal(quote("a=b"), "\"a=b\"");
	assert_string_equal(quote("x key=forged"), "\"x key=forged\"");
	assert_string_equal(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
	assert_string_equal(quote("back\\slash"), "\"back\\\\slash\"");
	assert_string_equal(quote("\""), "\"\\\"\"");
	/* control characters as \xHH */
	assert_string_equal(quote("a\tb"), "\"a\\x09b\"");
	assert_string_equal(quote("\x01"), "\"\\x01\"");
	assert_string_equal(quote("\x1f"), "\"\\x1f\"");
	assert_string_equal(quote("\x7f"), "\"\\x7f\"");
	assert_string_equal(quote("\x1b[31mred"), "\"\\x1b[31mred\"");
	/* UTF-8 is quoted but kept readable */
	assert_string_equal(quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

static void test_quote_newline(void **state)
{
	(void)state;
	assert_string_equal(quote("a\nb"), "\"a\\x0ab\"");
	assert_string_equal(quote("a\r\nb"), "\"a\\x0d\\x0ab\"");
	const char *hostile = "evil\n2024-01-01T00:00:00.000Z detourd[1]: info auth.ok user=root";
	const char *q = quote(hostile);
	assert_null(strchr(q, '\n'));
	assert_null(strchr(q, '\r'));
	assert_string_equal(
	    q, "\"evil\\x0a2024-01-01T00:00:00.000Z detourd[1]: info auth.ok user=root\"");
	/* a NUL inside the value (log_quote takes a length) */
	char buf[64];
	assert_string_equal(log_quote(buf, sizeof(buf), "a\0b", 3), "\"a\\x00b\"");
	/* only len bytes are read */
	assert_string_equal(log_quote(buf, sizeof(buf), "abcdef", 3), "abc");
}

static void test_quote_small_buffer(void **state)
{
	(void)state;
	char buf[64];
	/* Whatever the room, the result is NUL-terminated within it, contains
	 * no line break, and never ends inside an escape. */
	const char *v = "a\nb\"c\\d e\x01";
	for (size_t size = 1; size <= 40; size++) {
		memset(buf, 'Z', sizeof(buf));
		log_quote(buf, size, v, strlen(v));
		size_t n = strlen(buf);
		assert_true(n < size);
		assert_int_equal(buf[size], 'Z'); /* nothing written past size */
		assert_null(strchr(buf, '\n'));
		if (size >= 7) {
			/* opened and closed */
			assert_int_equal(buf[0], '"');
			assert_int_equal(buf[n - 1], '"');
			assert_true(n >= 2);
			/* the inside is a sequence of whole escapes */
			for (size_t i = 1; i < n - 1; i++) {
				if (buf[i] != '\\')
					continue;
				assert_true(i + 1 < n - 1);
				if (buf[i + 1] == 'x') {
					assert_true(i + 3 < n - 1);
					i += 3;
				} else {
					assert_true(buf[i + 1] == '"' || buf[i + 1] == '\\');
					i += 1;
				}
			}
		}
	}
	/* Room for everything: the full text. */
	log_quote(buf, sizeof(buf), v, strlen(v));
	assert_string_equal(buf, "\"a\\x0ab\\\"c\\\\d e\\x01\"");
	/* size 0 writes nothing */
	buf[0] = 'Z';
	log_quote(buf, 0, v, strlen(v));
	assert_int_equal(buf[0], 'Z');
}

static void test_logline_format(void **state)
{
	(void)state;
	struct logline l;
	logline_init(&l, "smtp.connect");
	assert_string_equal(l.buf, "smtp.connect");
	assert_int_equal(l.len, strlen("smtp.connect"));
	logline_str(&l, "client", "192.0.2.1");
	logline_str(&l, "helo", "evil\r\nsmtp.auth ok=1");
	logline_int(&l, "n", -42);
	logline_int(&l, "big", 9223372036854775807LL);
	logline_fmt(&l, "ms", "%d.%03d", 1, 5);
	logline_str(&l, "none", NULL);
	logline_mem(&l, "mem", "xy\0z", 4);
	assert_string_equal(l.buf, "smtp.connect client=192.0.2.1 helo=\"evil\\x0d\\x0asmtp.auth "
	                           "ok=1\" n=-42 big=9223372036854775807 ms=1.005 none=\"\" "
	                           "mem=\"xy\\x00z\"");
	assert_int_equal(l.len, strlen(l.buf));
	assert_false(l.truncated);
}

static void test_logline_truncation(void **state)
{
	(void)state;
	struct logline l;
	logline_init(&l, "ev");
	/* Fill to exactly LOG_LINE_MAX - 1 bytes: not truncated. */
	char v[LOG_LINE_MAX];
	size_t fill = LOG_LINE_MAX - 1 - strlen("ev k=");
	memset(v, 'a', fill);
	v[fill] = '\0';
	logline_str(&l, "k", v);
	assert_int_equal(l.len, LOG_LINE_MAX - 1);
	assert_false(l.truncated);
	assert_int_equal(strlen(l.buf), LOG_LINE_MAX - 1);
	/* One byte more does not fit. */
	logline_str(&l, "x", "y");
	assert_true(l.truncated);
	assert_int_equal(l.len, LOG_LINE_MAX - 1);
	assert_int_equal(l.buf[LOG_LINE_MAX - 1], '\0');

	/* Many keys: the line stops at the limit, terminated. */
	logline_init(&l, "ev");
	for (int i = 0; i < 1000; i++)
		logline_int(&l, "key", i);
	assert_true(l.truncated);
	assert_int_equal(l.len, LOG_LINE_MAX - 1);
	assert_int_equal(strlen(l.buf), LOG_LINE_MAX - 1);
	assert_memory_equal(l.buf, "ev key=0 key=1 key=2 ", 21);

	/* A value longer than a line of newlines: escaped, truncated, and
	 * still no line break. */
	char nl[3000];
	memset(nl, '\n', sizeof(nl) - 1);
	nl[sizeof(nl) - 1] = '\0';
	logline_init(&l, "ev");
	logline_str(&l, "v", nl);
	assert_true(l.truncated);
	assert_true(l.len <= LOG_LINE_MAX - 1);
	assert_int_equal(strlen(l.buf), l.len);
	assert_null(strchr(l.buf, '\n'));
	assert_memory_equal(l.buf, "ev v=\"\\x0a\\x0a", 14);
}

/* capture - run fn with stderr redirected into a memory file; returns what
 * was written (caller frees). */
static char *capture(void (*fn)(void *), void *arg)
{
	int fd = memfd_create("stderr", 0);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	fn(arg);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	off_t size = lseek(fd, 0, SEEK_END);
	assert_true(size >= 0);
	char *buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
	buf[size] = '\0';
	close(fd);
	return buf;
}

static void emit_hostile(void *arg)
{
	(void)arg;
	struct logline l;
	logline_init(&l, "smtp.helo");
	logline_str(&l, "name", "x\ny.z info auth.ok");
	logline_emit(&l, LOG_LEVEL_INFO);
}

static void emit_long(void *arg)
{
	(void)arg;
	struct logline l;
	logline_init(&l, "ev");
	for (int i = 0; i < 1000; i++)
		logline_str(&l, "k", "v\nv");
	logline_emit(&l, LOG_LEVEL_WARN);
	log_event(LOG_LEVEL_ERROR, "ev.fmt", "pad=%03000d", 7);
}

static void emit_filtered(void *arg)
{
	(void)arg;
	log_set_level(LOG_LEVEL_WARN);
	struct logline l;
	logline_init(&l, "quiet.info");
	logline_emit(&l, LOG_LEVEL_INFO);
	log_event(LOG_LEVEL_DEBUG, "quiet.debug", "a=%d", 1);
	log_event(LOG_LEVEL_WARN, "loud.warn", "a=%d", 2);
	log_set_level(LOG_LEVEL_INFO);
	log_event(LOG_LEVEL_INFO, "loud.info", NULL);
}

static void test_emit_one_line(void **state)
{
	(void)state;
	char *out = capture(emit_hostile, NULL);
	/* "<date> test_log[pid]: info smtp.helo name=..." and one newline */
	char *nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	const char *tail = " test_log[";
	assert_non_null(strstr(out, tail));
	char want[256];
	snprintf(want, sizeof(want),
	         "test_log[%d]: info smtp.helo name=\"x\\x0ay.z info auth.ok\"\n", (int)getpid());
	assert_non_null(strstr(out, want));
	assert_int_equal(strlen(strstr(out, want)), strlen(want));
	/* starts with an RFC 3339 UTC time stamp with milliseconds */
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[19], '.');
	assert_int_equal(out[23], 'Z');
	assert_int_equal(out[24], ' ');
	free(out);
}

static void test_emit_long_lines(void **state)
{
	(void)state;
	char *out = capture(emit_long, NULL);
	/* exactly two lines, each bounded */
	char *first = strchr(out, '\n');
	assert_non_null(first);
	char *second = strchr(first + 1, '\n');
	assert_non_null(second);
	assert_int_equal(second[1], '\0');
	size_t len1 = (size_t)(first - out) + 1, len2 = (size_t)(second - first);
	assert_true(len1 <= LOG_LINE_MAX + 128);
	assert_true(len2 <= LOG_LINE_MAX + 128);
	assert_non_null(strstr(out, ": warn ev k=\"v\\x0av\" k="));
	assert_non_null(strstr(first + 1, ": error ev.fmt pad=000"));
	free(out);
}

static void test_emit_filtered(void **state)
{
	(void)state;
	char *out = capture(emit_filtered, NULL);
	assert_null(strstr(out, "quiet"));
	char *a = strstr(out, ": warn loud.warn a=2\n");
	char *b = strstr(out, ": info loud.info\n");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	free(out);
}

int main(void)
{
	log_open("test_log", true, LOG_LEVEL_INFO);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quote_bare),     cmocka_unit_test(test_quote_quoted),
	    cmocka_unit_test(test_quote_newline),  cmocka_unit_test(test_quote_small_buffer),
	    cmocka_unit_test(test_logline_format), cmocka_unit_test(test_logline_truncation),
	    cmocka_unit_test(test_emit_one_line),  cmocka_unit_test(test_emit_long_lines),
	    cmocka_unit_test(test_emit_filtered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
