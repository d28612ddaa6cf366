/* SPDX-License-Identifier: ISC */
/*
 * test_accounts.c - the account database: what an account name is (domain
 * folded, local part kept, UTF-8 allowed), adding, reading, changing and
 * deleting accounts and their sender patterns, persistence, the read-only
 * handle the daemon uses seeing detourctl's changes, and the file itself
 * (mode 0600, WAL, refusing files that are not ours).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/accounts.h"
#include "lib/util.h"
#include "unit_fixture.h"

#define HASH1 "$y$j9T$abcdefghijklmnopqrstuv$0123456789012345678901234567890123456789012"
#define HASH2 "$6$saltsalt$0123456789"

struct fixture {
	char dir[256];
	char db[300];
	struct accounts *a;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	if (unit_mkdtemp(f->dir, sizeof(f->dir), "acct") == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->db, sizeof(f->db), "%s/accounts.db", f->dir);
	const char *error;
	if (accounts_open(f->dir, ACCOUNTS_READ_WRITE, &f->a, &error) != ACCOUNTS_OK) {
		fprintf(stderr, "accounts_open: %s\n", error);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	accounts_close(&f->a);
	unit_rm_tree(f->dir);
	free(f);
	return 0;
}

/* norm - accounts_normalize's result, or NULL if it refused. */
static const char *norm(const char *in, char *out)
{
	const char *error;
	enum accounts_result r = accounts_normalize(in, out, ACCOUNTS_ADDRESS_SIZE, &error);
	if (r != ACCOUNTS_OK) {
		assert_int_equal(r, ACCOUNTS_INVALID);
		assert_non_null(strstr(error, "is not a valid address"));
		return NULL;
	}
	return out;
}

static void test_normalize(void **state)
{
	char out[ACCOUNTS_ADDRESS_SIZE];
	assert_string_equal(norm("Alice@Example.COM", out), "Alice@example.com");
	assert_string_equal(norm("alice@example.com", out), "alice@example.com");
	assert_string_equal(norm("ALICE@EXAMPLE.COM", out), "ALICE@example.com");
	assert_string_equal(norm("\"John Doe\"@Example.Org", out), "\"John Doe\"@example.org");
	assert_string_equal(norm("a.b+tag@Sub.Example.NET", out), "a.b+tag@sub.example.net");
	/* UTF-8 (RFC 6531): only ASCII is folded */
	assert_string_equal(norm("J\xc3\xbcrgen@B\xc3\xbc"
	                         "cher.EXAMPLE",
	                         out),
	                    "J\xc3\xbcrgen@b\xc3\xbc"
	                    "cher.example");
	assert_string_equal(norm("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.COM", out),
	                    "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.com");
	assert_string_equal(norm("user@[192.0.2.1]", out), "user@[192.0.2.1]");

	static const char *const bad[] = {
	    "",
	    "alice",
	    "alice@",
	    "@example.com",
	    "<alice@example.com>",
	    "a b@example.com",
	    "alice@exa mple.com",
	    "alice@example..com",
	    "alice@-example.com",
	    "alice@@example.com",
	    "\xff@example.com",
	    "alice@example.com\n",
	    "Postmaster",
	    "@a,@b:alice@example.com",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_null(norm(bad[i], out));

	/* local part: 64 octets is the limit (RFC 5321 4.5.3.1.1) */
	char long_local[100];
	memset(long_local, 'x', 64);
	strcpy(long_local + 64, "@example.com");
	assert_non_null(norm(long_local, out));
	memset(long_local, 'x', 65);
	strcpy(long_local + 65, "@example.com");
	assert_null(norm(long_local, out));

	/* the message names the input and the reason */
	const char *error;
	assert_int_equal(accounts_normalize("alice", out, sizeof(out), &error), ACCOUNTS_INVALID);
	assert_string_equal(error, "'alice' is not a valid address: it has no @domain part");
	/* and never prints control characters it was given */
	assert_int_equal(accounts_normalize("a\x1b[2J@x", out, sizeof(out), &error),
	                 ACCOUNTS_INVALID);
	assert_null(strchr(error, '\x1b'));
}

static void test_normalize_pattern(void **state)
{
	char out[ACCOUNTS_ADDRESS_SIZE];
	const char *error;
	assert_int_equal(accounts_normalize_pattern("@Example.ORG", out, sizeof(out), &error),
	                 ACCOUNTS_OK);
	assert_string_equal(out, "@example.org");
	assert_int_equal(accounts_normalize_pattern("Bob@Example.ORG", out, sizeof(out), &error),
	                 ACCOUNTS_OK);
	assert_string_equal(out, "Bob@example.org");
	assert_int_equal(accounts_normalize_pattern("@b\xc3\xbc"
	                                            "cher.DE",
	                                            out, sizeof(out), &error),
	                 ACCOUNTS_OK);
	assert_string_equal(out, "@b\xc3\xbc"
	                         "cher.de");

	static const char *const bad[] = {"@",       "@bad domain", "@-x.com", "x",
	                                  "@@x.com", "@x..com",     "",        "@[192.0.2.1]"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(accounts_normalize_pattern(bad[i], out, sizeof(out), &error),
		                 ACCOUNTS_INVALID);
		assert_non_null(strstr(error, "is not a valid pattern"));
	}
}

static void test_add_get(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct account *acct = NULL;
	int64_t before = now_ms();
	assert_int_equal(accounts_add(f->a, "Alice@Example.COM", HASH1, &error), ACCOUNTS_OK);
	int64_t after = now_ms();

	assert_int_equal(accounts_get(f->a, "Alice@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->address, "Alice@example.com");
	assert_string_equal(acct->hash, HASH1);
	assert_false(acct->suspended);
	assert_int_equal(acct->n_senders, 0);
	assert_true(acct->created_ms >= before && acct->created_ms <= after);
	account_free(&acct);
	assert_null(acct);

	/* the domain is found in any case; the local part only as stored */
	assert_int_equal(accounts_get(f->a, "Alice@EXAMPLE.com", &acct, &error), ACCOUNTS_OK);
	account_free(&acct);
	assert_int_equal(accounts_get(f->a, "alice@example.com", &acct, &error), ACCOUNTS_NOTFOUND);
	assert_null(acct);
	assert_string_equal(error, "no such account: alice@example.com");
	assert_int_equal(accounts_get(f->a, "not an address", &acct, &error), ACCOUNTS_INVALID);
	assert_null(acct);

	/* the same account again, in another spelling of the domain */
	assert_int_equal(accounts_add(f->a, "Alice@example.com", HASH2, &error), ACCOUNTS_EXISTS);
	assert_non_null(strstr(error, "already exists"));
	assert_int_equal(accounts_get(f->a, "Alice@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->hash, HASH1);
	account_free(&acct);
	/* a different local part is a different account */
	assert_int_equal(accounts_add(f->a, "alice@example.com", HASH2, &error), ACCOUNTS_OK);

	assert_int_equal(accounts_add(f->a, "bad", HASH1, &error), ACCOUNTS_INVALID);
	assert_int_equal(accounts_add(f->a, "c@example.com", "", &error), ACCOUNTS_INVALID);
	assert_int_equal(accounts_add(f->a, "c@example.com", "has space", &error),
	                 ACCOUNTS_INVALID);
	assert_int_equal(accounts_get(f->a, "c@example.com", &acct, &error), ACCOUNTS_NOTFOUND);
	account_free(&acct); /* NULL is fine */
}

static void test_set_hash(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct account *acct = NULL;
	assert_int_equal(accounts_add(f->a, "bob@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_set_hash(f->a, "bob@EXAMPLE.com", HASH2, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(f->a, "bob@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->hash, HASH2);
	account_free(&acct);
	assert_int_equal(accounts_set_hash(f->a, "nobody@example.com", HASH2, &error),
	                 ACCOUNTS_NOTFOUND);
	assert_string_equal(error, "no such account: nobody@example.com");
	assert_int_equal(accounts_set_hash(f->a, "bob@example.com", "", &error), ACCOUNTS_INVALID);
	assert_int_equal(accounts_set_hash(f->a, "bob", HASH2, &error), ACCOUNTS_INVALID);
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct account *acct = NULL;
	assert_int_equal(accounts_add(f->a, "carol@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "carol@example.com", "@example.org", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_delete(f->a, "carol@Example.com", &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(f->a, "carol@example.com", &acct, &error), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_delete(f->a, "carol@example.com", &error), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_delete(f->a, "carol", &error), ACCOUNTS_INVALID);

	/* the patterns went with the account (ON DELETE CASCADE) */
	assert_int_equal(accounts_add(f->a, "carol@example.com", HASH2, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(f->a, "carol@example.com", &acct, &error), ACCOUNTS_OK);
	assert_int_equal(acct->n_senders, 0);
	account_free(&acct);
}

static void test_allow_disallow(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct account *acct = NULL;
	assert_int_equal(accounts_add(f->a, "dave@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "dave@example.com", "@Example.ORG", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "dave@EXAMPLE.com", "Sales@example.com", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "dave@example.com", "@example.org", &error),
	                 ACCOUNTS_EXISTS);
	assert_string_equal(error, "dave@example.com may already send as @example.org");
	/* its own address is always allowed and never stored */
	assert_int_equal(accounts_allow(f->a, "dave@example.com", "dave@Example.COM", &error),
	                 ACCOUNTS_EXISTS);
	assert_string_equal(error, "dave@example.com may always send as itself");
	assert_int_equal(accounts_allow(f->a, "eve@example.com", "@example.org", &error),
	                 ACCOUNTS_NOTFOUND);
	assert_string_equal(error, "no such account: eve@example.com");
	assert_int_equal(accounts_allow(f->a, "dave@example.com", "@bad domain", &error),
	                 ACCOUNTS_INVALID);
	assert_int_equal(accounts_allow(f->a, "dave", "@example.org", &error), ACCOUNTS_INVALID);

	assert_int_equal(accounts_get(f->a, "dave@example.com", &acct, &error), ACCOUNTS_OK);
	assert_int_equal(acct->n_senders, 2);
	assert_string_equal(acct->senders[0], "@example.org");
	assert_string_equal(acct->senders[1], "Sales@example.com");
	account_free(&acct);

	assert_int_equal(accounts_disallow(f->a, "dave@example.com", "@EXAMPLE.org", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_disallow(f->a, "dave@example.com", "@example.org", &error),
	                 ACCOUNTS_NOTFOUND);
	assert_non_null(strstr(error, "nothing to disallow"));
	assert_int_equal(accounts_disallow(f->a, "dave@example.com", "dave@example.com", &error),
	                 ACCOUNTS_INVALID);
	assert_int_equal(accounts_disallow(f->a, "eve@example.com", "@example.org", &error),
	                 ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_get(f->a, "dave@example.com", &acct, &error), ACCOUNTS_OK);
	assert_int_equal(acct->n_senders, 1);
	assert_string_equal(acct->senders[0], "Sales@example.com");
	account_free(&acct);
}

struct collected {
	char names[8][64];
	size_t senders[8];
	size_t n;
	size_t stop_after;
};

static int collect(void *arg, const struct account *acct)
{
	struct collected *c = arg;
	assert_true(c->n < 8);
	str_copy(c->names[c->n], acct->address, sizeof(c->names[0]));
	c->senders[c->n] = acct->n_senders;
	c->n++;
	return c->stop_after != 0 && c->n == c->stop_after;
}

static void test_foreach(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct collected c = {0};
	assert_int_equal(accounts_foreach(f->a, collect, &c, &error), ACCOUNTS_OK);
	assert_int_equal(c.n, 0);

	assert_int_equal(accounts_add(f->a, "zed@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_add(f->a, "amy@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_add(f->a, "max@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "max@example.com", "@example.org", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "max@example.com", "@example.net", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_foreach(f->a, collect, &c, &error), ACCOUNTS_OK);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.names[0], "amy@example.com");
	assert_string_equal(c.names[1], "max@example.com");
	assert_string_equal(c.names[2], "zed@example.com");
	assert_int_equal(c.senders[0], 0);
	assert_int_equal(c.senders[1], 2);

	struct collected two = {.stop_after = 2};
	assert_int_equal(accounts_foreach(f->a, collect, &two, &error), ACCOUNTS_OK);
	assert_int_equal(two.n, 2);
	/* and the handle is usable afterwards */
	struct account *acct = NULL;
	assert_int_equal(accounts_get(f->a, "zed@example.com", &acct, &error), ACCOUNTS_OK);
	account_free(&acct);
}

static void test_reopen_persists(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct account *acct = NULL;
	assert_int_equal(accounts_add(f->a, "frank@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_allow(f->a, "frank@example.com", "@example.org", &error),
	                 ACCOUNTS_OK);
	accounts_close(&f->a);
	assert_null(f->a);
	accounts_close(&f->a); /* NULL is fine */

	assert_int_equal(accounts_open(f->dir, ACCOUNTS_READ_WRITE, &f->a, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(f->a, "frank@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->hash, HASH1);
	assert_int_equal(acct->n_senders, 1);
	account_free(&acct);

	struct accounts *ro = NULL;
	assert_int_equal(accounts_open(f->dir, ACCOUNTS_READ_ONLY, &ro, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(ro, "frank@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->senders[0], "@example.org");
	account_free(&acct);
	accounts_close(&ro);
}

/* The daemon's handle stays open while detourctl changes accounts; each of
 * its calls sees the latest committed state. */
static void test_readonly_sees_changes(void **state)
{
	struct fixture *f = *state;
	const char *error;
	struct account *acct = NULL;
	struct accounts *ro = NULL;
	assert_int_equal(accounts_open(f->dir, ACCOUNTS_READ_ONLY, &ro, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(ro, "gina@example.com", &acct, &error), ACCOUNTS_NOTFOUND);

	assert_int_equal(accounts_add(f->a, "gina@example.com", HASH1, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(ro, "gina@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->hash, HASH1);
	assert_int_equal(acct->n_senders, 0);
	account_free(&acct);

	assert_int_equal(accounts_allow(f->a, "gina@example.com", "@example.org", &error),
	                 ACCOUNTS_OK);
	assert_int_equal(accounts_set_hash(f->a, "gina@example.com", HASH2, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(ro, "gina@example.com", &acct, &error), ACCOUNTS_OK);
	assert_string_equal(acct->hash, HASH2);
	assert_int_equal(acct->n_senders, 1);
	account_free(&acct);

	struct collected c = {0};
	assert_int_equal(accounts_foreach(ro, collect, &c, &error), ACCOUNTS_OK);
	assert_int_equal(c.n, 1);

	assert_int_equal(accounts_delete(f->a, "gina@example.com", &error), ACCOUNTS_OK);
	assert_int_equal(accounts_get(ro, "gina@example.com", &acct, &error), ACCOUNTS_NOTFOUND);
	accounts_close(&ro);
}

static void test_readonly_missing(void **state)
{
	struct fixture *f = *state;
	char sub[300], path[320];
	const char *error;
	struct accounts *ro = NULL;
	snprintf(sub, sizeof(sub), "%s/empty", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_ONLY, &ro, &error), ACCOUNTS_NOTFOUND);
	assert_null(ro);
	assert_non_null(strstr(error, "accounts.db"));
	snprintf(path, sizeof(path), "%s/accounts.db", sub);
	assert_int_equal(access(path, F_OK), -1); /* not created */

	/* an empty file (a crash before the schema) is "no accounts" too */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_ONLY, &ro, &error), ACCOUNTS_NOTFOUND);
	/* read-write gives it a schema */
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_WRITE, &ro, &error), ACCOUNTS_OK);
	accounts_close(&ro);
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_ONLY, &ro, &error), ACCOUNTS_OK);
	accounts_close(&ro);
}

static void test_bad_state_dir(void **state)
{
	struct fixture *f = *state;
	char path[320];
	const char *error;
	struct accounts *a = NULL;
	snprintf(path, sizeof(path), "%s/missing", f->dir);
	assert_int_equal(accounts_open(path, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_INVALID);
	assert_null(a);
	assert_non_null(strstr(error, "state_dir"));
	assert_non_null(strstr(error, "No such file or directory"));
	assert_int_equal(accounts_open(path, ACCOUNTS_READ_ONLY, &a, &error), ACCOUNTS_INVALID);
	assert_int_equal(accounts_open(f->db, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_INVALID);
	assert_non_null(strstr(error, "not a directory"));
}

static void test_file_mode_and_wal(void **state)
{
	struct fixture *f = *state;
	const char *error;
	assert_int_equal(accounts_add(f->a, "hal@example.com", HASH1, &error), ACCOUNTS_OK);
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		char path[320];
		struct stat st;
		snprintf(path, sizeof(path), "%s%s", f->db, suffixes[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* run_sql - make a database of our own in dir/accounts.db. */
static void run_sql(const char *dir, const char *sql)
{
	char path[320];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/accounts.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_refuses_foreign_files(void **state)
{
	struct fixture *f = *state;
	char sub[300];
	const char *error;
	struct accounts *a = NULL;

	snprintf(sub, sizeof(sub), "%s/other", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	run_sql(sub, "CREATE TABLE t (x)");
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_INVALID);
	assert_non_null(strstr(error, "not a detour account database"));
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_ONLY, &a, &error), ACCOUNTS_INVALID);
	run_sql(sub, "PRAGMA application_id=1");
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_INVALID);
	assert_null(a);

	/* ours, but from a newer detour */
	accounts_close(&f->a);
	run_sql(f->dir, "PRAGMA user_version=99");
	assert_int_equal(accounts_open(f->dir, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_INVALID);
	assert_non_null(strstr(error, "schema version 99"));
	assert_int_equal(accounts_open(f->dir, ACCOUNTS_READ_ONLY, &a, &error), ACCOUNTS_INVALID);
}

/* Run as root, detourctl gives the files it creates to the owner of
 * state_dir, the user the daemon runs as. */
static void test_owner_when_root(void **state)
{
	struct fixture *f = *state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	const uid_t uid = 65534;
	const gid_t gid = 65534;
	char sub[300], path[320];
	const char *error;
	struct accounts *a = NULL;
	snprintf(sub, sizeof(sub), "%s/owned", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(chown(sub, uid, gid), 0);
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_OK);
	assert_int_equal(accounts_add(a, "ivy@example.com", HASH1, &error), ACCOUNTS_OK);
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/accounts.db%s", sub, suffixes[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_uid, uid);
		assert_int_equal(st.st_gid, gid);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	accounts_close(&a);

	/* a database root left behind is repaired; a link is not followed */
	snprintf(path, sizeof(path), "%s/accounts.db", sub);
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(accounts_open(sub, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_OK);
	accounts_close(&a);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, uid);

	char target[320];
	snprintf(target, sizeof(target), "%s/victim", f->dir);
	FILE *fp = fopen(target, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(unlink(path), 0);
	char wal[330];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	unlink(wal);
	assert_int_equal(symlink(target, path), 0);
	assert_int_not_equal(accounts_open(sub, ACCOUNTS_READ_WRITE, &a, &error), ACCOUNTS_OK);
	assert_null(a);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_uid, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_normalize_pattern),
	    cmocka_unit_test_setup_teardown(test_add_get, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_hash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_allow_disallow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_sees_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_state_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_mode_and_wal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_foreign_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_when_root, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
