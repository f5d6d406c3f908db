"""How a customer record changes what a poll gets, over what the license says.

The same rules on the fast path and in the Flask view (deployd.api.operator calls these):

- the default channel is the record's `channel`, else the license's `channel` claim;
- a caller may read the license's channels, the record's `channel` and its `extraChannels`;
- of the channel served, a `pinnedRelease` the channel has is served; a pin the channel does not
  have (never had, or a publish removed it) is ignored, and the channel is served as usual;
- with `hold`, the release the caller runs (`current_version`) is served again when the channel
  still has it; with no current release known, or one the channel lacks, it is served as usual.

A pin wins over a hold. Rollout cohorts stay keyed on the subject: a record never moves a
customer in or out of a staged rollout, it only replaces the selection.
"""

from __future__ import annotations

from deployd.channels import Channel, Release
from deployd.customers.records import CustomerRecord
from deployd.licensing.tokens import VerifiedLicense


def default_channel(record: CustomerRecord | None, license: VerifiedLicense) -> str:
    """The channel a caller gets when it asks for none."""
    if record is not None and record.channel is not None:
        return record.channel
    return license.channel


def may_read(record: CustomerRecord | None, license: VerifiedLicense, channel: str) -> bool:
    """Whether the caller may ask for `channel`: the license's channels, or the record's."""
    if license.may_read(channel):
        return True
    return record is not None and (channel == record.channel or channel in record.extra_channels)


def may_replace_selection(record: CustomerRecord | None, current_version: str | None) -> bool:
    """Whether `chosen_release` may answer anything but None for this record and caller (so
    whether a choice remembered from the channel's selection may stand without asking it)."""
    if record is None:
        return False
    return record.pinned_release is not None or (record.hold and current_version is not None)


def chosen_release(
    record: CustomerRecord | None, channel: Channel, current_version: str | None
) -> Release | None:
    """The release the record makes this caller get from `channel`, or None when the record
    leaves the choice to the channel's selection (rollouts, required releases)."""
    if record is None:
        return None
    if record.pinned_release is not None:
        pinned = channel.release(record.pinned_release)
        if pinned is not None:
            return pinned
    if record.hold and current_version is not None:
        return channel.release(current_version)
    return None
