/* SPDX-License-Identifier: ISC */
/*
 * test_json.c - unit tests for json.c: json_str escapes quotes, backslashes
 * and control characters, passes valid UTF-8 through unchanged, turns every
 * byte that is not part of valid UTF-8 into \ufffd, and writes null for
 * NULL. Output is captured with open_memstream and compared exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json.h"

/* json - what json_str writes for s (caller frees). */
static char *json(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	json_str(f, s);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(strlen(buf), len);
	return buf;
}

static void check(const char *in, const char *want)
{
	char *got = json(in);
	if (strcmp(got, want) != 0)
		fail_msg("json_str(\"%s\"): got %s, want %s", in, got, want);
	free(got);
}

static void test_null_and_empty(void **state)
{
	(void)state;
	check(NULL, "null");
	check("", "\"\"");
	check("plain text 123", "\"plain text 123\"");
}

static void test_quotes_backslash(void **state)
{
	(void)state;
	check("\"", "\"\\\"\"");
	check("\\", "\"\\\\\"");
	check("a\"b\\c", "\"a\\\"b\\\\c\"");
	check("\\\"", "\"\\\\\\\"\"");
	/* a slash needs no escape (RFC 8259 7 allows it either way) */
	check("a/b", "\"a/b\"");
}

static void test_control_characters(void **state)
{
	(void)state;
	check("\n", "\"\\u000a\"");
	check("\r\n", "\"\\u000d\\u000a\"");
	check("\t", "\"\\u0009\"");
	check("\x01", "\"\\u0001\"");
	check("\x1f", "\"\\u001f\"");
	check("\x7f", "\"\\u007f\"");
	check(" ", "\" \""); /* 0x20 is not a control character */
	check("~", "\"~\"");
	/* every control character, each escaped on its own */
	for (int c = 1; c < 0x20; c++) {
		char in[2] = {(char)c, '\0'};
		char want[16];
		snprintf(want, sizeof(want), "\"\\u%04x\"", c);
		check(in, want);
	}
	/* a forged line: no raw newline reaches the output */
	char *got = json("ok\n{\"injected\": true}");
	assert_null(strchr(got, '\n'));
	assert_string_equal(got, "\"ok\\u000a{\\\"injected\\\": true}\"");
	free(got);
}

static void test_valid_utf8(void **state)
{
	(void)state;
	check("caf\xc3\xa9", "\"caf\xc3\xa9\"");           /* U+00E9 */
	check("\xc2\x80", "\"\xc2\x80\"");                 /* U+0080, smallest 2-byte */
	check("\xdf\xbf", "\"\xdf\xbf\"");                 /* U+07FF */
	check("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");         /* U+0800 */
	check("\xe2\x82\xac", "\"\xe2\x82\xac\"");         /* U+20AC euro */
	check("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");         /* U+D7FF, below surrogates */
	check("\xee\x80\x80", "\"\xee\x80\x80\"");         /* U+E000, above them */
	check("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");         /* U+FFFF */
	check("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\""); /* U+10000 */
	check("\xf0\x9f\x93\xa7", "\"\xf0\x9f\x93\xa7\""); /* U+1F4E7 e-mail symbol */
	check("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
	check("\xd1\x80\xd0\xbe\xd1\x81", "\"\xd1\x80\xd0\xbe\xd1\x81\""); /* Cyrillic */
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	/* each offending byte becomes one U+FFFD escape; what follows resumes */
	check("\x80", "\"\\ufffd\""); /* lone continuation */
	check("\xbf", "\"\\ufffd\"");
	check("a\xffz", "\"a\\ufffdz\""); /* never valid */
	check("\xfe", "\"\\ufffd\"");
	check("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
	check("\xc1\xbf", "\"\\ufffd\\ufffd\"");                       /* overlong */
	check("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong 3-byte */
	check("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong 4-byte */
	check("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* U+D800 surrogate */
	check("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* U+DFFF */
	check("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* above U+10FFFF */
	check("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	/* truncated sequences, at the end and before ASCII */
	check("\xc3", "\"\\ufffd\"");
	check("\xe2\x82", "\"\\ufffd\\ufffd\"");
	check("\xf0\x9f\x93", "\"\\ufffd\\ufffd\\ufffd\"");
	check("\xc3"
	      "A",
	      "\"\\ufffdA\"");
	check("\xe2\x82"
	      "\"",
	      "\"\\ufffd\\ufffd\\\"\"");
	/* a continuation byte that is a control character in disguise */
	check("\xc3\n", "\"\\ufffd\\u000a\"");
	/* valid after invalid */
	check("\xff\xc3\xa9", "\"\\ufffd\xc3\xa9\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_null_and_empty),     cmocka_unit_test(test_quotes_backslash),
	    cmocka_unit_test(test_control_characters), cmocka_unit_test(test_valid_utf8),
	    cmocka_unit_test(test_invalid_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
