/* SPDX-License-Identifier: ISC */
/*
 * message.h - the message `detour send` reads, as sendmail would take it:
 * reading standard input (a lone "." ends it unless -i), the header fields
 * that carry recipients for -t (RFC 5322 3.6.3: To, Cc, Bcc), removing Bcc,
 * and the fields a submission agent adds when they are missing (From, Date,
 * Message-ID: RFC 6409 8.1-8.3).
 *
 * Owns: the RFC 5322 syntax it needs: header fields and their folding
 * (2.2.3), address lists with display names, quoted strings, comments and
 * groups (3.4). Line ends may be LF or CRLF; they are left as they are
 * (smtp_dotstuff makes every line end CRLF on the wire).
 * Does not own: whether an address is valid for SMTP (smtp_addr), sending.
 * Pure but for message_read (a file descriptor). Any thread.
 */
#ifndef DETOUR_CMD_MESSAGE_H
#define DETOUR_CMD_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

struct message {
	char *data;
	size_t len;
	size_t cap;
};

/* A list of addresses, each a malloc'ed string. */
struct addr_list {
	char **addrs;
	size_t n;
};

enum message_read_result {
	MESSAGE_READ_OK,
	MESSAGE_READ_TOO_BIG, /* more than max octets */
	MESSAGE_READ_ERROR,   /* read(2) failed: errno */
};

/* message_read - read fd to its end, or (dot_ends: sendmail without -i)
 * to a line that is a lone ".". At most max octets. The message is set
 * whatever the result (message_free it). */
enum message_read_result message_read(int fd, bool dot_ends, size_t max, struct message *msg_r);

/* The same, fed in pieces of any size (message_read uses it; tests feed
 * it whole and one octet at a time). */
struct message_reader {
	struct message msg;
	size_t line_start; /* where the current line starts */
	bool dot_ends;
	bool ended; /* the lone dot was seen: the rest is ignored */
	size_t max;
};

void message_reader_init(struct message_reader *r, bool dot_ends, size_t max);
enum message_read_result message_reader_feed(struct message_reader *r, const char *buf, size_t len);
/* message_reader_finish - hand the message over (the reader is empty). */
void message_reader_finish(struct message_reader *r, struct message *msg_r);

void message_free(struct message *msg);

/* message_header_end - the offset where the header ends: just past the
 * empty line that ends it, or 0 when the message has no header at all (its
 * first line is not a field). A header that runs to the end of the message
 * ends at msg->len. */
size_t message_header_end(const struct message *msg);

/* message_has_field - is there a field with this name (any case)? */
bool message_has_field(const struct message *msg, const char *name);

/* message_field_addrs - append the addresses of every field called name to
 * list. Returns the number appended. */
size_t message_field_addrs(const struct message *msg, const char *name, struct addr_list *list);

/* message_remove_field - delete every field called name, with its
 * continuation lines. Returns how many were removed. */
size_t message_remove_field(struct message *msg, const char *name);

/* message_prepend - insert text (whole header lines) at the start; when
 * the message has no header, an empty line follows it. */
void message_prepend(struct message *msg, const char *text);

/* message_is_8bit - any octet above 0x7f? */
bool message_is_8bit(const struct message *msg);

/* message_parse_addrs - the addresses in an RFC 5322 address-list (a
 * field's value, unfolded or not), appended to list: "A <a@x>, b@y (B),
 * group: c@z;" gives a@x, b@y, c@z. Routes ("<@r:a@x>") are dropped.
 * Returns the number appended. */
size_t message_parse_addrs(const char *value, size_t len, struct addr_list *list);

void addr_list_add(struct addr_list *list, const char *addr, size_t len);
void addr_list_free(struct addr_list *list);

#endif
