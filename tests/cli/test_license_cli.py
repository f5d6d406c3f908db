"""`deployd keys generate` and `deployd license issue|inspect|revoke`, run through the CLI entry."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployd.cli.main import main
from deployd.errors import LicenseError
from deployd.licensing.keyring import KeyRing
from deployd.licensing.tokens import LicenseVerifier, issue_license
from deployd.server.settings import Settings, settings_from_env
from deployd.store import open_store


@pytest.fixture
def keys_dir(tmp_path, capsys):
    """A directory holding a fresh EdDSA key pair `vendor` made by `deployd keys generate`."""
    directory = tmp_path / "keys"
    assert main(["keys", "generate", "--out", str(directory), "--kid", "vendor"]) == 0
    capsys.readouterr()
    return directory


def issue(capsys, keys_dir, *extra: str) -> str:
    """`deployd license issue` with the `vendor` key; returns stdout."""
    arguments = ["license", "issue", "--key", str(keys_dir / "vendor.key")]
    arguments += ["--customer", "acme", "--channel", "stable", *extra]
    assert main(arguments) == 0
    return capsys.readouterr().out


def verify(keys_dir, unverified_token: str, **options):
    return LicenseVerifier(KeyRing.from_dir(keys_dir), **options).verify(unverified_token)


# keys generate


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_keys_generate_writes_a_private_key_only_its_owner_can_read(tmp_path, capsys, alg):
    assert main(["keys", "generate", "--out", str(tmp_path), "--kid", "k1", "--alg", alg]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(tmp_path / "k1.key"),
        str(tmp_path / "k1.pub"),
    ]
    assert stat.S_IMODE((tmp_path / "k1.key").stat().st_mode) == 0o600
    assert "PRIVATE KEY" in (tmp_path / "k1.key").read_text()
    assert KeyRing.from_dir(tmp_path).get("k1").alg == alg


@pytest.mark.parametrize("existing", ["old.key", "old.pub"])
def test_keys_generate_never_overwrites_a_key(tmp_path, capsys, existing):
    (tmp_path / existing).write_text("precious")
    assert main(["keys", "generate", "--out", str(tmp_path), "--kid", "old"]) == 1
    captured = capsys.readouterr()
    assert "refusing to overwrite" in captured.err and captured.out == ""
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


@pytest.mark.parametrize("kid", ["../escape", "a/b", "", "-dash", "x" * 65])
def test_keys_generate_refuses_a_key_id_that_is_not_a_plain_name(tmp_path, capsys, kid):
    assert main(["keys", "generate", "--out", str(tmp_path / "k"), f"--kid={kid}"]) == 1
    assert "key id" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


# license issue


def test_license_issue_prints_a_single_license_that_verifies(keys_dir, capsys):
    out = issue(capsys, keys_dir, "--channels", "stable,beta", "--expires-in", "12h")
    assert out.endswith("\n") and len(out.splitlines()) == 1
    license = verify(keys_dir, out.strip())
    assert (license.customer, license.channel, license.kid) == ("acme", "stable", "vendor")
    assert license.channels == ("stable", "beta")
    assert license.expires_at - license.issued_at == 12 * 3600


def test_license_issue_defaults_to_thirty_days_and_the_configured_issuer(
    keys_dir, capsys, monkeypatch
):
    monkeypatch.setenv("DEPLOYD_ISSUER", "vendor.example")
    monkeypatch.setenv("DEPLOYD_AUDIENCE", "prod")
    license = verify(
        keys_dir, issue(capsys, keys_dir).strip(), issuer="vendor.example", audience="prod"
    )
    assert license.expires_at - license.issued_at == 30 * 86400
    assert license.claims["aud"] == "prod"


def test_license_issue_takes_issuer_and_audience(keys_dir, capsys):
    out = issue(capsys, keys_dir, "--issuer", "vendor.example", "--audience", "prod")
    license = verify(keys_dir, out.strip(), issuer="vendor.example", audience="prod")
    assert (license.issuer, license.claims["aud"]) == ("vendor.example", "prod")


@pytest.mark.parametrize(
    ("claim", "name", "value"),
    [
        ("seats=10", "seats", 10),
        ("ratio=0.5", "ratio", 0.5),
        ("trial=true", "trial", True),
        ('features=["sso", "audit"]', "features", ["sso", "audit"]),
        ('limits={"projects": 3}', "limits", {"projects": 3}),
        ('code="10"', "code", "10"),
        ("plan=enterprise", "plan", "enterprise"),
        ("formula=a=b", "formula", "a=b"),
        ("note=", "note", ""),
        ("weird=NaN", "weird", "NaN"),
    ],
)
def test_claim_values_are_json_when_they_parse_and_strings_otherwise(
    keys_dir, capsys, claim, name, value
):
    license = verify(keys_dir, issue(capsys, keys_dir, "--claim", claim).strip())
    assert license.claims[name] == value


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--claim", "seats"], "must look like NAME=VALUE"),
        (["--claim", "=10"], "must look like NAME=VALUE"),
        (["--claim", "exp=1"], "reserved"),
        (["--claim", 'channels=["all"]'], "reserved"),
        (["--expires-in", "forever"], "duration"),
        (["--channels", "beta"], "must be one of the license's channels"),
        (["--channel", "Bad Name!"], "can never be a channel's name"),
        (["--channels", "stable,Beta"], "can never be a channel's name"),
    ],
)
def test_license_issue_refuses_bad_arguments(keys_dir, capsys, arguments, complaint):
    base = ["license", "issue", "--key", str(keys_dir / "vendor.key")]
    assert main([*base, "--customer", "acme", "--channel", "stable", *arguments]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and complaint in captured.err


def test_license_issue_warns_about_a_key_others_can_read(keys_dir, capsys):
    os.chmod(keys_dir / "vendor.key", 0o644)
    arguments = ["license", "issue", "--key", str(keys_dir / "vendor.key")]
    assert main([*arguments, "--customer", "acme", "--channel", "stable"]) == 0
    captured = capsys.readouterr()
    assert "warning: vendor.key: private key is readable by group or others" in captured.err
    assert verify(keys_dir, captured.out.strip()).customer == "acme"


def test_the_public_development_key_is_not_warned_about(tmp_path, capsys):
    # git checks keys/dev.key out 0644; it is public anyway, so a readable-by-others warning would
    # only be noise in every walk-through (production refuses the development key instead).
    repo = Path(__file__).resolve().parents[2]
    dev_key = tmp_path / "dev.key"
    dev_key.write_bytes((repo / "keys" / "dev.key").read_bytes())
    os.chmod(dev_key, 0o644)
    arguments = ["license", "issue", "--key", str(dev_key), "--customer", "acme"]
    assert main([*arguments, "--channel", "stable"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.count(".") == 2


@pytest.mark.parametrize("mode", [0o660, 0o606])
def test_license_issue_refuses_a_key_others_can_write(keys_dir, capsys, mode):
    os.chmod(keys_dir / "vendor.key", mode)
    arguments = ["license", "issue", "--key", str(keys_dir / "vendor.key")]
    assert main([*arguments, "--customer", "acme", "--channel", "stable"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "writable by group or others" in captured.err


def test_license_issue_names_a_missing_key_file(tmp_path, capsys):
    arguments = ["license", "issue", "--key", str(tmp_path / "gone.key")]
    assert main([*arguments, "--customer", "acme", "--channel", "stable"]) == 1
    assert "gone.key" in capsys.readouterr().err


# license inspect


def inspect(capsys, monkeypatch, keys_dir, unverified_token: str, *, stdin: bool = False):
    """Run `deployd license inspect`; return its exit code and captured stdout and stderr."""
    arguments = ["license", "inspect", "--keys-dir", str(keys_dir)]
    if stdin:
        monkeypatch.setattr("sys.stdin", io.StringIO(unverified_token + "\n"))
    else:
        arguments.append(unverified_token)
    code = main(arguments)
    return code, capsys.readouterr()


@pytest.mark.parametrize("stdin", [False, True], ids=["argument", "stdin"])
def test_inspect_shows_header_and_claims_of_a_valid_license(keys_dir, capsys, monkeypatch, stdin):
    unverified_token = issue(capsys, keys_dir, "--claim", "seats=10").strip()
    code, captured = inspect(capsys, monkeypatch, keys_dir, unverified_token, stdin=stdin)
    out = captured.out
    assert code == 0
    assert out.splitlines()[-1] == "code: valid"
    header_text = out.split("header:\n", 1)[1].split("claims:\n", 1)[0]
    claims_text = out.split("claims:\n", 1)[1].rsplit("code:", 1)[0]
    assert json.loads(header_text) == {"alg": "EdDSA", "kid": "vendor", "typ": "JWT"}
    assert json.loads(claims_text)["seats"] == 10
    assert unverified_token not in out


def test_inspect_reads_the_key_ring_from_the_environment(keys_dir, capsys, monkeypatch):
    monkeypatch.setenv("DEPLOYD_KEYS_DIR", str(keys_dir))
    unverified_token = issue(capsys, keys_dir).strip()
    assert main(["license", "inspect", unverified_token]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "code: valid"


def vendor_license(keys_dir, **changes) -> str:
    """A license signed with the `vendor` key, made without the CLI."""
    arguments = {"customer": "acme", "channel": "stable", "expires_in": timedelta(days=1)}
    return issue_license(keys_dir / "vendor.key", **{**arguments, **changes})


def signed_by_an_unknown_key(keys_dir) -> str:
    (keys_dir / "vendor.pub").rename(keys_dir / "elsewhere.pub")
    return vendor_license(keys_dir)


@pytest.mark.parametrize(
    ("make", "code", "decodable"),
    [
        (lambda d: vendor_license(d, now=datetime.now(UTC) - timedelta(days=2)), "expired", True),
        (lambda d: vendor_license(d, issuer="someone-else"), "wrong_issuer", True),
        (signed_by_an_unknown_key, "unknown_key", True),
        (lambda d: "not-a-license", "malformed", False),
        (lambda d: "bm90.anNvbg.c2ln", "malformed", False),
    ],
)
def test_inspect_reports_why_a_license_is_refused(
    keys_dir, capsys, monkeypatch, make, code, decodable
):
    unverified_token = make(keys_dir)
    exit_code, captured = inspect(capsys, monkeypatch, keys_dir, unverified_token)
    out = captured.out
    assert exit_code == 1
    assert out.splitlines()[-1].startswith(f"code: {code} (")
    assert ("(cannot be decoded)" not in out) == decodable
    assert unverified_token not in out


def test_inspect_of_nothing_is_missing(keys_dir, capsys, monkeypatch):
    exit_code, captured = inspect(capsys, monkeypatch, keys_dir, "", stdin=True)
    assert exit_code == 1
    assert captured.out.splitlines()[-1] == "code: missing (no license was given)"


# The token is a secret: only `license issue` prints it, on stdout.


def test_no_output_or_log_but_issue_stdout_ever_contains_the_license(
    keys_dir, capsys, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    os.chmod(keys_dir / "vendor.key", 0o640)  # so issuing warns on stderr
    arguments = ["license", "issue", "--key", str(keys_dir / "vendor.key")]
    assert main([*arguments, "--customer", "acme", "--channel", "stable"]) == 0
    captured = capsys.readouterr()
    unverified_token = captured.out.strip()
    leaks = [captured.err]

    tampered = unverified_token[:-4] + ("AAAA" if not unverified_token.endswith("AAAA") else "BBBB")
    for candidate in (unverified_token, tampered):
        for stdin in (False, True):
            leaks += inspect(capsys, monkeypatch, keys_dir, candidate, stdin=stdin)[1]
    assert (
        main(["license", "revoke", unverified_token, "--redis-url", "redis://127.0.0.1:1/0"]) == 1
    )
    leaks += list(capsys.readouterr())
    leaks.append(caplog.text)

    for text in leaks:
        assert unverified_token not in text
        assert unverified_token.split(".")[2] not in text


# license revoke


def test_license_revoke_records_the_revocation_in_redis(redis_server, real_redis, keys_dir, capsys):
    unverified_token = issue(capsys, keys_dir).strip()
    jti = verify(keys_dir, unverified_token).jti
    revoke = ["license", "revoke", jti, "--reason", "refunded", "--redis-url", redis_server.url]
    assert main(revoke) == 0
    assert capsys.readouterr().out == f"revoked license {jti}\n"

    store = open_store(Settings(redis_url=redis_server.url))
    assert store.is_revoked(jti)
    with pytest.raises(LicenseError) as raised:
        verify(keys_dir, unverified_token, is_revoked=store.is_revoked)
    assert raised.value.code == "revoked"

    assert main(revoke) == 0
    assert capsys.readouterr().out == f"license {jti} was already revoked\n"


def test_license_revoke_finds_redis_in_the_environment(
    redis_server, real_redis, monkeypatch, capsys
):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["license", "revoke", "0123abcd"]) == 0
    assert open_store(settings_from_env()).is_revoked("0123abcd")


def test_license_revoke_refuses_to_revoke_into_a_store_that_forgets(capsys):
    assert main(["license", "revoke", "0123abcd"]) == 1
    assert "pass --redis-url or set REDIS_URL" in capsys.readouterr().err


def test_license_revoke_reports_an_unreachable_store(capsys):
    assert main(["license", "revoke", "0123abcd", "--redis-url", "redis://127.0.0.1:1/0"]) == 1
    assert capsys.readouterr().err.startswith("deployd: error: ")


@pytest.mark.parametrize("jti", ["", "   ", "x" * 129, "tab\there"])
def test_license_revoke_refuses_what_is_no_license_id(capsys, jti):
    assert main(["license", "revoke", jti, "--redis-url", "redis://127.0.0.1:1/0"]) == 1
    assert "not a license id" in capsys.readouterr().err
