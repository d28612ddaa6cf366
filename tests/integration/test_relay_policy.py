"""Never an open relay: a client that is neither authenticated nor in
[server] trusted gets 530 5.7.0 at MAIL on an `auth = required` listener and
550 5.7.1 at RCPT elsewhere, and nothing it sends is queued."""

import smtplib

import pytest


@pytest.fixture(scope="module")
def untrusted(module_relays):
    # Clients come from 127.0.0.1, which is not in this relay's trusted list.
    return module_relays.new(name="untrusted", trusted="192.0.2.0/24 2001:db8::/32", listeners={
        "required": {"auth": "required"},
        "optional": {"auth": "optional"},
        "off": {"auth": "off"},
    })


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_auth_required_listener_refuses_mail_with_530(untrusted, host):
    with untrusted.client(host=host, listener="required") as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<outsider@example.org>")
        assert r.is_(530, "5.7.0"), r
        r = c.cmd("RCPT TO:<victim@example.net>")
        assert r.code in (503, 530, 550) and r.code != 250, r
        r = c.cmd("DATA")
        assert r.code >= 500, r
    assert untrusted.queue() == []


@pytest.mark.parametrize("listener", ["optional", "off"])
@pytest.mark.parametrize("sender", ["outsider@example.org", ""])
def test_unauthenticated_relay_attempt_gets_550_at_rcpt(untrusted, listener, sender):
    with untrusted.client(listener=listener) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.is_(250, "2.1.0"), r
        for rcpt in ("victim@example.net", "other@example.com", "postmaster@example.net"):
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            assert r.is_(550, "5.7.1"), r
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        # BDAT cannot slip past the refusal either.
        c.send(b"BDAT 10 LAST\r\nSubject: x")
        r = c.reply()
        assert r.is_(503, "5.5.1"), r
        assert c.cmd("NOOP").is_(250)
    assert untrusted.queue() == []


def test_smtplib_sees_every_recipient_refused(untrusted):
    with smtplib.SMTP("127.0.0.1", untrusted.ports["off"], timeout=60) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("outsider@example.org", ["a@example.net", "b@example.net"], b"Subject: x\r\n\r\nspam\r\n")
    assert {k: v[0] for k, v in e.value.recipients.items()} == {"a@example.net": 550, "b@example.net": 550}
    assert untrusted.queue() == []


def test_untrusted_refusals_are_logged(untrusted):
    with untrusted.client(listener="off") as c:
        c.ehlo()
        c.expect("MAIL FROM:<logged@example.org>", 250)
        c.expect("RCPT TO:<target@example.net>", 550, "5.7.1")
    untrusted.wait_log("target@example.net")
    lines = [l for l in untrusted.log().splitlines() if "target@example.net" in l]
    assert any("smtp.reject" in l and "reply=\"550 5.7.1\"" in l and "client=127.0.0.1" in l for l in lines), lines
    assert any("trusted=no" in l for l in untrusted.log().splitlines() if "smtp.connect" in l)
