/* SPDX-License-Identifier: ISC */
/*
 * ratelimit.h - token buckets keyed by a string (an account, a client
 * address): "COUNT per DURATION" with bursts of up to COUNT ([limits]
 * account_messages, account_recipients, auth_failures).
 *
 * Owns: the buckets and their memory bound. A bucket that has refilled
 * completely says nothing a missing bucket would not, so full buckets are
 * dropped when room is needed; the table never holds more than its
 * maximum, whatever the number of distinct keys an attacker uses.
 * Pure apart from memory: the time is passed in. Event-loop thread only.
 */
#ifndef DETOUR_RATELIMIT_H
#define DETOUR_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct ratelimit;

/* ratelimit_new - a table of at most max_keys buckets. */
struct ratelimit *ratelimit_new(size_t max_keys);
void ratelimit_free(struct ratelimit **rl);

enum ratelimit_verdict {
	RATELIMIT_OK,       /* allowed, and taken */
	RATELIMIT_OVER,     /* refused; already reported in this window */
	RATELIMIT_OVER_NEW, /* refused, the first time in this window: log it */
};

/*
 * ratelimit_take - take n from key's allowance under rate at now_ms. A rate
 * with count 0 is no limit. Nothing is taken when the answer is a refusal.
 */
enum ratelimit_verdict ratelimit_take(struct ratelimit *rl, const char *key,
                                      struct config_rate rate, unsigned n, int64_t now_ms);

/* ratelimit_check - would n be allowed now? Takes nothing. */
bool ratelimit_check(struct ratelimit *rl, const char *key, struct config_rate rate, unsigned n,
                     int64_t now_ms);

/* ratelimit_available - what key may still take now (rate.count if the key
 * has no bucket). */
unsigned ratelimit_available(struct ratelimit *rl, const char *key, struct config_rate rate,
                             int64_t now_ms);

/* ratelimit_count - buckets in the table (for status). */
size_t ratelimit_count(const struct ratelimit *rl);

#endif
