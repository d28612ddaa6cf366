/* SPDX-License-Identifier: ISC */
/* smtp_reply.c - see smtp_reply.h */
#include "smtp/smtp_reply.h"

#include <assert.h>

static const struct smtp_reply replies[SMTP_R_COUNT] = {
#define SMTP_REPLY_ROW(name, code, enh, text) [SMTP_R_##name] = {code, enh, text},
	SMTP_REPLIES(SMTP_REPLY_ROW)
#undef SMTP_REPLY_ROW
};

const struct smtp_reply *smtp_reply_get(enum smtp_reply_id id)
{
	assert(id >= 0 && id < SMTP_R_COUNT);
	return &replies[id];
}
