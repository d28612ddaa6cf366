/* SPDX-License-Identifier: ISC */
/* ratelimit.c - see ratelimit.h */
#include "server/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define RATELIMIT_BUCKETS 4096

struct bucket {
	struct bucket *next;
	struct config_rate rate; /* the rate the bucket was last used with */
	double tokens;           /* what may still be taken */
	int64_t updated_ms;      /* when tokens was last brought up to date */
	int64_t reported_until;  /* refusals before this are not logged again */
	char key[];
};

struct ratelimit {
	struct bucket *table[RATELIMIT_BUCKETS];
	size_t count, max;
	/* While the table is full and its buckets' rates unchanged, a sweep
	 * frees nothing before this (0: sweep when full). */
	int64_t sweep_after_ms;
};

static unsigned hash(const char *key)
{
	return str_hash(key) % RATELIMIT_BUCKETS;
}

struct ratelimit *ratelimit_new(size_t max_keys)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	rl->max = max_keys;
	return rl;
}

void ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	*rlp = NULL;
	for (size_t i = 0; i < RATELIMIT_BUCKETS; i++) {
		while (rl->table[i] != NULL) {
			struct bucket *b = rl->table[i];
			rl->table[i] = b->next;
			free(b);
		}
	}
	free(rl);
}

/* refill - bring a bucket up to now: COUNT tokens per DURATION. A rate
 * that changed (an operator raised or lowered an account's limit) keeps
 * what was used: the new allowance is the new COUNT minus the old use. */
static void refill(struct bucket *b, struct config_rate rate, int64_t now_ms)
{
	if (b->rate.count != rate.count || b->rate.seconds != rate.seconds) {
		double used = b->rate.count - b->tokens;
		b->tokens = rate.count - used;
		if (b->tokens < 0)
			b->tokens = 0;
		if (b->tokens > rate.count)
			b->tokens = rate.count;
		b->rate = rate;
	}
	if (now_ms > b->updated_ms) {
		double add =
		    (double)(now_ms - b->updated_ms) * rate.count / (rate.seconds * 1000.0);
		b->tokens = b->tokens + add > rate.count ? rate.count : b->tokens + add;
		b->updated_ms = now_ms;
	}
}

/* full_at - when a bucket will be full again at its own rate. */
static int64_t full_at(const struct bucket *b)
{
	double missing = b->rate.count - b->tokens;
	if (missing <= 0)
		return b->updated_ms;
	return b->updated_ms + (int64_t)(missing * b->rate.seconds * 1000.0 / b->rate.count) + 1;
}

/* sweep - drop the buckets that have refilled at their own rate: a full
 * bucket holds no information. Each bucket is judged by the rate it was
 * last used with, so a short window never evicts a long one in use. When
 * nothing could be dropped, note when the first one will be, so that a
 * full table is not walked again for every new key before then. */
static void sweep(struct ratelimit *rl, int64_t now_ms)
{
	int64_t next = INT64_MAX;
	size_t before = rl->count;
	for (size_t i = 0; i < RATELIMIT_BUCKETS; i++) {
		for (struct bucket **pp = &rl->table[i]; *pp != NULL;) {
			struct bucket *b = *pp;
			int64_t at = full_at(b);
			if (at <= now_ms) {
				*pp = b->next;
				free(b);
				rl->count--;
			} else {
				if (at < next)
					next = at;
				pp = &b->next;
			}
		}
	}
	rl->sweep_after_ms = rl->count < before ? 0 : next;
}

/* bring_up_to_date - refill b; a changed rate may make it full sooner
 * than the last sweep assumed. */
static void bring_up_to_date(struct ratelimit *rl, struct bucket *b, struct config_rate rate,
                             int64_t now_ms)
{
	if (b->rate.count != rate.count || b->rate.seconds != rate.seconds)
		rl->sweep_after_ms = 0;
	refill(b, rate, now_ms);
}

static struct bucket *find(struct ratelimit *rl, const char *key)
{
	for (struct bucket *b = rl->table[hash(key)]; b != NULL; b = b->next)
		if (strcmp(b->key, key) == 0)
			return b;
	return NULL;
}

/* get - key's bucket, made full if it is new; NULL if the table is full of
 * buckets still in use (then the key is treated as having a full bucket). */
static struct bucket *get(struct ratelimit *rl, const char *key, struct config_rate rate,
                          int64_t now_ms)
{
	struct bucket *b = find(rl, key);
	if (b != NULL) {
		bring_up_to_date(rl, b, rate, now_ms);
		return b;
	}
	if (rl->count >= rl->max && now_ms >= rl->sweep_after_ms)
		sweep(rl, now_ms);
	if (rl->count >= rl->max)
		return NULL;
	size_t len = strlen(key);
	b = xcalloc(1, sizeof(*b) + len + 1);
	memcpy(b->key, key, len + 1);
	b->tokens = rate.count;
	b->rate = rate;
	b->updated_ms = now_ms;
	unsigned h = hash(key);
	b->next = rl->table[h];
	rl->table[h] = b;
	rl->count++;
	return b;
}

enum ratelimit_verdict ratelimit_take(struct ratelimit *rl, const char *key,
                                      struct config_rate rate, unsigned n, int64_t now_ms)
{
	if (rate.count == 0)
		return RATELIMIT_OK;
	struct bucket *b = get(rl, key, rate, now_ms);
	if (b == NULL)
		return RATELIMIT_OK; /* no room to remember: fail open, see get */
	if (b->tokens >= n) {
		b->tokens -= n;
		return RATELIMIT_OK;
	}
	if (now_ms >= b->reported_until) {
		b->reported_until = now_ms + (int64_t)rate.seconds * 1000;
		return RATELIMIT_OVER_NEW;
	}
	return RATELIMIT_OVER;
}

bool ratelimit_check(struct ratelimit *rl, const char *key, struct config_rate rate, unsigned n,
                     int64_t now_ms)
{
	return ratelimit_available(rl, key, rate, now_ms) >= n;
}

unsigned ratelimit_available(struct ratelimit *rl, const char *key, struct config_rate rate,
                             int64_t now_ms)
{
	if (rate.count == 0)
		return UINT32_MAX;
	struct bucket *b = find(rl, key);
	if (b == NULL)
		return rate.count;
	bring_up_to_date(rl, b, rate, now_ms);
	return (unsigned)b->tokens;
}

size_t ratelimit_count(const struct ratelimit *rl)
{
	return rl->count;
}
