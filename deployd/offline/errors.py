"""Why an offline bundle is refused: one reason code and one message, nothing applied."""

from __future__ import annotations

from deployd.errors import DeploydError

# Refusal reasons (BundleRefusedError.reason), stable for logs and tests.
UNREADABLE = "bundle_unreadable"  # not a file that could be read
NOT_A_BUNDLE = "not_a_bundle"  # not a tar archive, or a damaged one
TOO_LARGE = "bundle_too_large"
UNSAFE_MEMBER = "unsafe_member"  # a path, a link, a device, a duplicate, too many members
INCOMPLETE = "incomplete"  # a member the manifest lists is missing (a truncated file)
TAMPERED = "tampered"  # a member's bytes differ from the digest the signed manifest gives
BAD_MANIFEST = "bad_manifest"  # the manifest is unsigned, badly signed or not one
WRONG_LICENSE = "wrong_license"
EXPIRED = "bundle_expired"
BAD_SPEC = "bad_spec"  # a spec in the bundle fails verification
NO_SPEC = "no_spec"  # the bundle holds no spec for this agent (e.g. of its pinned release)


class BundleRefusedError(DeploydError):
    """An offline bundle that must not be used; `reason` is one of the codes above."""

    status = 422
    code = "bundle_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
