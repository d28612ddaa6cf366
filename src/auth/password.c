/* SPDX-License-Identifier: ISC */
/*
 * password.c - see password.h. Everything goes through libxcrypt's
 * reentrant calls (crypt_rn, crypt_gensalt_rn) with a struct crypt_data on
 * the heap: it is 32 KiB, too much for a worker thread's stack to spare,
 * and it holds a copy of the password, so it is wiped before it is freed.
 */
#include "auth/password.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/util.h"

_Static_assert(PASSWORD_HASH_SIZE == CRYPT_OUTPUT_SIZE, "PASSWORD_HASH_SIZE is libxcrypt's");
_Static_assert(PASSWORD_MAX + 1 == CRYPT_MAX_PASSPHRASE_SIZE, "PASSWORD_MAX is libxcrypt's");

/* A test verification of an imported hash that takes longer than this
 * means every login with it would too: a denial of service waiting for
 * a few clients, so such a hash is refused. */
#define PASSWORD_IMPORT_SLOW_MS 2000

/* The families new hashes may come from. $2a$ is the old bcrypt tag; it
 * is accepted because many existing databases hold it, and libxcrypt
 * verifies it correctly for the passwords those databases were made with. */
static const char *const families[] = {"$y$", "$2b$", "$2y$", "$2a$", "$5$", "$6$"};

/* Unambiguous when read aloud or copied by hand: no 0/O/o, no 1/l/I. */
static const char alphabet[] = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

/* hash_family - the accepted family prefix hash starts with, or NULL. */
static const char *hash_family(const char *hash)
{
	if (hash == NULL)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(families); i++)
		if (strncmp(hash, families[i], strlen(families[i])) == 0)
			return families[i];
	return NULL;
}

/* password_usable - libxcrypt cannot take more than PASSWORD_MAX bytes, and
 * an empty password must never log in whatever the stored hash says. */
static bool password_usable(const char *password)
{
	return password != NULL && password[0] != '\0' &&
	       strnlen(password, PASSWORD_MAX + 1) <= PASSWORD_MAX;
}

/* digest_of - the part after the last '$': the digest (for bcrypt, salt and
 * digest). NULL if there is no '$' or nothing after it. */
static const char *digest_of(const char *hash)
{
	const char *d = strrchr(hash, '$');
	return d != NULL && d[1] != '\0' ? d + 1 : NULL;
}

/* digests_equal - compare the digests of the computed and the stored hash
 * in constant time. Only the digest is compared, not the whole string:
 * libxcrypt writes parameters in canonical form, so a SHA-crypt hash
 * stored by glibc as "$6$rounds=5000$salt$..." comes back as
 * "$6$salt$..." with the same digest. The lengths are not secret. */
static bool digests_equal(const char *computed, const char *stored)
{
	const char *a = digest_of(computed), *b = digest_of(stored);
	if (a == NULL || b == NULL)
		return false;
	size_t len = strlen(a);
	if (strlen(b) != len)
		return false;
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* crypt_with - crypt_rn into data; NULL on any failure. libxcrypt returns
 * NULL rather than a "*0" failure token from crypt_rn, but a result that
 * starts with '*' is treated as failure too, in case that changes. */
static const char *crypt_with(const char *password, const char *setting, struct crypt_data *data)
{
	errno = 0;
	const char *out = crypt_rn(password, setting, data, (int)sizeof(*data));
	if (out == NULL || out[0] == '*')
		return NULL;
	return out;
}

static void crypt_data_free(struct crypt_data **data)
{
	explicit_bzero(*data, sizeof(**data));
	free(*data);
	*data = NULL;
}

int password_hash(const char *password, char *out, size_t size)
{
	if (!password_usable(password)) {
		errno = EINVAL;
		return -1;
	}
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	/* A count of 0 and no random bytes: libxcrypt's default cost, and a
	 * salt from its own getrandom(2). */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, (int)sizeof(setting)) == NULL)
		return -1;
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *hash = crypt_with(password, setting, data);
	int r = 0, err = 0;
	if (hash == NULL) {
		err = errno != 0 ? errno : EINVAL;
		r = -1;
	} else if (!str_copy(out, hash, size)) {
		explicit_bzero(out, size);
		err = ERANGE;
		r = -1;
	}
	crypt_data_free(&data);
	errno = err;
	return r;
}

bool password_verify(const char *password, const char *hash)
{
	const char *family = hash_family(hash);
	if (!password_usable(password) || family == NULL)
		return false;
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *computed = crypt_with(password, hash, data);
	bool ok = computed != NULL && strncmp(computed, family, strlen(family)) == 0 &&
	          digests_equal(computed, hash);
	crypt_data_free(&data);
	return ok;
}

void password_verify_dummy(const char *password)
{
	/* The same early return password_verify takes, so a password that
	 * is too long is as fast for an unknown account as for a known one. */
	if (!password_usable(password))
		return;
	/* Fixed "random" bytes: the setting is the same on every call, and
	 * building it each time keeps this free of shared state. */
	static const char salt_bytes[16] = {'d', 'e', 't', 'o', 'u', 'r', '-', 'd',
	                                    'u', 'm', 'm', 'y', '-', 's', 'l', 't'};
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn("$y$", 0, salt_bytes, (int)sizeof(salt_bytes), setting,
	                     (int)sizeof(setting)) == NULL)
		return;
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	const char *computed = crypt_with(password, setting, data);
	/* Compare with a digest of the right length, as a real check does;
	 * the volatile keeps the compiler from dropping it. */
	static const char decoy[] = "$y$j9T$x$0123456789012345678901234567890123456789012";
	volatile bool sink = computed != NULL && digests_equal(computed, decoy);
	(void)sink;
	crypt_data_free(&data);
}

/* weak_reason - why a hash of a family we do not accept is refused. */
static const char *weak_reason(const char *hash)
{
	if (hash[0] == '*' || hash[0] == '!')
		return "a hash starting with '*' or '!' is locked or disabled and can never log "
		       "in; give the account a password instead";
	if (strncmp(hash, "$1$", 3) == 0)
		return "MD5-crypt ($1$) hashes are too weak to import: they are cheap to "
		       "brute-force on current hardware; give the account a new password instead";
	if (hash[0] == '_')
		return "extended DES-crypt ('_') hashes are too weak to import; give the account a "
		       "new password instead";
	if (hash[0] != '$' && strlen(hash) == 13)
		return "DES-crypt hashes are too weak to import: only the first 8 characters of a "
		       "password count; give the account a new password instead";
	if (hash[0] == '$')
		return "this kind of hash is not accepted: import yescrypt ($y$), bcrypt ($2b$, "
		       "$2y$, $2a$) or SHA-crypt ($5$, $6$) hashes";
	return "not a crypt(3) hash: expected yescrypt ($y$), bcrypt ($2b$, $2y$, $2a$) or "
	       "SHA-crypt ($5$, $6$)";
}

/* digest_chars_ok - every one of these families writes its digest in
 * crypt's base64 alphabet. */
static bool digest_chars_ok(const char *digest)
{
	return digest[strspn(digest, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                             "abcdefghijklmnopqrstuvwxyz")] == '\0';
}

bool password_hash_importable(const char *hash, const char **error_r)
{
	*error_r = NULL;
	if (hash == NULL || hash[0] == '\0') {
		*error_r = "the hash is empty";
		return false;
	}
	if (strnlen(hash, PASSWORD_HASH_SIZE) >= PASSWORD_HASH_SIZE) {
		*error_r = "the hash is too long to be a crypt(3) hash";
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)hash; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f) {
			*error_r =
			    "the hash contains spaces, control characters or non-ASCII bytes";
			return false;
		}
	}
	const char *family = hash_family(hash);
	if (family == NULL) {
		*error_r = weak_reason(hash);
		return false;
	}
	const char *digest = digest_of(hash);
	if (digest == NULL || !digest_chars_ok(digest)) {
		*error_r = "the hash is malformed: its last part is not a digest";
		return false;
	}

	/* Let libxcrypt parse it: a test password must give a hash of the
	 * same family whose digest has the same length. A truncated or
	 * mangled hash either fails here or gives a different shape. */
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	int64_t start = mono_ms();
	const char *computed = crypt_with("detour import check", hash, data);
	int64_t took = mono_ms() - start;
	bool ok = false;
	if (computed == NULL) {
		*error_r = "libxcrypt cannot use this hash: its parameters or salt are malformed";
	} else if (strncmp(computed, family, strlen(family)) != 0 || digest_of(computed) == NULL ||
	           strlen(digest_of(computed)) != strlen(digest)) {
		*error_r = "the hash is malformed: its digest does not have the length its type "
		           "requires";
	} else if (took > PASSWORD_IMPORT_SLOW_MS) {
		*error_r = "checking a password against this hash takes more than 2 seconds; every "
		           "login would too: use a lower cost";
	} else {
		ok = true;
	}
	crypt_data_free(&data);
	return ok;
}

int password_generate(char *out, size_t size)
{
	if (size <= PASSWORD_GENERATED_LEN) {
		errno = ERANGE;
		return -1;
	}
	/* Rejection sampling: bytes at or above the largest multiple of the
	 * alphabet size are thrown away, so every letter is equally likely. */
	const unsigned n = (unsigned)(sizeof(alphabet) - 1);
	const unsigned limit = 256 - 256 % n;
	unsigned char buf[64];
	size_t have = 0, used = 0, len = 0;
	while (len < PASSWORD_GENERATED_LEN) {
		if (used == have) {
			ssize_t got = getrandom(buf, sizeof(buf), 0);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				int err = got < 0 ? errno : EIO;
				explicit_bzero(buf, sizeof(buf));
				explicit_bzero(out, size);
				errno = err;
				return -1;
			}
			have = (size_t)got;
			used = 0;
		}
		unsigned b = buf[used++];
		if (b < limit)
			out[len++] = alphabet[b % n];
	}
	out[len] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return 0;
}
