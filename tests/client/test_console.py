"""The system console (`deployd agent --console`) through Flask's test client: sign-in, sessions,
CSRF, every page and form, bad input; with a real agent loop against the live server."""

from __future__ import annotations

import io
import re
import threading
import time
from datetime import timedelta

import pytest
import yaml

from deployd.agentconsole.app import SESSION_COOKIE, ConsoleContext, create_console_app
from deployd.agentconsole.control import AgentControl
from deployd.agentconsole.password import PasswordFile
from deployd.agentconsole.server import ConsoleAddress
from deployd.agentconsole.sessions import LoginLimiter
from deployd.agentconsole.uservalues import UserValuesFile
from deployd.cli.main import main
from deployd.client import FileReconciler, Poller
from tests.support.factories import CHANNEL_YAML

PASSWORD = "correct horse battery staple"
HTML = {"Accept": "text/html"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


class Console:
    """A console app over a running agent loop (its own thread), as `deployd agent` wires it."""

    def __init__(
        self, tmp_path, config, *, values_path=None, allowed_hosts=None, start_loop=True
    ) -> None:
        self.cache = config.cache_dir
        self.out = tmp_path / "out" / "spec.yaml"
        self.values_file = UserValuesFile.for_agent(values_path, self.cache)
        self.poller = Poller(config, user_values=self.values_file.load())
        self.control = AgentControl(self.poller, FileReconciler(self.out))
        self.passwords = PasswordFile(self.cache)
        self.passwords.save(PASSWORD)
        self.limiter_clock = Clock()
        self.context = ConsoleContext(
            control=self.control,
            values_file=self.values_file,
            passwords=self.passwords,
            limiter=LoginLimiter(max_failures=3, window=60, clock=self.limiter_clock),
            allowed_hosts=allowed_hosts,
        )
        self.client = create_console_app(self.context).test_client()
        self._thread = threading.Thread(target=self.control.run, daemon=True)
        if start_loop:
            self._thread.start()

    def sign_in(self, password: str = PASSWORD):
        return self.client.post("/login", data={"password": password}, headers=HTML)

    def csrf(self, path: str = "/") -> str:
        page = self.client.get(path, headers=HTML).get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def post(self, path: str, **form: str):
        form.setdefault("csrf_token", self.csrf())
        return self.client.post(path, data=form, headers=HTML)

    def applied_values(self) -> dict:
        if not self.out.exists():
            return {}
        return yaml.safe_load(self.out.read_text())["values"]

    def close(self) -> None:
        self.control.stop()
        if self._thread.is_alive():
            self._thread.join(30)
        self.poller.close()


@pytest.fixture
def console(tmp_path, live_config):
    made = []

    def make(**kw):
        config_kw = {k: kw.pop(k) for k in ("license", "release") if k in kw}
        made.append(Console(tmp_path, live_config(**config_kw), **kw))
        return made[-1]

    yield make
    for each in made:
        each.close()


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


# --- signing in ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/values", "/releases"])
def test_every_page_needs_a_session(console, path):
    c = console()
    response = c.client.get(path, headers=HTML)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login")


@pytest.mark.parametrize(
    "path", ["/control/apply", "/control/pause", "/control/resume", "/values", "/releases/pin"]
)
def test_every_form_needs_a_session(console, path):
    c = console()
    response = c.client.post(path, data={"csrf_token": "x", "values": "a: 1"}, headers=HTML)
    assert response.status_code == 403
    assert "sign in again" in text_of(response)
    assert not c.control.status.paused


def test_signing_in_sets_a_strict_httponly_expiring_cookie(console):
    c = console()
    response = c.sign_in()
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert c.client.get("/", headers=HTML).status_code == 200


def test_over_tls_the_cookie_is_secure(console):
    c = console()
    response = c.client.post(
        "/login", data={"password": PASSWORD}, base_url="https://localhost", headers=HTML
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_password_is_refused_on_the_page(console):
    c = console()
    response = c.sign_in("not the password")
    assert response.status_code == 401
    assert "That password is not right." in text_of(response)
    assert "Set-Cookie" not in response.headers
    assert c.client.get("/", headers=HTML).status_code == 303


def test_sign_ins_are_rate_limited(console):
    c = console()
    for _ in range(3):
        assert c.sign_in("guess").status_code == 401
    limited = c.sign_in()  # even the right password waits
    assert limited.status_code == 429
    assert "Too many failed sign-ins" in text_of(limited)
    assert int(limited.headers["Retry-After"]) == 60
    c.limiter_clock.now += 61
    assert c.sign_in().status_code == 303


def test_signing_out_ends_the_session(console):
    c = console()
    c.sign_in()
    cookie = c.client.get_cookie(SESSION_COOKIE).value
    assert c.post("/logout").status_code == 303
    c.client.set_cookie(SESSION_COOKIE, cookie)  # the old cookie, replayed
    assert c.client.get("/", headers=HTML).status_code == 303


def test_a_new_password_ends_every_session(console, monkeypatch, capsys):
    c = console()
    c.sign_in()
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new password\n"))
    assert main(["agent", "console-password", "--cache-dir", str(c.cache)]) == 0
    assert c.client.get("/", headers=HTML).status_code == 303
    assert c.sign_in().status_code == 401
    assert c.sign_in("a brand new password").status_code == 303


def test_the_password_and_session_never_reach_the_log_or_a_page(console, caplog):
    c = console()
    caplog.set_level("DEBUG")
    c.sign_in("wrong guess of a password")
    c.sign_in()
    session_id = c.client.get_cookie(SESSION_COOKIE).value
    pages = [c.client.get(p, headers=HTML).get_data(as_text=True) for p in ("/", "/values")]
    for secret in (PASSWORD, "wrong guess of a password", session_id):
        assert secret not in caplog.text
        assert all(secret not in page for page in pages)
    assert PASSWORD not in (c.cache / "console-password.json").read_text()


# --- CSRF and origin ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged"])
@pytest.mark.parametrize(
    "path", ["/control/apply", "/control/pause", "/control/resume", "/values", "/releases/pin"]
)
def test_every_form_refuses_a_missing_or_wrong_csrf_token(console, path, token):
    c = console()
    c.sign_in()
    form = {"values": "app: {replicaCount: 9}\n", "action": "save", "release": "1.2.0"}
    if token is not None:
        form["csrf_token"] = token
    response = c.client.post(path, data=form, headers=HTML)
    assert response.status_code == 403
    assert "out of date" in text_of(response)
    assert not c.control.status.paused
    assert not c.values_file.path.exists()


def test_a_form_sent_from_another_site_is_refused(console):
    c = console()
    c.sign_in()
    token = c.csrf()
    response = c.client.post(
        "/control/pause",
        data={"csrf_token": token},
        headers={**HTML, "Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert not c.control.status.paused
    same_site = {**HTML, "Origin": "http://localhost"}
    response = c.client.post("/control/pause", data={"csrf_token": token}, headers=same_site)
    assert response.status_code == 303


def test_a_loopback_console_answers_only_to_loopback_names(console):
    loopback = ConsoleAddress.parse("127.0.0.1:8700")
    c = console(allowed_hosts=loopback.allowed_hosts)
    for name in ("localhost", "127.0.0.1:8700", "[::1]:8700"):
        assert c.client.get("/login", headers={**HTML, "Host": name}).status_code == 200
    rebound = c.client.post(
        "/login", data={"password": PASSWORD}, headers={**HTML, "Host": "attacker.example"}
    )
    assert rebound.status_code == 421
    assert "Set-Cookie" not in rebound.headers


def test_errors_are_pages_for_browsers_and_json_for_tools(console):
    c = console()
    c.sign_in()
    page = c.client.get("/no-such-page", headers=HTML)
    assert page.status_code == 404 and page.mimetype == "text/html"
    tool = c.client.get("/no-such-page", headers={"Accept": "application/json"})
    assert tool.status_code == 404
    assert set(tool.get_json()["error"]) == {"code", "message"}


def test_a_failure_is_a_plain_error_page_without_a_traceback(console):
    c = console()
    (c.cache / "console-password.json").write_text("{damaged")
    page = c.client.get("/", headers=HTML)
    assert page.status_code == 500 and "Traceback" not in page.get_data(as_text=True)
    assert "the console failed; see the log" in text_of(page)
    tool = c.client.get("/", headers={"Accept": "application/json"})
    assert tool.get_json() == {
        "error": {"code": "internal_error", "message": "the console failed; see the log"}
    }


def test_pages_forbid_framing_caching_and_foreign_content(console):
    c = console()
    c.sign_in()
    response = c.client.get("/", headers=HTML)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"


# --- status and controls ------------------------------------------------------------------------


def test_status_shows_the_channel_release_polls_and_license(console, live):
    c = console(license=live.world.license(expires_in=timedelta(days=90)))
    wait_for(lambda: c.control.status.last_reconcile_at, "the first reconcile")
    c.sign_in()
    response = c.client.get("/", headers=HTML)
    page = text_of(response)
    release = c.poller.applied.release
    assert f"Channel stable Release running {release}" in page
    assert re.search(r"Last poll \d{4}-\d\d-\d\dT[\d:]+Z: (updated|not_modified)", page)
    assert re.search(r"Last reconcile [\d:TZ-]+: applied", page)
    assert re.search(r"Next poll \d{4}-", page)
    assert "customer acme" in page and "89 days left" in page
    assert 'class="badge ok" id="days-left"' in response.get_data(as_text=True)


def test_a_license_expiring_within_30_days_is_highlighted(console, live):
    c = console(license=live.world.license(expires_in=timedelta(days=10)))
    c.sign_in()
    html = c.client.get("/", headers=HTML).get_data(as_text=True)
    assert re.search(r'class="badge bad" id="days-left">9 days left', html)


def test_pause_stops_applying_and_resume_and_apply_now_go_on(console, live):
    c = console()
    wait_for(lambda: c.out.exists(), "the first apply")
    c.sign_in()
    assert c.post("/control/pause").status_code == 303
    assert "Updates are paused" in text_of(c.client.get("/", headers=HTML))
    assert c.post("/values", values="site: {replicas: 7}\n", action="save").status_code == 200
    polls = c.control.status.last_poll_at
    wait_for(lambda: c.control.status.last_poll_at != polls, "a poll while paused")
    assert "site" not in c.applied_values()  # saved, not applied
    assert c.post("/control/apply").status_code == 303
    wait_for(lambda: c.applied_values().get("site") == {"replicas": 7}, "apply now while paused")
    assert c.control.status.paused
    c.post("/control/resume")
    assert not c.control.status.paused


def test_an_unknown_control_is_404(console):
    c = console()
    c.sign_in()
    assert c.post("/control/explode").status_code == 404


# --- values -------------------------------------------------------------------------------------


def test_the_three_layers_and_the_merged_result_are_shown(console):
    c = console()
    wait_for(lambda: c.poller.held_spec, "a spec")
    c.sign_in()
    html = c.client.get("/values", headers=HTML).get_data(as_text=True)
    for section in ('id="channel-layer"', 'id="values"', 'id="cr-layer"', 'id="merged"'):
        assert section in html
    assert "Nothing: this is what is applied." in html or 'id="diff"' in html


def test_a_preview_shows_the_merge_and_the_diff_and_changes_nothing(console):
    c = console()
    wait_for(lambda: c.out.exists(), "the first apply")
    c.sign_in()
    response = c.post("/values", values="site: {replicas: 5}\n", action="preview")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<span class="add">+  site:</span>' in html
    assert '<span class="add">+    replicas: 5</span>' in html
    assert "not saved" in html
    assert not c.values_file.path.exists()
    assert "site" not in c.applied_values()


def test_saving_values_writes_the_cache_file_and_the_agent_applies_them(console, tmp_path):
    c = console()
    wait_for(lambda: c.out.exists(), "the first apply")
    c.sign_in()
    text = "# ours\nsite: {replicas: 5}\n"
    response = c.post("/values", values=text, action="save")
    assert response.status_code == 200 and "Saved to" in text_of(response)
    assert c.values_file.path == c.cache / "user-values.yaml"
    assert c.values_file.path.read_text() == text  # as typed, comments kept
    assert c.values_file.path.stat().st_mode & 0o777 == 0o600
    wait_for(lambda: c.applied_values().get("site") == {"replicas": 5}, "the agent to apply")
    # A restarted agent starts from them.
    c.close()
    again = Console(tmp_path, c.poller.config)
    try:
        assert again.poller.user_values == {"site": {"replicas": 5}}
    finally:
        again.close()


def test_the_user_values_file_given_is_the_one_edited(console, tmp_path):
    given = tmp_path / "my-values.yaml"
    given.write_text("app: {replicaCount: 3}\n")
    c = console(values_path=str(given))
    c.sign_in()
    assert "replicaCount: 3" in c.client.get("/values", headers=HTML).get_data(as_text=True)
    c.post("/values", values="app: {replicaCount: 4}\n", action="save")
    assert given.read_text() == "app: {replicaCount: 4}\n"
    assert not (c.cache / "user-values.yaml").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("app: [unclosed\n", "not valid YAML"),
        ("- a\n- list\n", "must hold a mapping"),
        ("a: 1\n---\nb: 2\n", "holds 2 YAML documents"),
        ("_releaseId: 5\n", "_releaseId must be a release id string"),
        ("1: one\n", "every mapping key must be a string"),
        ("when: !!python/object:os.system {}\n", "not valid YAML"),
    ],
)
@pytest.mark.parametrize("action", ["preview", "save"])
def test_bad_values_show_a_message_and_change_nothing(console, text, message, action):
    c = console()
    c.values_file.save("app: {replicaCount: 3}\n")
    c.sign_in()
    response = c.post("/values", values=text, action=action)
    assert response.status_code == 400
    assert message in text_of(response)
    assert text.splitlines()[0] in response.get_data(as_text=True)  # kept in the editor
    assert c.values_file.path.read_text() == "app: {replicaCount: 3}\n"


def test_oversized_values_are_refused(console):
    c = console()
    c.sign_in()
    response = c.post("/values", values="a: " + "x" * 1_100_000, action="save")
    assert response.status_code == 400
    assert "larger than" in text_of(response)
    assert not c.values_file.path.exists()


def test_the_license_in_a_layer_is_masked(console, live):
    c = console()
    c.values_file.save(f"global: {{license: {live.license}}}\n")
    c.sign_in()
    # The preview merges the spec the agent holds: none before its first poll (its own thread).
    wait_for(lambda: c.poller.held_spec, "a spec")
    html = c.post("/values", values="global: {license: x}\n", action="preview").get_data(
        as_text=True
    )
    merged = html.split('id="merged"')[1]
    assert live.license not in merged
    assert "license: '***'" in merged or "license: ***" in merged


# --- releases -----------------------------------------------------------------------------------


def test_the_releases_of_the_channel_are_listed_with_their_notes(console, live):
    live.publish(
        "stable",
        CHANNEL_YAML.format(name="stable")
        + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n    rollout: 25\n"
        + "    notes: Faster search.\n",
    )
    c = console()
    c.sign_in()
    page = text_of(c.client.get("/releases", headers=HTML))
    assert "Releases of the channel, newest first" in page
    assert "1.3.0 0.13.0 25% Faster search. Pin 1.2.0 0.12.0" in page
    assert "1.1.0 required 0.11.0" in page


def test_the_page_after_a_pin_shows_it_before_the_agent_takes_it(console):
    # The agent's loop takes new values between two cycles, which may be seconds away: the page
    # the administrator lands on must already show what they pinned (no loop runs here at all).
    c = console(start_loop=False)
    c.sign_in()
    assert c.post("/releases/pin", release="1.0.0").status_code == 303
    assert c.poller.pinned_release is None  # not taken yet
    assert "follows the pinned release 1.0.0" in text_of(c.client.get("/releases", headers=HTML))
    assert "Pinned release 1.0.0" in text_of(c.client.get("/", headers=HTML))


def test_pinning_a_release_writes_the_release_id_pin(console):
    c = console()
    c.values_file.save("app: {replicaCount: 3}\n")
    c.sign_in()
    offered = re.findall(r'name="release" value="([^"]+)"', c.client.get("/releases").text)
    oldest = offered[-1]
    response = c.post("/releases/pin", release=oldest)
    assert response.status_code == 303
    assert yaml.safe_load(c.values_file.path.read_text()) == {
        "_releaseId": oldest,
        "app": {"replicaCount": 3},
    }
    wait_for(lambda: c.poller.pinned_release == oldest, "the agent to take the pin")
    wait_for(lambda: c.poller.applied and c.poller.applied.release == oldest, "the pinned apply")
    c.post("/releases/pin", release="")
    assert yaml.safe_load(c.values_file.path.read_text()) == {"app": {"replicaCount": 3}}
    wait_for(lambda: c.poller.pinned_release is None, "the agent to drop the pin")


@pytest.mark.parametrize("release", ["x" * 200, "1.0\n0"])
def test_a_bad_release_id_is_refused_on_the_page(console, release):
    c = console()
    c.sign_in()
    response = c.post("/releases/pin", release=release)
    assert response.status_code == 400
    assert "That is not a release id." in text_of(response)
    assert not c.values_file.path.exists()


def test_pinning_under_a_release_given_on_the_command_line_is_refused(console):
    c = console(release="1.2.0")
    c.sign_in()
    response = c.post("/releases/pin", release="1.3.0")
    assert response.status_code == 400
    assert "--release 1.2.0" in text_of(response)
    assert not c.values_file.path.exists()


def test_a_server_that_cannot_list_releases_is_said_on_the_page(console, live):
    c = console()
    c.sign_in()
    live.stop()
    response = c.client.get("/releases", headers=HTML)
    assert response.status_code == 200
    assert "cannot reach the server" in text_of(response)


# --- the command line ---------------------------------------------------------------------------


def offline_agent(tmp_path, signer, *extra: str) -> list[str]:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(signer.bundle(release="1.0.0", sequence=2).to_bytes())
    return [
        "agent", "--trust-key", str(signer.write_public(tmp_path)),
        "--cache-dir", str(tmp_path / "cache"), "--channel", "stable",
        "--offline-spec", str(bundle), "--write", str(tmp_path / "out.json"), *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "[::]"])
def test_a_console_on_a_network_address_without_tls_is_refused(tmp_path, signer, capsys, host):
    assert main(offline_agent(tmp_path, signer, "--console", f"{host}:0")) == 1
    err = capsys.readouterr().err
    assert "refusing to serve the system console on" in err and "without TLS" in err
    assert "--console-allow-plain-http" in err
    assert not (tmp_path / "cache" / "console-password.json").exists()


def test_a_console_certificate_that_cannot_be_loaded_is_an_error(tmp_path, signer, capsys):
    missing = str(tmp_path / "missing.pem")
    args = ("--console", "0.0.0.0:0", "--console-cert", missing, "--console-key", missing)
    assert main(offline_agent(tmp_path, signer, *args)) == 1
    assert "cannot load the console's TLS certificate" in capsys.readouterr().err


def test_the_console_needs_a_running_agent_not_once(tmp_path, signer, capsys):
    with pytest.raises(SystemExit) as exited:
        main(offline_agent(tmp_path, signer, "--console", "127.0.0.1:0", "--once"))
    assert exited.value.code == 2
    assert "drop --once" in capsys.readouterr().err


def test_console_password_reads_stdin_and_stores_only_a_salted_hash(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["agent", "console-password", "--cache-dir", str(cache)]) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    assert not (cache / "console-password.json").exists()
    stored = []
    for _ in range(2):
        monkeypatch.setattr("sys.stdin", io.StringIO("the same long password\n"))
        assert main(["agent", "console-password", "--cache-dir", str(cache)]) == 0
        stored.append((cache / "console-password.json").read_text())
        assert "the same long password" not in capsys.readouterr().out + stored[-1]
        assert (cache / "console-password.json").stat().st_mode & 0o777 == 0o600
    assert stored[0] != stored[1]  # a new salt each time
    assert PasswordFile(cache).load().matches("the same long password")


def test_the_agent_still_requires_its_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["agent", "--trust-key", "k.pub", "--write", "out.json"])
    expected = "one of the arguments --server --offline-spec --bundle is required"
    assert expected in capsys.readouterr().err


def test_the_stylesheet_is_served_by_the_console_itself(console):
    c = console()
    page = c.client.get("/login", headers=HTML).get_data(as_text=True)
    href = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    assert href.startswith("/")  # no CDN: the page works offline
    with c.client.get(href) as css:
        assert css.status_code == 200
        assert "prefers-color-scheme: dark" in css.get_data(as_text=True)
