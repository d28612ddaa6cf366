/* SPDX-License-Identifier: ISC */
/*
 * test_retry.c - unit tests for retry.c: the n-th failed attempt waits
 * retry[n-1], the last interval repeats, the next attempt never lies past
 * the max_age deadline, and at or after max_age the answer is "give up".
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

#include "delivery/retry.h"

/* The default schedule of SPEC.md: 5m 10m 30m 1h 2h 4h, max_age 5d. */
static const unsigned sched[] = {300, 600, 1800, 3600, 7200, 14400};
#define N_SCHED (sizeof(sched) / sizeof(sched[0]))
#define MAX_AGE (5 * 86400u)
#define ARRIVAL INT64_C(1700000000000)

static void test_nth_attempt_uses_nth_interval(void **state)
{
	(void)state;
	int64_t now = ARRIVAL + 1000;
	for (unsigned a = 1; a <= N_SCHED; a++) {
		int64_t next = -1;
		assert_true(retry_next(sched, N_SCHED, MAX_AGE, a, ARRIVAL, now, &next));
		assert_int_equal(next, now + (int64_t)sched[a - 1] * 1000);
	}
	/* attempts == 0 (never counted) is treated like the first */
	int64_t next = -1;
	assert_true(retry_next(sched, N_SCHED, MAX_AGE, 0, ARRIVAL, now, &next));
	assert_int_equal(next, now + 300 * 1000);
}

static void test_last_interval_repeats(void **state)
{
	(void)state;
	int64_t now = ARRIVAL + 60 * 1000;
	static const unsigned attempts[] = {7, 8, 20, 1000, 4000000000u};
	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		int64_t next = -1;
		assert_true(retry_next(sched, N_SCHED, MAX_AGE, attempts[i], ARRIVAL, now, &next));
		assert_int_equal(next, now + 14400 * 1000);
	}
	/* a schedule of one interval */
	static const unsigned one[] = {90};
	for (unsigned a = 1; a < 5; a++) {
		int64_t next = -1;
		assert_true(retry_next(one, 1, MAX_AGE, a, ARRIVAL, ARRIVAL, &next));
		assert_int_equal(next, ARRIVAL + 90 * 1000);
	}
}

static void test_clamped_at_deadline(void **state)
{
	(void)state;
	int64_t deadline = ARRIVAL + (int64_t)MAX_AGE * 1000;
	int64_t next = -1;
	/* 4h before the deadline, the 4h interval lands exactly on it */
	int64_t now = deadline - 14400 * 1000;
	assert_true(retry_next(sched, N_SCHED, MAX_AGE, 10, ARRIVAL, now, &next));
	assert_int_equal(next, deadline);
	/* 1 ms later it would pass the deadline: clamped to it */
	now += 1;
	assert_true(retry_next(sched, N_SCHED, MAX_AGE, 10, ARRIVAL, now, &next));
	assert_int_equal(next, deadline);
	/* 1 ms before the deadline: one last attempt, at the deadline */
	now = deadline - 1;
	assert_true(retry_next(sched, N_SCHED, MAX_AGE, 1, ARRIVAL, now, &next));
	assert_int_equal(next, deadline);
	/* a short interval well before the deadline is not touched */
	now = deadline - 3600 * 1000;
	assert_true(retry_next(sched, N_SCHED, MAX_AGE, 1, ARRIVAL, now, &next));
	assert_int_equal(next, now + 300 * 1000);
}

static void test_give_up_at_max_age(void **state)
{
	(void)state;
	int64_t deadline = ARRIVAL + (int64_t)MAX_AGE * 1000;
	int64_t next = 12345;
	/* exactly at max_age: give up, *next untouched */
	assert_false(retry_next(sched, N_SCHED, MAX_AGE, 3, ARRIVAL, deadline, &next));
	assert_int_equal(next, 12345);
	assert_false(retry_next(sched, N_SCHED, MAX_AGE, 3, ARRIVAL, deadline + 1, &next));
	assert_false(retry_next(sched, N_SCHED, MAX_AGE, 1, ARRIVAL, deadline + 86400000, &next));
	assert_int_equal(next, 12345);
	/* a short max_age (60 s, the configuration's minimum) */
	assert_true(retry_next(sched, N_SCHED, 60, 1, ARRIVAL, ARRIVAL + 59999, &next));
	assert_int_equal(next, ARRIVAL + 60000);
	assert_false(retry_next(sched, N_SCHED, 60, 1, ARRIVAL, ARRIVAL + 60000, &next));
}

static void test_whole_schedule(void **state)
{
	(void)state;
	/* Follow a message that always fails temporarily and is tried at
	 * every scheduled time: the attempt times are the running sums, every
	 * attempt is before the deadline, the last one lands on it, and the
	 * attempt after that gives up. */
	int64_t now = ARRIVAL, next = 0;
	int64_t deadline = ARRIVAL + (int64_t)MAX_AGE * 1000;
	int64_t want = ARRIVAL;
	unsigned a = 0;
	while (retry_next(sched, N_SCHED, MAX_AGE, ++a, ARRIVAL, now, &next)) {
		want += (int64_t)sched[a - 1 < N_SCHED ? a - 1 : N_SCHED - 1] * 1000;
		if (want > deadline)
			want = deadline;
		assert_int_equal(next, want);
		assert_true(next > now);
		assert_true(next <= deadline);
		now = next;
		assert_true(a < 100);
	}
	assert_int_equal(now, deadline);
	/* 5m+10m+30m+1h+2h+4h = 7h45m, then every 4h up to 120h: the deadline
	 * is reached by attempt 6 + ceil((120h - 7h45m) / 4h) = 6 + 29 = 35,
	 * and attempt 36 gives up. */
	assert_int_equal(a, 36);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nth_attempt_uses_nth_interval),
	    cmocka_unit_test(test_last_interval_repeats),
	    cmocka_unit_test(test_clamped_at_deadline),
	    cmocka_unit_test(test_give_up_at_max_age),
	    cmocka_unit_test(test_whole_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
