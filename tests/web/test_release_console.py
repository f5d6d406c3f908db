"""The release console (/console) through Flask's test client: sessions, CSRF, scopes, every
page and every form's bad input (a message on the page, nothing changed)."""

from __future__ import annotations

import copy
import re
import time

import pytest

from deployd.channels import channel_from_document
from deployd.publishers import Scopes
from deployd.publishing import publish_channel
from deployd.publishing.sources import document_source
from tests.support.publisher_auth import bearer
from tests.support.world import World

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(world: World, token: str):
    client = world.app.test_client()
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in", data={"token": token, "csrf_token": csrf_of(form.text)}
    )
    assert answer.status_code == 303, answer.text
    return client


def add_beta_release(world: World, version: str) -> None:
    document = copy.deepcopy(world.store.get_channel("beta").document)
    document["releases"].append({**document["releases"][-1], "version": version})
    channel = channel_from_document(document, expected_name="beta")
    publish_channel(world.store, channel, source=document_source(document), publisher="test")


def halted(world: World, token: str, version: str) -> bool:
    body = world.client.get("/api/v1/channels/stable/rollout", headers=bearer(token)).get_json()
    return next(r["halted"] for r in body["releases"] if r["release"] == version)


def test_pages_without_a_session_lead_to_sign_in_and_forms_change_nothing(world):
    client = world.app.test_client()
    answer = client.get("/console/channels/stable")
    assert answer.status_code == 303 and answer.location.endswith("/console/sign-in")
    refused = client.post("/console/channels/stable/act", data={"action": "halt"})
    assert refused.status_code == 401 and "text/html" in refused.content_type
    assert "Sign in again" in refused.text


def test_sign_in_gives_a_strict_httponly_expiring_cookie_that_holds_no_token(world):
    token = world.publisher_token()
    client = world.app.test_client()
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in", data={"token": token, "csrf_token": csrf_of(form.text)}
    )
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if "deployd_console=" in c)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test
    assert token not in cookie and token[5:] not in cookie
    page = client.get("/console/")
    assert page.status_code == 200 and token not in page.text
    assert "Signed in as <strong>alice</strong>" in page.text


def test_the_cookie_is_secure_when_served_over_tls(world):
    token = world.publisher_token()
    client = world.app.test_client()
    form = client.get("/console/sign-in", base_url="https://localhost")
    answer = client.post(
        "/console/sign-in",
        data={"token": token, "csrf_token": csrf_of(form.text)},
        base_url="https://localhost",
    )
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if "deployd_console=" in c)
    assert "Secure" in cookie


def test_sign_in_refuses_a_bad_token_with_a_message_and_limits_attempts(world):
    client = world.app.test_client()
    token = csrf_of(client.get("/console/sign-in").text)
    statuses = [
        client.post("/console/sign-in", data={"token": "dpub_nope", "csrf_token": token})
        for _ in range(11)
    ]
    assert statuses[0].status_code == 401 and "Not signed in" in statuses[0].text
    assert statuses[-1].status_code == 429 and "Too many failed sign-ins" in statuses[-1].text
    # Even a good token waits out the limit.
    good = client.post(
        "/console/sign-in", data={"token": world.publisher_token(), "csrf_token": token}
    )
    assert good.status_code == 429


def test_sign_in_without_its_csrf_token_is_refused(world):
    client = world.app.test_client()
    client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"token": world.publisher_token()})
    assert answer.status_code == 403 and "nothing was changed" in answer.text


def test_a_forged_or_expired_cookie_is_no_session(world):
    client = sign_in(world, world.publisher_token())
    value = client.get_cookie("deployd_console", path="/console").value
    body, signature = value.split(".")
    client.set_cookie("deployd_console", body + "." + "0" * len(signature), path="/console")
    assert client.get("/console/").status_code == 303
    cookies = world.app.extensions["deployd.console"].cookies
    old, _ = cookies.open("x", now=time.time() - cookies.lifetime - 1)
    client.set_cookie("deployd_console", old, path="/console")
    assert client.get("/console/").status_code == 303


def test_revoking_the_token_ends_its_session(world):
    client = sign_in(world, world.publisher_token("bob"))
    assert client.get("/console/").status_code == 200
    world.store.revoke_publisher("bob")
    assert client.get("/console/").status_code == 303


def test_sign_out_clears_the_session(world):
    client = sign_in(world, world.publisher_token())
    page = client.get("/console/")
    answer = client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    assert client.get("/console/").status_code == 303


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/console/", "stable"),
        ("/console/channels/stable", "Adoption over the last 7 days"),
        ("/console/fleet", "Instances"),
        ("/console/customers", "Customer records"),
        ("/console/licenses", "License (JWT)"),
        ("/console/events", "The event log, newest first"),
        ("/console/static/console.css", "prefers-color-scheme"),
    ],
)
def test_every_page_renders(world, path, text):
    client = sign_in(world, world.publisher_token())
    with client.get(path) as answer:
        assert answer.status_code == 200 and text in answer.text


def test_an_unknown_channel_is_a_page_not_json(world):
    client = sign_in(world, world.publisher_token())
    answer = client.get("/console/channels/nope")
    assert answer.status_code == 404 and "text/html" in answer.content_type
    assert "no channel named" in answer.text


def test_halting_asks_first_then_halts_with_a_valid_form(world):
    token = world.publisher_token()
    client = sign_in(world, token)
    confirm = client.get("/console/channels/stable/confirm?action=halt&release=1.2.0")
    assert confirm.status_code == 200 and "Halt release 1.2.0 of stable" in confirm.text
    assert not halted(world, token, "1.2.0")  # asking changed nothing
    form = {"action": "halt", "release": "1.2.0", "reason": "broken"}
    forged = client.post("/console/channels/stable/act", data={**form, "csrf_token": "0" * 64})
    assert forged.status_code == 403 and not halted(world, token, "1.2.0")
    done = client.post(
        "/console/channels/stable/act", data={**form, "csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code == 200 and "Release 1.2.0 halted." in done.text
    assert halted(world, token, "1.2.0")


def test_buttons_follow_the_scopes_and_the_server_refuses_outside_them(world):
    token = world.publisher_token("carol", scopes=Scopes.of(["publish"], ["beta"]))
    client = sign_in(world, token)
    page = client.get("/console/channels/stable")
    assert "Halt 1.2.0" not in page.text and "Change rollout" not in page.text
    assert "Roll back to" not in page.text and "Promote" not in page.text
    assert "Change rollout of" in client.get("/console/channels/beta").text
    refused = client.post(
        "/console/channels/stable/act",
        data={"action": "halt", "release": "1.2.0", "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 403 and "may not rollout" in refused.text
    assert not halted(world, world.publisher_token(), "1.2.0")


def test_changing_a_rollout_publishes_and_bad_input_changes_nothing(world):
    client = sign_in(world, world.publisher_token())
    csrf = csrf_of(client.get("/console/").text)
    act = "/console/channels/stable/act"
    bad = client.post(
        act, data={"action": "rollout", "release": "1.2.0", "rollout": "150", "csrf_token": csrf}
    )
    assert bad.status_code == 400 and "from 0 to 100" in bad.text
    assert world.store.get_channel("stable").sequence == 1
    missing = client.post(
        act, data={"action": "rollout", "release": "9.9.9", "rollout": "5", "csrf_token": csrf}
    )
    assert missing.status_code == 404 and "no release &#39;9.9.9&#39;" in missing.text
    done = client.post(
        act, data={"action": "rollout", "release": "1.2.0", "rollout": "40", "csrf_token": csrf}
    )
    assert done.status_code == 200 and "Published sequence 2" in done.text
    record = world.store.get_channel("stable")
    assert record.sequence == 2 and "rollout 100 -> 40" in record.summary


def test_rolling_back_and_promoting_and_their_bad_input(world):
    client = sign_in(world, world.publisher_token())
    csrf = csrf_of(client.get("/console/").text)
    act = "/console/channels/stable/act"
    for form, message in [
        ({"action": "rollback", "sequence": "x"}, "Name the sequence"),
        ({"action": "rollback", "sequence": "7"}, "no sequence 7"),
        ({"action": "promote", "from": "nope", "release": "1.0.0"}, "Pick the channel"),
        ({"action": "promote", "from": "beta", "release": ""}, "Name the release"),
        ({"action": "explode"}, "Unknown action"),
    ]:
        answer = client.post(act, data={**form, "csrf_token": csrf})
        assert answer.status_code in (400, 404) and message in answer.text, form
        assert "Nothing was changed" in answer.text
    assert world.store.get_channel("stable").sequence == 1
    conflict = client.post(
        act,
        data={
            "action": "promote",
            "from": "beta",
            "release": "1.2.0",
            "rollout": "10",
            "csrf_token": csrf,
        },
    )
    assert conflict.status_code == 409 and "already has release 1.2.0" in conflict.text
    add_beta_release(world, "1.3.0")
    promoted = client.post(
        act,
        data={
            "action": "promote",
            "from": "beta",
            "release": "1.3.0",
            "rollout": "10",
            "csrf_token": csrf,
        },
    )
    assert promoted.status_code == 200 and "Published sequence 2" in promoted.text
    rolled = client.post(act, data={"action": "rollback", "sequence": "1", "csrf_token": csrf})
    assert rolled.status_code == 200 and "Published sequence 3" in rolled.text


def test_a_bad_confirmation_request_is_a_message_on_the_channel_page(world):
    client = sign_in(world, world.publisher_token())
    answer = client.get("/console/channels/stable/confirm?action=rollout&release=1.2.0&rollout=x")
    assert answer.status_code == 400 and "Nothing was changed" in answer.text


def test_a_pasted_license_shows_its_verdict_and_can_be_revoked_after_confirming(world):
    client = sign_in(world, world.publisher_token())
    page = client.get("/console/licenses")
    license = world.license()
    shown = client.post(
        "/console/licenses", data={"license": license, "csrf_token": csrf_of(page.text)}
    )
    assert shown.status_code == 200 and '<code class="verdict-code">valid</code>' in shown.text
    assert license not in shown.text  # the license itself is not echoed
    jti = re.search(r'name="jti" value="([^"]+)"', shown.text).group(1)
    confirm = client.get(f"/console/licenses/revoke?jti={jti}")
    assert "cannot be undone" in confirm.text
    done = client.post(
        "/console/licenses/revoke", data={"jti": jti, "csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code == 200 and f"License {jti} revoked." in done.text
    again = client.post(
        "/console/licenses", data={"license": license, "csrf_token": csrf_of(page.text)}
    )
    assert '<code class="verdict-code">revoked</code>' in again.text


def test_license_forms_bad_input(world):
    client = sign_in(world, world.publisher_token())
    csrf = csrf_of(client.get("/console/licenses").text)
    empty = client.post("/console/licenses", data={"license": "", "csrf_token": csrf})
    assert empty.status_code == 400 and "Paste a license" in empty.text
    junk = client.post("/console/licenses", data={"license": "not-a-jwt", "csrf_token": csrf})
    assert junk.status_code == 200 and '<code class="verdict-code">malformed</code>' in junk.text
    no_id = client.post("/console/licenses/revoke", data={"jti": "", "csrf_token": csrf})
    assert no_id.status_code == 400 and "not a license id" in no_id.text


def test_revoking_needs_the_revoke_scope(world):
    client = sign_in(world, world.publisher_token("dan", scopes=Scopes.of(["publish"], ["*"])))
    csrf = csrf_of(client.get("/console/licenses").text)
    shown = client.post("/console/licenses", data={"license": world.license(), "csrf_token": csrf})
    assert "Revoke this license" not in shown.text
    refused = client.post("/console/licenses/revoke", data={"jti": "abc", "csrf_token": csrf})
    assert refused.status_code == 403 and "may not revoke" in refused.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("behind=x", "behind must be a whole number"),
        ("seen=0", "Seen within"),
        ("cursor=nope", "cursor"),
    ],
)
def test_fleet_filters_bad_input(world, query, message):
    client = sign_in(world, world.publisher_token())
    answer = client.get(f"/console/fleet?{query}")
    assert answer.status_code == 400 and message in answer.text


def test_events_bad_page_and_newest_first(world):
    client = sign_in(world, world.publisher_token())
    assert client.get("/console/events?before=x").status_code == 400
    csrf = csrf_of(client.get("/console/").text)
    client.post(
        "/console/channels/stable/act",
        data={"action": "halt", "release": "1.2.0", "csrf_token": csrf},
    )
    page = client.get("/console/events").text
    assert re.search(r"<td>halt</td><td>alice</td>\s*<td>stable</td>", page)


def test_no_token_reaches_a_log_or_a_page(world, caplog):
    caplog.set_level("DEBUG")
    token = world.publisher_token()
    client = world.app.test_client()
    csrf = csrf_of(client.get("/console/sign-in").text)
    wrong = token[:-4] + "AAAA"
    refused = client.post("/console/sign-in", data={"token": wrong, "csrf_token": csrf})
    signed_in = client.post("/console/sign-in", data={"token": token, "csrf_token": csrf})
    page = client.get("/console/")
    for text in (refused.text, page.text, caplog.text, str(signed_in.headers)):
        assert token not in text and wrong not in text and token[5:20] not in text
