/* SPDX-License-Identifier: ISC */
/* base64.c - see base64.h */
#include "lib/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value_of(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long base64_decode(const char *in, size_t len, unsigned char *out, size_t size)
{
	if (len % 4 != 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && i + 4 == len && k >= 2) {
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0) /* data after padding */
				return -1;
			v[k] = value_of(c);
			if (v[k] < 0)
				return -1;
		}
		if (pad == 1 && in[i + 3] != '=')
			return -1;
		/* The bits a padded group leaves unused must be zero. */
		if (pad == 2 && (v[1] & 0x0f) != 0)
			return -1;
		if (pad == 1 && (v[2] & 0x03) != 0)
			return -1;
		unsigned triple = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
		size_t n = 3 - (size_t)pad;
		if (o + n > size)
			return -1;
		out[o++] = (unsigned char)(triple >> 16);
		if (n > 1)
			out[o++] = (unsigned char)(triple >> 8);
		if (n > 2)
			out[o++] = (unsigned char)triple;
	}
	return (long)o;
}

long base64_encode(const unsigned char *in, size_t len, char *out, size_t size)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	if (need > size)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned triple = (unsigned)in[i] << 16;
		if (i + 1 < len)
			triple |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			triple |= in[i + 2];
		out[o++] = alphabet[(triple >> 18) & 63];
		out[o++] = alphabet[(triple >> 12) & 63];
		out[o++] = i + 1 < len ? alphabet[(triple >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? alphabet[triple & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}
