/* SPDX-License-Identifier: ISC */
/* test_smtp_addr.c - unit tests for smtp_addr.c: paths, mailboxes, UTF-8 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/limits.h"
#include "smtp/smtp_addr.h"

#define S(lit) lit, sizeof(lit) - 1

#define NUL_OK SMTP_ADDR_ALLOW_NULL
#define UTF8   SMTP_ADDR_ALLOW_UTF8
#define PM     SMTP_ADDR_ALLOW_POSTMASTER
#define ALL    (NUL_OK | UTF8 | PM)

/* Properties expected of a parsed address. */
#define P_NULL    0x01
#define P_PM      0x02
#define P_QUOTED  0x04
#define P_LITERAL 0x08
#define P_UTF8    0x10
#define P_GENERAL 0x20 /* a general address literal */

struct path_case {
	const char *in;
	size_t len;
	unsigned flags;
	enum smtp_addr_result result;
	const char *mailbox; /* on OK */
	size_t consumed;     /* on OK */
	size_t local_len;    /* on OK */
	unsigned props;      /* on OK */
};

static const struct path_case path_cases[] = {
    /* ordinary mailboxes */
    {S("<user@example.org>"), 0, SMTP_ADDR_OK, "user@example.org", 18, 4, 0},
    {S(" <user@example.org>"), 0, SMTP_ADDR_OK, "user@example.org", 19, 4, 0},
    {S("<user@example.org> SIZE=10"), 0, SMTP_ADDR_OK, "user@example.org", 18, 4, 0},
    {S("<a@b>>"), 0, SMTP_ADDR_OK, "a@b", 5, 1, 0}, /* the rest is not ours */
    {S("<a@b>"), 0, SMTP_ADDR_OK, "a@b", 5, 1, 0},
    {S("<First.Last@Sub.Example.ORG>"), 0, SMTP_ADDR_OK, "First.Last@Sub.Example.ORG", 28, 10, 0},
    {S("<user+tag@example.org>"), 0, SMTP_ADDR_OK, "user+tag@example.org", 22, 8, 0},
    {S("<x@localhost>"), 0, SMTP_ADDR_OK, "x@localhost", 13, 1, 0},
    {S("<a!b@c.d>"), 0, SMTP_ADDR_OK, "a!b@c.d", 9, 3, 0},
    {S("<a%b@c>"), 0, SMTP_ADDR_OK, "a%b@c", 7, 3, 0},
    {S("<!#$%&'*+-/=?^_`{|}~@x.y>"), 0, SMTP_ADDR_OK, "!#$%&'*+-/=?^_`{|}~@x.y", 25, 19, 0},
    {S("<a@a-b.c>"), 0, SMTP_ADDR_OK, "a@a-b.c", 9, 1, 0},
    {S("<a@a--b.c>"), 0, SMTP_ADDR_OK, "a@a--b.c", 10, 1, 0},
    {S("<a@xn--bcher-kva.example>"), 0, SMTP_ADDR_OK, "a@xn--bcher-kva.example", 25, 1, 0},
    {S("<a@1.2.3.4>"), 0, SMTP_ADDR_OK, "a@1.2.3.4", 11, 1, 0}, /* digits are LDH */
    {S("<a@3com.com>"), 0, SMTP_ADDR_OK, "a@3com.com", 12, 1, 0},
    /* quoted local parts */
    {S("<\"a b\"@x.y>"), 0, SMTP_ADDR_OK, "\"a b\"@x.y", 11, 5, P_QUOTED},
    {S("<\"a\\\"b\"@x.y>"), 0, SMTP_ADDR_OK, "\"a\\\"b\"@x.y", 12, 6, P_QUOTED},
    {S("<\"a\\\\b\"@x.y>"), 0, SMTP_ADDR_OK, "\"a\\\\b\"@x.y", 12, 6, P_QUOTED},
    {S("<\"a\\ b\"@x.y>"), 0, SMTP_ADDR_OK, "\"a\\ b\"@x.y", 12, 6, P_QUOTED},
    {S("<\"\"@x.y>"), 0, SMTP_ADDR_OK, "\"\"@x.y", 8, 2, P_QUOTED},
    {S("<\"a>b\"@x.y>"), 0, SMTP_ADDR_OK, "\"a>b\"@x.y", 11, 5, P_QUOTED},
    {S("<\"a@b\"@x.y>"), 0, SMTP_ADDR_OK, "\"a@b\"@x.y", 11, 5, P_QUOTED},
    {S("<\"a.\"@x.y>"), 0, SMTP_ADDR_OK, "\"a.\"@x.y", 10, 4, P_QUOTED},
    {S("<\"~ !#\"@x.y>"), 0, SMTP_ADDR_OK, "\"~ !#\"@x.y", 12, 6, P_QUOTED},
    /* address literals (RFC 5321 4.1.3) */
    {S("<a@[1.2.3.4]>"), 0, SMTP_ADDR_OK, "a@[1.2.3.4]", 13, 1, P_LITERAL},
    {S("<a@[255.255.255.255]>"), 0, SMTP_ADDR_OK, "a@[255.255.255.255]", 21, 1, P_LITERAL},
    {S("<a@[0.0.0.0]>"), 0, SMTP_ADDR_OK, "a@[0.0.0.0]", 13, 1, P_LITERAL},
    {S("<a@[IPv6:::1]>"), 0, SMTP_ADDR_OK, "a@[IPv6:::1]", 14, 1, P_LITERAL},
    {S("<a@[ipv6:2001:db8::1]>"), 0, SMTP_ADDR_OK, "a@[ipv6:2001:db8::1]", 22, 1, P_LITERAL},
    {S("<a@[IPv6:::ffff:1.2.3.4]>"), 0, SMTP_ADDR_OK, "a@[IPv6:::ffff:1.2.3.4]", 25, 1, P_LITERAL},
    {S("<a@[IPv6:2001:0db8:0000:0000:0000:ff00:0042:8329]>"), 0, SMTP_ADDR_OK,
     "a@[IPv6:2001:0db8:0000:0000:0000:ff00:0042:8329]", 50, 1, P_LITERAL},
    {S("<a@[x-tag:stuff]>"), 0, SMTP_ADDR_OK, "a@[x-tag:stuff]", 17, 1, P_LITERAL | P_GENERAL},
    {S("<a@[tag:a:b>c]>"), 0, SMTP_ADDR_OK, "a@[tag:a:b>c]", 15, 1, P_LITERAL | P_GENERAL},
    {S("<a@[1tag:!~]>"), 0, SMTP_ADDR_OK, "a@[1tag:!~]", 13, 1, P_LITERAL | P_GENERAL},
    {S("<\"q\"@[1.2.3.4]>"), 0, SMTP_ADDR_OK, "\"q\"@[1.2.3.4]", 15, 3, P_QUOTED | P_LITERAL},
    /* null path and Postmaster */
    {S("<>"), NUL_OK, SMTP_ADDR_OK, "", 2, 0, P_NULL},
    {S(" <>"), NUL_OK, SMTP_ADDR_OK, "", 3, 0, P_NULL},
    {S("<> SIZE=1"), NUL_OK, SMTP_ADDR_OK, "", 2, 0, P_NULL},
    {S("<>"), UTF8 | PM, SMTP_ADDR_NULL, NULL, 0, 0, 0},
    {S("<Postmaster>"), PM, SMTP_ADDR_OK, "Postmaster", 12, 10, P_PM},
    {S("<POSTMASTER>"), PM, SMTP_ADDR_OK, "POSTMASTER", 12, 10, P_PM},
    {S(" <postmaster> NOTIFY=NEVER"), PM, SMTP_ADDR_OK, "postmaster", 13, 10, P_PM},
    {S("<Postmaster>"), NUL_OK | UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<postmaster@example.org>"), PM, SMTP_ADDR_OK, "postmaster@example.org", 24, 10, 0},
    {S("<postmaster@example.org>"), 0, SMTP_ADDR_OK, "postmaster@example.org", 24, 10, 0},
    {S("<postmasterx>"), PM, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<postmaste>"), PM, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<postmaster"), PM, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"postmaster\">"), PM, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* source routes (RFC 5321 4.1.2, Appendix C) */
    {S("<@a,@b:u@c>"), ALL, SMTP_ADDR_SOURCE_ROUTE, NULL, 0, 0, 0},
    {S("<@a.example:u@c.example>"), 0, SMTP_ADDR_SOURCE_ROUTE, NULL, 0, 0, 0},
    {S(" <@a,@b,@c:u@d>"), 0, SMTP_ADDR_SOURCE_ROUTE, NULL, 0, 0, 0},
    {S("<@a,b:u@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<@a,@b u@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<@a:u@c"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<@a:>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<@:u@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<@>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<@a,@b:>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* structure */
    {S(""), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S(" "), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("  <a@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("\t<a@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("a@b"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b >"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("< a@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<<a@b>>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("< >"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<ab>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b,c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b;c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* local part */
    {S("<.a@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a.@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a..b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<.@b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\tb@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\x01"
       "b@c>"),
     ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\x7f"
       "b@c>"),
     ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\0b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\r\nb@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a(b)@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a,b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a:b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a[b]@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\\b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"unterminated@x>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\"b@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\"b\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\".\"b\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\x01\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\0\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\r\n\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\\\x01\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\\\x7f\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\\\r\"@c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\\"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"a\\\""), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* domain */
    {S("<a@b.>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@.b>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@.>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b..c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@-b.c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b-.c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b.c->"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b.-c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@->"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b_c.d>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b\0>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b!c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b%c>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@\"b\">"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* literals */
    {S("<a@[1.2.3]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4.5]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[256.1.1.1]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.256]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.999]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.1234]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[01.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.00]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[ 1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4 ]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[x1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4x]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1..3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[.1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4.]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[-1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4]x>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[1.2.3.4]]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[[1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@x[1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6:1.2.3.4]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6:zz::1]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6:]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6::::]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6:1:2:3:4:5:6:7:8:9]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6:::1%eth0]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6: ::1]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0,
     0, 0},
    {S("<a@[::1]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag-:x]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[t_g:x]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[:x]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag:]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag:a\\b]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag:a b]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag:a[b]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag:a\x7f]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@[tag:\xc3\xbc]>"), ALL, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* UTF-8 (RFC 6531 3.3) */
    {S("<\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.\xce\xb4\xce\xbf>"), UTF8, SMTP_ADDR_OK,
     "\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.\xce\xb4\xce\xbf", 18, 6, P_UTF8},
    {S("<\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.\xce\xb4\xce\xbf>"), NUL_OK | PM,
     SMTP_ADDR_NEEDS_UTF8, NULL, 0, 0, 0},
    {S("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>"), UTF8,
     SMTP_ADDR_OK, "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", 22,
     6, P_UTF8},
    {S("<user@b\xc3\xbc\x63her.example>"), UTF8, SMTP_ADDR_OK, "user@b\xc3\xbc\x63her.example", 22,
     4, P_UTF8},
    {S("<user@b\xc3\xbc\x63her.example>"), 0, SMTP_ADDR_NEEDS_UTF8, NULL, 0, 0, 0},
    {S("<\xc3\xbcser@example.org>"), 0, SMTP_ADDR_NEEDS_UTF8, NULL, 0, 0, 0},
    {S("<\"\xc3\xbc\"@x.y>"), UTF8, SMTP_ADDR_OK, "\"\xc3\xbc\"@x.y", 10, 4, P_UTF8 | P_QUOTED},
    {S("<\"\xc3\xbc\"@x.y>"), 0, SMTP_ADDR_NEEDS_UTF8, NULL, 0, 0, 0},
    {S("<a\xf0\x9f\x98\x80@x.y>"), UTF8, SMTP_ADDR_OK, "a\xf0\x9f\x98\x80@x.y", 11, 5, P_UTF8},
    {S("<a@x-\xc3\xbc-y.z>"), UTF8, SMTP_ADDR_OK, "a@x-\xc3\xbc-y.z", 12, 1, P_UTF8},
    {S("<a@-\xc3\xbc.z>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* malformed UTF-8 is a syntax error, with or without the flag */
    {S("<a\xc3@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\xc3@b>"), 0, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\xc0\xaf@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\xe0\x80\xaf@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\xed\xa0\x80@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\xf4\x90\x80\x80@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\x80@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a\xff@b>"), 0, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b\xff>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b\xc3>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<a@b\xc3.c>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"\xc3\"@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\"\\\xc3\xbc\"@b>"), UTF8, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    /* a syntax error wins over the need for SMTPUTF8 */
    {S("<\xc3\xbc@@b>"), 0, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
    {S("<\xc3\xbc@b.>"), 0, SMTP_ADDR_SYNTAX, NULL, 0, 0, 0},
};

/* check_path - one row; prints every mismatch and returns how many. */
static int check_path(const struct path_case *c, size_t i)
{
	struct smtp_addr a;
	char *in = malloc(c->len ? c->len : 1); /* exact size for ASan */
	size_t consumed = 12345;
	int bad = 0;
	memcpy(in, c->in, c->len);
	memset(&a, 0x5a, sizeof(a));
	enum smtp_addr_result r = smtp_addr_parse_path(in, c->len, c->flags, &a, &consumed);
	if (r != c->result) {
		print_error("path case %zu \"%.*s\": result %d, want %d\n", i, (int)c->len, c->in,
		            r, c->result);
		bad++;
	} else if (r == SMTP_ADDR_OK) {
		unsigned props = (a.is_null ? P_NULL : 0) | (a.is_postmaster ? P_PM : 0) |
		                 (a.is_quoted ? P_QUOTED : 0) | (a.is_literal ? P_LITERAL : 0) |
		                 (a.has_utf8 ? P_UTF8 : 0) | (a.is_general_literal ? P_GENERAL : 0);
		if (strcmp(a.mailbox, c->mailbox) != 0 || a.len != strlen(c->mailbox) ||
		    consumed != c->consumed || a.local_len != c->local_len || props != c->props ||
		    in[consumed - 1] != '>') {
			print_error("path case %zu \"%.*s\": mailbox \"%s\" len %zu consumed %zu "
			            "local_len %zu props %#x\n",
			            i, (int)c->len, c->in, a.mailbox, a.len, consumed, a.local_len,
			            props);
			bad++;
		}
	}
	free(in);
	return bad;
}

static void test_path_table(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++)
		bad += check_path(&path_cases[i], i);
	assert_int_equal(bad, 0);
}

/*
 * The byte-at-a-time discipline for a parser that is not incremental: every
 * prefix of every input is parsed from an exact-size buffer (so ASan sees
 * any read past the end), a prefix may only succeed if it already contains
 * the whole path, and a prefix holding the whole path gives the same answer
 * as the whole input.
 */
static void test_path_prefixes(void **state)
{
	(void)state;
	struct smtp_addr *a = malloc(sizeof(*a));
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		for (size_t k = 0; k <= c->len; k++) {
			char *in = malloc(k ? k : 1);
			size_t consumed = 0;
			memcpy(in, c->in, k);
			enum smtp_addr_result r =
			    smtp_addr_parse_path(in, k, c->flags, a, &consumed);
			if (c->result == SMTP_ADDR_OK && k >= c->consumed) {
				assert_int_equal(r, SMTP_ADDR_OK);
				assert_int_equal(consumed, c->consumed);
				assert_string_equal(a->mailbox, c->mailbox);
			} else if (c->result == SMTP_ADDR_OK) {
				if (r == SMTP_ADDR_OK)
					fail_msg("case %zu: prefix %zu parsed", i, k);
			}
			if (r == SMTP_ADDR_OK)
				assert_true(consumed <= k);
			free(in);
		}
	}
	free(a);
}

/* parse_n - parse a path of a generated mailbox, returning the result. */
static enum smtp_addr_result parse_n(const char *mailbox, unsigned flags)
{
	struct smtp_addr a;
	size_t consumed;
	size_t n = strlen(mailbox);
	char *in = malloc(n + 2);
	in[0] = '<';
	memcpy(in + 1, mailbox, n);
	in[n + 1] = '>';
	enum smtp_addr_result r = smtp_addr_parse_path(in, n + 2, flags, &a, &consumed);
	if (r == SMTP_ADDR_OK) {
		assert_int_equal(consumed, n + 2);
		assert_string_equal(a.mailbox, mailbox);
		assert_int_equal(a.len, n);
	}
	/* the bare form must agree */
	struct smtp_addr b;
	assert_int_equal(smtp_addr_parse_mailbox(in + 1, n, flags, &b), r);
	free(in);
	return r;
}

/* fill - n copies of c followed by suffix, into buf. */
static char *fill(char *buf, char c, size_t n, const char *suffix)
{
	memset(buf, c, n);
	strcpy(buf + n, suffix);
	return buf;
}

/* make_domain - a valid domain of exactly n octets (labels of 63 at most). */
static void make_domain(char *buf, size_t n)
{
	size_t i = 0, label = 0;
	while (i < n) {
		/* a dot only where it neither ends the name nor follows one */
		if (label == 63 || (label > 0 && n - i > 1 && label == 50)) {
			buf[i++] = '.';
			label = 0;
			continue;
		}
		buf[i++] = 'd';
		label++;
	}
	buf[n] = '\0';
	if (n <= SMTP_DOMAIN_MAX)
		assert_true(smtp_domain_valid(buf, n, false));
	assert_int_equal(strlen(buf), n);
}

/* RFC 5321 4.5.3.1: each limit at the limit and one past it. */
static void test_limits(void **state)
{
	(void)state;
	char buf[1024], dom[600], local[SMTP_LOCALPART_MAX + 1];

	/* local part: 64 octets */
	assert_int_equal(parse_n(fill(buf, 'l', SMTP_LOCALPART_MAX, "@example.org"), 0),
	                 SMTP_ADDR_OK);
	assert_int_equal(parse_n(fill(buf, 'l', SMTP_LOCALPART_MAX + 1, "@example.org"), 0),
	                 SMTP_ADDR_TOO_LONG);
	/* a quoted local part counts as written, quotes included */
	buf[0] = '"';
	memset(buf + 1, 'q', SMTP_LOCALPART_MAX - 2);
	strcpy(buf + SMTP_LOCALPART_MAX - 1, "\"@x.y");
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_OK);
	memset(buf + 1, 'q', SMTP_LOCALPART_MAX - 1);
	strcpy(buf + SMTP_LOCALPART_MAX, "\"@x.y");
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_TOO_LONG);
	/* UTF-8 counts octets: 32 two-octet characters are 64 octets */
	buf[0] = '\0';
	for (int i = 0; i < SMTP_LOCALPART_MAX / 2; i++)
		strcat(buf, "\xc3\xbc");
	strcat(buf, "@x.y");
	assert_int_equal(parse_n(buf, UTF8), SMTP_ADDR_OK);
	buf[0] = '\0';
	strcat(buf, "a");
	for (int i = 0; i < SMTP_LOCALPART_MAX / 2; i++)
		strcat(buf, "\xc3\xbc");
	strcat(buf, "@x.y");
	assert_int_equal(parse_n(buf, UTF8), SMTP_ADDR_TOO_LONG);
	/* too long wins over "needs SMTPUTF8" */
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_TOO_LONG);

	/* the whole mailbox: 256 - 2 for the brackets = 254 octets */
	make_domain(dom, 254 - 1 - SMTP_LOCALPART_MAX);
	snprintf(buf, sizeof(buf), "%s@%s", fill(local, 'l', SMTP_LOCALPART_MAX, ""), dom);
	assert_int_equal(strlen(buf), SMTP_PATH_MAX - 2);
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_OK);
	make_domain(dom, 254 - SMTP_LOCALPART_MAX);
	snprintf(buf, sizeof(buf), "%s@%s", fill(local, 'l', SMTP_LOCALPART_MAX, ""), dom);
	assert_int_equal(strlen(buf), SMTP_PATH_MAX - 1);
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_TOO_LONG);

	/* the domain: 255 octets is a valid name but no room is left for a
	 * local part in 254; 256 is too long on both counts */
	make_domain(dom, 252);
	snprintf(buf, sizeof(buf), "a@%s", dom);
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_OK);
	make_domain(dom, SMTP_DOMAIN_MAX);
	snprintf(buf, sizeof(buf), "a@%s", dom);
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_TOO_LONG);
	assert_true(smtp_domain_valid(dom, SMTP_DOMAIN_MAX, false));
	make_domain(dom, SMTP_DOMAIN_MAX + 1);
	assert_false(smtp_domain_valid(dom, SMTP_DOMAIN_MAX + 1, false));
	snprintf(buf, sizeof(buf), "a@%s", dom);
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_TOO_LONG);
	make_domain(dom, 400);
	snprintf(buf, sizeof(buf), "a@%s", dom);
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_TOO_LONG);

	/* a label: 63 octets, 64 is a syntax error (RFC 1035 2.3.4) */
	snprintf(buf, sizeof(buf), "a@%s", fill(dom, 'd', 63, ".example"));
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_OK);
	snprintf(buf, sizeof(buf), "a@%s", fill(dom, 'd', 64, ".example"));
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_SYNTAX);
	snprintf(buf, sizeof(buf), "a@x.%s", fill(dom, 'd', 63, ""));
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_OK);
	snprintf(buf, sizeof(buf), "a@x.%s", fill(dom, 'd', 64, ""));
	assert_int_equal(parse_n(buf, 0), SMTP_ADDR_SYNTAX);
	/* a U-label counts octets too: 31 two-octet characters and one ASCII */
	strcpy(dom, "d");
	for (int i = 0; i < 31; i++)
		strcat(dom, "\xc3\xbc");
	snprintf(buf, sizeof(buf), "a@%s.x", dom);
	assert_int_equal(parse_n(buf, UTF8), SMTP_ADDR_OK);
	strcat(dom, "\xc3\xbc");
	snprintf(buf, sizeof(buf), "a@%s.x", dom);
	assert_int_equal(parse_n(buf, UTF8), SMTP_ADDR_SYNTAX);

	/* the path buffer holds the longest mailbox with room to spare */
	struct smtp_addr a;
	assert_true(sizeof(a.mailbox) >= SMTP_PATH_MAX - 2 + 1);
}

/* A long input full of junk neither crashes nor succeeds. */
static void test_long_garbage(void **state)
{
	(void)state;
	struct smtp_addr a;
	size_t consumed;
	static char buf[SMTP_AUTHLINE_MAX];
	memset(buf, 'a', sizeof(buf));
	buf[0] = '<';
	assert_int_equal(smtp_addr_parse_path(buf, sizeof(buf), ALL, &a, &consumed),
	                 SMTP_ADDR_SYNTAX);
	buf[5000] = '@';
	buf[sizeof(buf) - 1] = '>';
	assert_int_equal(smtp_addr_parse_path(buf, sizeof(buf), ALL, &a, &consumed),
	                 SMTP_ADDR_SYNTAX); /* a 7000-octet label */
	for (size_t i = 5002; i < sizeof(buf) - 1; i += 10)
		buf[i] = '.';
	assert_int_equal(smtp_addr_parse_path(buf, sizeof(buf), ALL, &a, &consumed),
	                 SMTP_ADDR_TOO_LONG);
	memset(buf + 1, '"', sizeof(buf) - 1);
	assert_int_equal(smtp_addr_parse_path(buf, sizeof(buf), ALL, &a, &consumed),
	                 SMTP_ADDR_SYNTAX);
}

struct mailbox_case {
	const char *in;
	size_t len;
	unsigned flags;
	enum smtp_addr_result result;
	const char *domain; /* on OK */
};

static const struct mailbox_case mailbox_cases[] = {
    {S("user@example.org"), 0, SMTP_ADDR_OK, "example.org"},
    {S("\"a@b\"@example.org"), 0, SMTP_ADDR_OK, "example.org"},
    {S("a@[1.2.3.4]"), 0, SMTP_ADDR_OK, "[1.2.3.4]"},
    {S("a@[IPv6:::1]"), 0, SMTP_ADDR_OK, "[IPv6:::1]"},
    {S("\xc3\xbc@\xc3\xbc.x"), UTF8, SMTP_ADDR_OK, "\xc3\xbc.x"},
    {S("\xc3\xbc@\xc3\xbc.x"), 0, SMTP_ADDR_NEEDS_UTF8, NULL},
    {S(""), NUL_OK, SMTP_ADDR_OK, ""},
    {S(""), UTF8 | PM, SMTP_ADDR_NULL, NULL},
    {S("Postmaster"), PM, SMTP_ADDR_OK, ""},
    {S("postMaster"), PM, SMTP_ADDR_OK, ""},
    {S("Postmaster"), NUL_OK, SMTP_ADDR_SYNTAX, NULL},
    {S("<user@example.org>"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("user@example.org "), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S(" user@example.org"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("user@example.org>"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("user@example.org\0"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("user"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("@example.org"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("@a:user@example.org"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("user@"), ALL, SMTP_ADDR_SYNTAX, NULL},
    {S("<>"), ALL, SMTP_ADDR_SYNTAX, NULL},
};

static void test_mailbox_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mailbox_cases) / sizeof(mailbox_cases[0]); i++) {
		const struct mailbox_case *c = &mailbox_cases[i];
		struct smtp_addr a;
		char *in = malloc(c->len ? c->len : 1);
		memcpy(in, c->in, c->len);
		enum smtp_addr_result r = smtp_addr_parse_mailbox(in, c->len, c->flags, &a);
		if (r != c->result)
			fail_msg("mailbox case %zu: result %d, want %d", i, r, c->result);
		if (r == SMTP_ADDR_OK) {
			assert_string_equal(smtp_addr_domain(&a), c->domain);
			assert_int_equal(a.len, c->len);
			assert_memory_equal(a.mailbox, c->in, c->len);
		}
		/* every prefix is parsed without reading past it */
		for (size_t k = 0; k < c->len; k++)
			(void)smtp_addr_parse_mailbox(in, k, c->flags, &a);
		free(in);
	}
}

static void test_domain_accessor(void **state)
{
	(void)state;
	struct smtp_addr a;
	size_t consumed;
	assert_int_equal(smtp_addr_parse_path(S("<\"x@y\"@example.org>"), 0, &a, &consumed),
	                 SMTP_ADDR_OK);
	assert_string_equal(smtp_addr_domain(&a), "example.org");
	assert_int_equal(a.local_len, 5);
	assert_int_equal(smtp_addr_parse_path(S("<>"), NUL_OK, &a, &consumed), SMTP_ADDR_OK);
	assert_string_equal(smtp_addr_domain(&a), "");
	assert_string_equal(a.mailbox, "");
	assert_true(a.is_null);
	assert_int_equal(smtp_addr_parse_path(S("<postmaster>"), PM, &a, &consumed), SMTP_ADDR_OK);
	assert_string_equal(smtp_addr_domain(&a), "");
	assert_int_equal(smtp_addr_parse_path(S("<a@[x:y]>"), 0, &a, &consumed), SMTP_ADDR_OK);
	assert_string_equal(smtp_addr_domain(&a), "[x:y]");
	/* a failed parse leaves an empty, harmless result */
	assert_int_equal(smtp_addr_parse_path(S("<a@b.>"), ALL, &a, &consumed), SMTP_ADDR_SYNTAX);
	assert_string_equal(a.mailbox, "");
	assert_int_equal(consumed, 0);
	assert_string_equal(smtp_addr_domain(&a), "");
}

struct domain_case {
	const char *in;
	size_t len;
	bool utf8;
	bool valid;
};

static const struct domain_case domain_cases[] = {
    {S("example.org"), false, true},
    {S("a"), false, true},
    {S("A-1.b2"), false, true},
    {S("1.2.3.4"), false, true},
    {S("xn--bcher-kva.example"), false, true},
    {S(""), false, false},
    {S("."), false, false},
    {S("example.org."), false, false},
    {S(".example.org"), false, false},
    {S("a..b"), false, false},
    {S("-a.b"), false, false},
    {S("a-.b"), false, false},
    {S("a_b.c"), false, false},
    {S("a b"), false, false},
    {S("a\0b"), false, false},
    {S("[1.2.3.4]"), false, false}, /* literals are not domain names */
    {S("b\xc3\xbc\x63her.example"), true, true},
    {S("b\xc3\xbc\x63her.example"), false, false},
    {S("b\xc3\x63her.example"), true, false},
    {S("\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a"), true, true},
    {S("\xed\xa0\x80.x"), true, false},
};

static void test_domain_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]); i++) {
		const struct domain_case *c = &domain_cases[i];
		char *in = malloc(c->len ? c->len : 1);
		memcpy(in, c->in, c->len);
		if (smtp_domain_valid(in, c->len, c->utf8) != c->valid)
			fail_msg("domain case %zu \"%.*s\": want %d", i, (int)c->len, c->in,
			         c->valid);
		free(in);
	}
}

struct utf8_case {
	const char *in;
	size_t len;
	bool valid;
};

static const struct utf8_case utf8_cases[] = {
    {S(""), true},
    {S("plain ascii"), true},
    {S("a\0b"), true},
    {S("\xc2\x80"), true},
    {S("\xdf\xbf"), true},
    {S("\xe0\xa0\x80"), true},
    {S("\xe2\x82\xac"), true},
    {S("\xed\x9f\xbf"), true},
    {S("\xee\x80\x80"), true},
    {S("\xef\xbf\xbf"), true},
    {S("\xf0\x90\x80\x80"), true},
    {S("\xf4\x8f\xbf\xbf"), true},
    {S("\xc0\x80"), false},         /* overlong NUL */
    {S("\xc1\xbf"), false},         /* overlong */
    {S("\xe0\x9f\xbf"), false},     /* overlong */
    {S("\xf0\x8f\xbf\xbf"), false}, /* overlong */
    {S("\xed\xa0\x80"), false},     /* U+D800 */
    {S("\xed\xbf\xbf"), false},     /* U+DFFF */
    {S("\xf4\x90\x80\x80"), false}, /* U+110000 */
    {S("\xf5\x80\x80\x80"), false},
    {S("\xf8\x88\x80\x80\x80"), false},
    {S("\xfe"), false},
    {S("\xff"), false},
    {S("\x80"), false},
    {S("\xbf"), false},
    {S("\xc3"), false},
    {S("\xe2\x82"), false},
    {S("\xf0\x9f\x98"), false},
    {S("\xe2\x28\xa1"), false},
    {S("\xc3\x28"), false},
    {S("a\xc3\xbc\xc3"), false},
};

static void test_utf8_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		const struct utf8_case *c = &utf8_cases[i];
		char *in = malloc(c->len ? c->len : 1);
		memcpy(in, c->in, c->len);
		if (smtp_utf8_valid(in, c->len) != c->valid)
			fail_msg("utf8 case %zu: want %d", i, c->valid);
		free(in);
	}
}

/* encode - UTF-8 encoding of cp in n octets (n may be too many: overlong). */
static size_t encode(uint32_t cp, size_t n, unsigned char *out)
{
	static const unsigned char lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
	if (n == 1) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	for (size_t i = n - 1; i > 0; i--) {
		out[i] = (unsigned char)(0x80 | (cp & 0x3f));
		cp >>= 6;
	}
	out[0] = (unsigned char)(lead[n] | cp);
	return n;
}

/* Every code point: its shortest encoding is valid unless it is a
 * surrogate; every longer encoding is an overlong and invalid; every
 * truncation of a multi-octet encoding is invalid. */
static void test_utf8_exhaustive(void **state)
{
	(void)state;
	unsigned char buf[8];
	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
		size_t n = encode(cp, shortest, buf);
		if (smtp_utf8_valid((char *)buf, n) == surrogate)
			fail_msg("U+%04X", (unsigned)cp);
		for (size_t k = 1; k < n; k++)
			if (smtp_utf8_valid((char *)buf, k))
				fail_msg("U+%04X truncated to %zu", (unsigned)cp, k);
		for (size_t longer = shortest + 1; longer <= 4; longer++) {
			if (longer == 1)
				continue;
			n = encode(cp, longer, buf);
			if (smtp_utf8_valid((char *)buf, n))
				fail_msg("U+%04X overlong in %zu", (unsigned)cp, longer);
		}
	}
	/* above U+10FFFF, as four octets */
	for (uint32_t cp = 0x110000; cp < 0x200000; cp += 0x1001) {
		size_t n = encode(cp, 4, buf);
		assert_false(smtp_utf8_valid((char *)buf, n));
	}
	/* every pair of octets */
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++) {
			char two[2] = {(char)a, (char)b};
			bool want = (a < 0x80 && b < 0x80) ||
			            (a >= 0xc2 && a <= 0xdf && b >= 0x80 && b <= 0xbf);
			if (smtp_utf8_valid(two, 2) != want)
				fail_msg("%02x %02x", a, b);
		}
}

/* An address literal is read to its closing bracket, every octet: a NUL
 * (which inet_pton would stop at) makes it invalid, whatever follows
 * (found by fuzz/fuzz_smtp_addr.c). */
static void test_ipv6_literal_with_nul(void **state)
{
	(void)state;
	static const char bad[][24] = {"<u@[IPv6:::\0]>", "<u@[IPv6:::\0x\r\nY]>",
	                               "<u@[IPv6:::1\0]>"};
	static const size_t lens[] = {15, 19, 16};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct smtp_addr a;
		size_t used;
		assert_int_equal(smtp_addr_parse_path(bad[i], lens[i], 0, &a, &used),
		                 SMTP_ADDR_SYNTAX);
		assert_int_equal(smtp_addr_parse_mailbox(bad[i] + 1, lens[i] - 2, 0, &a),
		                 SMTP_ADDR_SYNTAX);
	}
	struct smtp_addr a;
	size_t used;
	assert_int_equal(smtp_addr_parse_path("<u@[IPv6:::1]>", 14, 0, &a, &used), SMTP_ADDR_OK);
	assert_int_equal(a.len, strlen(a.mailbox));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv6_literal_with_nul),
	    cmocka_unit_test(test_path_table),
	    cmocka_unit_test(test_path_prefixes),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_long_garbage),
	    cmocka_unit_test(test_mailbox_table),
	    cmocka_unit_test(test_domain_accessor),
	    cmocka_unit_test(test_domain_valid),
	    cmocka_unit_test(test_utf8_table),
	    cmocka_unit_test(test_utf8_exhaustive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
