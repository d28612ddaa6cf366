"""Standards-strict input: every bad input gets its own reply code, never
corrupts or splits a message, and never slows another client down.

Each case runs on its own connection while a bystander (a second client,
smtplib) completes a whole transaction before the bad client reads its
reply. After the reply the case checks the session's state: still in step
(the next NOOP gets exactly the next reply), or closed.
"""

import pytest

from helpers import SMTPClient, assert_stored_exactly, bystander, make_body

MAX_SIZE = 64 * 1024
MAX_RCPTS = 5


@pytest.fixture(scope="module")
def strict(module_relays):
    return module_relays.new(name="strict", limits={"max_message_size": "64K", "max_recipients": str(MAX_RCPTS)})


def _local(n):
    return "l" * n


def _domain(n):
    """A valid domain name of exactly n octets (labels of at most 63)."""
    labels, left = [], n
    while left > 0:
        take = min(63, left)
        if left - take == 1:      # never leave a lone dot
            take -= 1
        labels.append("d" * take)
        left -= take + 1
    d = ".".join(labels)
    assert len(d) == n, (len(d), n)
    return d


def _mailbox(total):
    return _local(64) + "@" + _domain(total - 65)


UTF8_SENDER = "us\u00e9r\u7528@\u4f8b\u3048.example"

# (id, greeting, setup commands (2xx/3xx expected), bad input, expected code,
#  expected enhanced code, what happens after: "open" or "closed")
S = "{S}"  # replaced by a sender unique to the case
COMMAND_CASES = [
    # command line length: 512 octets including CRLF is the limit
    ("line-512-octets-ok", "EHLO", [], b"NOOP " + b"x" * 505 + b"\r\n", 250, "2.0.0", "open"),
    ("line-513-octets", "EHLO", [], b"NOOP " + b"x" * 506 + b"\r\n", 500, "5.5.2", "open"),
    ("line-4000-octets", "EHLO", [], b"NOOP " + b"x" * 4000 + b"\r\n", 500, "5.5.2", "open"),
    # MAIL may be 1178 octets with CRLF (its extensions' parameters, RFC 5321
    # 4.5.3.1.4; SMTP_MAIL_LINE_MAX): one more is a line too long
    ("mail-line-1179-octets", "EHLO", [], b"MAIL FROM:<" + b"a" * 1153 + b"@example.org>\r\n", 500, "5.5.2", "open"),
    # line endings and NUL in commands
    ("bare-lf-command", "EHLO", [], b"NOOP\n", 500, "5.5.2", "open"),
    ("bare-lf-in-mail", "EHLO", [], b"MAIL FROM:<{S}>\n", 500, "5.5.2", "open"),
    ("bare-cr-command", "EHLO", [], b"NO\rOP\r\n", 500, "5.5.2", "open"),
    ("cr-cr-lf-command", "EHLO", [], b"NOOP\r\r\n", 500, "5.5.2", "open"),
    ("nul-command", "EHLO", [], b"NO\x00OP\r\n", 500, "5.5.2", "open"),
    ("nul-in-address", "EHLO", [], b"MAIL FROM:<a\x00b@example.org>\r\n", 500, "5.5.2", "open"),
    # sequence (RFC 5321 4.1.4)
    ("mail-before-ehlo", None, [], b"MAIL FROM:<{S}>\r\n", 503, "5.5.1", "open"),
    ("rcpt-before-mail", "EHLO", [], b"RCPT TO:<r@example.net>\r\n", 503, "5.5.1", "open"),
    ("data-before-mail", "EHLO", [], b"DATA\r\n", 503, "5.5.1", "open"),
    ("data-before-rcpt", "EHLO", ["MAIL FROM:<{S}>"], b"DATA\r\n", 503, "5.5.1", "open"),
    ("nested-mail", "EHLO", ["MAIL FROM:<{S}>"], b"MAIL FROM:<other@example.org>\r\n", 503, "5.5.1", "open"),
    ("data-with-argument", "EHLO", ["MAIL FROM:<{S}>", "RCPT TO:<r@example.net>"], b"DATA now\r\n", 501, "5.5.4", "open"),
    ("rset-with-argument", "EHLO", [], b"RSET please\r\n", 501, "5.5.4", "open"),
    ("ehlo-without-name", None, [], b"EHLO\r\n", 501, "5.5.4", "open"),
    # address syntax (RFC 5321 4.1.2; RFC 3463 X.1.7 sender, X.1.3 recipient)
    ("mail-space-in-address", "EHLO", [], b"MAIL FROM:<a b@example.org>\r\n", 501, "5.1.7", "open"),
    ("mail-without-brackets", "EHLO", [], b"MAIL FROM:a@example.org\r\n", 501, "5.1.7", "open"),
    ("mail-empty-domain", "EHLO", [], b"MAIL FROM:<a@>\r\n", 501, "5.1.7", "open"),
    ("mail-unclosed-bracket", "EHLO", [], b"MAIL FROM:<a@example.org\r\n", 501, "5.1.7", "open"),
    ("mail-bad-domain", "EHLO", [], b"MAIL FROM:<a@exa_mple..org>\r\n", 501, "5.1.7", "open"),
    ("mail-wrong-keyword", "EHLO", [], b"MAIL TO:<a@example.org>\r\n", 501, "5.5.4", "open"),
    ("rcpt-double-at", "EHLO", ["MAIL FROM:<{S}>"], b"RCPT TO:<r@@example.net>\r\n", 501, "5.1.3", "open"),
    ("rcpt-bad-domain", "EHLO", ["MAIL FROM:<{S}>"], b"RCPT TO:<r@-example.net>\r\n", 501, "5.1.3", "open"),
    ("rcpt-null-path", "EHLO", ["MAIL FROM:<{S}>"], b"RCPT TO:<>\r\n", 501, "5.1.3", "open"),
    ("rcpt-wrong-keyword", "EHLO", ["MAIL FROM:<{S}>"], b"RCPT FROM:<r@example.net>\r\n", 501, "5.5.4", "open"),
    ("mail-source-route", "EHLO", [], b"MAIL FROM:<@relay.example:a@example.org>\r\n", 553, "5.1.7", "open"),
    ("rcpt-source-route", "EHLO", ["MAIL FROM:<{S}>"],
     b"RCPT TO:<@a.example,@b.example:r@example.net>\r\n", 553, "5.1.3", "open"),
    # length limits of addresses (RFC 5321 4.5.3.1.1-3)
    ("mail-local-part-64-ok", "EHLO", [], ("MAIL FROM:<%s@example.org>\r\n" % _local(64)).encode(), 250, "2.1.0", "open"),
    ("mail-local-part-65", "EHLO", [], ("MAIL FROM:<%s@example.org>\r\n" % _local(65)).encode(), 501, "5.1.7", "open"),
    ("rcpt-local-part-65", "EHLO", ["MAIL FROM:<{S}>"], ("RCPT TO:<%s@example.net>\r\n" % _local(65)).encode(),
     501, "5.1.3", "open"),
    ("rcpt-path-256-ok", "EHLO", ["MAIL FROM:<{S}>"], ("RCPT TO:<%s>\r\n" % _mailbox(254)).encode(), 250, "2.1.5", "open"),
    ("rcpt-path-257", "EHLO", ["MAIL FROM:<{S}>"], ("RCPT TO:<%s>\r\n" % _mailbox(255)).encode(), 501, "5.1.3", "open"),
    # ESMTP parameters
    ("unknown-mail-parameter", "EHLO", [], b"MAIL FROM:<{S}> FOO=bar\r\n", 555, "5.5.4", "open"),
    ("unknown-rcpt-parameter", "EHLO", ["MAIL FROM:<{S}>"], b"RCPT TO:<r@example.net> FOO=bar\r\n", 555, "5.5.4", "open"),
    ("duplicate-parameter", "EHLO", [], b"MAIL FROM:<{S}> SIZE=10 SIZE=10\r\n", 501, "5.5.4", "open"),
    ("size-not-a-number", "EHLO", [], b"MAIL FROM:<{S}> SIZE=ten\r\n", 501, "5.5.4", "open"),
    ("size-at-limit-ok", "EHLO", [], b"MAIL FROM:<{S}> SIZE=65536\r\n", 250, "2.1.0", "open"),
    ("size-over-limit", "EHLO", [], b"MAIL FROM:<{S}> SIZE=65537\r\n", 552, "5.3.4", "open"),
    ("size-absurd", "EHLO", [], b"MAIL FROM:<{S}> SIZE=99999999999999999999\r\n", 552, "5.3.4", "open"),
    ("body-binarymime", "EHLO", [], b"MAIL FROM:<{S}> BODY=BINARYMIME\r\n", 555, "5.5.4", "open"),
    ("body-unknown", "EHLO", [], b"MAIL FROM:<{S}> BODY=9BIT\r\n", 501, "5.5.4", "open"),
    ("params-after-helo", "HELO", [], b"MAIL FROM:<{S}> SIZE=100\r\n", 555, "5.5.4", "open"),
    ("envid-with-crlf", "EHLO", [], b"MAIL FROM:<{S}> ENVID=abc+0D+0Adef\r\n", 501, "5.5.4", "open"),
    ("envid-with-nul", "EHLO", [], b"MAIL FROM:<{S}> ENVID=abc+00def\r\n", 501, "5.5.4", "open"),
    ("ret-unknown", "EHLO", [], b"MAIL FROM:<{S}> RET=ALL\r\n", 501, "5.5.4", "open"),
    ("notify-never-and-success", "EHLO", ["MAIL FROM:<{S}>"],
     b"RCPT TO:<r@example.net> NOTIFY=NEVER,SUCCESS\r\n", 501, "5.5.4", "open"),
    ("orcpt-without-type", "EHLO", ["MAIL FROM:<{S}>"], b"RCPT TO:<r@example.net> ORCPT=r@example.net\r\n",
     501, "5.5.4", "open"),
    # SMTPUTF8 (RFC 6531 3.4)
    ("utf8-sender-without-smtputf8", "EHLO", [], ("MAIL FROM:<%s>\r\n" % UTF8_SENDER).encode(), 553, "5.6.7", "open"),
    ("utf8-sender-with-smtputf8-ok", "EHLO", [], ("MAIL FROM:<%s> SMTPUTF8\r\n" % UTF8_SENDER).encode(), 250, "2.1.0", "open"),
    ("utf8-rcpt-without-smtputf8", "EHLO", ["MAIL FROM:<{S}>"], "RCPT TO:<j\u00fcrgen@example.net>\r\n".encode(),
     553, "5.6.7", "open"),
    ("invalid-utf8-sender", "EHLO", [], b"MAIL FROM:<a\xff\xfe@example.org> SMTPUTF8\r\n", 501, "5.1.7", "open"),
    # other verbs
    ("unknown-command", "EHLO", [], b"FROBNICATE now\r\n", 500, "5.5.1", "open"),
    ("vrfy", "EHLO", [], b"VRFY postmaster\r\n", 252, "2.5.0", "open"),
    ("vrfy-without-argument", "EHLO", [], b"VRFY\r\n", 501, "5.5.4", "open"),
    ("expn", "EHLO", [], b"EXPN staff\r\n", 502, "5.5.1", "open"),
    ("help", "EHLO", [], b"HELP\r\n", 214, "2.0.0", "open"),
    ("noop-with-text", "EHLO", [], b"NOOP anything at all\r\n", 250, "2.0.0", "open"),
    ("lower-case-verbs", None, [], b"ehlo lower.example\r\n", 250, None, "open"),
    # pipelining where it is not allowed (RFC 2920)
    ("pipelining-after-helo", "HELO", [], b"MAIL FROM:<{S}>\r\nRCPT TO:<r@example.net>\r\n", 554, "5.5.0", "open-after-1"),
    ("commands-after-ehlo-in-one-write", None, [], b"EHLO pipe.example\r\nMAIL FROM:<{S}>\r\n", 554, "5.5.0", "open-after-1"),
    # BDAT (RFC 3030)
    ("bdat-without-size", "EHLO", ["MAIL FROM:<{S}>", "RCPT TO:<r@example.net>"], b"BDAT x\r\n", 501, "5.5.4", "closed"),
    ("bdat-bad-last", "EHLO", ["MAIL FROM:<{S}>", "RCPT TO:<r@example.net>"], b"BDAT 5 FIRST\r\n", 501, "5.5.4", "closed"),
    ("bdat-without-rcpt", "EHLO", ["MAIL FROM:<{S}>"], b"BDAT 5\r\nhello", 503, "5.5.1", "open"),
    ("bdat-without-mail", "EHLO", [], b"BDAT 12 LAST\r\nNOOP\r\nNOOP\r\n", 503, "5.5.1", "open"),
    # not SMTP at all
    ("http-get", None, [], b"GET / HTTP/1.1\r\nHost: relay.test\r\n\r\n", 421, "4.7.0", "closed"),
    ("http-post-after-ehlo", "EHLO", [], b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 421, "4.7.0", "closed"),
]


def _fill(data, sender):
    return data.replace(b"{S}", sender.encode())


@pytest.mark.parametrize("case", COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_bad_command_gets_its_code_while_others_are_served(strict, case):
    name, greeting, setup, bad, code, enh, after = case
    sender = "case-%s@example.org" % name
    before = set(strict.queue_ids())
    with strict.client() as c:
        if greeting:
            r = c.cmd("%s bad.example" % greeting)
            assert r.code == 250, r
        for line in setup:
            r = c.cmd(_fill(line.encode(), sender))
            assert r.code in (250, 354), (line, r)
        c.send(_fill(bad, sender))
        # Another client is served while this one waits for its reply.
        by_qid, _, _ = bystander(strict)
        r = c.reply()
        assert r.code == code and (enh is None or r.enh == enh), \
            "%r: expected %s %s, got %r" % (bad[:80], code, enh, r)
        if after == "closed":
            assert c.closed(15), "the connection stays open after %r" % r
        else:
            if after == "open-after-1":
                # the second command of the refused group gets its own reply
                c.reply()
            # In step: the next command gets the next reply, and nothing more.
            r2 = c.cmd("NOOP")
            assert r2.is_(250, "2.0.0"), "session out of step after %r: %r" % (bad[:80], r2)
            assert c.nothing_pending(0.2), "unexpected extra replies: %r" % c.buf
    new = set(strict.queue_ids()) - before
    assert new == {by_qid}, "only the bystander's message may be queued, got %r" % new


# -- message data -----------------------------------------------------------

SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\n"
            b"RCPT TO:<victim@example.net>\r\n"
            b"DATA\r\n"
            b"From: evil@example.org\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")

# (id, data octets after the 354 including the end, code, enhanced code,
#  the message as stored when accepted)
DATA_CASES = [
    ("bare-lf", b"Subject: x\r\n\r\none\ntwo\r\n.\r\n", 554, "5.6.0", None),
    ("bare-lf-before-end", b"Subject: x\r\n\r\none\n\r\n.\r\n", 554, "5.6.0", None),
    ("bare-cr", b"Subject: x\r\n\r\none\rtwo\r\n.\r\n", 554, "5.6.0", None),
    ("cr-before-crlf", b"Subject: x\r\n\r\none\r\r\n.\r\n", 554, "5.6.0", None),
    ("nul", b"Subject: x\r\n\r\none\x00two\r\n.\r\n", 554, "5.6.0", None),
    ("line-1000-octets-ok", b"x" * 998 + b"\r\n.\r\n", 250, "2.0.0", b"x" * 998 + b"\r\n"),
    ("line-1001-octets", b"x" * 999 + b"\r\n.\r\n", 554, "5.6.0", None),
    # RFC 5321 4.5.3.1.6: 1000 octets "not counting the leading dot
    # duplicated for transparency"
    ("stuffed-line-1000-octets-ok", b".." + b"y" * 997 + b"\r\n.\r\n", 250, "2.0.0", b"." + b"y" * 997 + b"\r\n"),
    ("stuffed-line-1001-octets", b".." + b"y" * 998 + b"\r\n.\r\n", 554, "5.6.0", None),
    ("long-line-then-good-lines", b"z" * 5000 + b"\r\nok\r\n.\r\n", 554, "5.6.0", None),
    # SMTP smuggling: a fake end of data, then commands, then the real end
    ("smuggle-lf-dot-lf", b"Subject: s\r\n\r\nhello\n.\n" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    ("smuggle-lf-dot-crlf", b"Subject: s\r\n\r\nhello\n.\r\n" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    ("smuggle-crlf-dot-lf", b"Subject: s\r\n\r\nhello\r\n.\n" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    ("smuggle-cr-dot-crlf", b"Subject: s\r\n\r\nhello\r.\r\n" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    ("smuggle-crlf-dot-cr", b"Subject: s\r\n\r\nhello\r\n.\r" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    ("smuggle-crlf-dot-crcrlf", b"Subject: s\r\n\r\nhello\r\n.\r\r\n" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    ("smuggle-crlf-dot-nul-crlf", b"Subject: s\r\n\r\nhello\r\n.\x00\r\n" + SMUGGLED + b"\r\n.\r\n", 554, "5.6.0", None),
    # size (RFC 1870): the limit counts the message octets, not our header
    ("size-at-limit-ok", None, 250, "2.0.0", "at-limit"),
    ("size-over-limit", None, 552, "5.3.4", "over-limit"),
]


@pytest.mark.parametrize("case", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_message_data_gets_its_code_and_is_not_queued(strict, case):
    name, data, code, enh, stored = case
    sender = "data-%s@example.org" % name
    if stored in ("at-limit", "over-limit"):
        body = make_body(MAX_SIZE + (stored == "over-limit"), seed=41)
        data = body.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        stored = body if stored == "at-limit" else None
    before = set(strict.queue_ids())
    with strict.client() as c:
        c.ehlo()
        c.envelope(sender, ["r@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(data)
        by_qid, _, _ = bystander(strict)
        r = c.reply()
        assert r.code == code and r.enh == enh, "expected %s %s, got %r" % (code, enh, r)
        # Nothing of the data was taken as a command: the next reply is
        # the NOOP's, and the session can send a good message right after.
        r2 = c.cmd("NOOP")
        assert r2.is_(250, "2.0.0"), "session out of step: %r" % r2
        assert c.nothing_pending(0.2), "unexpected extra replies: %r" % c.buf
        c.envelope(sender, ["after@example.net"])
        after = c.data(b"Subject: after\r\n\r\nclean\r\n")
        assert after.is_(250, "2.0.0"), after
    new = set(strict.queue_ids()) - before - {by_qid}
    if stored is None:
        assert new == {after.qid}, "a refused message was queued: %r" % (new - {after.qid})
    else:
        assert new == {r.qid, after.qid}
        assert_stored_exactly(strict, r.qid, stored)
    assert strict.by_sender("evil@example.org") == [], "a smuggled message was queued"
    assert all(m["recipients"][0]["address"] != "victim@example.net" for m in strict.queue())


def test_data_pipelined_before_354_is_refused_and_not_queued(strict):
    """RFC 2920 3.1: DATA ends a pipeline group; a body sent before the 354
    must not become a message."""
    sender = "early-body@example.org"
    with strict.client() as c:
        c.ehlo()
        c.envelope(sender, ["r@example.net"])
        c.send(b"DATA\r\nSubject: early\r\n\r\nbody sent too early\r\n.\r\n")
        r = c.reply()
        assert r.is_(554, "5.5.0"), r
        # Whatever the rest of the lines get, none of them is a 354 or a 250
        # for a message; after QUIT the session ends.
        c.send(b"QUIT\r\n")
        seen = []
        while True:
            x = c.reply()
            seen.append(x)
            if x.code == 221:
                break
            assert x.code >= 500, "unexpected reply to early body: %r" % seen
        assert c.closed(10)
    assert strict.by_sender(sender) == []


def test_too_many_errors_closes_with_421(strict):
    with strict.client() as c:
        c.ehlo()
        got = []
        # SMTP_ERRORS_MAX (src/lib/limits.h) is 20
        for i in range(20):
            c.send(b"BOGUS%d\r\n" % i)
            got.append(c.reply())
            if got[-1].code == 421:
                break
        assert all(r.is_(500, "5.5.1") for r in got[:19]), got
        # the 20th error is answered, then the session ends with 421 4.7.0
        if got[-1].code != 421:
            got.append(c.reply(timeout=15))
        assert got[-1].is_(421, "4.7.0"), got
        assert c.closed(15), "still open after 421"
    bystander(strict)


def test_ehlo_lists_the_extensions(strict):
    with strict.client() as c:
        r = c.cmd("EHLO client.example")
        assert r.code == 250
        assert r.texts[0].startswith("relay.test"), r
        keywords = [t.split()[0].upper() for t in r.texts[1:]]
        for k in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"):
            assert k in keywords, "%s missing from %r" % (k, r.texts)
        size = [t for t in r.texts if t.upper().startswith("SIZE")][0]
        assert size.split()[1] == str(MAX_SIZE), size
        assert c.banner.code == 220 and "relay.test" in c.banner.text


def test_helo_lists_no_extensions(strict):
    with strict.client() as c:
        r = c.cmd("HELO client.example")
        assert r.code == 250 and len(r.lines) == 1, r


def test_max_recipients_accepts_n_and_refuses_one_more(strict):
    sender = "many-rcpts@example.org"
    rcpts = ["r%d@example.net" % i for i in range(MAX_RCPTS)]
    with strict.client() as c:
        c.ehlo()
        c.envelope(sender, rcpts)
        r = c.cmd("RCPT TO:<one-too-many@example.net>")
        assert r.is_(452, "4.5.3"), r
        r = c.data(b"Subject: many\r\n\r\nhello all\r\n")
        assert r.is_(250, "2.0.0"), r
    assert [x["address"] for x in strict.show(r.qid)["recipients"]] == rcpts


def test_dsn_parameters_are_kept_in_the_envelope(strict):
    sender = "dsn@example.org"
    with strict.client() as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s> RET=HDRS ENVID=QQ+2Bid+3D42" % sender, 250, "2.1.0")
        c.expect("RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40example.net", 250, "2.1.5")
        c.expect("RCPT TO:<b@example.net> NOTIFY=NEVER", 250, "2.1.5")
        c.expect("RCPT TO:<c@example.net> NOTIFY=DELAY", 250, "2.1.5")
        c.expect("RCPT TO:<d@example.net>", 250, "2.1.5")
        r = c.data(b"Subject: dsn\r\n\r\nbody\r\n")
        assert r.is_(250, "2.0.0"), r
    m = strict.show(r.qid)
    assert m["envid"] == "QQ+id=42"
    rc = {x["address"]: x for x in m["recipients"]}
    assert rc["a@example.net"]["notify"] == 0x2 | 0x4      # SUCCESS | FAILURE
    assert rc["a@example.net"]["orcpt"] == "rfc822;a@example.net"
    assert rc["b@example.net"]["notify"] == 0x1            # NEVER
    assert rc["c@example.net"]["notify"] == 0x8            # DELAY
    assert rc["d@example.net"]["notify"] == 0 and rc["d@example.net"]["orcpt"] is None
    p = strict.ctl("queue", "show", r.qid)
    assert p.returncode == 0 and "ret: HDRS" in p.stdout and "envid: QQ+id=42" in p.stdout, p.stdout


def test_refused_envid_leaves_no_envelope_behind(strict):
    """A MAIL refused for its ENVID starts no transaction, and nothing of it
    reaches the next one."""
    sender = "envid-after@example.org"
    with strict.client() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s> RET=FULL ENVID=x+0D+0AX-Injected:+20yes" % sender)
        assert r.is_(501, "5.5.4"), r
        assert c.cmd("RCPT TO:<a@example.net>").is_(503, "5.5.1")
        c.expect("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        c.expect("RCPT TO:<a@example.net>", 250, "2.1.5")
        r = c.data(b"Subject: clean\r\n\r\nbody\r\n")
        assert r.is_(250), r
    m = strict.show(r.qid)
    assert m["envid"] is None
    p = strict.ctl("queue", "show", r.qid)
    assert "ret: unspecified" in p.stdout, p.stdout
    assert b"X-Injected" not in strict.cat(r.qid)


def test_smtputf8_message_is_queued_with_the_flag(strict):
    rcpt = "j\u00fcrgen@\u4f8b\u3048.example"
    with strict.client() as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s> SMTPUTF8" % UTF8_SENDER, 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % rcpt, 250, "2.1.5")
        body = "Subject: gr\u00fc\u00dfe\r\n\r\nhall\u00f6\r\n".encode()
        r = c.data(body)
        assert r.is_(250, "2.0.0"), r
    m = strict.show(r.qid)
    assert m["smtputf8"] is True
    assert m["sender"] == UTF8_SENDER
    assert m["recipients"][0]["address"] == rcpt
    received = assert_stored_exactly(strict, r.qid, body)
    assert b" with UTF8SMTP id " in received, received


def _hops(n):
    return b"".join(b"Received: from hop%d.example by hop%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i + 1)
                    for i in range(n))


def test_loop_detection_refuses_too_many_received_headers(strict):
    """max_received (default 50) counts the client's Received: headers."""
    hops = _hops(51)
    with strict.client() as c:
        c.ehlo()
        c.envelope("loop@example.org", ["r@example.net"])
        r = c.data(hops + b"Subject: loop\r\n\r\nround and round\r\n")
        assert r.is_(554, "5.4.6"), r
        c.envelope("loop@example.org", ["r@example.net"])
        ok = _hops(50) + b"Subject: fifty hops\r\n\r\nstill fine\r\n"
        r = c.data(ok)
        assert r.is_(250, "2.0.0"), r
    assert [m["id"] for m in strict.by_sender("loop@example.org")] == [r.qid]


# -- BDAT chunks that fail the transaction (RFC 3030 2) -----------------------

# (id, chunks (the last one is sent with LAST), index of the chunk that is
#  refused, code, enhanced code)
BDAT_CASES = [
    ("bare-lf-in-chunk", [b"Subject: x\r\n\r\nbare\nlf\r\n", b"more\r\n", b"end\r\n"], 0, 554, "5.6.0"),
    ("bare-cr-in-chunk", [b"Subject: x\r\n\r\n", b"bare\rcr\r\n", b"end\r\n"], 1, 554, "5.6.0"),
    ("nul-in-chunk", [b"Subject: x\r\n\r\nnul\x00\r\n", b"end\r\n"], 0, 554, "5.6.0"),
    ("long-line-in-chunk", [b"Subject: x\r\n\r\n" + b"w" * 1500 + b"\r\n", b"end\r\n"], 0, 554, "5.6.0"),
    ("over-size-chunk", [b"Subject: x\r\n\r\n" + (b"o" * 998 + b"\r\n") * 70, b"end\r\n"], 0, 552, "5.3.4"),
    ("last-chunk-ends-in-bare-cr", [b"Subject: x\r\n\r\n", b"ends badly\r\nx\r"], 1, 554, "5.6.0"),
]


@pytest.mark.parametrize("case", BDAT_CASES, ids=[c[0] for c in BDAT_CASES])
def test_bad_bdat_chunk_fails_the_transaction(strict, case):
    name, chunks, bad, code, enh = case
    sender = "bdat-%s@example.org" % name
    with strict.client() as c:
        c.ehlo()
        c.envelope(sender, ["r@example.net"])
        replies = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
            replies.append(c.reply())
        for i, r in enumerate(replies):
            if i < bad:
                assert r.is_(250), replies
            elif i == bad:
                assert r.is_(code, enh), "chunk %d: expected %s %s, got %r" % (i, code, enh, r)
            else:
                # the transaction is gone; later chunks are read and refused
                assert r.is_(503, "5.5.1"), replies
        assert c.cmd("NOOP").is_(250, "2.0.0")
        assert c.nothing_pending(0.2), c.buf
        # and a new transaction works
        c.envelope(sender, ["r@example.net"])
        ok = c.bdat([b"Subject: good\r\n\r\nfine\r\n"])[-1]
        assert ok.is_(250, "2.0.0"), ok
    assert [m["id"] for m in strict.by_sender(sender)] == [ok.qid]


def test_client_that_never_reads_its_replies_does_not_block_others(strict):
    """A client pipelining tens of thousands of commands without reading a
    reply fills only its own buffers; the relay keeps serving others."""
    greedy = strict.client()
    greedy.ehlo()
    greedy.sock.setblocking(False)
    sent = 0
    payload = b"NOOP\r\n" * 4096
    try:
        for _ in range(40):          # bounded: at most 40 * 24 KB
            try:
                sent += greedy.sock.send(payload)
            except BlockingIOError:
                break
        for _ in range(3):
            bystander(strict)
    finally:
        greedy.close()
    assert sent > 64 * 1024, "the test did not fill the server's buffers"
    bystander(strict)
