"""Limits on size and on input (issue 6, points 3 and the hostile-input
suite): message size, recipients, disk space, over-long lines of every
kind, malformed BDAT, CR/LF/NUL injection through ESMTP parameters, and
mail loops -- each at the limit N and at N+1, each with the reply code and
enhanced code, the queue checked, and a bystander served.

The limits are those of src/lib/limits.h: a command line is at most 512
octets including CRLF, an AUTH line 12288, a data line 1000 (the stuffed
dot not counted), local part 64, domain 255, path 256 (with the angle
brackets), EHLO argument 255, ENVID 100 and ORCPT 500 characters of xtext.
"""

import os
import sqlite3
import subprocess
import threading
import time

import pytest

import conftest
from abuse_common import CONTROL_RE, assert_queue, bystander, du, events, new_relay, timed_client
from helpers import make_body, split_received

MAX = 1024 * 1024
MAX_RCPTS = 5


@pytest.fixture(scope="module")
def lim(module_relays):
    """Trusted loopback. `plain`: no AUTH; `auth`: AUTH offered without TLS
    (loopback only), for the AUTH line and the AUTH= parameter."""
    return new_relay(module_relays, name="limits", listeners={
        "plain": {},
        "auth": {"auth": "optional", "plaintext_auth": "yes"},
    }, limits={"max_message_size": "1M", "max_recipients": str(MAX_RCPTS), "auth_failure_delay": "100ms"})


# -- 3. size -----------------------------------------------------------------------

def test_message_of_max_size_is_accepted_one_octet_more_is_552(lim):
    body = make_body(MAX, seed=3)
    with lim.client() as c:
        c.ehlo()
        c.envelope("at-limit@example.org", ["r@example.net"])
        r = c.data(body)
        assert r.is_(250, "2.0.0"), r
        qid = r.qid
        lim.expected.add(qid)
        c.envelope("over-limit@example.org", ["r@example.net"])
        r = c.data(make_body(MAX + 1, seed=4))
        assert r.is_(552, "5.3.4"), r
        assert c.nothing_pending(0.2), "more than one reply: %r" % c.buf
        c.expect("NOOP", 250)
        bystander(lim)
    assert split_received(lim.cat(qid))[1] == body
    assert_queue(lim)


def test_declared_size_over_the_limit_is_552_at_mail(lim):
    with lim.client() as c:
        c.ehlo()
        c.expect("MAIL FROM:<declared@example.org> SIZE=%d" % MAX, 250, "2.1.0")
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<declared@example.org> SIZE=%d" % (MAX + 1), 552, "5.3.4")
        c.expect("RCPT TO:<r@example.net>", 503, "5.5.1")
        bystander(lim)
    assert_queue(lim)


def test_state_dir_does_not_grow_while_a_huge_message_is_refused(lim):
    """20 MB streamed without SIZE against a 1 MB limit: the spill file in
    state_dir/tmp stops growing at the limit, is gone after the 552, and the
    state folder as a whole grows by no more than that."""
    tmp = os.path.join(lim.state_dir, "tmp")
    before = du(lim.state_dir)
    peak = {"tmp": 0, "all": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["tmp"] = max(peak["tmp"], du(tmp))
            peak["all"] = max(peak["all"], du(lim.state_dir))
            time.sleep(0.01)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        with lim.client() as c:
            c.ehlo()
            c.envelope("huge@example.org", ["r@example.net"])
            assert c.cmd("DATA").code == 354
            line = b"x" * 998 + b"\r\n"
            block = line * 1024
            for i in range(20):
                c.send(block)
                if i == 10:
                    bystander(lim)
            c.send(b".\r\n")
            r = c.reply(timeout=120)
            assert r.is_(552, "5.3.4"), r
            c.expect("NOOP", 250)
    finally:
        stop.set()
        t.join()
    assert peak["tmp"] > 0, "the spill file was never seen: is the sampler broken?"
    assert peak["tmp"] <= MAX + 256 * 1024, "state_dir/tmp reached %d octets (limit %d)" % (peak["tmp"], MAX)
    assert peak["all"] - before <= MAX + 1024 * 1024, "state_dir grew by %d octets" % (peak["all"] - before)
    assert du(tmp) == 0, os.listdir(tmp)
    assert_queue(lim)


def test_max_recipients_n_ok_n_plus_1_is_452(lim):
    with lim.client() as c:
        c.ehlo()
        c.expect("MAIL FROM:<many@example.org>", 250)
        for i in range(MAX_RCPTS):
            c.expect("RCPT TO:<r%d@example.net>" % i, 250, "2.1.5")
        c.expect("RCPT TO:<r%d@example.net>" % MAX_RCPTS, 452, "4.5.3")
        c.expect("RCPT TO:<r%d@example.net>" % (MAX_RCPTS + 1), 452, "4.5.3")
        r = c.data(b"Subject: many\r\n\r\nx\r\n")
        assert r.is_(250, "2.0.0"), r
        lim.expected.add(r.qid)
        bystander(lim)
    assert len(lim.show(r.qid)["recipients"]) == MAX_RCPTS
    assert_queue(lim)


def test_out_of_disk_space_is_452_and_nothing_half_written(tmp_path):
    """The state folder on a 8 MB tmpfs, filled up to about 1 MB: a 3 MB
    message gets 452 4.3.1 after its data, nothing of it stays behind, the
    queue database passes integrity_check, and once space is freed a small
    message is accepted."""
    pool = conftest.RelayPool(tmp_path)
    r = new_relay(pool, name="full", start=False, limits={"max_message_size": "20M"})
    os.makedirs(r.state_dir, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", r.state_dir], check=True, timeout=30)
    try:
        try:
            r.start()
            first = bystander(r)
            filler = os.path.join(r.state_dir, "filler")
            st = os.statvfs(r.state_dir)
            free = st.f_bavail * st.f_frsize
            with open(filler, "wb") as f:
                f.write(b"\0" * (free - 1024 * 1024))
            before = sorted(os.listdir(r.state_dir))
            with r.client() as c:
                c.ehlo()
                c.envelope("too-big-for-disk@example.org", ["r@example.net"])
                rep = c.data(make_body(3 * 1024 * 1024, seed=9))
                assert rep.is_(452, "4.3.1"), "out of disk space: %r" % (rep,)
                c.expect("NOOP", 250)
                # Still answering: a bystander's banner, at least.
                timed_client(r).close()
            assert_queue(r)
            assert os.listdir(os.path.join(r.state_dir, "tmp")) == [], "a spill file was left behind"
            assert sorted(os.listdir(r.state_dir)) == before
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(r.state_dir, "queue.db"), uri=True, timeout=10)
            try:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            finally:
                db.close()
            os.unlink(filler)
            second = bystander(r)
            assert {first, second} <= r.expected
            assert_queue(r)
            assert events(r, "smtp.reject", reply="452 4.3.1") or events(r, "smtp.message", result="tempfail")
        finally:
            pool.close()
    finally:
        subprocess.run(["umount", r.state_dir], timeout=60)


# -- 6. over-long lines ------------------------------------------------------------------

def _domain(n):
    """A valid domain name of exactly n octets (labels of at most 63)."""
    labels, left = [], n
    while left > 0:
        take = min(63, left)
        if left - take == 1:
            take -= 1
        labels.append("d" * take)
        left -= take + 1
    d = ".".join(labels)
    assert len(d) == n
    return d


def _xtext(n):
    return "e" * n


MAIL = ["MAIL FROM:<{S}>"]
# kind -> [(case, listener, setup commands (None: no EHLO), line, reply, enhanced)]
# A reply may be a tuple of acceptable (code, enhanced) pairs.
LINES = {
    "command": [
        ("512", "plain", [], b"NOOP " + b"x" * 505, 250, "2.0.0"),
        ("513", "plain", [], b"NOOP " + b"x" * 506, 500, "5.5.2"),
        # MAIL and RCPT may be longer by what their extensions' parameters
        # take (RFC 5321 4.5.3.1.4; SMTP_MAIL_LINE_MAX = 1178 and
        # SMTP_RCPT_LINE_MAX = 1042 octets with CRLF in src/lib/limits.h):
        # at the limit the line is read as a command (and its over-long
        # address refused), one octet more is a line too long.
        ("1178-mail", "plain", [], b"MAIL FROM:<" + b"a" * (1176 - 11 - 13) + b"@example.org>",
         501, "5.1.7"),
        ("1179-mail", "plain", [], b"MAIL FROM:<" + b"a" * (1177 - 11 - 13) + b"@example.org>",
         500, "5.5.2"),
        ("1042-rcpt", "plain", ["MAIL FROM:<{S}>"],
         b"RCPT TO:<" + b"a" * (1040 - 9 - 13) + b"@example.org>", 501, "5.1.3"),
        ("1043-rcpt", "plain", ["MAIL FROM:<{S}>"],
         b"RCPT TO:<" + b"a" * (1041 - 9 - 13) + b"@example.org>", 500, "5.5.2"),
    ],
    "auth-line": [
        # Read as AUTH (the blob decodes to nothing: 501 5.5.2), not as too long.
        ("12288", "auth", [], b"AUTH PLAIN " + b"A" * (12288 - 2 - 11), 501, "5.5.2"),
        ("12289", "auth", [], b"AUTH PLAIN " + b"A" * (12289 - 2 - 11), 500, "5.5.2"),
    ],
    "ehlo-argument": [
        ("255", "plain", None, b"EHLO " + _domain(255).encode(), 250, None),
        ("256", "plain", None, b"EHLO " + _domain(256).encode(), 501, "5.5.4"),
    ],
    "local-part": [
        ("mail-64", "plain", [], ("MAIL FROM:<%s@example.org>" % ("l" * 64)).encode(), 250, "2.1.0"),
        ("mail-65", "plain", [], ("MAIL FROM:<%s@example.org>" % ("l" * 65)).encode(), 501, "5.1.7"),
        ("rcpt-64", "plain", MAIL, ("RCPT TO:<%s@example.net>" % ("l" * 64)).encode(), 250, "2.1.5"),
        ("rcpt-65", "plain", MAIL, ("RCPT TO:<%s@example.net>" % ("l" * 65)).encode(), 501, "5.1.3"),
    ],
    "domain": [
        ("label-63", "plain", MAIL, ("RCPT TO:<a@%s.example>" % ("l" * 63)).encode(), 250, "2.1.5"),
        ("label-64", "plain", MAIL, ("RCPT TO:<a@%s.example>" % ("l" * 64)).encode(), 501, "5.1.3"),
        # The domain limit (255) lies beyond the path limit (256 with "<a@"
        # and ">"): the longest domain a path can hold is 252 octets.
        ("252", "plain", MAIL, ("RCPT TO:<a@%s>" % _domain(252)).encode(), 250, "2.1.5"),
        ("255", "plain", MAIL, ("RCPT TO:<a@%s>" % _domain(255)).encode(), 501, "5.1.3"),
        ("256", "plain", MAIL, ("RCPT TO:<a@%s>" % _domain(256)).encode(), 501, "5.1.3"),
        ("mail-256", "plain", [], ("MAIL FROM:<a@%s>" % _domain(256)).encode(), 501, "5.1.7"),
    ],
    "path": [
        ("mail-256", "plain", [], ("MAIL FROM:<%s@%s>" % ("l" * 64, _domain(189))).encode(), 250, "2.1.0"),
        ("mail-257", "plain", [], ("MAIL FROM:<%s@%s>" % ("l" * 64, _domain(190))).encode(), 501, "5.1.7"),
        ("rcpt-256", "plain", MAIL, ("RCPT TO:<%s@%s>" % ("l" * 64, _domain(189))).encode(), 250, "2.1.5"),
        ("rcpt-257", "plain", MAIL, ("RCPT TO:<%s@%s>" % ("l" * 64, _domain(190))).encode(), 501, "5.1.3"),
    ],
    "envid": [
        ("100", "plain", [], ("MAIL FROM:<{S}> ENVID=%s" % _xtext(100)).encode(), 250, "2.1.0"),
        ("101", "plain", [], ("MAIL FROM:<{S}> ENVID=%s" % _xtext(101)).encode(), 501, "5.5.4"),
    ],
    "orcpt": [
        # RFC 3461 allows 500 characters of ORCPT; the RCPT line is then
        # longer than 512 octets, which RFC 5321 4.5.3.1.4 lets an extension
        # do ("SMTP extensions may be used to increase this limit").
        ("500", "plain", MAIL, ("RCPT TO:<r@example.net> ORCPT=rfc822;%s" % _xtext(493)).encode(), 250, "2.1.5"),
        # Refused either way: as a parameter (501 5.5.4) or, while the line
        # limit stays 512, as a line (500 5.5.2).
        ("501", "plain", MAIL, ("RCPT TO:<r@example.net> ORCPT=rfc822;%s" % _xtext(494)).encode(),
         (501, 500), ("5.5.4", "5.5.2")),
    ],
}


@pytest.mark.parametrize("kind", list(LINES))
def test_line_length_limits(lim, kind):
    """N and N+1 for each kind of line; each case on its own connection,
    in step afterwards (the rest of a long line is not read as commands)."""
    failures = []
    for case, listener, setup, line, code, enh in LINES[kind]:
        sender = "len-%s-%s@example.org" % (kind, case)
        with lim.client(listener=listener) as c:
            if setup is not None:
                c.ehlo()
                for cmd in setup:
                    r = c.cmd(cmd.replace("{S}", sender))
                    assert r.code < 400, (cmd, r)
            line = line.replace(b"{S}", sender.encode())
            r = c.cmd(line)
            codes = code if isinstance(code, tuple) else (code,)
            enhs = enh if isinstance(enh, tuple) else (enh,)
            if not any(r.is_(k, e) for k, e in zip(codes, enhs)):
                failures.append("%s %s: a %d-octet line %r...: expected %s %s, got %r" % (
                    kind, case, len(line) + 2, line[:40], "/".join(map(str, codes)), "/".join(map(str, enhs)), r))
            n = c.cmd("NOOP")
            if not n.is_(250):
                failures.append("%s %s: NOOP afterwards got %r" % (kind, case, n))
            timed_client(lim).close()
    assert not failures, "\n".join(failures)
    assert_queue(lim)


@pytest.mark.parametrize("wire,ok", [
    (b"x" * 998, True),                  # 1000 octets with CRLF
    (b"x" * 999, False),                 # 1001
    (b".." + b"x" * 997, True),          # 1001 on the wire, 1000 once unstuffed
    (b".." + b"x" * 998, False),         # 1002 on the wire, 1001 unstuffed
], ids=["data-1000", "data-1001", "data-1001-stuffed-dot", "data-1002-stuffed-dot"])
def test_data_line_length(lim, wire, ok):
    body = b"Subject: long line\r\n\r\n" + wire + b"\r\nlast\r\n"
    with lim.client() as c:
        c.ehlo()
        c.envelope("dataline@example.org", ["r@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(body + b".\r\n")       # no stuffing of our own: wire is as given
        r = c.reply()
        timed_client(lim).close()
        if ok:
            assert r.is_(250, "2.0.0"), r
            lim.expected.add(r.qid)
            unstuffed = wire[1:] if wire.startswith(b".") else wire
            assert split_received(lim.cat(r.qid))[1] == b"Subject: long line\r\n\r\n" + unstuffed + b"\r\nlast\r\n"
        else:
            assert r.is_(554, "5.6.0"), r
        c.expect("NOOP", 250)
    assert_queue(lim)


# -- 7. malformed BDAT -------------------------------------------------------------------

MALFORMED_BDAT = [b"BDAT", b"BDAT ", b"BDAT -1", b"BDAT 1x", b"BDAT 99999999999999999999999",
                  b"BDAT 10 LAST extra", b"BDAT 10 last LAST", b"BDAT 0x10", b"BDAT +5", b"BDAT 5 FIRST"]


def test_malformed_bdat_is_501_and_closes(lim):
    """Without a valid size the octets that follow cannot be told from
    commands: 501 5.5.4, and the connection is closed (nothing after it is
    read as a command, nothing queued)."""
    failures = []
    for cmd in MALFORMED_BDAT:
        with lim.client() as c:
            c.ehlo()
            c.envelope("badbdat@example.org", ["r@example.net"])
            c.send(cmd + b"\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nBDAT 3 LAST\r\nabc")
            r = c.reply()
            if not r.is_(501, "5.5.4"):
                failures.append("%r: expected 501 5.5.4, got %r" % (cmd, r))
            elif not c.closed(10) or c.buf:
                failures.append("%r: not closed after the 501; then %r" % (cmd, c.buf))
    bystander(lim)
    assert not failures, "\n".join(failures)
    assert_queue(lim)


def test_bdat_larger_than_max_size_is_drained_and_552_once(lim):
    with lim.client() as c:
        c.ehlo()
        c.envelope("bigbdat@example.org", ["r@example.net"])
        big = make_body(MAX + 1, seed=5)
        c.send(b"BDAT %d LAST\r\n" % len(big) + big)
        r = c.reply(timeout=60)
        assert r.is_(552, "5.3.4"), r
        assert c.nothing_pending(0.3), c.buf
        c.expect("NOOP", 250)
        # Over several chunks: refused at the chunk that crosses the limit;
        # the last chunk, already on its way, finds no transaction.
        c.envelope("bigbdat@example.org", ["r@example.net"])
        half = (b"y" * 98 + b"\r\n") * (MAX // 200 + 10)
        c.send(b"BDAT %d\r\n" % len(half) + half + b"BDAT %d\r\n" % len(half) + half + b"BDAT 4 LAST\r\nzzzz")
        r1, r2, r3 = c.replies(3, timeout=60)
        assert r1.is_(250, "2.0.0"), r1
        assert r2.is_(552, "5.3.4"), r2
        assert r3.is_(503, "5.5.1"), r3
        assert c.nothing_pending(0.3), c.buf
        # The connection is usable: a message at the limit goes through.
        c.envelope("bigbdat-ok@example.org", ["r@example.net"])
        (r,) = c.bdat([make_body(MAX, seed=6)])
        assert r.is_(250, "2.0.0"), r
        lim.expected.add(r.qid)
        bystander(lim)
    assert_queue(lim)


@pytest.mark.parametrize("chunks,bad", [
    ([b"Subject: x\r\n\r\nbare\nLF\r\n"], 0),
    ([b"Subject: x\r\n\r\nbare LF\n", b"more\r\n"], 0),
    ([b"Subject: x\r\n\r\nfine\r\n", b"bare\rCR\r\n"], 1),
    ([b"Subject: x\r\n\r\nends in CR\r"], 0),
    ([b"Subject: x\r\n\r\nNUL\0\r\n"], 0),
], ids=["lf-in-last", "lf-in-first", "cr-in-second", "cr-at-end", "nul"])
def test_bdat_with_bare_cr_lf_or_nul_is_refused(lim, chunks, bad):
    with lim.client() as c:
        c.ehlo()
        c.envelope("bdatbare@example.org", ["r@example.net"])
        replies = []
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(b"BDAT %d%s\r\n" % (len(ch), b" LAST" if last else b"") + ch)
            replies.append(c.reply())
            if i == bad:
                break
        for r in replies[:-1]:
            assert r.is_(250, "2.0.0"), r
        assert replies[-1].is_(554, "5.6.0"), replies
        timed_client(lim).close()
        c.expect("NOOP", 250)
        c.expect("RCPT TO:<r@example.net>", 503, "5.5.1")   # the transaction is over
    assert_queue(lim)


def test_bdat_then_data_in_one_transaction_is_503(lim):
    with lim.client() as c:
        c.ehlo()
        c.envelope("bdatdata@example.org", ["r@example.net"])
        c.send(b"BDAT 18\r\nSubject: mixed\r\n\r\n")
        assert c.reply().is_(250, "2.0.0")
        c.expect("DATA", 503, "5.5.1")
        timed_client(lim).close()
        c.send(b"BDAT 6 LAST\r\nbody\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
        lim.expected.add(r.qid)
    assert split_received(lim.cat(r.qid))[1] == b"Subject: mixed\r\n\r\nbody\r\n"
    assert_queue(lim)


# -- 8. injection through ESMTP parameters -------------------------------------------------

INJECTIONS = [
    ("envid-crlf", "MAIL FROM:<{S}> ENVID=a+0D+0Ab", None),
    ("envid-cr", "MAIL FROM:<{S}> ENVID=a+0Db", None),
    ("envid-lf", "MAIL FROM:<{S}> ENVID=a+0Ab", None),
    ("envid-nul", "MAIL FROM:<{S}> ENVID=a+00b", None),
    ("envid-tab", "MAIL FROM:<{S}> ENVID=a+09b", None),
    ("envid-del", "MAIL FROM:<{S}> ENVID=a+7Fb", None),
    ("envid-lowercase-hex", "MAIL FROM:<{S}> ENVID=a+0d+0ab", None),
    ("envid-truncated-hex", "MAIL FROM:<{S}> ENVID=a+0", None),
    ("orcpt-header", "MAIL FROM:<{S}>", "RCPT TO:<r@example.net> ORCPT=rfc822;a+0D+0AX-Header:+20x"),
    ("orcpt-nul", "MAIL FROM:<{S}>", "RCPT TO:<r@example.net> ORCPT=rfc822;a+00b@example.net"),
    ("orcpt-lf", "MAIL FROM:<{S}>", "RCPT TO:<r@example.net> ORCPT=rfc822;a+0Ab@example.net"),
    ("auth-cr", "MAIL FROM:<{S}> AUTH=<a+0Db@x>", None),
    ("auth-crlf", "MAIL FROM:<{S}> AUTH=a+0D+0Ab@x", None),
    ("auth-nul", "MAIL FROM:<{S}> AUTH=a+00b@x", None),
]


def test_control_characters_through_xtext_are_501(lim):
    failures = []
    sender = "inject@example.org"
    for name, mail, rcpt in INJECTIONS:
        with lim.client(listener="auth") as c:
            c.ehlo()
            if rcpt is None:
                r = c.cmd(mail.replace("{S}", sender))
                if not r.is_(501, "5.5.4"):
                    failures.append("%s: %r: expected 501 5.5.4, got %r" % (name, mail, r))
                # No transaction was opened.
                c.expect("RSET", 250)
            else:
                c.expect(mail.replace("{S}", sender), 250)
                r = c.cmd(rcpt)
                if not r.is_(501, "5.5.4"):
                    failures.append("%s: %r: expected 501 5.5.4, got %r" % (name, rcpt, r))
                c.expect("RSET", 250)
    bystander(lim, listener="auth")
    assert not failures, "\n".join(failures)
    assert_queue(lim)
    assert_envelopes_clean(lim)


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)


def test_valid_xtext_decodes_and_the_envelope_stays_clean(lim):
    sender = "xtext@example.org"
    with lim.client(listener="auth") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s> ENVID=a+2Bb+3Dc+20d AUTH=<x+2By@example.org> RET=HDRS" % sender, 250, "2.1.0")
        c.expect("RCPT TO:<r@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;o+2Bx+3D@example.net", 250, "2.1.5")
        c.expect("RCPT TO:<s@example.net> ORCPT=utf-8;caf+C3+A9@example.net", 250, "2.1.5")
        # addr-type is an atom, not xtext: "+0D+0A" there is literal text
        # (accepted as such, or refused), never a line break.
        r = c.cmd("RCPT TO:<t@example.net> ORCPT=rfc+0D+0A822;t@example.net")
        assert r.is_(250, "2.1.5") or r.is_(501, "5.5.4"), r
        r = c.data(b"Subject: xtext\r\n\r\nx\r\n")
        assert r.is_(250, "2.0.0"), r
        lim.expected.add(r.qid)
    bystander(lim, listener="auth")
    env = lim.show(r.qid)
    assert env["envid"] == "a+b=c d", env
    orcpt = {x["address"]: x["orcpt"] for x in env["recipients"]}
    assert orcpt["r@example.net"] == "rfc822;o+x=@example.net", orcpt
    assert orcpt["s@example.net"] == "utf-8;caf\u00e9@example.net", orcpt
    for s in _strings(env):
        assert not CONTROL_RE.search(s), "control character in the stored envelope: %r" % (s,)
    assert_envelopes_clean(lim)
    assert_queue(lim)


def assert_envelopes_clean(relay):
    """No CR, LF or NUL in any text column of the queue database: every
    envelope stored so far, whatever was tried above."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(relay.state_dir, "queue.db"), uri=True, timeout=10)
    try:
        n = 0
        for table in ("message", "recipient"):
            for row in db.execute("SELECT * FROM %s" % table):
                for v in row:
                    if isinstance(v, (str, bytes)):
                        n += 1
                        t = v if isinstance(v, str) else v.decode("latin-1")
                        assert not CONTROL_RE.search(t), "control character in %s: %r" % (table, row)
        assert n > 0
    finally:
        db.close()


# -- 9. mail loops ---------------------------------------------------------------------------

def _with_received(n, extra=b""):
    hops = b"".join(b"Received: from hop%d.example by hop%d.example; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(n))
    return hops + b"Subject: loop test\r\n\r\n" + extra + b"body\r\n"


@pytest.fixture(scope="module")
def loop3(module_relays):
    return new_relay(module_relays, name="loop3", limits={"max_received": "3"})


@pytest.mark.parametrize("which,n,ok", [("default", 50, True), ("default", 51, False),
                                        ("three", 3, True), ("three", 4, False)],
                         ids=["50-of-50", "51-of-50", "3-of-3", "4-of-3"])
def test_mail_loop_received_headers(lim, loop3, which, n, ok):
    relay = lim if which == "default" else loop3
    body = _with_received(n)
    with relay.client() as c:
        c.ehlo()
        c.envelope("loop-%d@example.org" % n, ["r@example.net"])
        r = c.data(body)
        if ok:
            assert r.is_(250, "2.0.0"), r
            relay.expected.add(r.qid)
            assert split_received(relay.cat(r.qid))[1] == body
        else:
            assert r.is_(554, "5.4.6"), r
        c.expect("NOOP", 250)
        # BDAT is counted the same way.
        c.envelope("loop-bdat-%d@example.org" % n, ["r@example.net"])
        (r,) = c.bdat([body])
        if ok:
            assert r.is_(250, "2.0.0"), r
            relay.expected.add(r.qid)
        else:
            assert r.is_(554, "5.4.6"), r
    bystander(relay)
    assert_queue(relay)


def test_received_lines_in_the_body_do_not_count(loop3):
    body = _with_received(3, extra=b"Received: quoted in the body\r\n" * 10)
    with loop3.client() as c:
        c.ehlo()
        c.envelope("loop-body@example.org", ["r@example.net"])
        r = c.data(body)
        assert r.is_(250, "2.0.0"), r
        loop3.expected.add(r.qid)
        timed_client(loop3).close()
    assert_queue(loop3)
