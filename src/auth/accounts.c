/* SPDX-License-Identifier: ISC */
/*
 * accounts.c - see accounts.h.
 *
 * Every change is one IMMEDIATE transaction: detourctl takes the write lock
 * before it reads what it is about to change, so two operators running
 * detourctl at once are serialized by SQLite (each waits up to the busy
 * timeout) instead of one overwriting the other. Readers take a deferred
 * transaction around each call, so an account and its patterns always come
 * from the same snapshot.
 */
#include "auth/accounts.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/password.h"
#include "lib/util.h"
#include "smtp/smtp_addr.h"

/* PRAGMA application_id marks the file as ours ("dtac"), so pointing
 * state_dir at some other SQLite file fails clearly instead of adding
 * tables to it. */
#define ACCOUNTS_APPLICATION_ID 0x64746163
#define ACCOUNTS_SCHEMA_VERSION 1
/* A writer holds the lock for one small transaction; a reader waits only
 * while a WAL is recovered or restarted. Both are short. */
#define ACCOUNTS_BUSY_TIMEOUT_MS 5000
/* How much of a rejected address an error message repeats. */
#define ACCOUNTS_SHOW_MAX 80

static const char schema_sql[] =
    "CREATE TABLE account ("
    " address TEXT PRIMARY KEY NOT NULL,"
    " hash TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL DEFAULT 0,"
    " suspended INTEGER NOT NULL DEFAULT 0,"
    " messages_rate TEXT," /* "COUNT/DURATION" overriding [limits], NULL: default */
    " recipients_rate TEXT);"
    "CREATE TABLE sender ("
    " address TEXT NOT NULL REFERENCES account(address) ON DELETE CASCADE,"
    " pattern TEXT NOT NULL,"
    " PRIMARY KEY (address, pattern));";

struct accounts {
	sqlite3 *db;
	enum accounts_mode mode;
	sqlite3_stmt *get, *senders, *list;
	sqlite3_stmt *exists, *insert, *set_hash, *delete, *allow, *disallow;
	sqlite3_stmt *set_suspended, *set_limits;
	char error[512];
};

/* Errors of calls that have no handle (open, normalize). */
static _Thread_local char thread_error[512];

static const char account_columns[] =
    "address, hash, created_ms, suspended, messages_rate, recipients_rate";

/* set_error - format into buf and return buf. */
static const char *set_error(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *set_error(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

#define HANDLE_ERROR(a, ...) set_error((a)->error, sizeof((a)->error), __VA_ARGS__)
#define THREAD_ERROR(...)    set_error(thread_error, sizeof(thread_error), __VA_ARGS__)

/* db_error - the connection's last error as the handle's message. */
static enum accounts_result db_error(struct accounts *a, const char *what, const char **error_r)
{
	*error_r = HANDLE_ERROR(a, "accounts.db: %s: %s", what, sqlite3_errmsg(a->db));
	return ACCOUNTS_ERROR;
}

/* show - a printable excerpt of operator input for an error message: control
 * characters become '?', and a long value is cut (at a UTF-8 boundary). */
static const char *show(const char *s, char *buf, size_t size)
{
	size_t n = strlen(s), max = size - 4;
	bool cut = n > max;
	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < ' ' || c == 0x7f ? '?' : (char)c;
	}
	strcpy(buf + n, cut ? "..." : "");
	return buf;
}

/* addr_reason - why smtp_addr_parse_mailbox refused s. */
static const char *addr_reason(enum smtp_addr_result r, const char *s)
{
	switch (r) {
	case SMTP_ADDR_TOO_LONG:
		return "too long (RFC 5321 allows 64 octets before the @ and 255 after it)";
	case SMTP_ADDR_SOURCE_ROUTE:
		return "source routes are not accepted";
	case SMTP_ADDR_NULL:
		return "it is empty";
	case SMTP_ADDR_NEEDS_UTF8:
		return "it is not valid UTF-8";
	case SMTP_ADDR_SYNTAX:
	case SMTP_ADDR_OK:
		break;
	}
	if (strchr(s, '@') == NULL)
		return "it has no @domain part";
	if (s[0] == '<')
		return "write it without angle brackets";
	return "not of the form local-part@domain (RFC 5321 4.1.2)";
}

/* normalize_mailbox - parse s as a mailbox and write the stored form;
 * NULL, or the reason it is not a mailbox. */
static const char *normalize_mailbox(const char *s, char *out, size_t size)
{
	struct smtp_addr addr;
	enum smtp_addr_result r =
	    smtp_addr_parse_mailbox(s, strlen(s), SMTP_ADDR_ALLOW_UTF8, &addr);
	if (r != SMTP_ADDR_OK)
		return addr_reason(r, s);
	if (addr.len >= size)
		return "too long for this buffer";
	memcpy(out, addr.mailbox, addr.len + 1);
	/* The domain is case-insensitive (RFC 5321 2.4), so one spelling is
	 * stored; the local part may be case-sensitive and is kept. Only
	 * ASCII is folded: U-labels are compared as written. */
	str_lower(out + addr.local_len + 1);
	return NULL;
}

enum accounts_result accounts_normalize(const char *address, char *out, size_t size,
                                        const char **error_r)
{
	char shown[ACCOUNTS_SHOW_MAX];
	*error_r = NULL;
	const char *reason = normalize_mailbox(address, out, size);
	if (reason != NULL) {
		*error_r = THREAD_ERROR("'%s' is not a valid address: %s",
		                        show(address, shown, sizeof(shown)), reason);
		return ACCOUNTS_INVALID;
	}
	return ACCOUNTS_OK;
}

enum accounts_result accounts_normalize_pattern(const char *pattern, char *out, size_t size,
                                                const char **error_r)
{
	char shown[ACCOUNTS_SHOW_MAX];
	const char *reason = NULL;
	*error_r = NULL;
	if (pattern[0] == '@') {
		size_t len = strlen(pattern + 1);
		if (len == 0)
			reason = "'@' needs a domain after it";
		else if (!smtp_domain_valid(pattern + 1, len, true))
			reason = "what follows the '@' is not a domain name";
		else if (len + 2 > size)
			reason = "too long for this buffer";
		else {
			memcpy(out, pattern, len + 2);
			str_lower(out + 1);
		}
	} else {
		reason = normalize_mailbox(pattern, out, size);
	}
	if (reason != NULL) {
		*error_r = THREAD_ERROR("'%s' is not a valid pattern (an address or @domain): %s",
		                        show(pattern, shown, sizeof(shown)), reason);
		return ACCOUNTS_INVALID;
	}
	return ACCOUNTS_OK;
}

/* ---- opening ------------------------------------------------------------ */

/* give_to_dir_owner - when root creates or touches the database in a
 * state_dir that belongs to the daemon's user, the daemon (no longer root)
 * must still be able to open it. Only files root owns are changed, and only
 * plain files with one link, opened without following symbolic links: the
 * daemon's user controls this directory and must not be able to make root
 * chown something else (a symlink or hard link to /etc/shadow). */
static int give_to_dir_owner(const char *path, const struct stat *dir)
{
	if (geteuid() != 0 || dir->st_uid == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct stat st;
	int r = fstat(fd, &st);
	if (r == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == 0)
		r = fchown(fd, dir->st_uid, dir->st_gid);
	int err = errno;
	close(fd);
	errno = err;
	return r;
}

/* create_file - create the database file, empty, with mode 0600, before
 * SQLite opens it: SQLite would create it with 0644 less the umask, and as
 * root SQLite gives the -wal and -shm files it creates later the owner of
 * this file, so the file must have the right owner first. */
static enum accounts_result create_file(const char *state_dir, const char *path,
                                        const struct stat *dir)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return ACCOUNTS_OK;
		THREAD_ERROR("%s: cannot create: %s", path, strerror(errno));
		return ACCOUNTS_ERROR;
	}
	if (geteuid() == 0 && dir->st_uid != 0 && fchown(fd, dir->st_uid, dir->st_gid) < 0) {
		THREAD_ERROR("%s: cannot give it to the owner of %s: %s", path, state_dir,
		             strerror(errno));
		close(fd);
		unlink(path);
		return ACCOUNTS_ERROR;
	}
	close(fd);
	/* The schema's first commit is fsynced by SQLite; the new name in the
	 * directory is ours to make durable. */
	if (fsync_dir(state_dir) < 0) {
		THREAD_ERROR("%s: fsync: %s", state_dir, strerror(errno));
		return ACCOUNTS_ERROR;
	}
	return ACCOUNTS_OK;
}

/* query_int - the first column of the first row of sql, as an integer. */
static int query_int(sqlite3 *db, const char *sql, int64_t *value_r)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*value_r = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			*value_r = 0;
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

/* query_text - the same for a short text (a PRAGMA's answer). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	out[0] = '\0';
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(st, 0);
			str_copy(out, t != NULL ? (const char *)t : "", size);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

/* check_schema - is this file ours, of our version? With create, an empty
 * database gets the schema (one transaction: a crash leaves it empty, never
 * half made). Read-only, an empty database is "no accounts yet". */
static enum accounts_result check_schema(sqlite3 *db, const char *path, bool create)
{
	int64_t version = 0, app_id = 0, tables = 0;
	bool in_txn = false;
	if (create) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			goto db_fail;
		in_txn = true;
	}
	if (query_int(db, "PRAGMA user_version", &version) < 0 ||
	    query_int(db, "PRAGMA application_id", &app_id) < 0 ||
	    query_int(db, "SELECT count(*) FROM sqlite_schema", &tables) < 0)
		goto db_fail;
	if (app_id != 0 && app_id != ACCOUNTS_APPLICATION_ID) {
		THREAD_ERROR("%s: not a detour account database (application_id %lld)", path,
		             (long long)app_id);
		goto invalid;
	}
	if (version == 0 && tables != 0) {
		THREAD_ERROR("%s: not a detour account database (tables but no version)", path);
		goto invalid;
	}
	if (version == 0 && !create) {
		THREAD_ERROR("%s: no accounts yet (detourctl user add creates them)", path);
		return ACCOUNTS_NOTFOUND;
	}
	if (version == 0) {
		char pragmas[128];
		snprintf(pragmas, sizeof(pragmas),
		         "PRAGMA application_id=%d; PRAGMA user_version=%d",
		         ACCOUNTS_APPLICATION_ID, ACCOUNTS_SCHEMA_VERSION);
		if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
			goto db_fail;
	} else if (version != ACCOUNTS_SCHEMA_VERSION) {
		THREAD_ERROR("%s: schema version %lld, this program reads %d", path,
		             (long long)version, ACCOUNTS_SCHEMA_VERSION);
		goto invalid;
	}
	if (in_txn && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto db_fail;
	return ACCOUNTS_OK;
db_fail:
	THREAD_ERROR("%s: %s", path, sqlite3_errmsg(db));
	if (in_txn)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return ACCOUNTS_ERROR;
invalid:
	if (in_txn)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return ACCOUNTS_INVALID;
}

/* set_pragmas - WAL, so the daemon reads while detourctl writes;
 * synchronous=FULL, so a change detourctl reported is on disk; foreign
 * keys, so deleting an account deletes its patterns. Checked, because an
 * SQLite built without them would silently ignore the PRAGMAs. */
static int set_pragmas(sqlite3 *db, const char *path)
{
	char mode[16];
	int64_t sync = 0, fk = 0;
	if (query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode)) < 0 ||
	    sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    query_int(db, "PRAGMA synchronous", &sync) < 0 ||
	    query_int(db, "PRAGMA foreign_keys", &fk) < 0) {
		THREAD_ERROR("%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	if (strcmp(mode, "wal") != 0) {
		THREAD_ERROR("%s: cannot use WAL mode (journal_mode is %s)", path, mode);
		return -1;
	}
	if (sync != 2 || fk != 1) {
		THREAD_ERROR("%s: PRAGMA synchronous=FULL or foreign_keys=ON did not take", path);
		return -1;
	}
	return 0;
}

static int prepare(struct accounts *a, const char *path, const char *sql, sqlite3_stmt **st_r)
{
	if (sqlite3_prepare_v3(a->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st_r, NULL) !=
	    SQLITE_OK) {
		THREAD_ERROR("%s: preparing a statement: %s", path, sqlite3_errmsg(a->db));
		return -1;
	}
	return 0;
}

static int prepare_all(struct accounts *a, const char *path)
{
	char get[192], list[192];
	snprintf(get, sizeof(get), "SELECT %s FROM account WHERE address = ?1", account_columns);
	snprintf(list, sizeof(list), "SELECT %s FROM account ORDER BY address", account_columns);
	if (prepare(a, path, get, &a->get) < 0 ||
	    prepare(a, path, "SELECT pattern FROM sender WHERE address = ?1 ORDER BY pattern",
	            &a->senders) < 0 ||
	    prepare(a, path, list, &a->list) < 0)
		return -1;
	if (a->mode == ACCOUNTS_READ_ONLY)
		return 0;
	if (prepare(a, path, "SELECT 1 FROM account WHERE address = ?1", &a->exists) < 0 ||
	    prepare(a, path,
	            "INSERT INTO account (address, hash, created_ms) VALUES (?1, ?2, ?3)"
	            " ON CONFLICT (address) DO NOTHING",
	            &a->insert) < 0 ||
	    prepare(a, path, "UPDATE account SET hash = ?2 WHERE address = ?1", &a->set_hash) < 0 ||
	    prepare(a, path, "DELETE FROM account WHERE address = ?1", &a->delete) < 0 ||
	    prepare(a, path,
	            "INSERT INTO sender (address, pattern) VALUES (?1, ?2)"
	            " ON CONFLICT (address, pattern) DO NOTHING",
	            &a->allow) < 0 ||
	    prepare(a, path, "DELETE FROM sender WHERE address = ?1 AND pattern = ?2",
	            &a->disallow) < 0 ||
	    prepare(a, path, "UPDATE account SET suspended = ?2 WHERE address = ?1",
	            &a->set_suspended) < 0 ||
	    prepare(
	        a, path,
	        "UPDATE account SET messages_rate = ?2, recipients_rate = ?3 WHERE address = ?1",
	        &a->set_limits) < 0)
		return -1;
	return 0;
}

enum accounts_result accounts_open(const char *state_dir, enum accounts_mode mode,
                                   struct accounts **accounts_r, const char **error_r)
{
	struct accounts *a = NULL;
	enum accounts_result res = ACCOUNTS_ERROR;
	char *path = xasprintf("%s/accounts.db", state_dir);
	*accounts_r = NULL;
	*error_r = thread_error;

	struct stat dir, st;
	if (stat(state_dir, &dir) < 0) {
		int err = errno;
		THREAD_ERROR("state_dir %s: %s%s", state_dir, strerror(err),
		             err == ENOENT ? " (create it, owned by the user detourd runs as, or "
		                             "correct [server] state_dir)"
		                           : "");
		res = err == ENOENT || err == ENOTDIR ? ACCOUNTS_INVALID : ACCOUNTS_ERROR;
		goto fail;
	}
	if (!S_ISDIR(dir.st_mode)) {
		THREAD_ERROR("state_dir %s: not a directory", state_dir);
		res = ACCOUNTS_INVALID;
		goto fail;
	}
	if (mode == ACCOUNTS_READ_WRITE) {
		res = create_file(state_dir, path, &dir);
		if (res != ACCOUNTS_OK)
			goto fail;
		res = ACCOUNTS_ERROR;
		if (give_to_dir_owner(path, &dir) < 0) {
			THREAD_ERROR("%s: cannot give it to the owner of %s: %s", path, state_dir,
			             strerror(errno));
			goto fail;
		}
	} else if (stat(path, &st) < 0) {
		int err = errno;
		THREAD_ERROR("%s: %s%s", path, strerror(err),
		             err == ENOENT ? " (no accounts yet: detourctl user add creates it)"
		                           : "");
		res = err == ENOENT ? ACCOUNTS_NOTFOUND : ACCOUNTS_ERROR;
		goto fail;
	}

	a = xcalloc(1, sizeof(*a));
	a->mode = mode;
	/* NOMUTEX: a handle is used by one thread at a time. NOFOLLOW: the
	 * directory may belong to another user than the one running us. */
	int flags = (mode == ACCOUNTS_READ_WRITE ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
	            SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
	int rc = sqlite3_open_v2(path, &a->db, flags, NULL);
	if (rc != SQLITE_OK) {
		THREAD_ERROR("%s: %s", path,
		             a->db != NULL ? sqlite3_errmsg(a->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(a->db, 1);
	sqlite3_busy_timeout(a->db, ACCOUNTS_BUSY_TIMEOUT_MS);
	if (mode == ACCOUNTS_READ_WRITE && set_pragmas(a->db, path) < 0)
		goto fail;
	res = check_schema(a->db, path, mode == ACCOUNTS_READ_WRITE);
	if (res != ACCOUNTS_OK)
		goto fail;
	res = ACCOUNTS_ERROR;
	if (mode == ACCOUNTS_READ_WRITE) {
		/* -wal and -shm exist now. SQLite gives new ones the database
		 * file's owner when it runs as root; these calls repair ones
		 * left behind by an older run. */
		char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
		int r =
		    give_to_dir_owner(wal, &dir) < 0 || give_to_dir_owner(shm, &dir) < 0 ? -1 : 0;
		if (r < 0)
			THREAD_ERROR("%s: cannot give its -wal or -shm file to the owner of %s: %s",
			             path, state_dir, strerror(errno));
		free(wal);
		free(shm);
		if (r < 0)
			goto fail;
	}
	if (prepare_all(a, path) < 0)
		goto fail;
	free(path);
	*accounts_r = a;
	*error_r = NULL;
	return ACCOUNTS_OK;
fail:
	free(path);
	accounts_close(&a);
	return res;
}

void accounts_close(struct accounts **ap)
{
	struct accounts *a = *ap;
	if (a == NULL)
		return;
	sqlite3_stmt *stmts[] = {a->get,      a->senders,       a->list,      a->exists,
	                         a->insert,   a->set_hash,      a->delete,    a->allow,
	                         a->disallow, a->set_suspended, a->set_limits};
	for (size_t i = 0; i < ARRAY_SIZE(stmts); i++)
		sqlite3_finalize(stmts[i]);
	sqlite3_close(a->db);
	free(a);
	*ap = NULL;
}

/* ---- reading -------------------------------------------------------------- */

static char *col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return xstrdup(t != NULL ? (const char *)t : "");
}

void account_free(struct account **ap)
{
	struct account *acct = *ap;
	if (acct == NULL)
		return;
	if (acct->hash != NULL) {
		explicit_bzero(acct->hash, strlen(acct->hash));
		free(acct->hash);
	}
	for (size_t i = 0; i < acct->n_senders; i++)
		free(acct->senders[i]);
	free(acct->senders);
	free(acct->address);
	free(acct->messages_rate);
	free(acct->recipients_rate);
	free(acct);
	*ap = NULL;
}

/* account_from_row - an account from a row of account_columns, with its
 * sender patterns. */
static enum accounts_result account_from_row(struct accounts *a, sqlite3_stmt *row,
                                             struct account **account_r, const char **error_r)
{
	struct account *acct = xcalloc(1, sizeof(*acct));
	acct->address = col_strdup(row, 0);
	acct->hash = col_strdup(row, 1);
	acct->created_ms = sqlite3_column_int64(row, 2);
	acct->suspended = sqlite3_column_int(row, 3) != 0;
	acct->messages_rate = col_strdup(row, 4);
	acct->recipients_rate = col_strdup(row, 5);

	sqlite3_stmt *st = a->senders;
	size_t cap = 0;
	int rc;
	sqlite3_bind_text(st, 1, acct->address, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (acct->n_senders == cap) {
			cap = cap ? cap * 2 : 4;
			acct->senders = xreallocarray(acct->senders, cap, sizeof(*acct->senders));
		}
		acct->senders[acct->n_senders++] = col_strdup(st, 0);
	}
	enum accounts_result res = ACCOUNTS_OK;
	if (rc != SQLITE_DONE)
		res = db_error(a, "reading sender patterns", error_r);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (res == ACCOUNTS_OK)
		*account_r = acct;
	else
		account_free(&acct);
	return res;
}

/* begin / end - one transaction around a whole call. */
static enum accounts_result begin(struct accounts *a, bool write, const char **error_r)
{
	if (sqlite3_exec(a->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_error(a, "starting a transaction", error_r);
	return ACCOUNTS_OK;
}

/* end - commit if res is OK and the call wrote something, else roll back
 * (which, for a read, only ends the snapshot). */
static enum accounts_result end(struct accounts *a, enum accounts_result res, bool commit,
                                const char **error_r)
{
	if (commit && res == ACCOUNTS_OK) {
		if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
			return res;
		res = db_error(a, "committing", error_r);
	}
	sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
	return res;
}

enum accounts_result accounts_get(struct accounts *a, const char *address,
                                  struct account **account_r, const char **error_r)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	*account_r = NULL;
	*error_r = NULL;
	if (accounts_normalize(address, norm, sizeof(norm), error_r) != ACCOUNTS_OK) {
		*error_r = HANDLE_ERROR(a, "%s", *error_r);
		return ACCOUNTS_INVALID;
	}
	enum accounts_result res = begin(a, false, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	sqlite3_bind_text(a->get, 1, norm, -1, SQLITE_STATIC);
	int rc = sqlite3_step(a->get);
	if (rc == SQLITE_ROW) {
		res = account_from_row(a, a->get, account_r, error_r);
	} else if (rc == SQLITE_DONE) {
		*error_r = HANDLE_ERROR(a, "no such account: %s", norm);
		res = ACCOUNTS_NOTFOUND;
	} else {
		res = db_error(a, "reading the account", error_r);
	}
	sqlite3_reset(a->get);
	sqlite3_clear_bindings(a->get);
	return end(a, res, false, error_r);
}

enum accounts_result accounts_foreach(struct accounts *a, accounts_cb *cb, void *arg,
                                      const char **error_r)
{
	*error_r = NULL;
	if (sqlite3_stmt_busy(a->list)) {
		*error_r = HANDLE_ERROR(a, "accounts_foreach called from its own callback");
		return ACCOUNTS_ERROR;
	}
	enum accounts_result res = begin(a, false, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	int rc;
	while ((rc = sqlite3_step(a->list)) == SQLITE_ROW) {
		struct account *acct = NULL;
		res = account_from_row(a, a->list, &acct, error_r);
		int stop = res == ACCOUNTS_OK ? cb(arg, acct) : 1;
		account_free(&acct);
		if (stop)
			break;
	}
	if (res == ACCOUNTS_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = db_error(a, "listing accounts", error_r);
	sqlite3_reset(a->list);
	return end(a, res, false, error_r);
}

/* ---- changing --------------------------------------------------------------- */

/* normalize_arg - normalize an address argument, with the message kept in
 * the handle. */
static enum accounts_result normalize_arg(struct accounts *a, const char *address, char *out,
                                          const char **error_r)
{
	if (accounts_normalize(address, out, ACCOUNTS_ADDRESS_SIZE, error_r) == ACCOUNTS_OK)
		return ACCOUNTS_OK;
	*error_r = HANDLE_ERROR(a, "%s", *error_r);
	return ACCOUNTS_INVALID;
}

/* hash_storable - a stored hash is one crypt(3) string: whether its
 * algorithm is acceptable is password.c's question, asked by the caller;
 * this only keeps out what can never be one. */
static enum accounts_result hash_storable(struct accounts *a, const char *hash,
                                          const char **error_r)
{
	size_t len = hash != NULL ? strnlen(hash, PASSWORD_HASH_SIZE) : 0;
	bool ok = len > 0 && len < PASSWORD_HASH_SIZE;
	for (size_t i = 0; ok && i < len; i++)
		ok = (unsigned char)hash[i] > ' ' && (unsigned char)hash[i] < 0x7f;
	if (ok)
		return ACCOUNTS_OK;
	*error_r = HANDLE_ERROR(a, "not a password hash (empty, too long, or with spaces or "
	                           "control characters)");
	return ACCOUNTS_INVALID;
}

/* step_done - run a statement that returns no rows, then reset it. */
static enum accounts_result step_done(struct accounts *a, sqlite3_stmt *st, const char *what,
                                      const char **error_r)
{
	int rc = sqlite3_step(st);
	enum accounts_result res = ACCOUNTS_OK;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		res = db_error(a, what, error_r);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return res;
}

/* account_exists - OK if there is such an account, else NOTFOUND with the
 * message detourctl prints. Inside the caller's transaction. */
static enum accounts_result account_exists(struct accounts *a, const char *norm,
                                           const char **error_r)
{
	sqlite3_bind_text(a->exists, 1, norm, -1, SQLITE_STATIC);
	int rc = sqlite3_step(a->exists);
	enum accounts_result res = ACCOUNTS_OK;
	if (rc == SQLITE_DONE) {
		*error_r = HANDLE_ERROR(a, "no such account: %s", norm);
		res = ACCOUNTS_NOTFOUND;
	} else if (rc != SQLITE_ROW) {
		res = db_error(a, "looking the account up", error_r);
	}
	sqlite3_reset(a->exists);
	sqlite3_clear_bindings(a->exists);
	return res;
}

enum accounts_result accounts_add(struct accounts *a, const char *address, const char *hash,
                                  const char **error_r)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	assert(a->mode == ACCOUNTS_READ_WRITE);
	*error_r = NULL;
	enum accounts_result res = normalize_arg(a, address, norm, error_r);
	if (res == ACCOUNTS_OK)
		res = hash_storable(a, hash, error_r);
	if (res == ACCOUNTS_OK)
		res = begin(a, true, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	sqlite3_bind_text(a->insert, 1, norm, -1, SQLITE_STATIC);
	sqlite3_bind_text(a->insert, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(a->insert, 3, now_ms());
	res = step_done(a, a->insert, "adding the account", error_r);
	if (res == ACCOUNTS_OK && sqlite3_changes(a->db) == 0) {
		*error_r = HANDLE_ERROR(a, "account %s already exists", norm);
		res = ACCOUNTS_EXISTS;
	}
	return end(a, res, true, error_r);
}

/* change_account - one statement that changes the account named by the
 * normalized address (?1), with up to two more text values (?2, ?3;
 * SQLite turns '0'/'1' into integers for an INTEGER column), in its own
 * transaction. ACCOUNTS_NOTFOUND when it changed nothing. */
static enum accounts_result change_account(struct accounts *a, sqlite3_stmt *st,
                                           const char *address, const char *v2, const char *v3,
                                           const char *what, const char **error_r)
{
	char norm[ACCOUNTS_ADDRESS_SIZE];
	assert(a->mode == ACCOUNTS_READ_WRITE);
	*error_r = NULL;
	enum accounts_result res = normalize_arg(a, address, norm, error_r);
	if (res == ACCOUNTS_OK)
		res = begin(a, true, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_text(st, 2, v2, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_text(st, 3, v3, -1, SQLITE_STATIC);
	res = step_done(a, st, what, error_r);
	if (res == ACCOUNTS_OK && sqlite3_changes(a->db) == 0) {
		*error_r = HANDLE_ERROR(a, "no such account: %s", norm);
		res = ACCOUNTS_NOTFOUND;
	}
	return end(a, res, true, error_r);
}

enum accounts_result accounts_set_hash(struct accounts *a, const char *address, const char *hash,
                                       const char **error_r)
{
	enum accounts_result res = hash_storable(a, hash, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	return change_account(a, a->set_hash, address, hash, NULL, "changing the password",
	                      error_r);
}

enum accounts_result accounts_set_suspended(struct accounts *a, const char *address, bool suspended,
                                            const char **error_r)
{
	return change_account(a, a->set_suspended, address, suspended ? "1" : "0", NULL,
	                      "changing the account", error_r);
}

enum accounts_result accounts_set_limits(struct accounts *a, const char *address,
                                         const char *messages_rate, const char *recipients_rate,
                                         const char **error_r)
{
	return change_account(a, a->set_limits, address, messages_rate, recipients_rate,
	                      "changing the account's limits", error_r);
}

enum accounts_result accounts_delete(struct accounts *a, const char *address, const char **error_r)
{
	return change_account(a, a->delete, address, NULL, NULL, "deleting the account", error_r);
}

/* pattern_args - normalize the account and the pattern of allow/disallow. */
static enum accounts_result pattern_args(struct accounts *a, const char *address,
                                         const char *pattern, char *norm, char *pat,
                                         const char **error_r)
{
	enum accounts_result res = normalize_arg(a, address, norm, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	if (accounts_normalize_pattern(pattern, pat, ACCOUNTS_ADDRESS_SIZE, error_r) !=
	    ACCOUNTS_OK) {
		*error_r = HANDLE_ERROR(a, "%s", *error_r);
		return ACCOUNTS_INVALID;
	}
	return ACCOUNTS_OK;
}

enum accounts_result accounts_allow(struct accounts *a, const char *address, const char *pattern,
                                    const char **error_r)
{
	char norm[ACCOUNTS_ADDRESS_SIZE], pat[ACCOUNTS_ADDRESS_SIZE];
	assert(a->mode == ACCOUNTS_READ_WRITE);
	*error_r = NULL;
	enum accounts_result res = pattern_args(a, address, pattern, norm, pat, error_r);
	if (res == ACCOUNTS_OK)
		res = begin(a, true, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	res = account_exists(a, norm, error_r);
	if (res == ACCOUNTS_OK && strcmp(norm, pat) == 0) {
		*error_r = HANDLE_ERROR(a, "%s may always send as itself", norm);
		res = ACCOUNTS_EXISTS;
	}
	if (res == ACCOUNTS_OK) {
		sqlite3_bind_text(a->allow, 1, norm, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->allow, 2, pat, -1, SQLITE_STATIC);
		res = step_done(a, a->allow, "adding the pattern", error_r);
	}
	if (res == ACCOUNTS_OK && sqlite3_changes(a->db) == 0) {
		*error_r = HANDLE_ERROR(a, "%s may already send as %s", norm, pat);
		res = ACCOUNTS_EXISTS;
	}
	return end(a, res, true, error_r);
}

enum accounts_result accounts_disallow(struct accounts *a, const char *address, const char *pattern,
                                       const char **error_r)
{
	char norm[ACCOUNTS_ADDRESS_SIZE], pat[ACCOUNTS_ADDRESS_SIZE];
	assert(a->mode == ACCOUNTS_READ_WRITE);
	*error_r = NULL;
	enum accounts_result res = pattern_args(a, address, pattern, norm, pat, error_r);
	if (res == ACCOUNTS_OK)
		res = begin(a, true, error_r);
	if (res != ACCOUNTS_OK)
		return res;
	res = account_exists(a, norm, error_r);
	if (res == ACCOUNTS_OK && strcmp(norm, pat) == 0) {
		*error_r = HANDLE_ERROR(a,
		                        "%s may always send as itself; that cannot be taken "
		                        "away (delete the account instead)",
		                        norm);
		res = ACCOUNTS_INVALID;
	}
	if (res == ACCOUNTS_OK) {
		sqlite3_bind_text(a->disallow, 1, norm, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->disallow, 2, pat, -1, SQLITE_STATIC);
		res = step_done(a, a->disallow, "removing the pattern", error_r);
	}
	if (res == ACCOUNTS_OK && sqlite3_changes(a->db) == 0) {
		*error_r = HANDLE_ERROR(a, "%s is not allowed to send as %s: nothing to disallow",
		                        norm, pat);
		res = ACCOUNTS_NOTFOUND;
	}
	return end(a, res, true, error_r);
}
