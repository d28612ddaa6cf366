/* SPDX-License-Identifier: ISC */
/*
 * auth_check.h - checking SMTP AUTH credentials on a worker thread.
 *
 * Owns: one verification: look the account up in state_dir/accounts.db,
 * verify the password against its hash (slow on purpose: yescrypt), and
 * collect the sender patterns the account may use. An unknown account costs
 * the same time as a wrong password, so timing reveals nothing. The password
 * is wiped as soon as it has been checked.
 * Threads: auth_check_run on a worker thread; everything else on the loop.
 */
#ifndef DETOUR_AUTH_CHECK_H
#define DETOUR_AUTH_CHECK_H

#include <stddef.h>

#include "lib/limits.h"
#include "smtp/smtp_sasl.h"

struct session;

enum auth_check_result {
	AUTH_CHECK_OK,
	AUTH_CHECK_FAILED,      /* unknown account, wrong password, suspended */
	AUTH_CHECK_UNAVAILABLE, /* the database could not be read (454) */
};

struct auth_check {
	/* in */
	char *state_dir;
	struct sasl_credentials cred;
	const char *mechanism;
	/* out */
	enum auth_check_result result;
	const char *reason;              /* for the log: "unknown account", ... */
	char account[SMTP_PATH_MAX + 1]; /* the normalized account address */
	char **senders;                  /* allowed sender patterns */
	size_t n_senders;
	char *messages_rate; /* the account's own limits, NULL: [limits] */
	char *recipients_rate;
	/* the session waiting for it; NULL once that session is gone */
	struct session *session;
};

/* auth_check_new - a job for these credentials (copied; the caller wipes
 * its own copy). */
struct auth_check *auth_check_new(const char *state_dir, const struct sasl_credentials *cred,
                                  const char *mechanism);

/* auth_check_run - the worker-thread part (a worker_run_fn). */
void auth_check_run(void *arg);

/* auth_check_free - release the job; sets *ac to NULL. */
void auth_check_free(struct auth_check **ac);

/* auth_check_take_senders - move the sender patterns out of the job. */
char **auth_check_take_senders(struct auth_check *ac, size_t *n_r);

#endif
