"""Shared pieces of deployd's browser consoles: the base template, the stylesheet, SVG charts
(`deployd.web.charts`) and CSRF tokens (`deployd.web.csrf`).

Both consoles (the release console on the server, the system console beside the agent) register
`assets_blueprint()` on their Flask app and extend ``web/base.html``. Nothing here needs
JavaScript or a network: pages work offline and with scripts off.
"""

from __future__ import annotations

from flask import Blueprint

ASSETS_BLUEPRINT = "web"


def assets_blueprint(url_prefix: str = "") -> Blueprint:
    """The blueprint serving ``web/base.html`` and ``console.css`` (as
    ``url_for('web.static', filename='console.css')``) under `url_prefix` + ``/static``."""
    return Blueprint(
        ASSETS_BLUEPRINT,
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
        url_prefix=url_prefix or None,
    )
