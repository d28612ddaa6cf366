/* SPDX-License-Identifier: ISC */
/*
 * user.h - detourctl's `user` commands (SPEC.md "Accounts and the queue"):
 * add, passwd, del, list, allow, disallow.
 *
 * Owns: their arguments and options, reading a password from standard
 * input, printing a generated password (the only place a password is ever
 * printed), and their output and exit codes. Does not own: the database
 * (auth/accounts.h) or hashing (auth/password.h); these commands write
 * state_dir/accounts.db directly, not through the daemon, which reads each
 * account afresh at every AUTH.
 * Called by detourctl's main.c only, on its one thread.
 */
#ifndef DETOUR_CTL_USER_H
#define DETOUR_CTL_USER_H

#include <stdio.h>

struct config;

/*
 * ctl_user - run `detourctl user ...`. argv[0] is the word after "user"
 * (add, passwd, del, list, allow, disallow); the rest are its arguments and
 * options (--json, --password-stdin, --hash HASH or --hash=HASH, and "--"
 * to end options). Errors go to stderr as "detourctl: ...". Returns a
 * sysexits code: 0 done, 64 usage, 65 bad data (malformed address or
 * pattern, unknown account, existing account, refused hash or password),
 * 69 the database cannot be used, 70 internal error, 78 state_dir or the
 * database file is not what the configuration says.
 */
int ctl_user(const struct config *cfg, int argc, char **argv);

/* ctl_user_usage - one "  user ...  description" line per command, for
 * detourctl's help. */
void ctl_user_usage(FILE *out);

#endif
