"""Server-rendered SVG charts with a text alternative: no JavaScript, no library, no network.

`stacked_bars` draws a stacked bar chart (one bar per point in time, one coloured segment per
series, e.g. instances per release per hour) and the same numbers as an HTML table for screen
readers and for anyone who would rather read them. Colours come from the stylesheet's
``series-N`` classes, so the chart follows the page's light or dark scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

SERIES_COLOURS = 8  # series-0 .. series-7 in console.css; more series reuse them in turn

# Drawing area, in SVG user units (the SVG scales to its container).
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 24

Point = tuple[str, Mapping[str, int]]  # (label of the moment, series name -> value)


@dataclass(frozen=True)
class Chart:
    """A rendered chart: `svg` and `table` carry the same numbers; `bars` is how many points."""

    svg: Markup
    legend: Markup
    table: Markup
    bars: int
    series: tuple[str, ...]

    def __html__(self) -> str:
        return str(
            Markup('<figure class="chart-figure">{}{}{}</figure>').format(
                self.svg, self.legend, self.table
            )
        )


def series_order(points: Sequence[Point], preferred: Sequence[str] = ()) -> tuple[str, ...]:
    """The series in `preferred` order (those that occur), then any others sorted."""
    present = {name for _, values in points for name in values}
    first = [name for name in preferred if name in present]
    return (*first, *sorted(present - set(first)))


def stacked_bars(
    points: Sequence[Point], *, title: str, preferred: Sequence[str] = (), unit: str = "instances"
) -> Chart:
    """A stacked bar chart of `points`, oldest first, with its table alternative."""
    names = series_order(points, preferred)
    top = max((sum(values.values()) for _, values in points), default=0)
    svg = _svg(points, names, title=title, top=top, unit=unit)
    return Chart(svg, _legend(names), _table(points, names, title, unit), len(points), names)


def _svg(
    points: Sequence[Point], names: Sequence[str], *, title: str, top: int, unit: str
) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)
    scale = plot_h / top if top else 0.0
    parts = [_axes(top, plot_h)]
    for index, (label, values) in enumerate(points):
        x = LEFT + index * step
        parts.append(_bar(x, max(step - 1, 1), label, values, names, scale, unit))
    parts.append(_x_labels(points, step))
    summary = _summary(points, names, unit)
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}"'
        ' aria-labelledby="{id}-t {id}-d" data-bars="{n}">'
        '<title id="{id}-t">{title}</title><desc id="{id}-d">{summary}</desc>{body}</svg>'
    ).format(
        w=WIDTH,
        h=HEIGHT,
        id=_id(title),
        n=len(points),
        title=title,
        summary=summary,
        body=Markup("").join(parts),
    )


def _axes(top: int, plot_h: float) -> Markup:
    base = TOP + plot_h
    return Markup(
        '<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        '<text x="{tx}" y="{b}" text-anchor="end">0</text>'
        '<text x="{tx}" y="{t}" text-anchor="end">{top}</text>'
    ).format(l=LEFT, r=WIDTH - RIGHT, b=base, tx=LEFT - 4, t=TOP + 10, top=top)


def _bar(
    x: float,
    width: float,
    label: str,
    values: Mapping[str, int],
    names: Sequence[str],
    scale: float,
    unit: str,
) -> Markup:
    # Plain string building with each text escaped once: markupsafe's format is ~10x slower,
    # and a week of hourly bars with a dozen releases is a few thousand segments.
    y = float(HEIGHT - BOTTOM)
    label_text, unit_text = escape(label), escape(unit)
    segments = []
    for index, name in enumerate(names):
        value = values.get(name, 0)
        if value <= 0:
            continue
        height = value * scale
        y -= height
        segments.append(
            f'<rect class="series-{index % SERIES_COLOURS}" x="{x:.1f}" y="{y:.1f}"'
            f' width="{width:.1f}" height="{height:.1f}"><title>{label_text}: {escape(name)}'
            f" {int(value)} {unit_text}</title></rect>"
        )
    return Markup(f'<g class="bar" data-at="{label_text}">{"".join(segments)}</g>')


def _x_labels(points: Sequence[Point], step: float) -> Markup:
    """The first and last labels under the axis (the table has every one)."""
    if not points:
        return Markup('<text x="{}" y="{}">no data yet</text>').format(LEFT + 8, HEIGHT / 2)
    y = HEIGHT - 6
    first = Markup('<text x="{}" y="{}">{}</text>').format(LEFT, y, points[0][0])
    if len(points) == 1:
        return first
    last_x = LEFT + len(points) * step
    return first + Markup('<text x="{}" y="{}" text-anchor="end">{}</text>').format(
        last_x, y, points[-1][0]
    )


def _summary(points: Sequence[Point], names: Sequence[str], unit: str) -> str:
    if not points:
        return "No data yet."
    label, values = points[-1]
    latest = ", ".join(f"{name} {values.get(name, 0)}" for name in names) or "none"
    return f"{len(points)} points from {points[0][0]} to {label}; latest {unit}: {latest}."


def _legend(names: Sequence[str]) -> Markup:
    items = [
        Markup('<li><span class="swatch series-{}" aria-hidden="true"></span>{}</li>').format(
            index % SERIES_COLOURS, name
        )
        for index, name in enumerate(names)
    ]
    return Markup('<ul class="legend">{}</ul>').format(Markup("").join(items))


def _table(points: Sequence[Point], names: Sequence[str], title: str, unit: str) -> Markup:
    head = "".join(f'<th scope="col" class="num">{escape(n)}</th>' for n in names)
    rows = []
    for label, values in reversed(points):
        cells = "".join(f'<td class="num">{int(values.get(n, 0))}</td>' for n in names)
        total = int(sum(values.values()))
        rows.append(
            f'<tr><th scope="row">{escape(label)}</th>{cells}<td class="num">{total}</td></tr>'
        )
    title_text, unit_text = escape(title), escape(unit)
    return Markup(
        f'<details class="chart-table"><summary>{title_text}: the numbers as a table</summary>'
        f"<table><caption>{title_text} ({unit_text}), newest first</caption>"
        f'<thead><tr><th scope="col">At</th>{head}<th scope="col" class="num">Total</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _id(title: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
    return "chart-" + (slug or "x")
