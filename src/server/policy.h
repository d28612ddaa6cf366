/* SPDX-License-Identifier: ISC */
/*
 * policy.h - who may relay, and as which sender (SPEC.md "Never an open
 * relay").
 *
 * Owns: the relay decision for MAIL and RCPT, from facts the session
 * gathered (trusted network, authenticated account, the listener's auth
 * mode, the account's allowed sender patterns). detour has no local
 * mailboxes, so every recipient is a relay recipient: without AUTH or a
 * trusted address, nothing is accepted.
 * Pure: no I/O. Any thread.
 */
#ifndef DETOUR_POLICY_H
#define DETOUR_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_reply.h"

struct policy_client {
	bool trusted;               /* address in [server] trusted */
	enum listener_auth auth;    /* the listener's auth mode */
	const char *account;        /* authenticated account, NULL if none */
	const char *const *senders; /* extra patterns the account may use: "a@b", "@domain" */
	size_t n_senders;
};

/* policy_mail - may this client start a transaction with this sender?
 * Returns true, or false with the reply to send in *reply_r. */
bool policy_mail(const struct policy_client *c, const struct smtp_addr *sender,
                 enum smtp_reply_id *reply_r);

/* policy_rcpt - may this client send to this recipient? Relaying is
 * checked first, so an untrusted client learns nothing more about an
 * address than that it may not relay. */
bool policy_rcpt(const struct policy_client *c, const struct smtp_addr *rcpt,
                 enum smtp_reply_id *reply_r);

/* policy_sender_matches - does address equal account or match one of the
 * patterns? Local parts compare exactly, domains case-insensitively. */
bool policy_sender_matches(const char *address, const char *account, const char *const *patterns,
                           size_t n_patterns);

#endif
