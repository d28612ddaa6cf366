/* SPDX-License-Identifier: ISC */
/*
 * accounts.h - the account database, state_dir/accounts.db: who may
 * authenticate, with which password hash, and as which other senders.
 *
 * Owns: the file (SQLite, WAL, synchronous=FULL, schema versioned with
 * PRAGMA user_version), its permissions (0600; when root creates it in a
 * state_dir that belongs to the daemon's user, the files are given to that
 * user), and what an account name is: a mailbox (RFC 5321 4.1.2, UTF-8
 * allowed) whose domain is lower-cased and whose local part is kept exactly
 * (SPEC.md: compared case-insensitively in the domain, exactly in the local
 * part). A sender PATTERN is a mailbox, or "@domain" for a whole domain.
 * An account may always send as itself; that is never stored as a pattern.
 * Does not own: password hashing (password.h), deciding whether a sender
 * matches (policy.h), or the "suspended" setter (the column is here; the
 * command that sets it is not yet).
 *
 * Writers: detourctl opens ACCOUNTS_READ_WRITE, one change per transaction.
 * Readers: detourd's worker threads open ACCOUNTS_READ_ONLY, beside a
 * detourctl that may be changing accounts; WAL lets them read while it
 * writes, and each call reads one snapshot.
 *
 * Ownership: a struct account from accounts_get belongs to the caller, who
 * frees it with account_free; one passed to an accounts_foreach callback is
 * lent for that call only. Strings handed in are copied or only read during
 * the call. Error strings (*error_r) belong to the handle and stay valid until
 * the next call on it; those of accounts_open and accounts_normalize*
 * belong to a per-thread buffer valid until the next such call on that
 * thread.
 * Threads: a handle is used by one thread at a time (any thread). Calls do
 * blocking file I/O (and may wait up to a few seconds for a lock), so never
 * on the event-loop thread. Give each worker thread its own handle.
 */
#ifndef DETOUR_ACCOUNTS_H
#define DETOUR_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/limits.h"

/* A normalized address or pattern, with its NUL. */
#define ACCOUNTS_ADDRESS_SIZE (SMTP_PATH_MAX + 1)

struct accounts;

enum accounts_mode {
	ACCOUNTS_READ_ONLY,  /* detourd: never writes, never creates */
	ACCOUNTS_READ_WRITE, /* detourctl and start-up: creates the file if missing */
};

enum accounts_result {
	ACCOUNTS_OK,
	ACCOUNTS_NOTFOUND, /* no such account or pattern (or, read-only, no database) */
	ACCOUNTS_EXISTS,   /* the account or pattern is already there */
	ACCOUNTS_INVALID,  /* malformed address or pattern, unusable hash, or (open)
	                      a state_dir or file that is not what it should be */
	ACCOUNTS_ERROR,    /* database or system error; *error_r says which */
};

struct account {
	char *address;      /* normalized */
	char *hash;         /* crypt(3) string, for password_verify */
	bool suspended;     /* may not log in */
	int64_t created_ms; /* wall clock, ms since the epoch */
	char **senders;     /* normalized patterns besides itself, sorted */
	size_t n_senders;
	/* Per-account limits overriding [limits] account_messages and
	 * account_recipients: "COUNT/DURATION", or NULL for the default. */
	char *messages_rate;
	char *recipients_rate;
};

/*
 * accounts_open - open state_dir/accounts.db. READ_WRITE creates the file
 * (mode 0600, owned by state_dir's owner when run as root) and its schema if
 * they do not exist, and checks them if they do; READ_ONLY only checks.
 * Returns ACCOUNTS_OK with *accounts_r set; ACCOUNTS_NOTFOUND when, read-only,
 * the database does not exist yet; ACCOUNTS_INVALID when state_dir is missing
 * or not a directory, or the file is not a detour account database of a
 * version this program reads; ACCOUNTS_ERROR otherwise. On failure
 * *accounts_r is NULL and *error_r names the file and the problem.
 */
enum accounts_result accounts_open(const char *state_dir, enum accounts_mode mode,
                                   struct accounts **accounts_r, const char **error_r);

/* accounts_close - close the handle; sets *accounts to NULL. NULL is fine. */
void accounts_close(struct accounts **accounts);

/*
 * accounts_normalize - the stored form of an account address: parsed as a
 * bare mailbox (no angle brackets, UTF-8 allowed), the domain lower-cased
 * (ASCII letters only), the local part unchanged. out has size bytes
 * (ACCOUNTS_ADDRESS_SIZE is always enough). ACCOUNTS_INVALID with an error
 * of the form "'ADDRESS' is not a valid address: REASON".
 */
enum accounts_result accounts_normalize(const char *address, char *out, size_t size,
                                        const char **error_r);

/* accounts_normalize_pattern - the same for a sender pattern: a mailbox, or
 * "@domain" with a valid domain name (lower-cased). */
enum accounts_result accounts_normalize_pattern(const char *pattern, char *out, size_t size,
                                                const char **error_r);

/*
 * accounts_add - create an account with this password hash (from
 * password_hash, or checked with password_hash_importable: this module only
 * refuses an empty hash or one with spaces or control characters).
 * ACCOUNTS_EXISTS if the normalized address is already an account.
 */
enum accounts_result accounts_add(struct accounts *a, const char *address, const char *hash,
                                  const char **error_r);

/* accounts_set_hash - replace the account's hash (`user passwd`).
 * ACCOUNTS_NOTFOUND if there is no such account. */
enum accounts_result accounts_set_hash(struct accounts *a, const char *address, const char *hash,
                                       const char **error_r);

/* accounts_set_suspended - a suspended account cannot log in (its
 * sessions already open are not cut). ACCOUNTS_NOTFOUND if there is none. */
enum accounts_result accounts_set_suspended(struct accounts *a, const char *address,
					    bool suspended, const char **error_r);

/* accounts_set_limits - store per-account limits ("COUNT/DURATION", checked
 * by the caller with config_parse_rate; NULL restores the default). */
enum accounts_result accounts_set_limits(struct accounts *a, const char *address,
					 const char *messages_rate, const char *recipients_rate,
					 const char **error_r);

/* accounts_delete - remove the account and its sender patterns.
 * ACCOUNTS_NOTFOUND if there is no such account. */
enum accounts_result accounts_delete(struct accounts *a, const char *address, const char **error_r);

/*
 * accounts_allow - let the account send as pattern. ACCOUNTS_NOTFOUND if
 * there is no such account; ACCOUNTS_EXISTS if the pattern is already
 * allowed, or is the account's own address (always allowed, never stored).
 */
enum accounts_result accounts_allow(struct accounts *a, const char *address, const char *pattern,
                                    const char **error_r);

/* accounts_disallow - take the pattern away. ACCOUNTS_NOTFOUND if there is
 * no such account or it did not have that pattern; ACCOUNTS_INVALID for
 * the account's own address, which cannot be taken away. */
enum accounts_result accounts_disallow(struct accounts *a, const char *address, const char *pattern,
                                       const char **error_r);

/*
 * accounts_get - the account with this address (normalized first), with its
 * patterns, read in one snapshot. ACCOUNTS_NOTFOUND if there is none,
 * ACCOUNTS_INVALID if address is malformed; *account_r is NULL then. The
 * daemon's login path: on anything but ACCOUNTS_OK, call
 * password_verify_dummy so the answer takes as long as a real check.
 */
enum accounts_result accounts_get(struct accounts *a, const char *address,
                                  struct account **account_r, const char **error_r);

/* A callback for accounts_foreach: return 0 to go on, non-zero to stop. It
 * must not call other functions on the same handle. */
typedef int accounts_cb(void *arg, const struct account *account);

/* accounts_foreach - every account, ordered by address, in one snapshot. */
enum accounts_result accounts_foreach(struct accounts *a, accounts_cb *cb, void *arg,
                                      const char **error_r);

/* account_free - free an account from accounts_get, wiping its hash; sets
 * *account to NULL. NULL is fine. */
void account_free(struct account **account);

#endif
