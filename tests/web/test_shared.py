"""The consoles' shared pieces (deployd.web): the base template and stylesheet, the SVG charts
and their table alternative, and CSRF tokens."""

from __future__ import annotations

import re

import pytest
from flask import Flask, render_template_string

from deployd.web import assets_blueprint
from deployd.web.charts import stacked_bars
from deployd.web.csrf import CsrfTokens

POINTS = [
    ("2026-11-29T10:00Z", {"1.4.1": 3}),
    ("2026-11-29T11:00Z", {"1.4.1": 2, "1.5.0": 2}),
    ("2026-11-29T12:00Z", {"1.5.0": 5, "<script>": 1}),
]


def test_stacked_bars_draw_one_bar_per_point_and_one_segment_per_nonzero_value() -> None:
    chart = stacked_bars(POINTS, title="Adoption", preferred=["1.4.1", "1.5.0"])
    svg = str(chart.svg)
    assert chart.bars == 3 and svg.count('<g class="bar"') == 3
    assert svg.count("<rect") == 5
    assert chart.series == ("1.4.1", "1.5.0", "<script>")
    assert "<script>" not in str(chart.__html__())  # names are escaped
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg


def test_the_tallest_bar_fills_the_plot_and_segments_stack() -> None:
    svg = str(stacked_bars(POINTS, title="Adoption").svg)
    bars = re.findall(r'<g class="bar"[^>]*>(.*?)</g>', svg)
    heights = [sum(float(h) for h in re.findall(r'height="([\d.]+)"', bar)) for bar in bars]
    assert heights[2] == pytest.approx(max(heights)) and heights[0] == pytest.approx(
        heights[2] / 2, abs=0.2
    )


def test_the_table_alternative_has_every_number_newest_first() -> None:
    table = str(stacked_bars(POINTS, title="Adoption", preferred=["1.4.1", "1.5.0"]).table)
    rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th>(.*?)</tr>", table)
    assert [r[0] for r in rows] == [p[0] for p in reversed(POINTS)]
    assert re.findall(r'<td class="num">(\d+)</td>', rows[1][1]) == ["2", "2", "0", "4"]


def test_an_empty_chart_says_so() -> None:
    chart = stacked_bars([], title="Adoption")
    assert chart.bars == 0 and "no data yet" in str(chart.svg)


def test_csrf_tokens_are_bound_to_their_session_and_secret() -> None:
    tokens = CsrfTokens(b"s" * 32)
    token = tokens.issue("session-a")
    assert tokens.check("session-a", token)
    assert not tokens.check("session-b", token)
    assert not tokens.check("session-a", None) and not tokens.check("session-a", "")
    assert not CsrfTokens(b"t" * 32).check("session-a", token)
    with pytest.raises(ValueError):
        CsrfTokens(b"short")


def test_the_base_template_and_stylesheet_are_served() -> None:
    app = Flask(__name__)
    app.register_blueprint(assets_blueprint("/console"))
    with app.test_request_context():
        page = render_template_string(
            '{% extends "web/base.html" %}{% block content %}<p>hello</p>{% endblock %}',
            page_title="Channels",
            console_name="deployd release console",
            nav=[{"href": "/console", "label": "Channels", "current": True}],
            signed_in_as="alice",
            sign_out_url="/console/sign-out",
            csrf_token="tok",
            messages=[{"kind": "error", "text": "bad <input>"}],
        )
    assert '<main id="main"' in page and 'aria-current="page"' in page
    assert 'role="alert">bad &lt;input&gt;</p>' in page
    assert 'href="/console/static/console.css"' in page
    with app.test_client().get("/console/static/console.css") as css:
        assert css.status_code == 200 and b"prefers-color-scheme: dark" in css.data
