"""Reconcilers: what turns a desired state into a deployment.

A reconciler is any object with ``reconcile(desired, previous)``; it returns when the deployment
matches `desired` and raises when it could not (the client then retries with backoff and does not
record the state as applied). `previous` is the state last applied successfully, or None.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import yaml

from deployd.client.cache import atomic_write
from deployd.client.errors import ReconcileError
from deployd.client.hierarchy import DesiredState
from deployd.client.redact import mask_secrets

logger = logging.getLogger(__name__)

SPEC_FILE_ENV = "DEPLOYD_SPEC_FILE"
STDERR_TAIL_CHARS = 2000


@runtime_checkable
class Reconciler(Protocol):
    def reconcile(self, desired: DesiredState, previous: DesiredState | None) -> None:
        """Make the deployment match `desired`; raise on failure."""


class CallableReconciler:
    """Wraps a plain function ``fn(desired, previous)``; an exception from it is a failure."""

    def __init__(self, fn: Callable[[DesiredState, DesiredState | None], object]) -> None:
        self.fn = fn

    def reconcile(self, desired: DesiredState, previous: DesiredState | None) -> None:
        self.fn(desired, previous)


class CommandReconciler:
    """Runs a command with the merged spec as JSON on stdin and in a file named by
    ``DEPLOYD_SPEC_FILE``; exit status 0 is success, anything else (or a timeout) a failure.

    `command` is an argument list or a string split like a shell would (no shell is run). The spec
    file is private (mode 0600, it may hold the license) and deleted after the command ends.
    Its standard output and error are logged at info, line by line, through `mask_secrets`, with
    `secrets` (e.g. the client's license) masked too; so is the error tail of a failure.
    """

    def __init__(
        self,
        command: Sequence[str] | str,
        *,
        timeout: float | None = 1800.0,
        env: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("the reconcile command is empty")
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)
        self._secrets = tuple(secrets)

    def reconcile(self, desired: DesiredState, previous: DesiredState | None) -> None:
        document = desired.to_json()
        with tempfile.TemporaryDirectory(prefix="deployd-spec-") as directory:
            spec_file = Path(directory) / "spec.json"
            atomic_write(spec_file, document)
            env = {**self.env, SPEC_FILE_ENV: str(spec_file)}
            try:
                process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                )
            except FileNotFoundError as e:
                raise ReconcileError(f"reconcile command not found: {self.argv[0]}") from e
            except PermissionError as e:
                raise ReconcileError(f"reconcile command not executable: {self.argv[0]}") from e
            try:
                stdout, stderr = process.communicate(document, timeout=self.timeout)
            except subprocess.TimeoutExpired as e:
                # The command may have started children (helm ...): stop its whole group.
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.communicate()
                raise ReconcileError(
                    f"reconcile command {self.argv[0]} timed out after {self.timeout:g}s"
                ) from e
        name = Path(self.argv[0]).name
        out, err = self._masked(stdout), self._masked(stderr)
        for line in out.splitlines():
            logger.info("%s: %s", name, line)
        for line in err.splitlines():
            logger.info("%s (stderr): %s", name, line)
        if process.returncode != 0:
            tail = err.strip()[-STDERR_TAIL_CHARS:]
            raise ReconcileError(
                f"reconcile command {self.argv[0]} exited with status {process.returncode}"
                + (f": {tail}" if tail else "")
            )

    def _masked(self, output: bytes) -> str:
        return mask_secrets(output.decode("utf-8", "replace"), self._secrets)


class FileReconciler:
    """Writes the merged spec to a file atomically (for GitOps repositories and sidecars).

    YAML when the name ends in ``.yaml``/``.yml``, JSON otherwise; mode 0600.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def reconcile(self, desired: DesiredState, previous: DesiredState | None) -> None:
        if self.path.suffix in (".yaml", ".yml"):
            data = yaml.safe_dump(desired.document(), sort_keys=True, allow_unicode=True).encode()
        else:
            data = desired.to_json()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data)
        except OSError as e:
            raise ReconcileError(f"cannot write {self.path}: {e.strerror}") from e
