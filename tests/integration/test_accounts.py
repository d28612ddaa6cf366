"""`detourctl user ...` (SPEC.md, accounts) against a running detourd: every
change is seen by the next login without a reload, and logins go through a
real STARTTLS session from an untrusted address.

Every password used here is recorded; the last test greps the logs of this
module's relays for it.
"""

import json
import os
import re
import secrets
import subprocess
import warnings

import pytest

from helpers import b64, plain_blob, tls_section

UNTRUSTED = "192.0.2.0/24 2001:db8::/32"
SECRETS = []
LOGS = []

EX_USAGE = 64
EX_DATAERR = 65

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # Debian's python3.11 still has it; it calls libxcrypt


def secret(tag, user=None):
    pw = "Acct-%s-%s" % (tag, secrets.token_hex(8))
    SECRETS.append((user, pw))
    return pw


@pytest.fixture(scope="module")
def srv(module_relays, tls_certs):
    r = module_relays.new(name="accounts", trusted=UNTRUSTED, listeners={
        "submission": {"tls": "starttls", "auth": "required"},
    }, limits={"auth_failure_delay": "100ms", "auth_failures": "100000/1m"},
        extra_sections=tls_section(tls_certs["cert"], tls_certs["key"]))
    LOGS.append(r.log_path)
    return r


def ctl(srv, *args, password=None):
    return srv.ctl(*args, input=(password + "\n").encode() if password is not None else None)


def add(srv, address, password):
    p = ctl(srv, "user", "add", address, "--password-stdin", password=password)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and password not in p.stderr, p
    return p


def auth(srv, user, password, mech="PLAIN"):
    """Log in over STARTTLS; returns (the AUTH reply, the MAIL FROM reply
    for `user` when it worked)."""
    with srv.client(listener="submission") as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        if mech == "PLAIN":
            r = c.cmd("AUTH PLAIN " + plain_blob(user, password))
        else:
            c.expect("AUTH LOGIN " + b64(user), 334)
            r = c.cmd(b64(password))
        return r


def can_send_as(srv, user, password, sender):
    with srv.client(listener="submission") as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_blob(user, password))
        assert r.is_(235, "2.7.0"), r
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.code in (250, 553), r
        if r.code == 553:
            assert r.enh == "5.7.1", r
        return r.code == 250


def listing(srv):
    p = srv.ctl("user", "list", "--json")
    assert p.returncode == 0, p.stderr
    return {a["address"]: a for a in json.loads(p.stdout)}


# -- add --------------------------------------------------------------------------

def test_add_without_a_password_prints_a_generated_one_that_works(srv):
    p = srv.ctl("user", "add", "gen@example.org")
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(r"Password for gen@example\.org: (\S+)\n", p.stdout)
    assert m, p.stdout
    pw = m.group(1)
    SECRETS.append(("gen@example.org", pw))
    assert len(pw) >= 16 and re.fullmatch(r"[A-Za-z0-9]+", pw), pw
    assert auth(srv, "gen@example.org", pw).is_(235, "2.7.0")
    assert auth(srv, "gen@example.org", pw, "LOGIN").is_(235, "2.7.0")
    # Printed once: never again, in no listing.
    for args in (("user", "list"), ("user", "list", "--json")):
        out = srv.ctl(*args)
        assert pw not in out.stdout + out.stderr
    # A second add is refused and prints no new password.
    p2 = srv.ctl("user", "add", "gen@example.org")
    assert p2.returncode == EX_DATAERR and "already exists" in p2.stderr and "Password" not in p2.stdout, p2
    assert auth(srv, "gen@example.org", pw).is_(235, "2.7.0")


def test_two_generated_passwords_differ(srv):
    pws = []
    for name in ("gen2@example.org", "gen3@example.org"):
        p = srv.ctl("user", "add", name)
        assert p.returncode == 0, p.stderr
        pws.append(p.stdout.rsplit(": ", 1)[1].strip())
        SECRETS.append((name, pws[-1]))
    assert pws[0] != pws[1]


def test_add_with_password_stdin(srv):
    pw = secret("stdin", "stdin@example.org")
    add(srv, "stdin@example.org", pw)
    assert auth(srv, "stdin@example.org", pw).is_(235, "2.7.0")
    assert auth(srv, "stdin@example.org", pw + "x").is_(535, "5.7.8")
    # A CRLF line end is not part of the password.
    pw2 = secret("crlf", "crlf@example.org")
    p = srv.ctl("user", "add", "crlf@example.org", "--password-stdin", input=(pw2 + "\r\n").encode())
    assert p.returncode == 0, p.stderr
    assert auth(srv, "crlf@example.org", pw2).is_(235, "2.7.0")


@pytest.mark.parametrize("data,why", [(b"\n", "empty"), (b"", "empty"), (b"x" * 512 + b"\n", "longer than 511"),
                                      (b"a\0b\n", "NUL")])
def test_add_with_an_unusable_password_is_refused(srv, data, why):
    p = srv.ctl("user", "add", "refused@example.org", "--password-stdin", input=data)
    assert p.returncode == EX_DATAERR, p
    assert p.stderr.startswith("detourctl: ") and why.split()[0] in p.stderr, p.stderr
    assert "refused@example.org" not in listing(srv)


def test_longest_password_511_bytes(srv):
    pw = (secret("511", "long511@example.org") + "y" * 511)[:511]
    SECRETS.append(("long511@example.org", pw))
    add(srv, "long511@example.org", pw)
    assert auth(srv, "long511@example.org", pw).is_(235, "2.7.0")


# -- add --hash ----------------------------------------------------------------------

def openssl_passwd(flag, pw):
    p = subprocess.run(["openssl", "passwd", flag, "-stdin"], input=(pw + "\n").encode(), capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().strip()


def make_hash(kind, pw):
    if kind == "sha512-openssl":
        return openssl_passwd("-6", pw)
    if kind == "sha256-openssl":
        return openssl_passwd("-5", pw)
    if kind == "sha512-rounds":
        # glibc writes an explicit default round count like this.
        return crypt.crypt(pw, "$6$rounds=5000$" + secrets.token_hex(4) + "$")
    if kind == "sha512-many-rounds":
        return crypt.crypt(pw, "$6$rounds=20000$" + secrets.token_hex(4) + "$")
    if kind == "bcrypt":
        return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=256))
    if kind == "yescrypt":
        return crypt.crypt(pw, "$y$j9T$" + secrets.token_hex(8) + "$")
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["sha512-openssl", "sha256-openssl", "sha512-rounds", "sha512-many-rounds",
                                  "bcrypt", "yescrypt"])
def test_add_hash_imports_an_existing_crypt_hash(srv, kind):
    user = "hash-%s@example.org" % kind
    pw = secret("hash-" + kind, user)
    h = make_hash(kind, pw)
    SECRETS.append((None, h))
    p = srv.ctl("user", "add", user, "--hash", h)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and h not in p.stderr, p
    assert auth(srv, user, pw).is_(235, "2.7.0")
    assert auth(srv, user, pw + "!", "LOGIN").is_(535, "5.7.8")
    # passwd --hash replaces it.
    pw2 = secret("hash2-" + kind, user)
    h2 = make_hash(kind, pw2)
    SECRETS.append((None, h2))
    p = srv.ctl("user", "passwd", user, "--hash=" + h2)
    assert p.returncode == 0, p.stderr
    assert auth(srv, user, pw).is_(535, "5.7.8")
    assert auth(srv, user, pw2).is_(235, "2.7.0")


@pytest.mark.parametrize("kind", ["md5", "des", "locked", "truncated", "not-a-hash", "spaces"])
def test_add_hash_refuses_weak_or_malformed_hashes(srv, kind):
    good = make_hash("sha512-openssl", "whatever")
    h = {
        "md5": lambda: openssl_passwd("-1", "whatever"),
        "des": lambda: "abJnggxhB/yWI",
        "locked": lambda: "!" + good,
        "truncated": lambda: good[:-10],
        "not-a-hash": lambda: "password123",
        "spaces": lambda: good[:20] + " " + good[20:],
    }[kind]()
    user = "weak-%s@example.org" % kind
    p = srv.ctl("user", "add", user, "--hash", h)
    assert p.returncode == EX_DATAERR, p
    assert p.stderr.startswith("detourctl: ") and len(p.stderr.strip()) > 20, p.stderr
    if kind == "md5":
        assert "MD5" in p.stderr, p.stderr
    if kind == "des":
        assert "DES" in p.stderr, p.stderr
    assert user not in listing(srv)


def test_hash_and_password_stdin_together_is_a_usage_error(srv):
    p = srv.ctl("user", "add", "both@example.org", "--password-stdin", "--hash", make_hash("sha256-openssl", "x"),
                input=b"x\n")
    assert p.returncode == EX_USAGE, p
    assert "both@example.org" not in listing(srv)


# -- list -------------------------------------------------------------------------

def test_list_json_has_every_field_and_no_hash(srv):
    pw = secret("list", "list-b@example.org")
    add(srv, "list-b@example.org", pw)
    add(srv, "list-a@example.org", secret("list", "list-a@example.org"))
    assert srv.ctl("user", "allow", "list-b@example.org", "@EXAMPLE.COM").returncode == 0
    assert srv.ctl("user", "allow", "list-b@example.org", "Info@Example.NET").returncode == 0
    p = srv.ctl("user", "list", "--json")
    assert p.returncode == 0, p.stderr
    accounts = json.loads(p.stdout)
    assert isinstance(accounts, list)
    addresses = [a["address"] for a in accounts]
    assert addresses == sorted(addresses), addresses
    b = next(a for a in accounts if a["address"] == "list-b@example.org")
    assert set(b) >= {"address", "senders", "suspended", "created"}, b
    # Patterns are stored normalized: the domain in lower case, the local
    # part exactly.
    assert sorted(b["senders"]) == ["@example.com", "Info@example.net"], b
    assert b["suspended"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b["created"]), b
    a = next(a for a in accounts if a["address"] == "list-a@example.org")
    assert a["senders"] == []
    assert not re.search(r"\$(y|2[aby]|5|6)\$", p.stdout), p.stdout
    # The human form: one line per account, its patterns, and a total.
    p = srv.ctl("user", "list")
    assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if l.startswith("list-b@example.org"))
    assert "@example.com" in line and "Info@example.net" in line, p.stdout
    assert re.search(r"^-- %d accounts?$" % len(accounts), p.stdout, re.M), p.stdout
    assert not re.search(r"\$(y|2[aby]|5|6)\$", p.stdout), p.stdout


def test_list_before_any_account_is_empty_not_an_error(relays):
    r = relays.new(start=False, name="empty")
    LOGS.append(r.log_path)
    os.makedirs(r.state_dir, exist_ok=True)
    p = r.ctl("user", "list", "--json")
    assert p.returncode == 0 and json.loads(p.stdout) == [], p
    p = r.ctl("user", "list")
    assert p.returncode == 0 and "-- 0 accounts" in p.stdout, p


# -- allow / disallow ------------------------------------------------------------------

def test_allow_and_disallow_change_what_an_account_may_send_as(srv):
    user = "sender@example.org"
    pw = secret("sender", user)
    add(srv, user, pw)
    assert can_send_as(srv, user, pw, user)
    assert not can_send_as(srv, user, pw, "anyone@example.com")
    assert not can_send_as(srv, user, pw, "Info@example.net")

    assert srv.ctl("user", "allow", user, "@Example.COM").returncode == 0
    assert srv.ctl("user", "allow", user, "Info@EXAMPLE.net").returncode == 0
    assert can_send_as(srv, user, pw, "anyone@example.com")
    assert can_send_as(srv, user, pw, "anyone@EXAMPLE.com")
    assert can_send_as(srv, user, pw, "Info@example.net")
    assert not can_send_as(srv, user, pw, "info@example.net")
    assert not can_send_as(srv, user, pw, "x@sub.example.com")

    assert srv.ctl("user", "disallow", user, "@example.com").returncode == 0
    assert not can_send_as(srv, user, pw, "anyone@example.com")
    assert can_send_as(srv, user, pw, "Info@example.net")
    assert srv.ctl("user", "disallow", user, "Info@example.net").returncode == 0
    assert not can_send_as(srv, user, pw, "Info@example.net")
    assert can_send_as(srv, user, pw, user)
    assert listing(srv)[user]["senders"] == []


def test_allow_and_disallow_edge_cases(srv):
    user = "edges@example.org"
    add(srv, user, secret("edges", user))
    assert srv.ctl("user", "allow", user, "@example.com").returncode == 0
    # Allowing again, or allowing itself: the end state is what was asked.
    p = srv.ctl("user", "allow", user, "@EXAMPLE.com")
    assert p.returncode == 0 and "already" in p.stderr, p
    p = srv.ctl("user", "allow", user, "edges@EXAMPLE.org")
    assert p.returncode == 0 and "itself" in p.stderr, p
    assert listing(srv)[user]["senders"] == ["@example.com"]
    # Disallowing what was not allowed, or itself, is an error.
    p = srv.ctl("user", "disallow", user, "@example.net")
    assert p.returncode == EX_DATAERR and p.stderr.startswith("detourctl: "), p
    p = srv.ctl("user", "disallow", user, user)
    assert p.returncode == EX_DATAERR and "itself" in p.stderr, p
    # No such account.
    for verb in ("allow", "disallow"):
        p = srv.ctl("user", verb, "nobody@example.org", "@example.com")
        assert p.returncode == EX_DATAERR and "no such account" in p.stderr, p
    # Malformed patterns.
    for pattern in ("@", "example.com", "@exa mple.com", "a@", "@@example.com", ""):
        p = srv.ctl("user", "allow", user, pattern)
        assert p.returncode == EX_DATAERR and p.stderr.startswith("detourctl: "), (pattern, p)
    assert listing(srv)[user]["senders"] == ["@example.com"]


# -- del / passwd ---------------------------------------------------------------------

def test_del_removes_the_account_and_its_patterns(srv):
    user = "gone@example.org"
    pw = secret("gone", user)
    add(srv, user, pw)
    assert srv.ctl("user", "allow", user, "@example.com").returncode == 0
    assert auth(srv, user, pw).is_(235, "2.7.0")
    p = srv.ctl("user", "del", user)
    assert p.returncode == 0, p.stderr
    assert user not in listing(srv)
    assert auth(srv, user, pw).is_(535, "5.7.8")
    p = srv.ctl("user", "del", user)
    assert p.returncode == EX_DATAERR and "no such account" in p.stderr, p
    # Re-created, it has none of the old permissions (nor the old password).
    pw2 = secret("gone2", user)
    add(srv, user, pw2)
    assert listing(srv)[user]["senders"] == []
    assert auth(srv, user, pw).is_(535, "5.7.8")
    assert not can_send_as(srv, user, pw2, "anyone@example.com")


def test_passwd(srv):
    user = "pw@example.org"
    old = secret("pw-old", user)
    add(srv, user, old)
    p = srv.ctl("user", "passwd", user)
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(r"Password for pw@example\.org: (\S+)\n", p.stdout)
    assert m, p.stdout
    SECRETS.append((user, m.group(1)))
    assert auth(srv, user, old).is_(535, "5.7.8")
    assert auth(srv, user, m.group(1)).is_(235, "2.7.0")
    p = srv.ctl("user", "passwd", "nobody@example.org", "--password-stdin", input=b"whatever\n")
    assert p.returncode == EX_DATAERR and "no such account" in p.stderr, p


# -- addresses ------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["not-an-address", "@example.org", "alice@", "alice@@example.org",
                                     "<alice@example.org>", "alice@exa mple.org", "al ice@example.org",
                                     "alice@example..org", ""])
@pytest.mark.parametrize("verb", ["add", "passwd", "del", "allow"])
def test_malformed_address_is_exit_65_with_a_clear_message(srv, address, verb):
    args = ["user", verb, address] + (["@example.com"] if verb == "allow" else [])
    if verb in ("add", "passwd"):
        args.append("--password-stdin")
    p = srv.ctl(*args, input=b"never-read\n")
    assert p.returncode == EX_DATAERR, p
    assert p.stderr.startswith("detourctl: ") and "not a valid address" in p.stderr, p.stderr
    assert p.stdout == ""


def test_domain_is_case_insensitive_and_local_part_exact(srv):
    pw = secret("Bob", "Bob@example.org")
    p = ctl(srv, "user", "add", "Bob@EXAMPLE.Org", "--password-stdin", password=pw)
    assert p.returncode == 0, p.stderr
    assert "Bob@example.org" in listing(srv)
    # The same account, whichever case the domain is written in.
    p = ctl(srv, "user", "add", "Bob@example.ORG", "--password-stdin", password="x" + pw)
    assert p.returncode == EX_DATAERR and "already exists" in p.stderr, p
    for login in ("Bob@example.org", "Bob@EXAMPLE.ORG", "Bob@Example.Org"):
        assert auth(srv, login, pw).is_(235, "2.7.0"), login
    for login in ("bob@example.org", "BOB@example.org"):
        assert auth(srv, login, pw).is_(535, "5.7.8"), login
    # A lower-case "bob" is another account.
    pw2 = secret("bob", "bob@example.org")
    add(srv, "bob@example.org", pw2)
    assert auth(srv, "bob@example.org", pw2).is_(235, "2.7.0")
    assert auth(srv, "bob@example.org", pw).is_(535, "5.7.8")
    assert auth(srv, "Bob@example.org", pw2).is_(535, "5.7.8")
    # del with another case of the domain removes Bob, not bob.
    assert srv.ctl("user", "del", "Bob@EXAMPLE.ORG").returncode == 0
    accounts = listing(srv)
    assert "Bob@example.org" not in accounts and "bob@example.org" in accounts


@pytest.mark.parametrize("args", [("user",), ("user", "add"), ("user", "list", "extra"), ("user", "frobnicate"),
                                  ("user", "allow", "a@example.org"), ("user", "del", "a@example.org", "b@example.org"),
                                  ("user", "list", "--password-stdin"), ("user", "add", "a@example.org", "--hash")])
def test_usage_errors_exit_64(srv, args):
    p = srv.ctl(*args)
    assert p.returncode == EX_USAGE, p
    # What was wrong, or the forms the command takes.
    assert "usage" in p.stderr.lower() or "unknown" in p.stderr.lower() or "user add ADDRESS" in p.stderr, p.stderr
    assert p.stdout == "", p.stdout


# -- keep last ------------------------------------------------------------------------

def test_no_password_or_hash_in_any_log():
    forms = set()
    for user, pw in SECRETS:
        forms.add(pw)
        forms.add(b64(pw))
        if user:
            forms.add(plain_blob(user, pw))
    checked = 0
    for path in LOGS:
        if not os.path.exists(path):
            continue
        checked += 1
        text = open(path, "rb").read().decode("utf-8", "replace")
        for s in forms:
            assert s not in text, "%s holds a secret (%r...)" % (path, s[:12])
    assert checked >= 1
