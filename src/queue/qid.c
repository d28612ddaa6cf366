/* SPDX-License-Identifier: ISC */
/*
 * qid.c - queue ids: 80 bits written as 16 Crockford base32 digits.
 *
 * The high 52 bits are microseconds since the epoch (enough until 2112), the
 * low 28 bits a counter for ids made in the same microsecond. The digits are
 * written most significant first and the alphabet is in ASCII order, so
 * comparing two ids with strcmp compares their times: `queue list` sorted
 * by id is sorted by arrival, and a log grep for a time range is easy.
 *
 * Every id is strictly greater than the one before it in this process, even
 * when the wall clock steps back (NTP, an operator): the generator then keeps
 * counting up from the last id until the clock catches up. At spool_open the
 * greatest id already queued raises that floor, so a clock that went back
 * across a restart cannot hand out an id the queue still holds.
 */
#include "queue/spool_internal.h"

#include <string.h>
#include <time.h>

#define QID_SEQ_BITS 28
#define QID_US_BITS  52
#define QID_SEQ_MAX  ((UINT32_C(1) << QID_SEQ_BITS) - 1)
#define QID_US_MAX   ((UINT64_C(1) << QID_US_BITS) - 1)

struct qid_value {
	uint64_t us;  /* QID_US_BITS */
	uint32_t seq; /* QID_SEQ_BITS */
};

static pthread_mutex_t qid_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qid_value qid_last; /* qid_lock */

static int qid_cmp(struct qid_value a, struct qid_value b)
{
	if (a.us != b.us)
		return a.us < b.us ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

/* qid_succ - the value right after v, carrying the counter into the time.
 * At the very end of the id space (the year 2112, or a bogus id raised the
 * floor there) it stays put rather than wrap to 0000...: a repeated id fails
 * its commit visibly (a UNIQUE error), a wrapped one would break ordering. */
static struct qid_value qid_succ(struct qid_value v)
{
	if (v.seq < QID_SEQ_MAX) {
		v.seq++;
	} else if (v.us < QID_US_MAX) {
		v.seq = 0;
		v.us++;
	}
	return v;
}

/* qid_encode - 80 bits as two 40-bit halves of 8 digits each. */
static void qid_encode(struct qid_value v, char out[QID_SIZE])
{
	uint64_t half[2];
	half[0] = v.us >> (40 - QID_SEQ_BITS);
	half[1] = ((v.us & ((UINT64_C(1) << (40 - QID_SEQ_BITS)) - 1)) << QID_SEQ_BITS) | v.seq;
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 8; i++)
			out[h * 8 + i] = QID_ALPHABET[(half[h] >> (35 - 5 * i)) & 31];
	out[QID_LEN] = '\0';
}

/* qid_digit - value of one digit of the alphabet, -1 if it is not one. */
static int qid_digit(char c)
{
	const char *p = c != '\0' ? strchr(QID_ALPHABET, c) : NULL;
	return p != NULL ? (int)(p - QID_ALPHABET) : -1;
}

bool spool_qid_valid(const char *s)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i < QID_LEN; i++)
		if (qid_digit(s[i]) < 0)
			return false; /* also stops at a NUL: too short */
	return s[QID_LEN] == '\0';
}

void qid_next_at(int64_t now_us, char out[QID_SIZE])
{
	struct qid_value v = {.us = 0, .seq = 0};
	if (now_us > 0)
		v.us = (uint64_t)now_us > QID_US_MAX ? QID_US_MAX : (uint64_t)now_us;
	pthread_mutex_lock(&qid_lock);
	if (qid_cmp(v, qid_last) <= 0)
		v = qid_succ(qid_last);
	qid_last = v;
	pthread_mutex_unlock(&qid_lock);
	qid_encode(v, out);
}

void qid_next(char out[QID_SIZE])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	qid_next_at((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, out);
}

void qid_floor(const char *qid)
{
	if (!spool_qid_valid(qid))
		return;
	uint64_t half[2] = {0, 0};
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 8; i++)
			half[h] = (half[h] << 5) | (uint64_t)qid_digit(qid[h * 8 + i]);
	struct qid_value v = {
	    .us = (half[0] << (40 - QID_SEQ_BITS)) | (half[1] >> QID_SEQ_BITS),
	    .seq = (uint32_t)(half[1] & QID_SEQ_MAX),
	};
	pthread_mutex_lock(&qid_lock);
	if (qid_cmp(v, qid_last) > 0)
		qid_last = v;
	pthread_mutex_unlock(&qid_lock);
}
