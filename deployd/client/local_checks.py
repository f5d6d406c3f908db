"""The checks of `deployd verify` that need no server: the license as the agent finds it, the
merge of the verified spec with the user's input and custom resource, and the reconciler.

Every check source (a server, an offline bundle) ends its list with these."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from deployd.client.checkup import Check, Outcome, failed, passed
from deployd.client.hierarchy import desired_state
from deployd.client.licensing import unverified_claims
from deployd.client.site import Checkup
from deployd.protocol import rfc3339

DAY_SECONDS = 86_400
HELM = "helm"
HELM_VERSION_TIMEOUT = 30.0
LICENSE_HINT = (
    "give the license: --license-file FILE, DEPLOYD_LICENSE, or global.license in the"
    " custom-resource values"
)


def check_license(checkup: Checkup) -> Outcome:
    """The license's form and expiry, read without verifying it (the server judges it)."""
    found = checkup.site.license
    if found is None:
        return failed("no license found", LICENSE_HINT)
    claims = unverified_claims(found.value)
    if not claims:
        return failed(f"the license from the {found.source} is not a JWT", LICENSE_HINT)
    customer = str(claims.get("sub", "?"))
    details = {"source": found.source, "customer": customer, "channel": claims.get("channel")}
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        return failed(
            f"the license of {customer} has no expiry (exp)", "ask the vendor for a new license"
        )
    now = time.time()
    days = int((expires - now) // DAY_SECONDS)
    details.update(expires=rfc3339(expires), days_left=days)
    if expires <= now:
        ago = int((now - expires) // DAY_SECONDS)
        when = f"{ago} days ago" if ago else "less than a day ago"
        return failed(
            f"the license of {customer} expired at {rfc3339(expires)} ({when})",
            "ask the vendor for a renewed license",
            **details,
        )
    return passed(
        f"license of {customer} (from the {found.source}), channel"
        f" {claims.get('channel', '-')}, expires {rfc3339(expires)} (in {days} days)",
        **details,
    )


def check_merge(checkup: Checkup) -> Outcome:
    """The spec merged as the agent merges it: channel < user input < custom resource."""
    assert checkup.spec is not None
    site = checkup.site
    desired = desired_state(
        checkup.spec, user_values=site.user_values, custom_resource=site.custom_resource
    )
    chart = dict(desired.chart)
    name = chart.get("name") or chart.get("path") or "?"
    origin = "the custom resource" if site.custom_resource and site.custom_resource.chart else None
    reason = f"chart {name} {chart.get('version', '')}".rstrip() + f", release {desired.release}"
    reason += f" (chart from {origin or 'the channel'}); {len(desired.values)} top-level values"
    levels = ["channel"]
    if site.user_values is not None:
        levels.append("user input")
    if site.custom_resource is not None:
        levels.append("custom resource")
    return passed(
        reason + f" from {' < '.join(levels)}",
        chart=chart,
        release=desired.release,
        values=sorted(desired.values),
    )


def check_reconciler(checkup: Checkup) -> Outcome:
    """That what the agent would run exists: the --exec command, else helm."""
    options = checkup.site.options
    if options.write:
        return _check_write_target(Path(options.write))
    if options.command:
        return _check_command(options.command)
    return _check_helm()


def _check_command(command: str) -> Outcome:
    argv = shlex.split(command)
    if not argv:
        return failed("the --exec command is empty", "give the command that applies the spec")
    program = argv[0]
    found = program if os.sep in program else shutil.which(program)
    if found is None or not os.path.isfile(found):
        return failed(f"command {program} not found", "install it, or give its full path")
    if not os.access(found, os.X_OK):
        return failed(f"{found} is not executable", f"chmod +x {found}")
    return passed(f"--exec command {program} is {found}", command=found)


def _check_helm() -> Outcome:
    helm = shutil.which(HELM)
    if helm is None:
        return failed(
            "helm not found on the PATH",
            "install Helm 3 (https://helm.sh/docs/intro/install/), or give the command that"
            " applies the spec with --exec",
        )
    try:
        result = subprocess.run(
            [helm, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=HELM_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return failed(f"helm version did not run: {e}", "check the helm installation")
    if result.returncode != 0:
        return failed(
            f"helm version exited with status {result.returncode}: {result.stderr.strip()[:300]}",
            "check the helm installation",
        )
    return passed(f"helm {result.stdout.strip()} ({helm})", helm=helm)


def _check_write_target(path: Path) -> Outcome:
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not os.access(directory, os.W_OK):
        return failed(f"cannot write under {directory}", f"make {path.parent} writable")
    return passed(f"the merged spec can be written to {path}", path=str(path))


def license_check() -> Check:
    return Check("license", check_license, LICENSE_HINT)


def after_spec_checks(spec_check: str) -> Sequence[Check]:
    """The checks that follow the one (named `spec_check`) that found the verified spec."""
    return [
        Check(
            "merge",
            check_merge,
            "fix the user values or custom resource file",
            needs=(spec_check,),
        ),
        Check("reconciler", check_reconciler, "check --exec"),
    ]
