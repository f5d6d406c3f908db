"""A publisher that never stops: `python -m tests.store.publish_loop REDIS_URL PREFIX RUN`.

Publishes channel `stable` over and over through `deployd.publishing.publish_channel`, each
document different and large (so a publish takes long enough to be interrupted inside), and
prints ``<sequence> <digest>`` after each publish the store confirmed. The test kills it and
starts it again with another RUN, which goes into every document: a document one run publishes
is never one an earlier run published, so no publish is an unchanged no-op.
"""

from __future__ import annotations

import sys

from deployd.channels import parse_channel_text
from deployd.publishing import publish_channel
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML

# About 200 KB of values: the transaction carries the record twice (current and history).
PADDING = 200_000


def channel_text(run: str, n: int) -> str:
    return CHANNEL_YAML.format(name="stable") + f'    notes: "{run}-{n:08d}{"x" * PADDING}"\n'


def main(url: str, prefix: str, run: str) -> None:
    store = RedisStore.from_url(url, prefix=prefix)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        text = channel_text(run, n)
        channel = parse_channel_text(text, filename="stable.yaml", expected_name="stable")
        result = publish_channel(store, channel, source=text, publisher=f"loop-{n}")
        print(result.record.sequence, result.record.digest, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
