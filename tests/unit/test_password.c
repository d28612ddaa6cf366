/* SPDX-License-Identifier: ISC */
/*
 * test_password.c - password hashes: new ones are yescrypt and verify;
 * bcrypt and SHA-crypt hashes made elsewhere verify; locked, malformed and
 * weak hashes never verify and are refused for import; generated passwords
 * are long, from the stated alphabet, and different every time; and the
 * dummy check for unknown accounts costs about as much as a real one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/password.h"
#include "lib/util.h"

static const char alphabet[] = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

/* make_hash - a hash of password made with libxcrypt directly, as another
 * system would have made it: prefix "$2b$", "$6$"..., cost count. */
static void make_hash(const char *prefix, unsigned long count, const char *password, char *out)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, setting, sizeof(setting)));
	const char *h = crypt_rn(password, setting, data, sizeof(*data));
	assert_non_null(h);
	assert_true(str_copy(out, h, PASSWORD_HASH_SIZE));
	free(data);
}

static void test_yescrypt_hash_verifies(void **state)
{
	char hash[PASSWORD_HASH_SIZE];
	assert_int_equal(password_hash("correct horse battery", hash, sizeof(hash)), 0);
	assert_memory_equal(hash, "$y$", 3);
	assert_true(password_verify("correct horse battery", hash));
	assert_false(password_verify("correct horse batterY", hash));
	assert_false(password_verify("correct horse battery ", hash));
	assert_false(password_verify("x", hash));
	assert_false(password_verify("", hash));
}

static void test_hash_is_salted(void **state)
{
	char a[PASSWORD_HASH_SIZE], b[PASSWORD_HASH_SIZE];
	assert_int_equal(password_hash("same password", a, sizeof(a)), 0);
	assert_int_equal(password_hash("same password", b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	assert_true(password_verify("same password", a));
	assert_true(password_verify("same password", b));
}

/* At the length limit and one past it; an empty password; a buffer too
 * small for the hash. */
static void test_hash_limits(void **state)
{
	char hash[PASSWORD_HASH_SIZE];
	char pw[PASSWORD_MAX + 2];
	memset(pw, 'p', PASSWORD_MAX);
	pw[PASSWORD_MAX] = '\0';
	assert_int_equal(password_hash(pw, hash, sizeof(hash)), 0);
	assert_true(password_verify(pw, hash));

	pw[PASSWORD_MAX] = 'p';
	pw[PASSWORD_MAX + 1] = '\0';
	errno = 0;
	assert_int_equal(password_hash(pw, hash, sizeof(hash)), -1);
	assert_int_equal(errno, EINVAL);
	assert_false(password_verify(pw, hash));

	errno = 0;
	assert_int_equal(password_hash("", hash, sizeof(hash)), -1);
	assert_int_equal(errno, EINVAL);

	char small[20];
	errno = 0;
	assert_int_equal(password_hash("secret", small, sizeof(small)), -1);
	assert_int_equal(errno, ERANGE);
}

static void test_foreign_families_verify(void **state)
{
	static const struct {
		const char *prefix;
		unsigned long count;
	} kinds[] = {
	    {"$2b$", 4}, {"$2y$", 4}, {"$2a$", 4}, {"$6$", 0}, {"$5$", 0}, {"$y$", 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		char hash[PASSWORD_HASH_SIZE];
		const char *why = NULL;
		make_hash(kinds[i].prefix, kinds[i].count, "imported secret", hash);
		assert_memory_equal(hash, kinds[i].prefix, strlen(kinds[i].prefix));
		assert_true(password_verify("imported secret", hash));
		assert_false(password_verify("imported Secret", hash));
		assert_true(password_hash_importable(hash, &why));
		assert_null(why);
	}
}

/* glibc writes "rounds=5000" when it was asked for explicitly; libxcrypt
 * leaves the default out. The digest is what counts. */
static void test_sha_crypt_explicit_default_rounds(void **state)
{
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *h =
	    crypt_rn("pw with rounds", "$6$rounds=5000$saltsaltsalt$", data, sizeof(*data));
	assert_non_null(h);
	const char *digest = strrchr(h, '$') + 1;
	char stored[PASSWORD_HASH_SIZE];
	snprintf(stored, sizeof(stored), "$6$rounds=5000$saltsaltsalt$%s", digest);
	free(data);
	assert_true(password_verify("pw with rounds", stored));
	assert_false(password_verify("pw with Rounds", stored));
	const char *why;
	assert_true(password_hash_importable(stored, &why));
}

static void test_verify_refuses_locked_and_malformed(void **state)
{
	char hash[PASSWORD_HASH_SIZE], locked[PASSWORD_HASH_SIZE + 1];
	assert_int_equal(password_hash("secret", hash, sizeof(hash)), 0);
	assert_false(password_verify("secret", "*"));
	assert_false(password_verify("secret", ""));
	assert_false(password_verify("secret", NULL));
	assert_false(password_verify("secret", "!"));
	assert_false(password_verify("secret", "*LK*"));
	snprintf(locked, sizeof(locked), "!%s", hash);
	assert_false(password_verify("secret", locked));
	snprintf(locked, sizeof(locked), "*%s", hash);
	assert_false(password_verify("secret", locked));

	/* truncated: the digest is shorter than yescrypt's */
	char cut[PASSWORD_HASH_SIZE];
	str_copy(cut, hash, sizeof(cut));
	cut[strlen(cut) - 4] = '\0';
	assert_false(password_verify("secret", cut));
	/* setting only, no digest */
	str_copy(cut, hash, sizeof(cut));
	*(strrchr(cut, '$') + 1) = '\0';
	assert_false(password_verify("secret", cut));
	assert_false(password_verify("secret", "$y$j9T$abc"));
	assert_false(password_verify("secret", "garbage"));
}

/* MD5-crypt and DES hashes verify in libxcrypt, but not here. */
static void test_verify_refuses_weak_families(void **state)
{
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	char md5[PASSWORD_HASH_SIZE], des[PASSWORD_HASH_SIZE];
	str_copy(md5, crypt_rn("secret", "$1$abcdefgh$", data, sizeof(*data)), sizeof(md5));
	str_copy(des, crypt_rn("secret", "ab", data, sizeof(*data)), sizeof(des));
	free(data);
	assert_memory_equal(md5, "$1$", 3);
	assert_int_equal(strlen(des), 13);
	assert_false(password_verify("secret", md5));
	assert_false(password_verify("secret", des));
}

static void test_import_refusals(void **state)
{
	const char *why;
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	char md5[PASSWORD_HASH_SIZE], des[PASSWORD_HASH_SIZE];
	str_copy(md5, crypt_rn("secret", "$1$abcdefgh$", data, sizeof(*data)), sizeof(md5));
	str_copy(des, crypt_rn("secret", "ab", data, sizeof(*data)), sizeof(des));
	free(data);

	assert_false(password_hash_importable(md5, &why));
	assert_non_null(strstr(why, "MD5-crypt"));
	assert_non_null(strstr(why, "too weak"));
	assert_false(password_hash_importable(des, &why));
	assert_non_null(strstr(why, "DES"));
	assert_false(password_hash_importable("_J9..abcdRqD3c3Xs2bE", &why));
	assert_non_null(strstr(why, "DES"));

	assert_false(password_hash_importable("*", &why));
	assert_non_null(strstr(why, "locked"));
	assert_false(password_hash_importable("!$y$j9T$abc$def", &why));
	assert_false(password_hash_importable("", &why));
	assert_false(password_hash_importable(NULL, &why));
	assert_false(password_hash_importable("hello world", &why));
	assert_false(password_hash_importable("garbage", &why));
	assert_false(password_hash_importable("$gy$j9T$abc$def", &why));
	assert_non_null(strstr(why, "not accepted"));
	assert_false(password_hash_importable("$y$j9T$abc", &why));
	assert_false(password_hash_importable("$6$abc$short", &why));
	assert_false(password_hash_importable(
	    "$y$zzzz$abc$0123456789012345678901234567890123456789012", &why));
	assert_non_null(why);

	/* a real hash, truncated, or with a stray character */
	char hash[PASSWORD_HASH_SIZE], bad[PASSWORD_HASH_SIZE + 1];
	assert_int_equal(password_hash("secret", hash, sizeof(hash)), 0);
	assert_true(password_hash_importable(hash, &why));
	str_copy(bad, hash, sizeof(bad));
	bad[strlen(bad) - 1] = '\0';
	assert_false(password_hash_importable(bad, &why));
	snprintf(bad, sizeof(bad), "%s\n", hash);
	assert_false(password_hash_importable(bad, &why));
	str_copy(bad, hash, sizeof(bad));
	bad[strlen(bad) - 3] = '#';
	assert_false(password_hash_importable(bad, &why));

	/* one past the longest crypt(3) output */
	char *huge = xmalloc(PASSWORD_HASH_SIZE + 1);
	memset(huge, 'a', PASSWORD_HASH_SIZE);
	memcpy(huge, "$6$", 3);
	huge[PASSWORD_HASH_SIZE] = '\0';
	assert_false(password_hash_importable(huge, &why));
	assert_non_null(strstr(why, "too long"));
	free(huge);
}

static void test_generate(void **state)
{
	char prev[PASSWORD_GENERATED_LEN + 1] = "";
	for (int i = 0; i < 200; i++) {
		char pw[PASSWORD_GENERATED_LEN + 1];
		assert_int_equal(password_generate(pw, sizeof(pw)), 0);
		assert_int_equal(strlen(pw), PASSWORD_GENERATED_LEN);
		assert_int_equal(strspn(pw, alphabet), PASSWORD_GENERATED_LEN);
		assert_null(strpbrk(pw, "0O1lIo"));
		assert_string_not_equal(pw, prev);
		memcpy(prev, pw, sizeof(pw));
	}
	char small[PASSWORD_GENERATED_LEN];
	errno = 0;
	assert_int_equal(password_generate(small, sizeof(small)), -1);
	assert_int_equal(errno, ERANGE);
}

/* A generated password hashes and verifies like any other. */
static void test_generated_round_trip(void **state)
{
	char pw[PASSWORD_GENERATED_LEN + 1], hash[PASSWORD_HASH_SIZE];
	assert_int_equal(password_generate(pw, sizeof(pw)), 0);
	assert_int_equal(password_hash(pw, hash, sizeof(hash)), 0);
	assert_true(password_verify(pw, hash));
}

/* The dummy check and a real one against a default hash should take about
 * the same time. The bound is loose (a factor of 3 each way, best of 3):
 * it catches a dummy that does nothing or far too much, not jitter. */
static void test_dummy_costs_like_verify(void **state)
{
	char hash[PASSWORD_HASH_SIZE];
	assert_int_equal(password_hash("a real password", hash, sizeof(hash)), 0);
	int64_t best_real = INT64_MAX, best_dummy = INT64_MAX;
	for (int i = 0; i < 3; i++) {
		int64_t t0 = mono_ms();
		assert_false(password_verify("a wrong password", hash));
		int64_t t1 = mono_ms();
		password_verify_dummy("a wrong password");
		int64_t t2 = mono_ms();
		if (t1 - t0 < best_real)
			best_real = t1 - t0;
		if (t2 - t1 < best_dummy)
			best_dummy = t2 - t1;
	}
	/* +2 ms keeps a very fast machine's rounding out of the ratio. */
	assert_true(best_dummy * 3 + 2 >= best_real);
	assert_true(best_real * 3 + 2 >= best_dummy);
	/* and it must not fail on what a client may send */
	password_verify_dummy("");
	password_verify_dummy(NULL);
}

struct thread_arg {
	const char *hash;
	int ok;
};

static void *verify_thread(void *p)
{
	struct thread_arg *t = p;
	t->ok = password_verify("threaded", t->hash) && !password_verify("Threaded", t->hash);
	password_verify_dummy("threaded");
	return NULL;
}

/* Worker threads verify at the same time: no shared state. */
static void test_threads(void **state)
{
	char hash[PASSWORD_HASH_SIZE];
	assert_int_equal(password_hash("threaded", hash, sizeof(hash)), 0);
	pthread_t th[4];
	struct thread_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){.hash = hash};
		assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_true(args[i].ok);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_yescrypt_hash_verifies),
	    cmocka_unit_test(test_hash_is_salted),
	    cmocka_unit_test(test_hash_limits),
	    cmocka_unit_test(test_foreign_families_verify),
	    cmocka_unit_test(test_sha_crypt_explicit_default_rounds),
	    cmocka_unit_test(test_verify_refuses_locked_and_malformed),
	    cmocka_unit_test(test_verify_refuses_weak_families),
	    cmocka_unit_test(test_import_refusals),
	    cmocka_unit_test(test_generate),
	    cmocka_unit_test(test_generated_round_trip),
	    cmocka_unit_test(test_dummy_costs_like_verify),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
