/* SPDX-License-Identifier: ISC */
/*
 * json.h - writing JSON strings for --json output (RFC 8259).
 *
 * Owns: escaping. Control characters, quotes and backslashes are escaped;
 * UTF-8 passes through; bytes that are not valid UTF-8 become U+FFFD so the
 * output is always valid JSON. Pure apart from the FILE it writes to.
 */
#ifndef DETOUR_JSON_H
#define DETOUR_JSON_H

#include <stdio.h>

/* json_str - write s as a JSON string, or null if s is NULL. */
void json_str(FILE *out, const char *s);

#endif
