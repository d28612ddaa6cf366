/* SPDX-License-Identifier: ISC */
/* policy.c - see policy.h */
#include "server/policy.h"

#include <string.h>

#include "lib/util.h"

/* split_at - position of the '@' that separates local part and domain: the
 * last one, since a quoted local part may contain '@' itself. */
static const char *split_at(const char *address)
{
	return strrchr(address, '@');
}

/* same_address - local parts exactly, domains ignoring ASCII case. */
static bool same_address(const char *a, const char *b)
{
	const char *at_a = split_at(a), *at_b = split_at(b);
	if (at_a == NULL || at_b == NULL)
		return false;
	size_t la = (size_t)(at_a - a), lb = (size_t)(at_b - b);
	return la == lb && memcmp(a, b, la) == 0 && str_ieq(at_a + 1, at_b + 1);
}

bool policy_sender_matches(const char *address, const char *account, const char *const *patterns,
                           size_t n_patterns)
{
	if (account != NULL && same_address(address, account))
		return true;
	const char *at = split_at(address);
	for (size_t i = 0; i < n_patterns; i++) {
		const char *p = patterns[i];
		if (p[0] == '@') {
			if (at != NULL && str_ieq(at + 1, p + 1))
				return true;
		} else if (same_address(address, p)) {
			return true;
		}
	}
	return false;
}

bool policy_mail(const struct policy_client *c, const struct smtp_addr *sender,
                 enum smtp_reply_id *reply_r)
{
	if (c->account == NULL && !c->trusted) {
		/* RFC 4954 6: 530 tells the client that AUTH would help. */
		if (c->auth == LISTENER_AUTH_REQUIRED) {
			*reply_r = SMTP_R_AUTH_REQUIRED;
			return false;
		}
		/* Elsewhere the refusal comes at RCPT (550 5.7.1), where a
		 * relay decision is conventionally reported. */
		return true;
	}
	if (sender->is_null) {
		/* Bounces come from MTAs, not from users' mail programs. */
		if (!c->trusted) {
			*reply_r = SMTP_R_NULL_SENDER_DENIED;
			return false;
		}
		return true;
	}
	if (c->account != NULL && !c->trusted &&
	    !policy_sender_matches(sender->mailbox, c->account, c->senders, c->n_senders)) {
		*reply_r = SMTP_R_SENDER_DENIED;
		return false;
	}
	return true;
}

bool policy_rcpt(const struct policy_client *c, const struct smtp_addr *rcpt,
                 enum smtp_reply_id *reply_r)
{
	if (rcpt->is_postmaster) {
		*reply_r = SMTP_R_NO_MAILBOXES;
		return false;
	}
	if (c->account == NULL && !c->trusted) {
		*reply_r =
		    c->auth == LISTENER_AUTH_REQUIRED ? SMTP_R_AUTH_REQUIRED : SMTP_R_RELAY_DENIED;
		return false;
	}
	/* RFC 5321 4.1.3 allows "[tag:content]", but no tag besides IPv6 is
	 * registered: such a message could only bounce later. Say so now,
	 * while the sender is still there to read it. */
	if (rcpt->is_general_literal) {
		*reply_r = SMTP_R_GENERAL_LITERAL;
		return false;
	}
	return true;
}
