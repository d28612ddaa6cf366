/* SPDX-License-Identifier: ISC */
/*
 * retry.h - when to try a deferred recipient again, and when to give up
 * ([delivery] retry and max_age).
 *
 * Owns: the schedule arithmetic: the n-th failed attempt waits retry[n-1]
 * (the last interval repeats); a message older than max_age is not tried
 * again. Pure. Any thread.
 */
#ifndef DETOUR_RETRY_H
#define DETOUR_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * retry_next - after attempt number `attempts` (1 for the first) failed
 * temporarily at now_ms, the time of the next attempt. Returns false when
 * the message, which arrived at arrival_ms, has been queued for max_age
 * seconds by then: it is to be bounced instead.
 */
bool retry_next(const unsigned *retry, size_t n_retry, unsigned max_age, unsigned attempts,
                int64_t arrival_ms, int64_t now_ms, int64_t *next_ms_r);

#endif
