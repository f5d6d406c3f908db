"""deployd's operator-side client: poll a channel, verify the signed spec, merge, reconcile.

Typical use::

    from deployd.client import ClientConfig, Poller, CommandReconciler, load_trusted_keys

    config = ClientConfig(
        server="https://deployd.example.com",
        license=license_text,
        trusted_keys=load_trusted_keys(["/etc/deployd/spec-2026.pub"]),
        cache_dir=Path("/var/lib/deployd"),
    )
    with Poller(config, user_values={"global": {"host": "https://wandb.example.com"}}) as poller:
        poller.run(CommandReconciler("examples/helm-reconcile.sh"), stop_event)

The library logs through `logging.getLogger("deployd.client...")` and installs no handlers.
"""

from deployd.client.cache import AppliedState, SpecBundle, parse_bundle
from deployd.client.config import ClientConfig, load_trusted_keys
from deployd.client.errors import (
    ClientError,
    FetchError,
    InputError,
    ReconcileError,
    SpecRefusedError,
)
from deployd.client.hierarchy import DesiredState, desired_state, merge_specs
from deployd.client.inputs import (
    CustomResource,
    load_custom_resource,
    load_values_file,
    parse_custom_resource,
)
from deployd.client.licensing import LicenseChoice, find_license
from deployd.client.poller import Poller, PollOutcome, PollResult, SyncAction, SyncResult
from deployd.client.reconcilers import (
    CallableReconciler,
    CommandReconciler,
    FileReconciler,
    Reconciler,
)
from deployd.client.redact import mask_secrets
from deployd.client.trust import CATrust, load_ca_trust
from deployd.client.verify import Floor, VerifiedSpec, verify_spec

__all__ = [
    "AppliedState",
    "CATrust",
    "CallableReconciler",
    "ClientConfig",
    "ClientError",
    "CommandReconciler",
    "CustomResource",
    "DesiredState",
    "FetchError",
    "FileReconciler",
    "Floor",
    "InputError",
    "LicenseChoice",
    "PollOutcome",
    "PollResult",
    "Poller",
    "ReconcileError",
    "Reconciler",
    "SpecBundle",
    "SpecRefusedError",
    "SyncAction",
    "SyncResult",
    "VerifiedSpec",
    "desired_state",
    "find_license",
    "load_ca_trust",
    "load_custom_resource",
    "load_trusted_keys",
    "load_values_file",
    "mask_secrets",
    "merge_specs",
    "parse_bundle",
    "parse_custom_resource",
    "verify_spec",
]
