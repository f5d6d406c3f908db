"""`deployd verify --bundle FILE`: an offline bundle made by a server (Flask test client) checked
on the site as the command runs (`main`), with every way to the network closed: each bad bundle
fails its own check, with a reason and a fix, and the checks that depend on it are skipped."""

from __future__ import annotations

import json
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from deployd.cli.main import main
from deployd.client.fetch import HttpFetcher
from deployd.offline.archive import write_archive
from tests.support.offline import Vendor, members

CHECKS = [
    "bundle-file",
    "manifest",
    "bundle-license",
    "bundle-expiry",
    "license",
    "bundle-specs",
    "next-release",
    "merge",
    "reconciler",
]
BUNDLE_CHECKS = ["manifest", "bundle-license", "bundle-expiry", "bundle-specs", "next-release"]


@pytest.fixture
def network_uses(monkeypatch) -> list[str]:
    """Every way to the network, closed: each attempt is recorded and fails."""
    attempts: list[str] = []

    def refuse(what: str):
        def refused(*args, **kwargs):
            attempts.append(f"{what} {args[1:2]}")
            raise OSError(f"the network was used: {what}")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(HttpFetcher, "get", refuse("HttpFetcher.get"))
    monkeypatch.setattr(requests.Session, "request", refuse("requests"))
    return attempts


@pytest.fixture
def put(tmp_path):
    """Write bundle bytes where the site receives them; the file's path."""

    def write(data: bytes) -> Path:
        path = tmp_path / "incoming.tar"
        path.write_bytes(data)
        return path

    return write


def verify(capsys, bundle: Path, *args: object) -> tuple[int, dict[str, dict]]:
    """Run `deployd verify --bundle FILE ... --json`; the exit code and the checks by name."""
    code, out = verify_text(capsys, bundle, *args, "--json")
    report = json.loads(out)
    assert report["ok"] is (code == 0)
    return code, {check["name"]: check for check in report["checks"]}


def verify_text(capsys, bundle: Path, *args: object) -> tuple[int, str]:
    argv = ["verify", "--bundle", str(bundle), *map(str, args), "--exec", sys.executable]
    code = main(argv)
    return code, capsys.readouterr().out


def site(vendor: Vendor, license_file: Path, *more: object) -> list[object]:
    return ["--trust-key", vendor.key, "--license-file", license_file, *more]


def statuses(checks: dict[str, dict]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}


# --- a good bundle -----------------------------------------------------------------------------


def test_a_good_bundle_passes_every_check(capsys, vendor, license_file, put, network_uses):
    license = license_file.read_text().strip()
    code, checks = verify(capsys, put(vendor.export(license)), *site(vendor, license_file))
    assert code == 0
    assert list(checks) == CHECKS
    assert set(statuses(checks).values()) == {"pass"}
    assert checks["manifest"]["details"]["key_id"] == "dev-signing"
    assert checks["bundle-license"]["details"]["customer"] == "acme"
    assert checks["bundle-specs"]["details"]["releases"] == ["1.1.0", "1.2.0"]
    step = checks["next-release"]
    assert step["reason"].startswith("on a first install: the agent would apply release 1.2.0")
    assert checks["merge"]["details"]["release"] == "1.2.0"
    assert license not in json.dumps(checks)
    assert network_uses == []


def test_the_text_report_of_a_good_bundle(capsys, vendor, license_file, put, network_uses):
    bundle = vendor.export(license_file.read_text().strip())
    code, out = verify_text(capsys, put(bundle), *site(vendor, license_file))
    lines = out.splitlines()
    assert code == 0
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", name] for name in CHECKS]
    assert "signed by trusted key dev-signing: channel stable, sequence 1" in lines[1]
    assert "specs of channel stable: 1.1.0 (required), 1.2.0" in out
    assert lines[-1] == "9 checks: 9 passed, 0 failed, 0 skipped"


def test_verify_bundle_never_touches_the_network(capsys, vendor, license_file, put, network_uses):
    bundle = vendor.export(license_file.read_text().strip())
    assert verify(capsys, put(bundle), *site(vendor, license_file))[0] == 0
    other = vendor.export(vendor.world.license(customer="globex"))
    assert verify(capsys, put(other), *site(vendor, license_file))[0] == 1
    assert network_uses == []


def run_agent(capsys, tmp_path: Path, vendor: Vendor, license_file: Path, bundle: bytes) -> Path:
    """Apply `bundle` once with `deployd agent --bundle`; the agent's cache directory."""
    path, cache = tmp_path / "applied.tar", tmp_path / "cache"
    path.write_bytes(bundle)
    code = main(
        [
            "agent",
            "--bundle",
            str(path),
            *map(str, site(vendor, license_file, "--cache-dir", cache)),
            "--write",
            str(tmp_path / "out.json"),
            "--once",
            "--no-report",
        ]
    )
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    return cache


def test_the_next_release_steps_from_the_release_the_cache_says_is_applied(
    capsys, tmp_path, vendor, license_file, put, network_uses
):
    license = license_file.read_text().strip()
    cache = run_agent(
        capsys, tmp_path, vendor, license_file, vendor.export(license, releases=["1.0.0"])
    )
    code, checks = verify(
        capsys, put(vendor.export(license)), *site(vendor, license_file, "--cache-dir", cache)
    )
    assert code == 0
    step = checks["next-release"]
    assert step["reason"].startswith(
        f"from release 1.0.0 (applied, in {cache}): the agent would apply release 1.1.0"
    )
    assert (step["details"]["current"], step["details"]["release"]) == ("1.0.0", "1.1.0")


def test_a_bundle_older_than_what_the_agent_applied_fails_the_next_release_check(
    capsys, tmp_path, vendor, license_file, put, network_uses
):
    license = license_file.read_text().strip()
    cache = run_agent(capsys, tmp_path, vendor, license_file, vendor.export(license))
    old = vendor.export(license, releases=["1.0.0"])
    code, checks = verify(capsys, put(old), *site(vendor, license_file, "--cache-dir", cache))
    assert code == 1
    step = checks["next-release"]
    assert (step["status"], step["details"]["refusal"]) == ("fail", "downgrade")
    assert "the bundle is older than what this agent accepted" in step["reason"]
    assert "newer bundle" in step["hint"]
    assert checks["merge"]["status"] == "skip"
    assert [n for n, s in statuses(checks).items() if s != "pass"] == ["next-release", "merge"]


def test_verify_changes_nothing_in_the_agents_cache(
    capsys, tmp_path, vendor, license_file, put, network_uses
):
    license = license_file.read_text().strip()
    cache = run_agent(capsys, tmp_path, vendor, license_file, vendor.export(license))
    (cache / "sequences.json").write_text("damaged")  # the agent would rebuild it
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    code, checks = verify(
        capsys, put(vendor.export(license)), *site(vendor, license_file, "--cache-dir", cache)
    )
    assert code == 0
    assert checks["next-release"]["details"]["current"] == "1.2.0"
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before


def test_a_cache_dir_goes_with_a_bundle_only(capsys, tmp_path):
    code = main(["verify", "--server", "http://127.0.0.1:9", "--cache-dir", str(tmp_path)])
    assert code == 1
    assert "--cache-dir goes with --bundle" in capsys.readouterr().err


# --- bad bundles -------------------------------------------------------------------------------


def flip_spec_byte(data: bytes) -> bytes:
    files = members(data)
    spec = json.loads(files["specs/1.2.0.json"])
    spec["body"] = spec["body"].replace("0.52.0", "0.52.1")
    return write_archive({**files, "specs/1.2.0.json": json.dumps(spec).encode()})


def expired(vendor: Vendor, license: str) -> bytes:
    """A bundle that lasted one second, once the clock is past its expiry."""
    data = vendor.export(license, expiresIn="1s")
    stamp = json.loads(members(data)["manifest.json"])["expires"]
    expires = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    deadline = time.time() + 60
    while time.time() <= expires and time.time() < deadline:
        time.sleep(0.05)
    return data


def untrusted_key(tmp_path: Path) -> Path:
    out = tmp_path / "other-keys"
    assert main(["keys", "generate", "--out", str(out), "--kid", "other-signing"]) == 0
    return out / "other-signing.pub"  # (what it printed is read before the next command's)


# case: (the bundle, the trusted key, the check that fails, its refusal, words of its reason,
#        the checks skipped after it)
BAD = {
    "tampered": (
        lambda v, lic, tmp: flip_spec_byte(v.export(lic)),
        None,
        "manifest",
        "tampered",
        "specs/1.2.0.json is not the file the signed manifest names (changed)",
        BUNDLE_CHECKS[1:] + ["merge"],
    ),
    "truncated": (
        lambda v, lic, tmp: v.export(lic)[:6000],
        None,
        "bundle-file",
        "not_a_bundle",
        "not an offline bundle (a damaged or truncated tar)",
        BUNDLE_CHECKS + ["merge"],
    ),
    "expired": (
        lambda v, lic, tmp: expired(v, lic),
        None,
        "bundle-expiry",
        "bundle_expired",
        "the bundle expired at",
        ["bundle-specs", "next-release", "merge"],
    ),
    "for another license": (
        lambda v, lic, tmp: v.export(v.world.license(customer="globex")),
        None,
        "bundle-license",
        "wrong_license",
        "the bundle is for customer 'globex', not for this license's 'acme'",
        ["next-release", "merge"],
    ),
    "signed by an untrusted key": (
        lambda v, lic, tmp: v.export(lic),
        untrusted_key,
        "manifest",
        "bad_manifest",
        "the manifest is signed by key id 'dev-signing', which is not pinned (--trust-key)",
        BUNDLE_CHECKS[1:] + ["merge"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_bundle_fails_its_check_and_skips_what_depends_on_it(
    capsys, tmp_path, vendor, license_file, put, network_uses, case
):
    make, key, failing, refusal, words, skipped = BAD[case]
    license = license_file.read_text().strip()
    trust = key(tmp_path) if key else vendor.key
    capsys.readouterr()
    args = ["--trust-key", trust, "--license-file", license_file]
    code, checks = verify(capsys, put(make(vendor, license, tmp_path)), *args)
    assert code == 1
    check = checks[failing]
    assert (check["status"], check["details"]["refusal"]) == ("fail", refusal)
    assert words in check["reason"]
    assert check["hint"]
    assert [n for n, s in statuses(checks).items() if s == "fail"] == [failing]
    assert [n for n, s in statuses(checks).items() if s == "skip"] == skipped
    assert checks[skipped[0]]["reason"].startswith("not checked: ")
    assert network_uses == []


def test_a_failed_check_prints_its_fix(capsys, tmp_path, vendor, license_file, put, network_uses):
    bundle = vendor.export(license_file.read_text().strip())
    args = ["--trust-key", untrusted_key(tmp_path), "--license-file", license_file]
    capsys.readouterr()
    code, out = verify_text(capsys, put(bundle), *args)
    assert code == 1
    lines = out.splitlines()
    assert lines[1].startswith("FAIL  manifest ")
    assert lines[2].strip().startswith("fix: trust the vendor's spec-signing key: --trust-key")
    assert lines[-1] == "9 checks: 3 passed, 1 failed, 5 skipped"
