"""The datasets overview: one HTML file standing in for the Datasets page until Steward has a
web UI — a chart of datasets per state over time, the ``track`` and ``discover`` tables with
the list's filters, and each dataset's history with the time it spent in each state.

Everything is derived from the ledger, as the page of a web UI would be:

- the chart replays the dataset events that changed a state (``from_state`` ≠ ``to_state``,
  creation included): each adds one to the state entered and takes one from the state left,
  so the counts at the end of each day (or week) in the caller's zone are running sums of
  those deltas — one pass over the events, whatever the number of datasets;
- the tables are :mod:`~steward.services.dataset_views`'s own, so the page shows what
  ``steward dataset list --view …`` and the exports show;
- the histories are :func:`~steward.services.timeline.build_timeline` of each dataset's
  events, as ``steward dataset history`` shows them.

Only the datasets the caller may see, and that match the filter, are read
(:func:`steward.services.subjects.visible_query`): the page holds nothing of a project its
reader is not a member of. The file is built like the package report
(:mod:`steward.packaging.report`): inline CSS and script, the data as JSON escaped for a
``<script>`` block, a Content-Security-Policy that forbids every request, every untrusted
value autoescaped or set as text, and the chart drawn server-side as inline SVG.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import select

from steward import html
from steward.config import Settings
from steward.crawl.accessions import DEFAULT_MAPPINGS, AccessionMapping
from steward.db.models import Dataset, DatasetLocation, Event
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.errors import Detail, ValidationFailed
from steward.outfiles import open_output
from steward.redact import redact
from steward.services import dataset_views, subjects
from steward.services.access import require_user
from steward.services.datasets import DATASET, DatasetView
from steward.services.kinds import Filter
from steward.services.timeline import build_timeline, current_stay
from steward.tables import Table
from steward.timeutil import as_utc, format_time, utcnow

PACKAGE = "steward.services"
"""Where this page's templates live."""

EVERY = ("day", "week")
AUTO_WEEKS_AFTER = 120
"""Days of history past which the chart has a bar per week rather than per day."""
NOTE_CHARS = 300
"""An event's note in a history is cut here: the page is an overview, the CLI has the rest."""
COLOURS = {
    "external": "#8c8c8c",
    "incoming": "#56b4e9",
    "loading": "#e69f00",
    "analysing": "#cc79a7",
    "processed": "#0072b2",
    "published": "#009e73",
    domain.MISSING: "#d55e00",
    domain.WITHDRAWN: "#4d4d4d",
}
"""One colour per state (Okabe and Ito's palette, readable by colour-blind people)."""
VIEW_STATES = {"track": dataset_views.TRACKED, "discover": ("external",)}


# ---- the series: datasets per state over time (pure) ----------------------------------------
@dataclass(frozen=True)
class Move:
    """One event that put a dataset in a state: its creation (``from_state`` None) or a move."""

    at: datetime
    from_state: str | None
    to_state: str


@dataclass(frozen=True)
class Series:
    """How many datasets were in each state at the end of each bucket (the last: now)."""

    every: str
    starts: tuple[date, ...]
    """Each bucket's first day, in the caller's zone (a week starts on Monday)."""
    counts: dict[str, tuple[int, ...]]
    """Per state that held a dataset at the end of some bucket, in the state order."""

    @property
    def totals(self) -> tuple[int, ...]:
        return tuple(sum(c) for c in zip(*self.counts.values(), strict=True)) or tuple(
            0 for _ in self.starts
        )


def state_order(stages: Sequence[str]) -> tuple[str, ...]:
    """The configured stages, then any stage they leave out, then ``missing`` and
    ``withdrawn``: the order of the chart, its legend and the counts."""
    rest = [s for s in domain.STAGES if s not in stages]
    return (*stages, *rest, domain.MISSING, domain.WITHDRAWN)


def check_every(every: str | None) -> None:
    if every is not None and every not in EVERY:
        raise ValidationFailed(
            f"cannot group the chart by {every!r}",
            [Detail("unknown period", field="every", value=every, accepted=", ".join(EVERY))],
        )


def _bucket(day: date, every: str) -> date:
    return day - timedelta(days=day.weekday()) if every == "week" else day


def state_series(
    moves: Iterable[Move],
    *,
    order: Sequence[str],
    tz: ZoneInfo,
    now: datetime,
    every: str | None = None,
) -> Series:
    """Datasets per state at the end of each day (``every`` "day") or week, from the first
    move's bucket to now's, in ``tz``; ``every`` None picks weeks past
    :data:`AUTO_WEEKS_AFTER` days. Events that change no state are ignored; one dated after
    ``now`` counts in now's bucket. States that held no dataset at any bucket's end get no
    series (a dataset that passed through a state within a day is in the histories)."""
    check_every(every)
    today = as_utc(now).astimezone(tz).date()
    dated = [
        (min(as_utc(m.at).astimezone(tz).date(), today), m)
        for m in moves
        if m.from_state != m.to_state
    ]
    if not dated:
        return Series(every or "day", (), {})
    first = min(day for day, _ in dated)
    every = every or ("week" if (today - first).days > AUTO_WEEKS_AFTER else "day")
    step = 7 if every == "week" else 1
    origin = _bucket(first, every)
    n = (_bucket(today, every) - origin).days // step + 1
    deltas: defaultdict[str, list[int]] = defaultdict(lambda: [0] * n)
    for day, m in dated:
        i = (_bucket(day, every) - origin).days // step
        deltas[m.to_state][i] += 1
        if m.from_state is not None:
            deltas[m.from_state][i] -= 1
    ranked = {s: i for i, s in enumerate(order)}
    counts: dict[str, tuple[int, ...]] = {}
    for state in sorted(deltas, key=lambda s: (ranked.get(s, len(ranked)), s)):
        running, held = 0, []
        for d in deltas[state]:
            running += d
            held.append(running)
        if any(held):
            counts[state] = tuple(held)
    starts = tuple(origin + timedelta(days=i * step) for i in range(n))
    return Series(every, starts, counts)


# ---- the chart as SVG geometry (pure) ------------------------------------------------------
WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 44
X_LABELS = 12


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class ChartSeries:
    state: str
    colour: str
    rects: list[Rect]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    series: list[ChartSeries]
    y_ticks: list[tuple[float, int]]
    x_labels: list[tuple[float, str]]
    plot: tuple[int, int, int, int]  # left, top, right, bottom (the plot's edges)


def _nice_top(value: int) -> tuple[int, int]:
    """An axis end at or above ``value`` and its tick step (1, 2 or 5 times a power of 10)."""
    if value <= 0:
        return 1, 1
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(int(step), 1)
    return math.ceil(value / step) * step, step


def chart_of(series: Series) -> Chart:
    """Stacked bars, one per bucket, in the state order from the bottom up: each state's
    bars are one SVG group, each bar titled with its date, state and count."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(series.starts)
    top, step = _nice_top(max(series.totals, default=0))
    scale = plot_h / top
    band = plot_w / max(n, 1)
    bar = max(band * 0.8, 1.0)
    base = [0] * n
    groups = []
    for state, held in series.counts.items():
        rects = []
        for i, count in enumerate(held):
            if count <= 0:
                continue
            y = TOP + plot_h - (base[i] + count) * scale
            rects.append(
                Rect(
                    round(LEFT + i * band + (band - bar) / 2, 2),
                    round(y, 2),
                    round(bar, 2),
                    round(count * scale, 2),
                    f"{_label(series, i)}: {count:,} {state}",
                )
            )
            base[i] += count
        groups.append(ChartSeries(state, COLOURS.get(state, "#999999"), rects))
    every = max(1, math.ceil(n / X_LABELS))
    return Chart(
        WIDTH,
        HEIGHT,
        groups,
        [(round(TOP + plot_h - v * scale, 2), v) for v in range(0, top + 1, step)],
        [(round(LEFT + (i + 0.5) * band, 2), _label(series, i)) for i in range(0, n, every)],
        (LEFT, TOP, WIDTH - RIGHT, TOP + plot_h),
    )


def _label(series: Series, i: int) -> str:
    day = series.starts[i].isoformat()
    return f"week of {day}" if series.every == "week" else day


# ---- the overview (reads, with permissions) -------------------------------------------------
@dataclass(frozen=True)
class Overview:
    generated_at: datetime
    generated_by: str
    timezone: str
    filters: list[tuple[str, str]]
    order: tuple[str, ...]
    counts: dict[str, int]
    """Datasets per state now, in the state order (states with none left out)."""
    series: Series
    tables: dict[str, Table | None]
    """``track`` and ``discover``; None when the state filter leaves a view nothing."""
    datasets: list[dict[str, Any]]
    """Each dataset's facts (what the page filters on) and history, as JSON."""
    events: int


def configured_stages(settings: Settings) -> tuple[str, ...]:
    """The stage order of steward.toml's ``[crawl]`` table, else the default one."""
    raw = (settings.crawl or {}).get("stages")
    if raw is None:
        return domain.STAGES
    from steward.crawl.config import parse_crawl_config

    return parse_crawl_config({"stages": raw, "sources": []}, origin="steward.toml").stages


def overview(
    db: Database,
    *,
    actor: str | None,
    flt: Filter,
    tz: ZoneInfo,
    stages: Sequence[str] = domain.STAGES,
    mappings: Sequence[AccessionMapping] = DEFAULT_MAPPINGS,
    every: str | None = None,
    now: datetime | None = None,
) -> Overview:
    """The overview of the datasets ``actor`` may see that match ``flt`` (every list filter;
    no limit): their histories, the chart of their states over time and the two views."""
    check_every(every)  # before anything is read
    now = now or utcnow()
    order = state_order(stages)
    flt = replace(flt, limit=None)
    with db.read() as s:
        q = subjects.visible_query(s, DATASET, actor, flt)
        user = require_user(s, actor).id
        rows = list(s.scalars(q.order_by(Dataset.project_id, Dataset.accession)))
        ids = q.with_only_columns(Dataset.id).scalar_subquery()
        events = list(
            s.scalars(
                select(Event)
                .where(Event.subject_kind == DATASET.name, Event.subject_id.in_(ids))
                .order_by(Event.subject_id, Event.seq)
            )
        )
        found: defaultdict[str, set[str]] = defaultdict(set)
        for dataset_id, stage in s.execute(
            select(DatasetLocation.dataset_id, DatasetLocation.stage).where(
                DatasetLocation.dataset_id.in_(ids), DatasetLocation.present.is_(True)
            )
        ):
            found[dataset_id].add(stage)
    per_dataset: defaultdict[str, list[Event]] = defaultdict(list)
    for e in events:
        per_dataset[e.subject_id].append(e)
    views: list[DatasetView] = [DATASET.view_of(r) for r in rows]
    series = state_series(
        (Move(e.at, e.from_state, e.to_state) for e in events),
        order=order,
        tz=tz,
        now=now,
        every=every,
    )
    tables = _tables(db, actor, flt, mappings)
    now_counts = Counter(v.state for v in views)
    rank = {s: i for i, s in enumerate(order)}
    return Overview(
        generated_at=now,
        generated_by=user,
        timezone=tz.key,
        filters=_filters_used(flt, tz),
        order=order,
        counts={s: now_counts[s] for s in order if now_counts[s]},
        series=series,
        tables=tables,
        datasets=[
            _dataset(
                v,
                per_dataset[v.id],
                sorted(found[v.id], key=lambda st: rank.get(st, len(rank))),
                tz,
                now,
            )
            for v in views
        ],
        events=len(events),
    )


def _tables(
    db: Database, actor: str | None, flt: Filter, mappings: Sequence[AccessionMapping]
) -> dict[str, Table | None]:
    """Both views, each narrowed to the filter's states within it; a view the states leave
    nothing of (``--state loading``: no external dataset) is None, not an error."""
    out: dict[str, Table | None] = {}
    for view, allowed in VIEW_STATES.items():
        wanted = tuple(s for s in flt.states if s in allowed)
        if flt.states and not wanted:
            out[view] = None
            continue
        out[view] = dataset_views.view_table(
            db,
            actor=actor,
            view=view,
            flt=replace(flt, states=wanted),
            mappings=mappings,
        )
    return out


def _filters_used(flt: Filter, tz: ZoneInfo) -> list[tuple[str, str]]:
    used = []
    if flt.project:
        used.append(("project", flt.project))
    if flt.states:
        used.append(("state", ", ".join(flt.states)))
    for name, value in flt.values.items():
        if value is None or value == "":
            continue
        text = format_time(value, tz) if isinstance(value, datetime) else str(value)
        used.append((name.replace("_", " "), text))
    return used


def _note(data: dict[str, Any]) -> str:
    """What an event's data says, in a line: the reason or note, where the dataset was found,
    which fields changed, which problems — redacted, cut at :data:`NOTE_CHARS`."""
    parts: list[str] = []
    for key in ("reason", "text"):
        if data.get(key):
            parts.append(str(data[key]))
    if data.get("found_in"):
        parts.append("found in " + ", ".join(map(str, data["found_in"])))
    if data.get("last_locations"):
        parts.append("last in " + ", ".join(map(str, data["last_locations"])))
    if data.get("location"):
        parts.append(f"{data.get('stage', '')}: {data['location']}".lstrip(": "))
    if isinstance(data.get("locations"), list):
        parts.append(
            "in "
            + ", ".join(
                f"{p.get('stage', '')}: {p.get('location', '')}"
                for p in data["locations"]
                if isinstance(p, dict)
            )
        )
    if isinstance(data.get("changed"), dict):
        parts.append("changed: " + ", ".join(sorted(map(str, data["changed"]))))
    if isinstance(data.get("problems"), list) and data["problems"]:
        kinds = sorted({str(p.get("kind")) for p in data["problems"] if isinstance(p, dict)})
        parts.append("problems: " + ", ".join(kinds))
    if data.get("duplicate_of"):
        parts.append(f"duplicate of {data['duplicate_of']}")
    if "checked" in data and "mismatched" in data:
        parts.append(f"{data['checked']} sidecars checked, {data['mismatched']} mismatched")
    if data.get("clock_note"):
        parts.append(str(data["clock_note"]))
    text = redact("; ".join(parts))
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1] + "…"


def _iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    """A time in the caller's zone, to the second: the page shows it as written."""
    if value is None:
        return None
    return as_utc(value).astimezone(tz).replace(microsecond=0).isoformat()


def _dataset(
    v: DatasetView, events: list[Event], stages: list[str], tz: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """A dataset as the page filters and shows it: its facts, and its history with the time
    spent in each state (the current stay counted up to now unless it is final)."""
    timeline, totals = build_timeline(events)
    current = current_stay(
        totals,
        state=v.state,
        since=v.state_since,
        terminal=DATASET.workflow.state(v.state).terminal,
        now=now,
    )
    return {
        "id": v.id,
        "accession": v.accession,
        "project": v.project_id,
        "state": v.state,
        "since": _iso(v.state_since, tz),
        "title": v.title,
        "stages": stages,
        "tech": v.technologies,
        "organism": v.organism,
        "curator": v.curator,
        "problems": v.problem_count,
        "problem_kinds": sorted({str(p.get("kind")) for p in v.problems}),
        "duplicate_of": v.duplicate_of,
        "events": [
            [
                e.seq,
                _iso(e.at, tz),
                e.actor,
                e.type,
                e.from_state,
                e.to_state,
                e.time_in_previous_state,
                _note(e.data),
                e.out_of_order,
            ]
            for e in timeline
        ],
        "time_in_state": [[s, round(x, 3)] for s, x in totals.items()],
        "current_for": None if current is None else round(current, 3),
    }


# ---- the page ---------------------------------------------------------------------------
def _rows(table: Table, tz: ZoneInfo, index: dict[tuple[str, str], int]) -> dict[str, Any]:
    """A view as the page's script reads it: columns, rows of JSON values (times in the
    caller's zone), and for each row the dataset it is (its index in ``datasets``)."""
    records = list(table.records(tz))
    return {
        "columns": [
            {"key": c.machine_name, "label": c.title or c.name.replace("_", " "), "kind": c.kind}
            for c in table.columns
        ],
        "rows": [list(r.values()) for r in records],
        "refs": [index.get((str(r["project"]), str(r["accession"]))) for r in records],
    }


def _choices(datasets: list[dict[str, Any]], key: str, order: Sequence[str] = ()) -> list[str]:
    values: set[str] = set()
    for d in datasets:
        value = d[key]
        values.update(value if isinstance(value, list) else [value] if value else [])
    ranked = {s: i for i, s in enumerate(order)}
    return sorted(values, key=lambda v: (ranked.get(v, len(ranked)), v.lower()))


def render_overview(data: Overview) -> str:
    """The whole page as one HTML document."""
    tz = ZoneInfo(data.timezone)
    index = {(d["project"], d["accession"]): i for i, d in enumerate(data.datasets)}
    views = {name: _rows(t, tz, index) for name, t in data.tables.items() if t is not None}
    payload = {
        "order": list(data.order),
        "views": views,
        "datasets": data.datasets,
    }
    script = html.asset(PACKAGE, "dataset_overview.js")
    generated = as_utc(data.generated_at)
    return (
        html.environment(PACKAGE)
        .get_template("dataset_overview.html.j2")
        .render(
            data=data,
            generated_iso=generated.isoformat().replace("+00:00", "Z"),
            generated_text=f"{format_time(generated, tz)} {data.timezone}",
            chart=chart_of(data.series),
            views={name: t is not None for name, t in data.tables.items()},
            choices={
                "state": _choices(data.datasets, "state", data.order),
                "stage": _choices(data.datasets, "stages", data.order),
                "tech": _choices(data.datasets, "tech"),
                "organism": _choices(data.datasets, "organism"),
                "curator": _choices(data.datasets, "curator"),
            },
            colours=COLOURS,
            data_json=Markup(html.json_for_script(payload)),
            css=Markup(
                html.asset("steward.packaging", "report.css")
                + html.asset(PACKAGE, "dataset_overview.css")
            ),
            script=Markup(script),
            csp=html.content_security_policy(script),
        )
    )


def figures(data: Overview) -> dict[str, Any]:
    """What ``steward dataset overview --json`` says of the page besides where it went."""
    return {
        "datasets": len(data.datasets),
        "events": data.events,
        "every": data.series.every,
        "counts": data.counts,
    }


def write_overview(data: Overview, path: Path, *, force: bool = False) -> Path:
    """Render and write the page whole or not at all (temporary file and rename); an
    existing file is kept unless ``force``."""
    html = render_overview(data)
    with open_output(path, overwrite=force) as out:
        out.write(html)
    return path
