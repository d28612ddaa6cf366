"""The end user's tool `detour` (issue 5): its command line, help texts,
configuration errors and exit codes. No network is needed here (the
network itself is tested in test_detour_network.py): every case ends before
a connection, or probes closed ports on loopback.
"""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import conftest  # noqa: E402

DETOUR = os.path.join(conftest.BUILD, "detour")


def detour(*args, home, input=b"", config=None, argv0=None, timeout=60):
    env = conftest.daemon_env({"HOME": home})
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "DETOUR_CONFIG"):
        env.pop(var, None)
    if config is not None:
        env["DETOUR_CONFIG"] = config
    p = subprocess.run([argv0 or DETOUR, *args], input=input, capture_output=True,
                       timeout=timeout, env=env)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    bad = conftest.sanitizer_report(p.err)
    assert not bad, "sanitizer report from detour %s: %s\n%s" % (" ".join(args), bad, p.err)
    return p


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return str(h)


def config(home, text, name="config"):
    d = os.path.join(home, ".config", "detour")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def secret_file(home, mode, name="pw"):
    path = os.path.join(home, name)
    with open(path, "w") as f:
        f.write("hunter2\n")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("args, needle", [
    (["--help"], "usage: detour [--config FILE] COMMAND"),
    (["probe", "--help"], "usage: detour probe HOST"),
    (["send", "--help"], "usage: detour send [-f FROM]"),
    (["flush", "--help"], "usage: detour flush"),
    (["queue", "--help"], "usage: detour queue"),
])
def test_help(home, args, needle):
    p = detour(*args, home=home)
    assert p.returncode == 0, p.err
    assert needle in p.out
    assert p.err == ""


def test_version_and_usage_errors(home):
    p = detour("--version", home=home)
    assert p.returncode == 0 and p.out.startswith("detour ")
    for args in ([], ["bogus"], ["--bogus"], ["probe"], ["probe", "a", "b"],
                 ["probe", "h", "--timeout", "0"], ["probe", "h", "--ports", "70000"],
                 ["probe", "h", "--repeat", "21"], ["probe", "h", "-4", "-6"], ["probe", "h", "-5"],
                 ["send", "--bogus"], ["send", "-N", "sometimes"],
                 ["flush", "extra"]):
        p = detour(*args, home=home)
        assert p.returncode == 64, (args, p.returncode, p.err)
        assert p.err, args


def test_missing_configuration_exits_78(home):
    p = detour("send", "bob@example.net", home=home, input=b"Subject: x\n\nx\n")
    assert p.returncode == 78, p.err
    assert os.path.join(home, ".config/detour/config") in p.err and "cannot open" in p.err


def test_unknown_key_is_refused_with_file_and_line(home):
    path = config(home, "[account work]\nhost = relay.example.net\nhots = typo\n")
    p = detour("send", "bob@example.net", home=home, input=b"x\n")
    assert p.returncode == 78, p.err
    assert "%s:3: unknown key 'hots'" % path in p.err, p.err


def test_missing_host_is_refused_with_file_and_line(home):
    path = config(home, "[account work]\nfrom = a@example.org\n")
    p = detour("send", "bob@example.net", home=home, config=path, input=b"x\n")
    assert p.returncode == 78
    assert "%s:1: account 'work' has no host" % path in p.err, p.err


@pytest.mark.parametrize("mode, who", [(0o644, "everyone"), (0o640, "its group")])
def test_password_file_readable_by_others_is_refused(home, mode, who):
    pw = secret_file(home, mode)
    path = config(home, "[account work]\nhost = relay.example.net\nuser = a@example.org\n"
                        "password_file = %s\n" % pw)
    p = detour("send", "bob@example.net", home=home, input=b"x\n")
    assert p.returncode == 78, p.err
    assert "%s:4: password_file %s is readable by %s (mode 0%o)" % (path, pw, who, mode) in p.err, p.err
    assert "hunter2" not in p.err


def test_every_problem_is_reported(home):
    path = config(home, "[account a]\nports = 0\n[account b]\nhost = x.example\nqueue = often\n")
    p = detour("send", "x@example.org", home=home, input=b"x\n")
    assert p.returncode == 78
    assert "%s:2: ports:" % path in p.err
    assert "%s:1: account 'a' has no host" % path in p.err
    assert "%s:5: queue:" % path in p.err


def test_envelope_errors(home):
    pw = secret_file(home, 0o600)
    path = config(home, "[account work]\nhost = 127.0.0.1\nuser = a@example.org\n"
                        "password_file = %s\nports = 9\n" % pw)
    # no sender anywhere
    p = detour("send", "bob@example.net", home=home, config=path, input=b"x\n")
    assert p.returncode == 78 and "no sender address" in p.err, p.err
    # no recipients
    p = detour("send", "-f", "a@example.org", home=home, config=path, input=b"x\n")
    assert p.returncode == 64 and "no recipients" in p.err, p.err
    # a bad address
    p = detour("send", "-f", "a@example.org", "not an address@", home=home, config=path,
               input=b"x\n")
    assert p.returncode == 65, p.err
    p = detour("send", "-f", "<bad", "b@example.net", home=home, config=path, input=b"x\n")
    assert p.returncode == 65, p.err
    # an unknown account
    p = detour("send", "--account", "nope", "-f", "a@example.org", "b@example.net", home=home,
               config=path, input=b"x\n")
    assert p.returncode == 78 and "no account 'nope'" in p.err, p.err


def test_nothing_listening_exits_69_with_one_line(home):
    pw = secret_file(home, 0o600)
    path = config(home, "[account work]\nhost = 127.0.0.1\nuser = a@example.org\n"
                        "password_file = %s\nports = 9 19/implicit\nfrom = a@example.org\n" % pw)
    p = detour("send", "b@example.net", home=home, config=path, input=b"Subject: x\n\nx\n")
    assert p.returncode == 69, (p.returncode, p.err)
    assert p.err.count("\n") == 1, p.err
    assert "cannot submit to 127.0.0.1" in p.err and "9 refused" in p.err and "19 refused" in p.err


def test_sendmail_name_and_ignored_options(home, tmp_path):
    link = str(tmp_path / "sendmail")
    os.symlink(DETOUR, link)
    p = detour("--help", home=home, argv0=link)
    assert p.returncode == 0 and "usage: detour send" in p.out
    # options that programs pass to sendmail are accepted (the run then
    # stops at the missing configuration, not at the options)
    p = detour("-oi", "-odi", "-oem", "-U", "-m", "-B", "8BITMIME", "-N", "failure,delay",
               "-R", "hdrs", "-V", "env-1", "-X", "/dev/null", "-t", "-i", home=home, argv0=link,
               input=b"To: b@example.net\n\nx\n")
    assert p.returncode == 78 and "cannot open" in p.err, p.err
    p = detour("-bs", home=home, argv0=link)
    assert p.returncode == 64 and "-bs is not supported" in p.err


def test_sendmail_q_and_bp_keep_their_options(home, tmp_path):
    link = str(tmp_path / "sendmail")
    os.symlink(DETOUR, link)
    pw = secret_file(home, 0o600)
    path = config(home, "[account work]\nhost = 127.0.0.1\nuser = a@example.org\n"
                        "password_file = %s\nports = 9\n" % pw)
    # -q is 'detour flush' with the same --account: an unknown one is an error
    for argv0, args in ((link, ["-q"]), (None, ["send", "-q"])):
        p = detour(*args, "--account", "nope", home=home, config=path, argv0=argv0)
        assert p.returncode == 78, (p.returncode, p.err)
        assert "no account 'nope' in %s" % path in p.err, p.err
        p = detour(*args, "--account", "work", "-v", home=home, config=path, argv0=argv0)
        assert p.returncode == 0 and p.err == "", (p.returncode, p.err)
    p = detour("-bp", home=home, config=path, argv0=link)
    assert p.returncode == 0 and "the local queue is empty" in p.out, p.err


def test_queue_listing_when_empty(home):
    p = detour("queue", home=home)
    assert p.returncode == 0 and "the local queue is empty" in p.out


def test_probe_of_closed_loopback_ports(home):
    p = detour("probe", "127.0.0.1", "--ports", "9,19/implicit", "--timeout", "2", home=home)
    assert p.returncode == 69, p.out
    assert "9      refused" in p.out and "19     refused" in p.out, p.out
    assert "No port gets through to 127.0.0.1" in p.out
    assert "Please allow outgoing TCP connections to 127.0.0.1 on port 587" in p.out


@pytest.mark.parametrize("flag, host, address", [
    ("-4", "127.0.0.1", "127.0.0.1"),
    ("--ipv4", "127.0.0.1", "127.0.0.1"),
    ("-6", "::1", "::1"),
    ("--ipv6", "::1", "::1"),
])
def test_probe_of_one_address_family(home, flag, host, address):
    p = detour("probe", host, flag, "--ports", "9", "--timeout", "2", "--json", home=home)
    assert p.returncode == 69, p.err
    out = json.loads(p.out)
    assert out["address"] == address, out
    assert [x["result"] for x in out["ports"]] == ["refused"], out


@pytest.mark.parametrize("flag, host, family", [("-6", "127.0.0.1", "IPv6"), ("-4", "::1", "IPv4")])
def test_probe_of_a_family_the_host_lacks_exits_68(home, flag, host, family):
    p = detour("probe", host, flag, "--ports", "9", "--timeout", "2", home=home)
    assert p.returncode == 68, (p.returncode, p.out, p.err)
    assert "cannot find the %s address of %s" % (family, host) in p.err, p.err
    assert p.out == ""
