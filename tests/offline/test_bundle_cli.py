"""`deployd bundle import|inspect` on the customer's side, run as the command runs (`main`), with
hostile files: each is refused with one `deployd: error:` line and the agent's cache untouched."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from deployd.cli.main import main
from deployd.offline.archive import write_archive
from deployd.publishers import Scopes
from tests.support.live import serving
from tests.support.offline import members
from tests.support.world import World


@pytest.fixture
def bundle(vendor, license_file):
    return vendor.export(license_file.read_text().strip())


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def import_bundle(capsys, tmp_path, vendor, license_file, data: bytes) -> tuple[int, str, str]:
    path = tmp_path / "incoming.tar"
    path.write_bytes(data)
    return run(
        capsys,
        "bundle",
        "import",
        path,
        "--trust-key",
        vendor.key,
        "--license-file",
        license_file,
        "--cache-dir",
        tmp_path / "cache",
    )


def test_import_keeps_a_verified_bundle_in_the_cache(
    capsys, tmp_path, vendor, license_file, bundle
):
    code, out, err = import_bundle(capsys, tmp_path, vendor, license_file, bundle)
    assert (code, err) == (0, "")
    assert "imported the offline bundle for customer acme (channel stable, sequence 1" in out
    assert "next release to apply on a first install: 1.2.0" in out
    assert (tmp_path / "cache" / "offline-bundle.tar").read_bytes() == bundle


def test_inspect_shows_the_contents_and_whether_they_verify(
    capsys, tmp_path, vendor, license_file, bundle
):
    path = tmp_path / "b.tar"
    path.write_bytes(bundle)
    code, out, _ = run(capsys, "bundle", "inspect", path)
    assert code == 0
    assert "for customer acme" in out and "specs: 1.1.0 (required), 1.2.0" in out
    assert "verified: not checked" in out
    code, out, _ = run(
        capsys, "bundle", "inspect", path, "--trust-key", vendor.key, "--license-file", license_file
    )
    assert code == 0
    assert "verified: yes: manifest and 2 specs signed by dev-signing" in out
    tampered = {**members(bundle), "license.jwt": b"someone-else\n"}
    path.write_bytes(write_archive(tampered))
    code, out, _ = run(capsys, "bundle", "inspect", path, "--trust-key", vendor.key)
    assert code == 1
    assert "verified: NO (tampered): license.jwt is not the file the signed manifest names" in out


def tar_of(*entries: tarfile.TarInfo, data: dict[str, bytes] | None = None) -> bytes:
    """A tar of the given headers (regular files get `data[name]`, default empty)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info in entries:
            content = (data or {}).get(info.name, b"")
            if info.isreg():
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def with_member(bundle: bytes, info: tarfile.TarInfo, content: bytes = b"") -> bytes:
    """`bundle` with one more member appended (its own members first, as written)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members(bundle).items():
            tar.addfile(_sized(name, data), io.BytesIO(data))
        if info.isreg():
            info.size = len(content)
        tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def _sized(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


HOSTILE = {
    "path traversal": (
        lambda b: with_member(b, entry("../../etc/cron.d/evil"), b"* * * * * root sh\n"),
        "is no plain relative name",
    ),
    "absolute path": (lambda b: with_member(b, entry("/etc/passwd"), b"x"), "no plain relative"),
    "dot segment": (lambda b: with_member(b, entry("specs/../x"), b"x"), "no plain relative"),
    "symlink": (
        lambda b: with_member(b, entry("specs/link", tarfile.SYMTYPE, "/etc/shadow")),
        "is not a regular file",
    ),
    "hard link": (
        lambda b: with_member(b, entry("specs/hard", tarfile.LNKTYPE, "manifest.json")),
        "is not a regular file",
    ),
    "device": (lambda b: with_member(b, entry("dev", tarfile.CHRTYPE)), "not a regular file"),
    "fifo": (lambda b: with_member(b, entry("fifo", tarfile.FIFOTYPE)), "not a regular file"),
    "directory": (lambda b: with_member(b, entry("specs", tarfile.DIRTYPE)), "not a regular"),
    "a member twice": (
        lambda b: with_member(b, entry("manifest.json"), b"{}"),
        "appears twice",
    ),
    "a member the manifest does not list": (
        lambda b: with_member(b, entry("extra.sh"), b"#!/bin/sh\n"),
        "which the manifest does not list",
    ),
    "too many members": (
        lambda b: tar_of(*(entry(f"m{i}") for i in range(600))),
        "more than 512 members",
    ),
    "an oversize manifest": (
        lambda b: tar_of(entry("manifest.json"), data={"manifest.json": b" " * 1_048_577}),
        "larger than 1048576 bytes",
    ),
    "no tar at all": (lambda b: b"PK\x03\x04 a zip, or anything else", "not an offline bundle"),
    "an empty file": (lambda b: b"", "not an offline bundle"),
    "no manifest": (
        lambda b: write_archive({k: v for k, v in members(b).items() if k != "manifest.json"}),
        "has no manifest.json",
    ),
    "no spec": (
        lambda b: write_archive({k: v for k, v in members(b).items() if k != "specs/1.2.0.json"}),
        "lacks specs/1.2.0.json",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_refused_and_nothing_is_written(
    capsys, tmp_path, vendor, license_file, bundle, case
):
    make, words = HOSTILE[case]
    code, out, err = import_bundle(capsys, tmp_path, vendor, license_file, make(bundle))
    assert code == 1 and out == ""
    assert err.startswith("deployd: error: ") and err.count("\n") == 1
    assert words in err
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "etc").exists()


def test_a_refused_import_leaves_the_previous_bundle_in_place(
    capsys, tmp_path, vendor, license_file, bundle
):
    assert import_bundle(capsys, tmp_path, vendor, license_file, bundle)[0] == 0
    kept = tmp_path / "cache" / "offline-bundle.tar"
    manifest = json.loads(members(bundle)["manifest.json"])
    manifest["license"]["subject"] = "globex"
    forged = write_archive({**members(bundle), "manifest.json": json.dumps(manifest).encode()})
    code, _, err = import_bundle(capsys, tmp_path, vendor, license_file, forged)
    assert code == 1 and "signature does not verify" in err
    assert kept.read_bytes() == bundle
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["offline-bundle.tar"]


def test_an_agent_runs_from_the_imported_bundle(capsys, tmp_path, vendor, license_file, bundle):
    assert import_bundle(capsys, tmp_path, vendor, license_file, bundle)[0] == 0
    cache = tmp_path / "cache"
    code, out, err = run(
        capsys,
        "agent",
        "--bundle",
        cache / "offline-bundle.tar",
        "--trust-key",
        vendor.key,
        "--license-file",
        license_file,
        "--cache-dir",
        cache,
        "--write",
        tmp_path / "out.json",
        "--once",
        "--no-report",
    )
    assert code == 0, err
    assert out == "applied release 1.2.0 (channel stable, sequence 1)\n"
    assert json.loads((tmp_path / "out.json").read_text())["metadata"]["release"] == "1.2.0"


def test_export_through_a_server_writes_the_bundle_it_answers(capsys, tmp_path, license_file):
    world = World(tmp_path / "live", rate_limit_enabled=False)
    license_file.write_text(world.license() + "\n")
    token = world.publisher_token("air-gap", scopes=Scopes.of(["bundles"], []))
    out = tmp_path / "acme.tar"
    with serving(world) as server:
        code, printed, err = run(
            capsys,
            "bundle",
            "export",
            "--license",
            license_file,
            "--releases-since",
            "1.1.0",
            "--expires-in",
            "7d",
            "--out",
            out,
            "--server",
            server.url,
            "--token",
            token,
        )
    assert (code, err) == (0, "")
    assert printed.startswith(f"wrote {out} (")
    assert "for customer acme" in printed and "specs: 1.2.0\n" in printed
    assert out.stat().st_mode & 0o777 == 0o600  # it holds the license
    manifest = json.loads(members(out.read_bytes())["manifest.json"])
    assert [spec["release"] for spec in manifest["specs"]] == ["1.2.0"]
    assert license_file.read_text().strip() not in printed
