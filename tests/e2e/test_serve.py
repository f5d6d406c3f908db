"""`deployd serve`, the README's first command: sample channels and dev key, no Redis."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from deployd.keyfiles import load_public_key_file
from deployd.specs.signing import verify_signature
from tests.support.gunicorn import REPO

pytestmark = pytest.mark.e2e


def test_embedded_default_serves_the_sample_channels_with_the_dev_key(serve):
    url, state_dir = serve
    issued = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployd",
            "license",
            "issue",
            "--key",
            "keys/dev.key",
            "--customer",
            "acme",
            "--channel",
            "stable",
            "--channels",
            "stable,beta",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    license = issued.stdout.strip()
    assert license.count(".") == 2 and "\n" not in license
    response = requests.get(url + "/api/v1/operator/channel", auth=("license", license), timeout=5)
    assert response.status_code == 200, response.text
    spec = response.json()
    assert spec["metadata"]["channel"] == "stable"
    assert spec["chart"]["url"].startswith("https://")
    # The generated development signing key is where the README says clients find it.
    public = load_public_key_file(state_dir / "dev-signing.pub")
    assert verify_signature(
        response.headers["Deployd-Signature"], response.content, {"dev-signing": public}
    )
    beta = requests.get(
        url + "/api/v1/operator/channel?channel=beta", auth=("license", license), timeout=5
    )
    assert beta.json()["metadata"]["channel"] == "beta"
