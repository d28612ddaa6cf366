/* SPDX-License-Identifier: ISC */
/* received.c - see received.h */
#include "server/received.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *received_protocol(const struct received_info *ri)
{
	/* RFC 3848 2, RFC 6531 3.7.3: S = TLS, A = authenticated. */
	static const char *const esmtp[] = {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"};
	static const char *const utf8[] = {"UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"};
	int i = (ri->tls != NULL ? 1 : 0) + (ri->authenticated ? 2 : 0);
	if (!ri->esmtp)
		return "SMTP";
	return ri->smtputf8 ? utf8[i] : esmtp[i];
}

size_t received_format(const struct received_info *ri, char *out, size_t size)
{
	char date[64];
	char addr[80];
	struct tm tm;
	gmtime_r(&ri->when, &tm);
	/* RFC 5322 3.3 date-time; always UTC, so the zone is +0000. */
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 5321 4.1.3: IPv6 address literals carry the "IPv6:" tag. */
	if (strchr(ri->client_addr, ':') != NULL)
		snprintf(addr, sizeof(addr), "IPv6:%s", ri->client_addr);
	else
		snprintf(addr, sizeof(addr), "%s", ri->client_addr);

	char tls[160] = "";
	if (ri->tls != NULL)
		snprintf(tls, sizeof(tls), "\r\n\t(using %s)", ri->tls);
	char auth[300] = "";
	if (ri->account != NULL)
		snprintf(auth, sizeof(auth), "\r\n\t(authenticated as %s)", ri->account);
	char rcpt[300] = "";
	if (ri->for_rcpt != NULL)
		snprintf(rcpt, sizeof(rcpt), "\r\n\tfor <%s>", ri->for_rcpt);

	int n = snprintf(
	    out, size,
	    "Received: from %s ([%s])\r\n\tby %s (detour) with %s id %s%s%s%s;\r\n\t%s\r\n",
	    ri->helo, addr, ri->hostname, received_protocol(ri), ri->qid, tls, auth, rcpt, date);
	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

void received_counter_init(struct received_counter *rc)
{
	rc->count = 0;
	rc->pos = 0;
	rc->at_line_start = true;
	rc->prev_cr = false;
	rc->done = false;
}

void received_counter_feed(struct received_counter *rc, const char *p, size_t len)
{
	static const char name[] = "received:";
	const size_t name_len = sizeof(name) - 1;

	for (size_t i = 0; i < len && !rc->done; i++) {
		char c = p[i];
		if (c == '\n') {
			/* An empty line ends the header section. */
			if (rc->at_line_start)
				rc->done = true;
			rc->at_line_start = true;
			rc->pos = 0;
			rc->prev_cr = false;
			continue;
		}
		if (c == '\r') {
			rc->prev_cr = true;
			continue;
		}
		rc->prev_cr = false;
		if (rc->at_line_start) {
			rc->at_line_start = false;
			rc->pos = 0;
		}
		if (rc->pos == SIZE_MAX)
			continue;
		char lc = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		if (lc == name[rc->pos]) {
			if (++rc->pos == name_len) {
				rc->count++;
				rc->pos = SIZE_MAX;
			}
		} else {
			rc->pos = SIZE_MAX;
		}
	}
}
