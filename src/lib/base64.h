/* SPDX-License-Identifier: ISC */
/*
 * base64.h - RFC 4648 base64, strictly: SASL exchanges (RFC 4954) carry
 * credentials in it, so anything that is not canonical base64 is refused
 * instead of being guessed at.
 * Pure. Any thread.
 */
#ifndef DETOUR_BASE64_H
#define DETOUR_BASE64_H

#include <stddef.h>

/* base64_decode - decode in[0..len) into out (room for len / 4 * 3 bytes).
 * Padding is required; whitespace, characters outside the alphabet and
 * non-zero pad bits are errors. Returns the decoded length or -1. */
long base64_decode(const char *in, size_t len, unsigned char *out, size_t size);

/* base64_encode - encode in[0..len) into out (room for 4 * ((len + 2) / 3)
 * + 1 bytes, NUL-terminated). Returns the encoded length or -1. */
long base64_encode(const unsigned char *in, size_t len, char *out, size_t size);

#endif
