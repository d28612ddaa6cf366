/* SPDX-License-Identifier: ISC */
/* test_ratelimit.c - token buckets: bursts, refill, once-per-window
 * reporting, unlimited rates and the memory bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "server/ratelimit.h"

static const struct config_rate three_per_minute = {3, 60};

/* A burst of COUNT is allowed at once; COUNT+1 is not. */
static void test_burst_at_limit_and_past(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(100);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(rl, "a@x", three_per_minute, 1, 1000),
		                 RATELIMIT_OK);
	assert_int_equal(ratelimit_take(rl, "a@x", three_per_minute, 1, 1000), RATELIMIT_OVER_NEW);
	assert_int_equal(ratelimit_take(rl, "a@x", three_per_minute, 1, 1001), RATELIMIT_OVER);
	/* another key is not affected */
	assert_int_equal(ratelimit_take(rl, "b@x", three_per_minute, 1, 1001), RATELIMIT_OK);
	ratelimit_free(&rl);
	assert_null(rl);
}

/* Tokens come back evenly: one every 20 s for 3/60s. */
static void test_refill(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(100);
	for (int i = 0; i < 3; i++)
		ratelimit_take(rl, "k", three_per_minute, 1, 0);
	assert_int_equal(ratelimit_available(rl, "k", three_per_minute, 19999), 0);
	assert_int_equal(ratelimit_available(rl, "k", three_per_minute, 20000), 1);
	assert_int_equal(ratelimit_take(rl, "k", three_per_minute, 1, 20000), RATELIMIT_OK);
	assert_false(ratelimit_check(rl, "k", three_per_minute, 1, 20001));
	/* never more than COUNT, however long the wait */
	assert_int_equal(ratelimit_available(rl, "k", three_per_minute, 10 * 60000), 3);
	ratelimit_free(&rl);
}

/* A refusal is reported once per window, then again after it. */
static void test_reported_once_per_window(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(100);
	struct config_rate one = {1, 60};
	assert_int_equal(ratelimit_take(rl, "k", one, 1, 0), RATELIMIT_OK);
	assert_int_equal(ratelimit_take(rl, "k", one, 1, 1), RATELIMIT_OVER_NEW);
	for (int t = 2; t < 59000; t += 1000)
		assert_int_equal(ratelimit_take(rl, "k", one, 2, t), RATELIMIT_OVER);
	assert_int_equal(ratelimit_take(rl, "k", one, 2, 60001), RATELIMIT_OVER_NEW);
	ratelimit_free(&rl);
}

/* count 0 means no limit, and nothing is stored for it. */
static void test_unlimited(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(100);
	struct config_rate none = {0, 60};
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take(rl, "k", none, 1, 0), RATELIMIT_OK);
	assert_int_equal(ratelimit_count(rl), 0);
	assert_true(ratelimit_check(rl, "k", none, 1000000, 0));
	ratelimit_free(&rl);
}

/* The table never holds more than its maximum: idle buckets are dropped to
 * make room; while all are busy, new keys are not tracked (fail open). */
static void test_memory_bound(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(10);
	char key[32];
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ratelimit_take(rl, key, three_per_minute, 1, 0);
	}
	assert_int_equal(ratelimit_count(rl), 10);
	/* all ten are in use: an eleventh key is allowed but not stored */
	assert_int_equal(ratelimit_take(rl, "new", three_per_minute, 1, 1000), RATELIMIT_OK);
	assert_int_equal(ratelimit_count(rl), 10);
	/* a window later the old ones have refilled and make room */
	assert_int_equal(ratelimit_take(rl, "new", three_per_minute, 1, 61000), RATELIMIT_OK);
	assert_true(ratelimit_count(rl) <= 10);
	assert_int_equal(ratelimit_available(rl, "new", three_per_minute, 61000), 2);
	ratelimit_free(&rl);
}

/* Each bucket is judged by its own window when room is made: a key with a
 * one-second window does not evict a one-day bucket that is still in use,
 * and a table full of busy buckets is not walked for every new key. */
static void test_sweep_uses_each_buckets_rate(void **state)
{
	(void)state;
	struct config_rate per_day = {1, 86400}, per_second = {1, 1};
	struct ratelimit *rl = ratelimit_new(2);
	assert_int_equal(ratelimit_take(rl, "long", per_day, 1, 0), RATELIMIT_OK);
	assert_int_equal(ratelimit_take(rl, "short", per_second, 1, 0), RATELIMIT_OK);
	/* two seconds later "short" has refilled and makes room; "long" stays */
	assert_int_equal(ratelimit_take(rl, "new", per_second, 1, 2000), RATELIMIT_OK);
	assert_int_equal(ratelimit_count(rl), 2);
	assert_int_equal(ratelimit_available(rl, "long", per_day, 2000), 0);
	assert_int_equal(ratelimit_take(rl, "long", per_day, 1, 2000), RATELIMIT_OVER_NEW);
	assert_int_equal(ratelimit_available(rl, "new", per_second, 2000), 0);
	/* both busy: a further key is not tracked (fail open) until one refills */
	assert_int_equal(ratelimit_take(rl, "other", per_second, 1, 2500), RATELIMIT_OK);
	assert_int_equal(ratelimit_available(rl, "other", per_second, 2500), 1);
	assert_int_equal(ratelimit_count(rl), 2);
	/* "new" is full again at 3000: then "other" gets its place */
	assert_int_equal(ratelimit_take(rl, "other", per_second, 1, 3001), RATELIMIT_OK);
	assert_int_equal(ratelimit_available(rl, "other", per_second, 3001), 0);
	assert_int_equal(ratelimit_available(rl, "long", per_day, 3001), 0);
	ratelimit_free(&rl);
}

/* A changed rate keeps what was used: raising 3 -> 10 after 3 leaves 7,
 * lowering 10 -> 3 after 5 leaves none. */
static void test_rate_change_keeps_use(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(100);
	struct config_rate ten = {10, 3600}, three = {3, 3600};
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(rl, "up", three, 1, 0), RATELIMIT_OK);
	assert_int_equal(ratelimit_available(rl, "up", ten, 0), 7);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, "down", ten, 1, 0), RATELIMIT_OK);
	assert_int_equal(ratelimit_available(rl, "down", three, 0), 0);
	assert_int_equal(ratelimit_take(rl, "down", three, 1, 0), RATELIMIT_OVER_NEW);
	ratelimit_free(&rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_at_limit_and_past),
	    cmocka_unit_test(test_refill),
	    cmocka_unit_test(test_reported_once_per_window),
	    cmocka_unit_test(test_unlimited),
	    cmocka_unit_test(test_memory_bound),
	    cmocka_unit_test(test_sweep_uses_each_buckets_rate),
	    cmocka_unit_test(test_rate_change_keeps_use),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
