"""TLS on the way out, smarthosts and crashes during delivery (issue 4).

- Opportunistic STARTTLS to an MX (aiosmtpd with a TLS context), and the
  one plaintext retry after a failed handshake.
- A chain of two detourd: A relays everything through B
  (smarthost = 127.0.0.1:PORT_B, STARTTLS, AUTH, B's self-signed certificate
  as smarthost_ca_file), B delivers to the MX: client -> A -> B -> MX. A
  wrong password or a certificate that does not match defers, and
  credentials never leave A outside verified TLS.
- kill -9 while an MX is still answering the final dot: after the restart
  the message is delivered (at least once).
"""

import os
import re
import time

import pytest

from helpers import split_received
from mailworld import (SPECIAL, Delay, delivery_config, events, make_cert, new_relay, no_violations, rcpt_states,
                       results, server_tls_context, simple_zone, submit, wait_gone, wait_until)

ACCOUNT = "relay-a@a.test"
PASSWORD = "A-to-B-Secret-7f3e9c"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("mxcerts"))
    good = make_cert(d, "good", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    wrong = make_cert(d, "wrong", "wrong.example", ["DNS:wrong.example"])
    return {"good": good, "wrong": wrong}


# -- opportunistic STARTTLS to MX hosts ---------------------------------------------

def test_starttls_offered_by_the_mx_is_used(relays, world, certs):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    aio = world.aio("127.0.0.2", tls_context=server_tls_context(*certs["wrong"]))
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_gone(relay, qid)
    [e] = aio.envelopes
    assert e["tls"], "the message did not travel inside TLS"
    # Opportunistic TLS checks no certificate (RFC 7435): a mismatching
    # name is fine.
    [r] = results(relay, qid)
    assert r["result"] == "delivered" and r["tls"].startswith("TLS"), r


def test_failed_starttls_handshake_is_retried_once_in_plaintext(relays, world, certs):
    """The MX says 220 to STARTTLS, reads the client's hello and answers
    with something that is not TLS: the handshake fails; detourd tries once
    more, in plaintext, on a new connection (RFC 7435)."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2", tls_context=server_tls_context(*certs["good"]), tls_broken="after-hello")
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_gone(relay, qid, timeout=20)
    assert mx.tls_hellos and mx.tls_hellos[0][:1] == b"\x16", "no TLS hello came after STARTTLS"
    assert mx.n_sessions() == 2, "expected one TLS try and one plaintext session, got %d" % mx.n_sessions()
    first, second = mx.sessions
    assert any(l.upper().startswith(b"STARTTLS") for l in first.lines)
    assert not any(l.upper().startswith(b"STARTTLS") for l in second.lines), "STARTTLS again on the retry"
    assert [t.accepted for t in mx.delivered()] == [["b@dest.test"]]
    [r] = results(relay, qid)
    assert r["result"] == "delivered" and r["tls"] == "none", r


def test_junk_instead_of_a_tls_handshake_is_retried_in_plaintext(relays, world, certs):
    """The MX says 220 to STARTTLS and sends junk at once, not TLS. detourd
    rightly refuses to read those octets as SMTP (CVE-2011-0411), but the
    STARTTLS attempt failed all the same: like a failed handshake, it should
    be tried once in plaintext, and the message delivered on the first
    attempt - not deferred again and again (depending on whether the junk
    arrives before or after the handshake starts)."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2", tls_context=server_tls_context(*certs["good"]), tls_broken="before-hello")
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 20, what="the first attempt")
    rs = results(relay, qid)
    assert rs[0]["result"] == "delivered", "first attempt: %r" % (rs[0],)
    assert len(mx.delivered()) == 1


# -- a chain of two detourd -----------------------------------------------------------

def make_b(relays, world, certs, cert="good"):
    """Relay B: a STARTTLS submission listener with AUTH required, nobody
    trusted, one account allowed to send for sender.test; it delivers to
    this world's MX hosts."""
    crt, key = certs[cert]
    b = relays.new(name="B", hostname="b.relay.test", trusted=None, start=False,
                   listeners={"sub": {"addrs": ["127.0.0.1"], "tls": "starttls", "auth": "required"}},
                   limits={"auth_failures": "1000/1m", "auth_failure_delay": "100ms"},
                   extra_sections="[tls]\ncertificate = %s\nprivate_key = %s\n" % (crt, key),
                   delivery=delivery_config(world))
    os.makedirs(b.state_dir, exist_ok=True)
    p = b.ctl("user", "add", ACCOUNT, "--password-stdin", input=(PASSWORD + "\n").encode())
    assert p.returncode == 0, p.stderr
    p = b.ctl("user", "allow", ACCOUNT, "@sender.test")
    assert p.returncode == 0, p.stderr
    b.start()
    return b


def make_a(relays, world, tmp_path, b_port, password=PASSWORD, ca="good", certs=None, smarthost=None, **extra):
    pw = os.path.join(str(tmp_path), "smarthost.pw")
    with open(pw, "w") as f:
        f.write(password + "\n")
    os.chmod(pw, 0o600)
    d = delivery_config(world, smarthost=smarthost or "127.0.0.1:%d" % b_port, smarthost_tls="starttls",
                        smarthost_user=ACCOUNT, smarthost_password_file=pw,
                        smarthost_ca_file=certs[ca][0], retry="1h", **extra)
    return relays.new(name="A", hostname="a.relay.test", delivery=d)


def test_chain_client_to_a_to_b_to_mx_authenticated_over_tls(relays, world, certs, tmp_path):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    b = make_b(relays, world, certs)
    a = make_a(relays, world, tmp_path, b.port, certs=certs)
    qid = submit(a, "alice@sender.test", ["bob@dest.test"], SPECIAL)
    stored_a = a.cat(qid)
    wait_gone(a, qid, timeout=20)
    wait_until(lambda: mx.delivered(), 20, what="the MX to get the message from B")
    [t] = mx.delivered()
    assert t.mail_from == "alice@sender.test" and t.accepted == ["bob@dest.test"]
    # B's Received: on top of A's message, byte for byte.
    received_b, rest = split_received(t.content)
    assert rest == stored_a, "B passed on other octets than A sent"
    assert b"b.relay.test" in received_b
    assert re.search(rb"with ESMTPS?A", received_b), "B's Received: does not show an authenticated submission: %r" % received_b
    # A: over TLS to B, as the account.
    [r] = results(a, qid)
    assert r["result"] == "delivered" and r["tls"].startswith("TLS"), r
    assert r["relay"].endswith("[127.0.0.1]:%d" % b.port), r
    auths = events(b, "smtp.auth")
    assert auths and all(ACCOUNT in str(e) for e in auths), auths
    msgs = [e for e in events(b, "smtp.message") if e.get("result") == "queued"]
    assert len(msgs) == 1 and msgs[0].get("account") == ACCOUNT, msgs
    # The password never appears in a log.
    assert PASSWORD not in a.log() and PASSWORD not in b.log()
    no_violations(mx)


def test_several_smarthosts_are_tried_in_order(relays, world, certs, tmp_path):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    b = make_b(relays, world, certs)
    import helpers
    dead = helpers.free_port(v6=False)
    a = make_a(relays, world, tmp_path, b.port, certs=certs,
               smarthost="127.0.0.1:%d 127.0.0.1:%d" % (dead, b.port))
    qid = submit(a, "alice@sender.test", ["bob@dest.test"], SPECIAL)
    wait_gone(a, qid, timeout=20)
    wait_until(lambda: mx.delivered(), 20, what="delivery through the second smarthost")


def test_wrong_smarthost_password_defers_not_bounces(relays, world, certs, tmp_path):
    world.start_dns(simple_zone(dest_test="127.0.0.2", sender_test="127.0.0.9"))
    mx = world.scripted("127.0.0.2")
    home = world.scripted("127.0.0.9")
    b = make_b(relays, world, certs)
    a = make_a(relays, world, tmp_path, b.port, password="not-the-password", certs=certs)
    qid = submit(a, "alice@sender.test", ["bob@dest.test"], SPECIAL)
    wait_until(lambda: results(a, qid), 20, what="the attempt")
    time.sleep(1)
    [r] = results(a, qid)
    assert r["result"] == "deferred", r
    assert rcpt_states(a, qid)["bob@dest.test"]["state"] == "deferred"
    assert [m["id"] for m in a.queue()] == [qid], "a bounce was queued for a wrong smarthost password"
    assert not events(a, "delivery.bounce")
    assert events(b, "smtp.auth"), "B saw no AUTH attempt"
    assert mx.n_sessions() == 0 and home.n_sessions() == 0
    assert "not-the-password" not in a.log() and "not-the-password" not in b.log()
    # Last (everything above worked): a deferred result carries a
    # temporary status (RFC 3463 class 4), not B's 5.7.8.
    assert r["dsn"].startswith("4."), "result=deferred logged with dsn=%s" % r["dsn"]


def test_smarthost_certificate_mismatch_defers_and_sends_no_credentials(relays, world, certs, tmp_path):
    """B presents a certificate for wrong.example; A trusts that certificate
    (its CA file) but asked for 127.0.0.1: the name does not match."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    b = make_b(relays, world, certs, cert="wrong")
    a = make_a(relays, world, tmp_path, b.port, ca="wrong", certs=certs)
    qid = submit(a, "alice@sender.test", ["bob@dest.test"], SPECIAL)
    wait_until(lambda: results(a, qid), 20, what="the attempt")
    [r] = results(a, qid)
    assert r["result"] == "deferred" and r["dsn"].startswith("4."), r
    assert rcpt_states(a, qid)["bob@dest.test"]["state"] == "deferred"
    time.sleep(0.5)
    assert not events(b, "smtp.auth"), "credentials were offered to an unverified smarthost"
    assert not [e for e in events(b, "smtp.message")], events(b, "smtp.message")
    assert mx.n_sessions() == 0


def test_smarthost_certificate_mismatch_is_logged_clearly(relays, world, certs, tmp_path):
    """The operator can tell from A's log why: the certificate did not
    verify (not just "TLS handshake failed")."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    b = make_b(relays, world, certs, cert="wrong")
    a = make_a(relays, world, tmp_path, b.port, ca="wrong", certs=certs)
    qid = submit(a, "alice@sender.test", ["bob@dest.test"], SPECIAL)
    wait_until(lambda: results(a, qid), 20, what="the attempt")
    lines = [l for l in a.log().splitlines() if "delivery." in l]
    text = "\n".join(lines)
    assert re.search(r"certificate|verif", text, re.I), \
        "nothing in A's log says the certificate failed verification:\n%s" % text


def test_smarthost_without_starttls_gets_no_credentials(relays, world, certs, tmp_path):
    """smarthost_tls = starttls, and the smarthost does not offer STARTTLS
    (stripped): deferred, and AUTH is never sent in plaintext."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    fake = world.scripted("127.0.0.3", extensions=("PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"))
    a = make_a(relays, world, tmp_path, world.port, certs=certs, smarthost="127.0.0.3:%d" % world.port)
    qid = submit(a, "alice@sender.test", ["bob@dest.test"], SPECIAL)
    wait_until(lambda: results(a, qid), 20, what="the attempt")
    [r] = results(a, qid)
    assert r["result"] == "deferred", r
    sent = b"".join(l for s in fake.sessions for l in s.lines)
    assert b"AUTH" not in sent.upper() and b"MAIL FROM" not in sent.upper(), sent


# -- crashes -------------------------------------------------------------------------

def test_kill_9_while_the_mx_answers_the_dot_then_restart_delivers(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    calls = {"n": 0}

    def dot(s, txn):
        calls["n"] += 1
        return Delay(10, b"250 2.0.0 slow but fine") if calls["n"] == 1 else b"250 2.0.0 ok"
    mx.dot = dot
    relay = new_relay(relays, world, {"reply_timeout": "30s"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    stored = relay.cat(qid)
    wait_until(lambda: any(t.t_dot for t in mx.all_txns()), 20, what="the MX to have the whole message")
    relay.kill9()
    relay.start()
    wait_gone(relay, qid, timeout=30)
    txns = [t for t in mx.all_txns() if t.t_dot]
    assert len(txns) >= 2, "not tried again after the restart"
    assert all(t.content == stored for t in txns)
    assert results(relay, qid)[-1]["result"] == "delivered"
