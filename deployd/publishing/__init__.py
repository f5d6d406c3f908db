"""Publishing channels: validated whole, then swapped in atomically; promotion and rollback.

`publish` writes (publish, rollback, seeding), `promotion` copies a release between channels,
`changes` describes what a publish changes, `sources` finds the text kept with each publish, and
`responses` gives the JSON shapes the HTTP API and the CLI answer with.
"""

from deployd.publishing.changes import describe_changes, summarize
from deployd.publishing.promotion import Promotion, promote_release
from deployd.publishing.publish import (
    PublishResult,
    check_channels,
    publish_channel,
    publish_channels,
    rollback_channel,
    seed_store,
)
from deployd.publishing.responses import (
    outcome_dict,
    promotion_dict,
    record_dict,
    rollback_dict,
)
from deployd.publishing.sources import document_source

__all__ = [
    "Promotion",
    "PublishResult",
    "check_channels",
    "describe_changes",
    "document_source",
    "outcome_dict",
    "promote_release",
    "promotion_dict",
    "publish_channel",
    "publish_channels",
    "record_dict",
    "rollback_channel",
    "rollback_dict",
    "seed_store",
    "summarize",
]
