"""Configuration checking: `detourd -c FILE -n` exits 0 for a good file and 1
for a bad one, naming FILE:LINE: and the problem."""

import os
import socket
import subprocess

import pytest

from conftest import DETOURD, daemon_env
from helpers import free_port

BASE = [
    "[server]",                           # 1
    "hostname = relay.test",              # 2
    "state_dir = {state}",                # 3
    "trusted = 127.0.0.0/8 ::1",          # 4
    "",                                   # 5
    "[listener plain]",                   # 6
    "listen = 127.0.0.1:{port} [::1]:{port}",  # 7
    "tls = none",                         # 8
    "auth = off",                         # 9
    "",                                   # 10
    "[limits]",                           # 11
    "max_recipients = 10",                # 12
    "command_timeout = 5m",               # 13
]


def check(tmp_path, lines, name="detour.conf"):
    path = tmp_path / name
    text = "\n".join(lines).format(state=str(tmp_path / "state"), port=free_port()) + "\n"
    path.write_text(text)
    p = subprocess.run([DETOURD, "-c", str(path), "-n"], capture_output=True, text=True, timeout=60,
                       env=daemon_env())
    return str(path), p


def replace(n, text):
    """Replace line n (1-based)."""
    return lambda lines: lines[:n - 1] + [text] + lines[n:], n


def insert(n, text):
    """Insert text so that it becomes line n."""
    return lambda lines: lines[:n - 1] + [text] + lines[n - 1:], n


CASES = [
    ("unknown-section", insert(11, "[bogus]"), "bogus"),
    ("unknown-key", insert(3, "colour = blue"), "colour"),
    ("unknown-key-in-listener", insert(9, "protocol = smtp"), "protocol"),
    ("bad-tls-value", replace(8, "tls = maybe"), "maybe"),
    ("bad-auth-value", replace(9, "auth = sometimes"), "sometimes"),
    ("bad-address", replace(7, "listen = 999.1.1.1:25"), "999.1.1.1"),
    ("bad-port", replace(7, "listen = 127.0.0.1:70000"), "70000"),
    ("port-zero", replace(7, "listen = 127.0.0.1:0"), "port"),
    ("host-name-instead-of-address", replace(7, "listen = localhost:25"), "localhost"),
    ("ipv6-without-brackets", replace(7, "listen = ::1:25"), "::1"),
    ("empty-listen", replace(7, "listen ="), "listen"),
    ("duplicate-key", insert(3, "hostname = other.test"), "hostname"),
    ("over-long-line", insert(5, "; " + "x" * 1100), "long"),
    ("over-long-value", replace(2, "hostname = " + "a" * 1030), "long"),
    ("key-outside-any-section", insert(1, "hostname = early.test"), "hostname"),
    ("bad-duration", replace(13, "command_timeout = 5 minutes"), "command_timeout"),
    ("zero-duration", replace(13, "command_timeout = 0s"), "command_timeout"),
    ("bad-size", insert(13, "max_message_size = 10X"), "max_message_size"),
    ("size-below-minimum", insert(13, "max_message_size = 10"), "max_message_size"),
    ("negative-number", replace(12, "max_recipients = -1"), "max_recipients"),
    ("number-zero", replace(12, "max_recipients = 0"), "max_recipients"),
    ("bad-trusted-network", replace(4, "trusted = 10.0.0.1/8"), "10.0.0.1/8"),
    ("trusted-host-name", replace(4, "trusted = example.com"), "example.com"),
    ("relative-state-dir", replace(3, "state_dir = var/lib/detour"), "state_dir"),
    ("bad-hostname", replace(2, "hostname = bad_host..name"), "hostname"),
    ("missing-equals", insert(3, "hostname relay.test"), "key = value"),
    ("malformed-section-header", replace(11, "[limits"), "section"),
    ("listener-without-name", replace(6, "[listener]"), "listener"),
    ("duplicate-listener", insert(10, "[listener plain]"), "plain"),
    ("section-twice", insert(10, "[server]"), "server"),
    ("unknown-user", insert(3, "user = no-such-user-detour-test"), "no-such-user"),
]


def test_valid_configuration_passes(tmp_path):
    path, p = check(tmp_path, BASE)
    assert p.returncode == 0, p.stderr
    assert "valid" in p.stdout
    assert not os.path.exists(tmp_path / "state"), "-n must not create the state folder"


def test_line_of_exactly_1024_characters_is_accepted(tmp_path):
    lines = BASE[:4] + ["; " + "x" * 1022] + BASE[4:]
    assert len(lines[4]) == 1024
    path, p = check(tmp_path, lines)
    assert p.returncode == 0, p.stderr


def test_a_long_but_legal_trusted_line_is_accepted(tmp_path):
    """A realistic line of about 400 characters: 30 networks."""
    nets = " ".join("10.%d.0.0/16" % i for i in range(30)) + " 2001:db8::/32 ::1 127.0.0.0/8"
    lines = list(BASE)
    lines[3] = "trusted = " + nets
    assert 300 < len(lines[3]) < 1024
    path, p = check(tmp_path, lines)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_configuration_names_file_and_line(tmp_path, case):
    name, (edit, line), word = case
    lines = edit(list(BASE))
    path, p = check(tmp_path, lines)
    assert p.returncode == 1, "%s: exit %s, stderr %r" % (name, p.returncode, p.stderr)
    assert "%s:%d:" % (path, line) in p.stderr, "%s: expected %s:%d: in %r" % (name, path, line, p.stderr)
    problem = [l for l in p.stderr.splitlines() if l.startswith("%s:%d:" % (path, line))][0]
    assert word.lower() in problem.lower(), "%s: the message does not say what is wrong: %r" % (name, problem)
    assert p.stdout == ""


def test_every_problem_is_reported_with_its_line(tmp_path):
    lines = list(BASE)
    lines[7] = "tls = maybe"              # line 8
    lines[11] = "max_recipients = many"   # line 12
    lines.insert(1, "colour = blue")      # line 2; the others move down one
    path, p = check(tmp_path, lines)
    assert p.returncode == 1
    for n in (2, 9, 13):
        assert "%s:%d:" % (path, n) in p.stderr, (n, p.stderr)


def test_tls_listener_without_certificate_is_refused(tmp_path):
    lines = list(BASE)
    lines[7] = "tls = starttls"
    path, p = check(tmp_path, lines)
    assert p.returncode == 1 and path in p.stderr and "certificate" in p.stderr, p.stderr


def test_no_listener_is_refused(tmp_path):
    path, p = check(tmp_path, BASE[:5] + BASE[10:])
    assert p.returncode == 1 and path in p.stderr and "listener" in p.stderr, p.stderr


def test_missing_file_exits_1(tmp_path):
    path = str(tmp_path / "does-not-exist.conf")
    p = subprocess.run([DETOURD, "-c", path, "-n"], capture_output=True, text=True, timeout=60, env=daemon_env())
    assert p.returncode == 1
    assert path in p.stderr


def test_daemon_refuses_to_start_with_a_bad_configuration(tmp_path):
    lines = list(BASE)
    lines[7] = "tls = maybe"
    path = tmp_path / "bad.conf"
    path.write_text("\n".join(lines).format(state=str(tmp_path / "state"), port=free_port()) + "\n")
    p = subprocess.run([DETOURD, "-c", str(path), "-f"], capture_output=True, text=True, timeout=60,
                       env=daemon_env())
    assert p.returncode == 1
    assert "%s:8:" % path in p.stderr


def test_port_in_use_is_reported_with_the_listener_line(tmp_path):
    port = free_port(v6=False)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        lines = list(BASE)
        lines[6] = "listen = 127.0.0.1:%d" % port
        path = tmp_path / "busy.conf"
        path.write_text("\n".join(lines).format(state=str(tmp_path / "state"), port=0) + "\n")
        p = subprocess.run([DETOURD, "-c", str(path), "-f"], capture_output=True, text=True, timeout=60,
                           env=daemon_env())
    finally:
        blocker.close()
    assert p.returncode == 1, p.stderr
    assert "%s:6:" % path in p.stderr and str(port) in p.stderr, p.stderr
