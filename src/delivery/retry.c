/* SPDX-License-Identifier: ISC */
/* retry.c - see retry.h */
#include "delivery/retry.h"

#include <assert.h>

bool retry_next(const unsigned *retry, size_t n_retry, unsigned max_age, unsigned attempts,
                int64_t arrival_ms, int64_t now_ms, int64_t *next_ms_r)
{
	assert(n_retry > 0); /* the configuration always has an interval */
	if (now_ms - arrival_ms >= (int64_t)max_age * 1000)
		return false;
	size_t i = attempts == 0 ? 0 : attempts - 1;
	if (i >= n_retry)
		i = n_retry - 1;
	int64_t next = now_ms + (int64_t)retry[i] * 1000;
	/* The last attempt is the one just before max_age runs out: a message
	 * is never held longer than max_age for want of an attempt. */
	int64_t deadline = arrival_ms + (int64_t)max_age * 1000;
	*next_ms_r = next < deadline ? next : deadline;
	return true;
}
