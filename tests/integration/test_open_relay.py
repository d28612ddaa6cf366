"""Never an open relay, proven (issue 6, point 4).

From an untrusted address and without AUTH every relay trick is refused:
the percent hack, source routes, quoted local parts with '@', bang paths,
address literals, trailing dots, unbalanced brackets, IDN forms, the
postmaster special case, upper and lower case. On an `auth = optional`
listener the refusal is 550 5.7.1 at RCPT (or a syntax error: 501/553); on
an `auth = required` one MAIL already gets 530 5.7.0. Nothing is queued and
nothing reaches the MX that every domain here resolves to (aiosmtpd on
127.0.0.2, with a DNS server on loopback): delivery runs in this module.

Then nmap's smtp-open-relay script (Debian's nmap, -sV for the
non-standard ports) must conclude the same, and VRFY, EXPN and RCPT must not
tell which local users exist.
"""

import subprocess
import xml.etree.ElementTree as ET

import pytest

import mailworld
from abuse_common import (UNTRUSTED, add_account, assert_queue, auth_plain, bystander, events, login, new_relay,
                          timed_client)

PW = "Open-Relay-Test-Password-1"
ALICE = "alice@relay.test"          # an account: an "existing" local user
BY = ("bystander@example.org", PW)
OUTSIDER = "outsider@example.org"

# Every domain a trick names resolves to the trap MX: if detourd relayed
# anything, it would arrive there.
DOMAINS = ["relay.test", "other.example", "third.example", "example.net", "example.org", "xn--bcher-kva.example",
           "localhost.example", "y", "x"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = mailworld.MXWorld(tmp_path_factory.mktemp("openrelay-world"))
    try:
        zone = {}
        for d in DOMAINS:
            zone[d] = {"MX": [[10, "mx.trap.test"]], "A": ["127.0.0.2"]}
        zone["mx.trap.test"] = {"A": ["127.0.0.2"]}
        w.start_dns(zone)
        w.trap = w.aio("127.0.0.2")
        yield w
    finally:
        errors = w.close()
        if errors:
            pytest.fail("stopping the MX world: %s" % "; ".join(errors), pytrace=False)


# -n: no DNS look-ups of its own. -sV: the ports are not 25/465/587, so the
# script runs only on a port that version detection calls smtp.
NMAP = ["nmap", "-n", "-Pn", "-sV", "--script", "smtp-open-relay",
        "--script-args", "smtp-open-relay.domain=relay.test,smtp-open-relay.ip=127.0.0.1", "-oX", "-"]


@pytest.fixture(scope="module")
def relay(module_relays, world):
    r = new_relay(module_relays, name="openrelay", trusted=UNTRUSTED, listeners={
        "opt": {"auth": "optional", "plaintext_auth": "yes", "addrs": ["127.0.0.1"]},
        "req": {"auth": "required", "plaintext_auth": "yes", "addrs": ["127.0.0.1"]},
    }, limits={"auth_failure_delay": "100ms"}, delivery=mailworld.delivery_config(world))
    add_account(r, ALICE, PW)
    add_account(r, BY[0], PW, unlimited=True)
    r.delivered_ok = set()   # what the trap may legitimately receive: bystanders
    # nmap's version detection waits on its probes for half a minute: it runs
    # in the background while the other cases of this module go on (its
    # sessions are its own), and its test collects the result.
    r.nmap = subprocess.Popen(NMAP + ["-p", "%d,%d" % (r.ports["opt"], r.ports["req"]), "127.0.0.1"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield r
    finally:
        if r.nmap.poll() is None:
            r.nmap.kill()
            r.nmap.communicate()


def by(relay):
    """A bystander (authenticated: nothing else may relay here); its message
    is delivered to the trap, which is fine."""
    qid = bystander(relay, listener="opt", source="127.0.0.9", account=BY)
    relay.expected.discard(qid)   # delivery runs: it leaves the queue
    relay.delivered_ok.add(BY[0])
    return qid


def no_relayed_mail(relay, world):
    """Nothing in the queue but bystanders, nothing at the trap but
    bystanders, and no smtp.message logged for anyone else."""
    for m in relay.queue():
        assert m["sender"] in relay.delivered_ok, "queued: %r" % m
    for e in world.trap.envelopes:
        assert e["mail_from"] in relay.delivered_ok, "relayed to the trap: %r" % (e,)
    for kv in events(relay, "smtp.message"):
        assert kv.get("from") in ["<%s>" % s for s in relay.delivered_ok], "a message was accepted: %r" % kv


# (id, recipient as written after "RCPT TO:", MAIL parameters, reply, enhanced)
TRICKS = [
    ("percent-hack", "<user%other.example@relay.test>", "", 550, "5.7.1"),
    ("percent-hack-upper", "<USER%OTHER.EXAMPLE@RELAY.TEST>", "", 550, "5.7.1"),
    ("percent-hack-double", "<user%other.example%third.example@relay.test>", "", 550, "5.7.1"),
    ("source-route", "<@relay.test:user@other.example>", "", 553, "5.1.3"),
    ("source-route-two-hops", "<@relay.test,@third.example:user@other.example>", "", 553, "5.1.3"),
    ("source-route-literal", "<@[127.0.0.1]:user@other.example>", "", 501, "5.1.3"),  # RFC 5321 4.1.2: no literal in A-d-l
    ("quoted-at", '<"user@other.example"@relay.test>', "", 550, "5.7.1"),
    ("quoted-at-upper", '<"USER@OTHER.EXAMPLE"@RELAY.TEST>', "", 550, "5.7.1"),
    ("quoted-percent", '<"user%other.example"@relay.test>', "", 550, "5.7.1"),
    ("quoted-only", '<"user@other.example">', "", 501, "5.1.3"),
    ("bang-path", "<other.example!user@relay.test>", "", 550, "5.7.1"),
    ("bang-path-bare", "<other.example!user>", "", 501, "5.1.3"),
    ("ip-literal", "<user@[192.0.2.1]>", "", 550, "5.7.1"),
    ("ip-literal-self", "<user@[127.0.0.1]>", "", 550, "5.7.1"),
    ("ipv6-literal", "<user@[IPv6:2001:db8::1]>", "", 550, "5.7.1"),
    ("percent-to-literal", "<user%other.example@[127.0.0.1]>", "", 550, "5.7.1"),
    ("general-literal", "<user@[x-tag:192.0.2.1]>", "", 550, "5.7.1"),  # relaying is refused first
    ("trailing-dot", "<user@other.example.>", "", 501, "5.1.3"),
    ("trailing-dot-own-name", "<user@relay.test.>", "", 501, "5.1.3"),
    ("unbalanced-open", "<user@other.example", "", 501, "5.1.3"),
    ("unbalanced-close", "user@other.example>", "", 501, "5.1.3"),
    ("no-brackets", "user@other.example", "", 501, "5.1.3"),
    ("double-brackets", "<<user@other.example>>", "", 501, "5.1.3"),
    ("unbalanced-literal", "<user@[192.0.2.1>", "", 501, "5.1.3"),
    ("two-ats", "<user@other.example@relay.test>", "", 501, "5.1.3"),
    ("idn-a-label", "<user@xn--bcher-kva.example>", "", 550, "5.7.1"),
    ("idn-a-label-upper", "<USER@XN--BCHER-KVA.EXAMPLE>", "", 550, "5.7.1"),
    ("idn-utf8-without-smtputf8", "<user@b\u00fccher.example>", "", 553, "5.6.7"),
    ("idn-utf8-with-smtputf8", "<user@b\u00fccher.example>", " SMTPUTF8", 550, "5.7.1"),
    ("utf8-local-with-smtputf8", "<\u00fcser@other.example>", " SMTPUTF8", 550, "5.7.1"),
    ("postmaster", "<postmaster>", "", 550, "5.1.1"),
    ("postmaster-capitalised", "<Postmaster>", "", 550, "5.1.1"),
    ("postmaster-upper", "<POSTMASTER>", "", 550, "5.1.1"),
    ("postmaster-at-own-name", "<postmaster@relay.test>", "", 550, "5.7.1"),
    ("own-hostname", "<user@relay.test>", "", 550, "5.7.1"),
    ("own-hostname-upper", "<USER@RELAY.TEST>", "", 550, "5.7.1"),
    ("plain-upper", "<USER@OTHER.EXAMPLE>", "", 550, "5.7.1"),
    ("plain-mixed-case", "<UsEr@OtHeR.ExAmPlE>", "", 550, "5.7.1"),
    ("single-label", "<v@y>", "", 550, "5.7.1"),
    ("no-domain", "<user>", "", 501, "5.1.3"),
]


@pytest.mark.parametrize("rcpt,params,code,enh", [t[1:] for t in TRICKS], ids=[t[0] for t in TRICKS])
def test_relay_trick_is_refused(relay, world, rcpt, params, code, enh):
    # auth = optional: the refusal comes at RCPT.
    with relay.client(listener="opt") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>%s" % (OUTSIDER, params), 250, "2.1.0")
        r = c.cmd(("RCPT TO:" + rcpt).encode())
        assert r.is_(code, enh), "RCPT TO:%s: expected %d %s, got %r" % (rcpt, code, enh, r)
        # Nothing accepted, so there is nothing to send.
        c.expect("DATA", 503, "5.5.1")
        c.send(b"BDAT 12 LAST\r\nSubject: x\r\n")
        assert c.reply().is_(503, "5.5.1")
        # Another client is served meanwhile (its banner within a second).
        timed_client(relay, listener="opt", source="127.0.0.9").close()
        c.expect("NOOP", 250)
    # auth = required: already MAIL is refused, and no transaction opens.
    with relay.client(listener="req") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>%s" % (OUTSIDER, params), 530, "5.7.0")
        r = c.cmd(("RCPT TO:" + rcpt).encode())
        assert r.is_(503, "5.5.1") or r.is_(530, "5.7.0"), r
        c.expect("DATA", 503, "5.5.1")
    no_relayed_mail(relay, world)


@pytest.mark.parametrize("sender", ["", OUTSIDER, ALICE, "postmaster@relay.test", "user%other.example@relay.test",
                                    "user@[127.0.0.1]"])
def test_no_sender_opens_the_relay(relay, world, sender):
    """Not even the relay's own account names or the null sender."""
    with relay.client(listener="opt") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        for rcpt in ("victim@example.net", "user@relay.test", ALICE):
            c.expect("RCPT TO:<%s>" % rcpt, 550, "5.7.1")
    with relay.client(listener="req") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % sender, 530, "5.7.0")
    by(relay)
    no_relayed_mail(relay, world)


def test_smtplib_sendmail_through_every_trick_is_refused(relay, world):
    import smtplib
    rcpts = [t[1].strip("<>") for t in TRICKS if t[3] == 550 and not t[2]]
    for i in range(0, len(rcpts), 8):   # under the session's error limit
        with smtplib.SMTP("127.0.0.1", relay.ports["opt"], timeout=60) as s:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail(OUTSIDER, rcpts[i:i + 8], b"Subject: spam\r\n\r\nspam\r\n")
            assert {k: v[0] for k, v in e.value.recipients.items()} == {r: 550 for r in rcpts[i:i + 8]}
    by(relay)
    no_relayed_mail(relay, world)


# -- no user enumeration ------------------------------------------------------------

LOCALS = [ALICE, "nobody@relay.test", "postmaster@relay.test", "root@relay.test", "Alice@relay.test",
          BY[0], "no-such-user-ever@example.org"]


def test_vrfy_and_expn_tell_nothing(relay):
    with relay.client(listener="opt") as c:
        c.ehlo()
        answers = set()
        for a in LOCALS + ["alice", "postmaster"]:
            r = c.cmd("VRFY %s" % a)
            assert r.is_(252, "2.5.0"), r
            answers.add(tuple(r.lines))
        assert len(answers) == 1, answers
        timed_client(relay, listener="opt", source="127.0.0.9").close()
    with relay.client(listener="opt") as c:
        c.ehlo()
        answers = set()
        for a in ["staff", "alice", ALICE, "all@relay.test", "nobody@relay.test"]:
            r = c.cmd("EXPN %s" % a)
            assert r.is_(502, "5.5.1"), r
            answers.add(tuple(r.lines))
        assert len(answers) == 1, answers


def test_rcpt_replies_are_the_same_for_existing_and_unknown_users(relay, world):
    def replies(c, sender):
        out = set()
        for a in LOCALS:
            c.expect("RSET", 250)
            c.expect("MAIL FROM:<%s>" % sender, 250)
            out.add(tuple(c.cmd("RCPT TO:<%s>" % a).lines))
        c.expect("RSET", 250)
        return out

    with relay.client(listener="opt") as c:
        c.ehlo()
        got = replies(c, OUTSIDER)
        assert len(got) == 1 and list(got)[0][0].startswith(b"550 5.7.1 "), got
        timed_client(relay, listener="opt", source="127.0.0.9").close()
    with login(relay, BY[0], PW, listener="opt") as c:
        got = replies(c, BY[0])
        assert len(got) == 1 and list(got)[0][0].startswith(b"250 2.1.5 "), got
    # AUTH does not tell either: an unknown account fails like a wrong password.
    texts = set()
    for user in (ALICE, "nobody@relay.test"):
        with relay.client(listener="opt") as c:
            c.ehlo()
            r = auth_plain(c, user, "wrong-password")
            assert r.is_(535, "5.7.8"), r
            texts.add(tuple(r.lines))
    assert len(texts) == 1, texts
    no_relayed_mail(relay, world)


def test_bystander_mail_is_delivered_and_nothing_else(relay, world):
    """The trap MX is alive (a bystander's message arrives), and it never got
    anything from the unauthenticated attempts above."""
    qid = by(relay)
    mailworld.wait_until(lambda: qid not in relay.queue_ids(), 30, what="the bystander's message to leave")
    mailworld.wait_until(lambda: any(e["mail_from"] == BY[0] for e in world.trap.envelopes), 30,
                         what="the bystander's message at the trap")
    no_relayed_mail(relay, world)
    assert_queue(relay)


# -- nmap --------------------------------------------------------------------------

NOT_OPEN = "Server doesn't seem to be an open relay, all tests failed"
NEEDS_AUTH = "Server isn't an open relay, authentication needed"


def test_nmap_smtp_open_relay_finds_no_open_relay(relay, world):
    """nmap -sV --script smtp-open-relay against both listeners (started
    with the module, see the relay fixture)."""
    try:
        stdout, stderr = relay.nmap.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        relay.nmap.kill()
        relay.nmap.communicate()
        raise AssertionError("nmap did not finish within 170s")
    p = subprocess.CompletedProcess(relay.nmap.args, relay.nmap.returncode, stdout, stderr)
    assert p.returncode == 0, p.stderr
    root = ET.fromstring(p.stdout)
    out = {}
    for port in root.iter("port"):
        for script in port.iter("script"):
            if script.get("id") == "smtp-open-relay":
                out[int(port.get("portid"))] = script.get("output").strip()
    assert set(out) == {relay.ports["opt"], relay.ports["req"]}, "the script did not run on both ports:\n" + p.stdout
    for text in out.values():
        assert "is an open relay" not in text, text
    assert out[relay.ports["req"]] == NEEDS_AUTH, out
    assert out[relay.ports["opt"]] == NOT_OPEN, \
        "nmap on the auth=optional listener: %r (session log: %r)" % (
            out[relay.ports["opt"]], [e for e in events(relay, "smtp.disconnect") if e.get("listener") == "opt"][-3:])
    by(relay)
    no_relayed_mail(relay, world)
