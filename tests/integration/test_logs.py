"""Readable operations: one log line per event, `area.event key=value ...`,
with the queue id, client and result of every message."""

import re
import signal

from helpers import smtplib_send

LINE_RE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z detourd\[\d+\]: (?:error|warn|info|debug) '
    r'(?P<event>[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)'
    r'(?P<kv>(?: [a-z][a-z0-9_]*=(?:"(?:[^"\\]|\\.)*"|[^\s"]+))*)$')
KV_RE = re.compile(r' ([a-z][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]+)')


# docs/logging.md: the keys each SMTP event may carry.
DOCUMENTED_KEYS = {
    "smtp.connect": {"session", "client", "port", "listener", "trusted"},
    "smtp.reject": {"session", "client", "listener", "qid", "command", "arg", "reply", "reason"},
    "smtp.message": {"qid", "session", "client", "listener", "account", "from", "size", "nrcpt", "to", "result"},
    "smtp.disconnect": {"session", "client", "listener", "messages", "errors", "duration_ms", "reason"},
}
DISCONNECT_REASONS = {"quit", "eof", "timeout", "too-many-errors", "http", "shutdown", "bdat-syntax",
                      "tls-handshake", "tls-timeout", "error"}


def parse(line):
    m = LINE_RE.match(line)
    assert m, "log line not in `area.event key=value` form: %r" % line
    kv = {}
    for k, v in KV_RE.findall(m.group("kv")):
        if v.startswith('"'):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        kv[k] = v
    return m.group("event"), kv


def events(relay, name):
    return [parse(l)[1] for l in relay.log().splitlines() if LINE_RE.match(l) and parse(l)[0] == name]


def test_a_queued_message_is_logged_with_qid_client_listener_size_and_result(relay):
    body = b"Subject: logged\r\n\r\n" + b"a line of text\r\n" * 20
    qid = smtplib_send("127.0.0.1", relay.port, "logme@example.org", ["x@example.net", "y@example.net"], body)
    relay.stop()
    msgs = [kv for kv in events(relay, "smtp.message") if kv.get("qid") == qid]
    assert len(msgs) == 1, relay.log()
    m = msgs[0]
    assert m["client"] == "127.0.0.1"
    assert m["listener"] == "plain"
    assert m["size"] == str(len(body))
    assert m["nrcpt"] == "2"
    assert m["from"] == "<logme@example.org>"
    assert m["result"] == "queued"
    session = m["session"]
    connects = [kv for kv in events(relay, "smtp.connect") if kv.get("session") == session]
    disconnects = [kv for kv in events(relay, "smtp.disconnect") if kv.get("session") == session]
    assert len(connects) == 1 and connects[0]["client"] == "127.0.0.1" and connects[0]["listener"] == "plain"
    assert len(disconnects) == 1 and disconnects[0]["messages"] == "1" and disconnects[0]["reason"] == "quit"


def test_refused_message_is_logged_with_its_qid_and_reply(relay):
    with relay.client() as c:
        c.ehlo()
        c.envelope("refused-log@example.org", ["r@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n")
        assert c.reply().is_(554, "5.6.0")
    relay.stop()
    rejects = [kv for kv in events(relay, "smtp.reject") if kv.get("command") == "DATA"]
    assert len(rejects) == 1, relay.log()
    assert rejects[0]["reply"] == "554 5.6.0" and rejects[0].get("qid"), rejects
    assert not [kv for kv in events(relay, "smtp.message") if kv.get("result") == "queued"]


def test_every_log_line_has_the_event_format(relays):
    relay = relays.new(limits={"command_timeout": "1s"})
    smtplib_send("127.0.0.1", relay.port, "fmt@example.org", ["r@example.net"], b"Subject: x\r\n\r\nx\r\n")
    smtplib_send("::1", relay.port, "fmt6@example.org", ["r@example.net"], b"Subject: x\r\n\r\nx\r\n")
    with relay.client() as c:
        c.ehlo('we"ird\\host')
        c.cmd('MAIL FROM:<"quoted \\"local\\" part"@example.org> FOO=bar')
        c.cmd("MAIL FROM:<us\u00e9r@example.org> FROB=1")
        c.cmd("MAIL FROM:<tab\there@example.org>")
        c.cmd("RCPT TO:<=equals=@example.org>")
        # a value from the network must not fake a key or a line
        c.cmd('MAIL FROM:<"x result=queued qid=FAKE"@example.org> FOO=bar')
        c.cmd('MAIL FROM:<"tab\there"@example.org> FOO=bar')
        c.send(b"NOOP\n")
        c.reply()
        c.send(b"x" * 600 + b"\r\n")
        c.reply()
    with relay.client() as c:
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        c.reply()
    with relay.client() as c:
        c.reply(timeout=30)      # the command timeout
    text = relay.config_text()
    relay.write_config(text.replace("tls = none", "tls = sometimes"))
    relay.signal(signal.SIGHUP)
    relay.wait_log("result=refused")
    relay.write_config(text)
    relay.stop()
    lines = relay.log().splitlines()
    assert len(lines) > 20
    for line in lines:
        parse(line)
    for line in lines:
        event, kv = parse(line)
        if event in DOCUMENTED_KEYS:
            assert set(kv) <= DOCUMENTED_KEYS[event], "undocumented keys in %r" % line
        if event == "smtp.disconnect":
            assert kv["reason"] in DISCONNECT_REASONS, line
        if event == "smtp.reject":
            assert "result" not in kv and kv.get("qid") != "FAKE", line
    seen = {parse(l)[0] for l in lines}
    for e in ("server.start", "smtp.connect", "smtp.message", "smtp.reject", "smtp.disconnect",
              "server.reload", "server.stop", "server.exit"):
        assert e in seen, "no %s event in the log" % e
