/* SPDX-License-Identifier: ISC */
/* auth_check.c - see auth_check.h */
#include "server/auth_check.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/accounts.h"
#include "auth/password.h"
#include "lib/util.h"

/* Each worker thread keeps its own read-only handle on the account
 * database (accounts.h: one handle per thread), closed when it exits. */
static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;

static void handle_destroy(void *p)
{
	struct accounts *a = p;
	accounts_close(&a);
}

static void handle_key_init(void)
{
	pthread_key_create(&handle_key, handle_destroy);
}

/* thread_accounts - this thread's handle, opened on first use. NULL with
 * *missing_r set when the database does not exist yet (no accounts). */
static struct accounts *thread_accounts(const char *state_dir, bool *missing_r,
                                        const char **error_r)
{
	pthread_once(&handle_once, handle_key_init);
	struct accounts *a = pthread_getspecific(handle_key);
	*missing_r = false;
	if (a != NULL)
		return a;
	enum accounts_result r = accounts_open(state_dir, ACCOUNTS_READ_ONLY, &a, error_r);
	if (r == ACCOUNTS_NOTFOUND) {
		*missing_r = true;
		return NULL;
	}
	if (r != ACCOUNTS_OK)
		return NULL;
	pthread_setspecific(handle_key, a);
	return a;
}

struct auth_check *auth_check_new(const char *state_dir, const struct sasl_credentials *cred,
                                  const char *mechanism)
{
	struct auth_check *ac = xcalloc(1, sizeof(*ac));
	ac->state_dir = xstrdup(state_dir);
	ac->cred = *cred;
	ac->mechanism = mechanism;
	return ac;
}

void auth_check_run(void *arg)
{
	struct auth_check *ac = arg;
	bool missing;
	const char *error = NULL;
	struct account *acct = NULL;

	struct accounts *a = thread_accounts(ac->state_dir, &missing, &error);
	enum accounts_result r = a == NULL ? (missing ? ACCOUNTS_NOTFOUND : ACCOUNTS_ERROR)
	                                   : accounts_get(a, ac->cred.user, &acct, &error);
	if (r == ACCOUNTS_ERROR) {
		ac->result = AUTH_CHECK_UNAVAILABLE;
		ac->reason = "account database unavailable";
	} else if (r != ACCOUNTS_OK) {
		/* Same cost as a real check: timing does not tell whether the
		 * account exists. */
		password_verify_dummy(ac->cred.password);
		ac->result = AUTH_CHECK_FAILED;
		ac->reason = r == ACCOUNTS_INVALID ? "not an account name" : "no such account";
	} else if (!password_verify(ac->cred.password, acct->hash)) {
		ac->result = AUTH_CHECK_FAILED;
		ac->reason = "wrong password";
	} else if (acct->suspended) {
		ac->result = AUTH_CHECK_FAILED;
		ac->reason = "account suspended";
	} else {
		ac->result = AUTH_CHECK_OK;
		str_copy(ac->account, acct->address, sizeof(ac->account));
		ac->senders = acct->senders;
		ac->n_senders = acct->n_senders;
		acct->senders = NULL;
		acct->n_senders = 0;
		ac->messages_rate = acct->messages_rate;
		ac->recipients_rate = acct->recipients_rate;
		acct->messages_rate = NULL;
		acct->recipients_rate = NULL;
	}
	account_free(&acct);
	explicit_bzero(ac->cred.password, sizeof(ac->cred.password));
}

char **auth_check_take_senders(struct auth_check *ac, size_t *n_r)
{
	char **s = ac->senders;
	*n_r = ac->n_senders;
	ac->senders = NULL;
	ac->n_senders = 0;
	return s;
}

void auth_check_free(struct auth_check **acp)
{
	struct auth_check *ac = *acp;
	if (ac == NULL)
		return;
	*acp = NULL;
	for (size_t i = 0; i < ac->n_senders; i++)
		free(ac->senders[i]);
	free(ac->senders);
	free(ac->state_dir);
	free(ac->messages_rate);
	free(ac->recipients_rate);
	explicit_bzero(&ac->cred, sizeof(ac->cred));
	free(ac);
}
