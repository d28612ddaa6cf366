/* SPDX-License-Identifier: ISC */
/*
 * smtp_reply.h - every canned reply the SMTP server sends, as data.
 *
 * Owns: reply codes, RFC 3463 enhanced status codes and reply texts. The
 * session formats them; parsers return them to say what went wrong. The
 * reply table of SPEC.md is checked against this table by a unit test.
 * Pure: no I/O.
 */
#ifndef DETOUR_SMTP_REPLY_H
#define DETOUR_SMTP_REPLY_H

/* X(name, code, enhanced code, text) */
#define SMTP_REPLIES(X)                                                                            \
	X(BYE, 221, "2.0.0", "Bye")                                                                \
	X(OK, 250, "2.0.0", "Ok")                                                                  \
	X(MAIL_OK, 250, "2.1.0", "Sender ok")                                                      \
	X(RCPT_OK, 250, "2.1.5", "Recipient ok")                                                   \
	X(RSET_OK, 250, "2.0.0", "Reset state")                                                    \
	X(VRFY, 252, "2.5.0", "Cannot VRFY users; send mail and delivery will be attempted")       \
	X(HELP, 214, "2.0.0",                                                                      \
	  "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; see RFC 5321")        \
	X(DATA_GO, 354, "", "End data with <CR><LF>.<CR><LF>")                                     \
	X(STARTTLS_GO, 220, "2.0.0", "Ready to start TLS")                                         \
	X(AUTH_OK, 235, "2.7.0", "Authentication successful")                                      \
	X(SHUTDOWN, 421, "4.3.2", "Service shutting down, closing connection")                     \
	X(TIMEOUT, 421, "4.4.2", "Timeout exceeded, closing connection")                           \
	X(TOO_MANY_ERRORS, 421, "4.7.0", "Too many errors, closing connection")                    \
	X(HTTP, 421, "4.7.0", "This is an SMTP server, not a web server; closing connection")      \
	X(LINE_TOO_LONG, 500, "5.5.2", "Line too long")                                            \
	X(CMD_BARE_LF, 500, "5.5.2", "Bare LF in command line; lines must end with CRLF")          \
	X(CMD_BARE_CR, 500, "5.5.2", "Bare CR in command line")                                    \
	X(CMD_NUL, 500, "5.5.2", "NUL byte in command line")                                       \
	X(CMD_UNKNOWN, 500, "5.5.1", "Command unrecognized")                                       \
	X(SYNTAX, 501, "5.5.4", "Syntax error in parameters or arguments")                         \
	X(HELO_SYNTAX, 501, "5.5.4", "EHLO/HELO needs a domain name or address literal")           \
	X(NO_ARGS, 501, "5.5.4", "This command takes no arguments")                                \
	X(NOT_IMPLEMENTED, 502, "5.5.1", "Command not implemented")                                \
	X(NEED_HELO, 503, "5.5.1", "Send EHLO or HELO first")                                      \
	X(NEED_MAIL, 503, "5.5.1", "Send MAIL first")                                              \
	X(NEED_RCPT, 503, "5.5.1", "Send RCPT first")                                              \
	X(NESTED_MAIL, 503, "5.5.1", "Sender already specified")                                   \
	X(BDAT_THEN_DATA, 503, "5.5.1", "DATA is not allowed after BDAT in one transaction")       \
	X(PIPELINING, 554, "5.5.0", "Improper command pipelining")                                 \
	X(PARAM_UNKNOWN, 555, "5.5.4", "Unsupported or unrecognized parameter")                    \
	X(PARAM_SYNTAX, 501, "5.5.4", "Syntax error in parameter")                                 \
	X(PARAM_DUPLICATE, 501, "5.5.4", "Duplicate parameter")                                    \
	X(BODY_BINARY, 555, "5.5.4", "BINARYMIME is not supported")                                \
	X(MAIL_SYNTAX, 501, "5.1.7", "Bad sender address syntax")                                  \
	X(RCPT_SYNTAX, 501, "5.1.3", "Bad recipient address syntax")                               \
	X(SOURCE_ROUTE, 553, "5.1.3", "Source routes are not accepted")                            \
	X(MAIL_SOURCE_ROUTE, 553, "5.1.7", "Source routes are not accepted")                       \
	X(ADDR_TOO_LONG, 501, "5.1.3", "Address too long")                                         \
	X(MAIL_TOO_LONG, 501, "5.1.7", "Sender address too long")                                  \
	X(NEEDS_SMTPUTF8, 553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter")          \
	X(NULL_RCPT, 501, "5.1.3", "The null address is not a valid recipient")                    \
	X(NO_MAILBOXES, 550, "5.1.1", "This relay has no local mailboxes")                         \
	X(GENERAL_LITERAL, 553, "5.1.3", "Only IPv4 and IPv6 address literals can be delivered")   \
	X(SIZE_DECLARED, 552, "5.3.4", "Message size exceeds fixed limit")                         \
	X(TOO_BIG, 552, "5.3.4", "Message size exceeds fixed limit")                               \
	X(TOO_MANY_RCPTS, 452, "4.5.3", "Too many recipients")                                     \
	X(DATA_BARE_LF, 554, "5.6.0",                                                              \
	  "Message refused: bare LF in data; lines must end with CRLF")                            \
	X(DATA_BARE_CR, 554, "5.6.0", "Message refused: bare CR in data")                          \
	X(DATA_NUL, 554, "5.6.0", "Message refused: NUL byte in data")                             \
	X(DATA_LONG_LINE, 554, "5.6.0", "Message refused: line longer than 1000 octets")           \
	X(DATA_NOT_TERMINATED, 554, "5.6.0", "Message refused: last BDAT chunk ends in bare CR")   \
	X(BDAT_SYNTAX, 501, "5.5.4", "BDAT needs a chunk size and optionally LAST")                \
	X(LOOP, 554, "5.4.6", "Too many Received headers: mail loop detected")                     \
	X(QUEUE_FAILED, 451, "4.3.0", "Could not queue the message; try again later")              \
	X(NO_SPACE, 452, "4.3.1", "Insufficient system storage")                                   \
	X(AUTH_REQUIRED, 530, "5.7.0", "Authentication required")                                  \
	X(RELAY_DENIED, 550, "5.7.1", "Relay access denied")                                       \
	X(AUTH_NEEDS_TLS, 538, "5.7.11",                                                           \
	  "Encryption required for requested authentication mechanism")                            \
	X(AUTH_FAILED, 535, "5.7.8", "Authentication credentials invalid")                         \
	X(AUTH_UNKNOWN_MECH, 504, "5.5.4", "Unrecognized authentication mechanism")                \
	X(AUTH_ALREADY, 503, "5.5.1", "Already authenticated")                                     \
	X(AUTH_BAD_BASE64, 501, "5.5.2", "Cannot decode the response")                             \
	X(AUTH_CANCELLED, 501, "5.0.0", "Authentication cancelled")                                \
	X(AUTH_IN_TRANSACTION, 503, "5.5.1", "AUTH is not allowed during a mail transaction")      \
	X(AUTH_UNAVAILABLE, 454, "4.7.0", "Temporary authentication failure")                      \
	X(AUTH_NOT_OFFERED, 503, "5.5.1", "AUTH is not available on this connection")              \
	X(SENDER_DENIED, 553, "5.7.1", "Sender address not allowed for this account")              \
	X(NULL_SENDER_DENIED, 553, "5.7.1", "The null sender is reserved for trusted clients")     \
	X(TLS_NOT_OFFERED, 502, "5.5.1", "STARTTLS is not available here")                         \
	X(TLS_ALREADY, 503, "5.5.1", "TLS is already active")                                      \
	X(TLS_IN_TRANSACTION, 503, "5.5.1", "STARTTLS is not allowed during a mail transaction")   \
	X(TLS_UNAVAILABLE, 454, "4.7.0", "TLS not available due to temporary reason")              \
	X(RATE_LIMITED, 450, "4.7.1", "Sending rate limit reached; try again later")               \
	X(RCPT_RATE_LIMITED, 450, "4.7.1", "Recipient rate limit reached; try again later")        \
	X(AUTH_BLOCKED, 454, "4.7.0", "Too many failed logins from your address; try again later") \
	X(TOO_MANY_CONNECTIONS, 421, "4.7.0", "Too many connections; try again later")

enum smtp_reply_id {
#define SMTP_REPLY_ENUM(name, code, enh, text) SMTP_R_##name,
	SMTP_REPLIES(SMTP_REPLY_ENUM)
#undef SMTP_REPLY_ENUM
	    SMTP_R_COUNT
};

struct smtp_reply {
	int code;         /* three digits */
	const char *enh;  /* RFC 3463 class.subject.detail, "" for none */
	const char *text; /* one line, no CR or LF */
};

/* smtp_reply_get - the canned reply for id; never NULL. */
const struct smtp_reply *smtp_reply_get(enum smtp_reply_id id);

#endif
