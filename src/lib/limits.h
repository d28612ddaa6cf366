/* SPDX-License-Identifier: ISC */
/*
 * limits.h - every protocol and resource limit of detour, named in one place.
 *
 * Owns: the numbers. Every external input is bounded by one of these, and
 * each has a test at the limit and one past it. Configurable limits keep
 * their defaults here; the configuration module applies overrides.
 */
#ifndef DETOUR_LIMITS_H
#define DETOUR_LIMITS_H

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF. */
#define SMTP_CMDLINE_MAX 512
/* RFC 4954 4: AUTH lines may be longer; 12288 octets including CRLF. */
#define SMTP_AUTHLINE_MAX 12288
/* RFC 5321 4.5.3.1.4: extensions lengthen MAIL and RCPT by what their
 * parameters may take: SIZE 26 (RFC 1870), BODY 16 (RFC 6152), SMTPUTF8 10
 * (RFC 6531), ENVID 100 and RET 14 (RFC 3461), AUTH= 500 (RFC 4954);
 * NOTIFY 30 and ORCPT 500 (RFC 3461). */
#define SMTP_MAIL_LINE_MAX (SMTP_CMDLINE_MAX + 26 + 16 + 10 + 100 + 14 + 500)
#define SMTP_RCPT_LINE_MAX (SMTP_CMDLINE_MAX + 30 + 500)
/* RFC 5321 4.5.3.1.6: a text line of message data is at most 1000 octets
 * including CRLF. */
#define SMTP_DATALINE_MAX 1000
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including CRLF. */
#define SMTP_REPLYLINE_MAX 512
/* Lines of one multi-line reply a client accepts before calling it hostile. */
#define SMTP_REPLY_LINES_MAX 100
/* RFC 5321 4.5.3.1.1-3: local part 64, domain 255, path 256 octets. */
#define SMTP_LOCALPART_MAX 64
#define SMTP_DOMAIN_MAX    255
#define SMTP_PATH_MAX      256
/* RFC 3461 4.4: ENVID is at most 100 characters (as xtext, before decoding). */
#define SMTP_ENVID_MAX 100
/* RFC 3461 4.2: ORCPT, as xtext, is at most 500 characters. */
#define SMTP_ORCPT_MAX 500
/* EHLO/HELO argument: a domain name or an address literal. */
#define SMTP_HELO_MAX 255

/* Protocol errors in one session before it is closed with 421 (Postfix's
 * smtpd_hard_error_limit is 20 too). Policy refusals (5.7.x) do not count:
 * an open-relay audit sends many, and each is already a dead end. */
#define SMTP_ERRORS_MAX 20
/* Default number of recipients per message ([limits] max_recipients). */
#define SMTP_RCPT_MAX_DEFAULT 100
/* Default largest message, octets ([limits] max_message_size). */
#define SMTP_MESSAGE_MAX_DEFAULT (50ULL * 1024 * 1024)
/* Largest BDAT chunk size a client may announce, whatever the message limit. */
#define SMTP_BDAT_CHUNK_MAX (1ULL << 40)

/* RFC 5321 4.5.3.2.7: a server waits at least 5 minutes for a command. */
#define SMTP_COMMAND_TIMEOUT_DEFAULT (5 * 60)
/* A TLS handshake (implicit TLS or after STARTTLS) must finish in this
 * many seconds. */
#define TLS_HANDSHAKE_TIMEOUT 30
/* A failed AUTH is answered after this many milliseconds by default
 * ([limits] auth_failure_delay). */
#define AUTH_FAILURE_DELAY_DEFAULT_MS 2000
/* Threads that check passwords (yescrypt is slow on purpose). */
#define AUTH_WORKERS 2
/* Between two blocks of message data ([limits] data_timeout). */
#define SMTP_DATA_TIMEOUT_DEFAULT (10 * 60)
/* A whole session, however busy, ends after this ([limits] session_timeout):
 * a client that trickles one byte per minute cannot hold a connection. */
#define SMTP_SESSION_TIMEOUT_DEFAULT (60 * 60)
/* Buckets kept per rate-limit table (accounts, client addresses). */
#define RATELIMIT_KEYS_MAX 100000
/* After SIGTERM, sessions still open after this many seconds get 421. */
#define SERVER_GRACE_DEFAULT 10

/* A message up to this size stays in memory while it is received; a larger
 * one spills to an unsynced temporary file in state_dir/tmp. */
#define SPOOL_INMEM_MAX (128 * 1024)
/* Largest number of messages the writer commits in one transaction. */
#define SPOOL_BATCH_MAX 256
/* Chunk in which message bodies are copied into and out of the database. */
#define SPOOL_CHUNK 65536

/* Configuration: one line of the file, and the number of listeners. */
#define CONFIG_LINE_MAX         1024
#define CONFIG_LISTENERS_MAX    64
#define CONFIG_LISTEN_ADDRS_MAX 16
#define CONFIG_TRUSTED_MAX      64

/* Control socket: one request line, including its LF. */
#define CTL_REQUEST_MAX 4096

/* Input buffered per session before reading pauses (back-pressure). */
#define SESSION_INPUT_HIGHWATER (256 * 1024)
/* Replies queued to a client that does not read before input pauses. */
#define SESSION_OUTPUT_HIGHWATER (64 * 1024)

#endif
