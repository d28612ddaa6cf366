/* SPDX-License-Identifier: ISC */
/*
 * test_base64.c - unit tests for base64.c: the RFC 4648 section 10 vectors
 * both ways, strict decoding (alphabet, padding, pad bits, length), the
 * output-size bounds of both directions, and round trips of random data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base64.h"

#define S(lit) lit, sizeof(lit) - 1

/* RFC 4648 10: the test vectors. */
static const struct {
	const char *plain;
	const char *b64;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char out[32];
		memset(out, 'X', sizeof(out));
		size_t len = strlen(vectors[i].plain);
		long n =
		    base64_encode((const unsigned char *)vectors[i].plain, len, out, sizeof(out));
		assert_int_equal(n, (long)strlen(vectors[i].b64));
		assert_string_equal(out, vectors[i].b64);
	}
}

static void test_rfc4648_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		unsigned char out[32];
		size_t len = strlen(vectors[i].b64);
		long n = base64_decode(vectors[i].b64, len, out, sizeof(out));
		assert_int_equal(n, (long)strlen(vectors[i].plain));
		assert_memory_equal(out, vectors[i].plain, (size_t)n);
	}
}

static void test_all_alphabet(void **state)
{
	(void)state;
	/* Every 6-bit value once, in order: 48 bytes encode to these 64. */
	static const char all[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char bin[48];
	assert_int_equal(base64_decode(all, 64, bin, sizeof(bin)), 48);
	/* The 64 six-bit values 0, 1, ..., 63 packed big-endian. */
	unsigned char want[48];
	for (unsigned g = 0; g < 16; g++) {
		uint32_t v = (4 * g) << 18 | (4 * g + 1) << 12 | (4 * g + 2) << 6 | (4 * g + 3);
		want[3 * g] = (unsigned char)(v >> 16);
		want[3 * g + 1] = (unsigned char)(v >> 8);
		want[3 * g + 2] = (unsigned char)v;
	}
	assert_int_equal(want[0], 0x00);
	assert_int_equal(want[1], 0x10);
	assert_int_equal(want[2], 0x83);
	assert_int_equal(want[47], 0xbf);
	assert_memory_equal(bin, want, sizeof(want));
	char back[65];
	assert_int_equal(base64_encode(bin, 48, back, sizeof(back)), 64);
	assert_string_equal(back, all);
	/* Bytes above 0x7f and NUL are encoded, not dropped. */
	static const unsigned char hi[] = {0x00, 0xff, 0xfe};
	assert_int_equal(base64_encode(hi, 3, back, sizeof(back)), 4);
	assert_string_equal(back, "AP/+");
}

static void test_decode_refuses(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;
		const char *why;
	} bad[] = {
	    /* length not a multiple of 4 */
	    {S("Z"), "1 char"},
	    {S("Zg"), "unpadded 2"},
	    {S("Zg="), "3 chars"},
	    {S("Zm9vY"), "5 chars"},
	    {S("Zm9vYmFy="), "9 chars"},
	    /* characters outside the alphabet */
	    {S("Zm9v\n"), "newline, 5"},
	    {S("Zm9\nv"), "newline inside"},
	    {S("Zm 9"), "space"},
	    {S("Zm9v Zm9v"), "space between groups"},
	    {S("Zm-v"), "url-safe '-'"},
	    {S("Zm_v"), "url-safe '_'"},
	    {S("Zm9."), "dot"},
	    {"Zm\0v", 4, "NUL"},
	    {"Zm\xc3\xa9", 4, "UTF-8"},
	    {S("Zm9v\r\n  "), "CRLF"},
	    /* padding in the wrong place */
	    {S("===="), "only padding"},
	    {S("Z==="), "three pads"},
	    {S("=Zg="), "pad first"},
	    {S("Zg=a"), "data after pad"},
	    {S("Zg==Zm9v"), "pad in the first of two groups"},
	    {S("Zm9=Zm9v"), "one pad in the first group"},
	    {S("Zm=v"), "pad in the third place only"},
	    /* non-zero pad bits (RFC 4648 3.5): canonical only */
	    {S("Zh=="), "f with low bits set (Zh== vs Zg==)"},
	    {S("Zm9="), "fo with low bits set (Zm9= vs Zm8=)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char out[64];
		long n = base64_decode(bad[i].in, bad[i].len, out, sizeof(out));
		if (n != -1)
			fail_msg("accepted %s: returned %ld", bad[i].why, n);
	}
	/* A full group has no pad bits. */
	unsigned char out[8];
	assert_int_equal(base64_decode(S("Zm//"), out, sizeof(out)), 3);
	/* Every non-canonical variant of "f" (Zg==) and "fo" (Zm8=) fails. */
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int v = 0; v < 64; v++) {
		char two[5] = {'Z', alpha[v], '=', '=', '\0'};
		long want = (v & 0x0f) == 0 ? 1 : -1;
		assert_int_equal(base64_decode(two, 4, out, sizeof(out)), want);
		char three[5] = {'Z', 'm', alpha[v], '=', '\0'};
		want = (v & 0x03) == 0 ? 2 : -1;
		assert_int_equal(base64_decode(three, 4, out, sizeof(out)), want);
	}
}

static void test_decode_every_byte(void **state)
{
	(void)state;
	/* Each byte value in each of the four positions of a group: exactly
	 * the 64 alphabet characters (and '=' where padding may go) pass. */
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int pos = 0; pos < 4; pos++) {
		for (int c = 0; c < 256; c++) {
			char in[4] = {'Q', 'Q', 'Q', 'Q'};
			in[pos] = (char)c;
			unsigned char out[3];
			long n = base64_decode(in, 4, out, sizeof(out));
			bool in_alpha = c != 0 && strchr(alpha, c) != NULL;
			long want = in_alpha ? 3 : c == '=' && pos == 3 ? 2 : -1;
			if (n != want)
				fail_msg("byte 0x%02x at %d: %ld, want %ld", c, pos, n, want);
		}
	}
	/* 'Q' is 16: "QQQ=" has clean pad bits, "QQR=" does not. */
	unsigned char out[3];
	assert_int_equal(base64_decode("QQQ=", 4, out, 3), 2);
	assert_int_equal(out[0], 0x41);
	assert_int_equal(out[1], 0x04);
	assert_int_equal(base64_decode("QQR=", 4, out, 3), -1);
}

static void test_decode_output_bound(void **state)
{
	(void)state;
	unsigned char out[8];
	memset(out, 0xAA, sizeof(out));
	/* "foobar" needs 6 bytes: 6 fits, 5 does not. */
	assert_int_equal(base64_decode(S("Zm9vYmFy"), out, 6), 6);
	assert_memory_equal(out, "foobar", 6);
	assert_int_equal(out[6], 0xAA); /* nothing written past */
	memset(out, 0xAA, sizeof(out));
	assert_int_equal(base64_decode(S("Zm9vYmFy"), out, 5), -1);
	assert_int_equal(out[5], 0xAA);
	assert_int_equal(out[6], 0xAA);
	/* A padded tail needs only what it decodes to. */
	assert_int_equal(base64_decode(S("Zm9vYg=="), out, 4), 4);
	assert_int_equal(base64_decode(S("Zm9vYg=="), out, 3), -1);
	assert_int_equal(base64_decode(S("Zm9vYmE="), out, 5), 5);
	assert_int_equal(base64_decode(S("Zm9vYmE="), out, 4), -1);
	/* Empty input, no room needed. */
	assert_int_equal(base64_decode("", 0, out, 0), 0);
}

static void test_encode_output_bound(void **state)
{
	(void)state;
	char out[16];
	/* 4 * ((len + 2) / 3) + 1: 1 byte -> 5, 3 -> 5, 4 -> 9, 0 -> 1. */
	static const struct {
		size_t len, need;
	} cases[] = {{0, 1}, {1, 5}, {2, 5}, {3, 5}, {4, 9}, {6, 9}, {7, 13}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'X', sizeof(out));
		long n = base64_encode((const unsigned char *)"foobarx", cases[i].len, out,
		                       cases[i].need);
		assert_int_equal(n, (long)cases[i].need - 1);
		assert_int_equal(out[cases[i].need - 1], '\0');
		assert_int_equal(out[cases[i].need], 'X'); /* nothing past */
		memset(out, 'X', sizeof(out));
		assert_int_equal(base64_encode((const unsigned char *)"foobarx", cases[i].len, out,
		                               cases[i].need - 1),
		                 -1);
	}
}

/* xorshift - a small deterministic generator, so failures repeat. */
static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void test_round_trip_random(void **state)
{
	(void)state;
	uint32_t seed = 0x12345678;
	unsigned char in[300], back[300];
	char enc[4 * 100 + 1];
	for (int round = 0; round < 5000; round++) {
		size_t len = xorshift(&seed) % sizeof(in);
		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)xorshift(&seed);
		size_t need = 4 * ((len + 2) / 3) + 1;
		long n = base64_encode(in, len, enc, need);
		assert_int_equal(n, (long)need - 1);
		assert_int_equal(strlen(enc), (size_t)n);
		/* the padding is exactly what the length implies */
		size_t pads = (3 - len % 3) % 3;
		for (size_t k = 0; k < (size_t)n; k++)
			assert_true((enc[k] == '=') == (k >= (size_t)n - pads));
		/* room for exactly len bytes is enough */
		long m = base64_decode(enc, (size_t)n, back, len);
		assert_int_equal(m, (long)len);
		assert_memory_equal(back, in, len);
		if (len > 0)
			assert_int_equal(base64_decode(enc, (size_t)n, back, len - 1), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4648_encode),      cmocka_unit_test(test_rfc4648_decode),
	    cmocka_unit_test(test_all_alphabet),        cmocka_unit_test(test_decode_refuses),
	    cmocka_unit_test(test_decode_every_byte),   cmocka_unit_test(test_decode_output_bound),
	    cmocka_unit_test(test_encode_output_bound), cmocka_unit_test(test_round_trip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
