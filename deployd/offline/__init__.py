"""Offline bundles for air-gapped installs: one signed, license-bound file that carries what a
license would be served (specs, release list, license, keys, chart archives and digests).

- `deployd.offline.manifest`: the signed manifest and the files beside it;
- `deployd.offline.archive`: the tar container, read as hostile input;
- `deployd.offline.export`: making a bundle on the server (`POST /api/v1/bundles`,
  `deployd bundle export`);
- `deployd.offline.reading`: opening one on the agent (`deployd agent --bundle`,
  `deployd bundle import|inspect`), with the online poller's verification;
- `deployd.offline.charts`: archives of local-path charts (`--include-charts`).

("Offline bundle", to tell it from the cached spec file the client calls a spec bundle.)
"""
