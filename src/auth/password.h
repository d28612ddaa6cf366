/* SPDX-License-Identifier: ISC */
/*
 * password.h - password hashes for SMTP AUTH: making them, checking them,
 * and deciding which existing crypt(3) hashes may be imported.
 *
 * Owns: the choice of algorithm (yescrypt, libxcrypt's default, for every
 * new hash), the families accepted for import and verification (yescrypt
 * $y$, bcrypt $2b$/$2y$/$2a$, SHA-crypt $5$/$6$; never DES or MD5-crypt),
 * constant-time comparison, and generating passwords.
 * Does not own: where hashes are stored (accounts.h) or reading passwords
 * from the operator (detourctl).
 *
 * Ownership: callers own every buffer; nothing here keeps a pointer. Copies
 * of a password made here are wiped (explicit_bzero) before return.
 * Threads: every function is reentrant (crypt_rn, crypt_gensalt_rn, no
 * static state) and may run on any thread. Hashing and verifying are slow
 * on purpose (yescrypt: tens of milliseconds and 16 MiB each), so never call
 * them on the event-loop thread.
 */
#ifndef DETOUR_PASSWORD_H
#define DETOUR_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* Longest password in bytes. libxcrypt refuses a passphrase of
 * CRYPT_MAX_PASSPHRASE_SIZE (512) bytes or more, so a longer password could
 * be neither hashed nor verified. */
#define PASSWORD_MAX 511
/* Room for any hash libxcrypt produces, with its NUL (CRYPT_OUTPUT_SIZE). */
#define PASSWORD_HASH_SIZE 384
/* Characters in a generated password: 20 from a 56-letter alphabet are
 * about 116 bits, beyond any guessing over the network or offline. */
#define PASSWORD_GENERATED_LEN 20

/*
 * password_hash - a new yescrypt hash of password, with a fresh random
 * salt, in out (size bytes; PASSWORD_HASH_SIZE is always enough).
 * Returns 0, or -1 with errno: EINVAL for an empty password or one longer
 * than PASSWORD_MAX, ERANGE when out is too small, or libxcrypt's error.
 */
int password_hash(const char *password, char *out, size_t size);

/*
 * password_verify - does password match hash? hash may be any family this
 * module accepts (see the top of this file). False, without an error, for
 * a locked or disabled hash ("*...", "!..."), an empty or malformed one,
 * another family, an empty password or one longer than PASSWORD_MAX. The
 * hash libxcrypt computes is compared with the stored one in constant time.
 */
bool password_verify(const char *password, const char *hash);

/*
 * password_verify_dummy - spend as long as password_verify does against a
 * default yescrypt hash, and return nothing. Call it when the account does
 * not exist, so an unknown user and a wrong password cost the same time.
 * (Accounts whose hashes were imported with another algorithm or cost take
 * as long as that hash takes; only the default is matched.)
 */
void password_verify_dummy(const char *password);

/*
 * password_hash_importable - may this existing crypt(3) hash be stored for
 * an account? True only for the accepted families, and only if libxcrypt
 * really parses it (a test verification must produce a hash of the same
 * shape) and verifying it takes under a couple of seconds. Otherwise false,
 * with *error_r a static sentence saying why (for DES and MD5-crypt: that
 * they are too weak, and what to do instead).
 */
bool password_hash_importable(const char *hash, const char **error_r);

/*
 * password_generate - PASSWORD_GENERATED_LEN random characters from an
 * alphabet without look-alikes (no 0/O, 1/l/I), from getrandom(2), in out
 * (size > PASSWORD_GENERATED_LEN). Returns 0, or -1 with errno (ERANGE for
 * a small buffer, or getrandom's error).
 */
int password_generate(char *out, size_t size);

#endif
