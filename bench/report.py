"""Turns the raw results of all repeats into figures (bridge, reference, their ratio or
difference, the goal and whether it is met), prints them as a table and as JSON."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .stats import median, ratio, spread

Raw = dict[str, Any]
"""One repeat's raw results, as the runner collects them."""


@dataclass
class Goal:
    on: Literal["compare", "bridge"]
    op: Literal["<", "<=", ">="]
    limit: float
    text: str

    def met(self, value: float) -> bool | None:
        if not math.isfinite(value):
            return None
        if self.op == "<":
            return value < self.limit
        return value <= self.limit if self.op == "<=" else value >= self.limit


INBOX_GOAL = Goal("compare", "<", 2.0, "added < 2 ms")
"""Issue 12: routing and assignment add under 2 ms (p50) to a conversation's first message."""


@dataclass
class Figure:
    key: str
    name: str
    unit: str
    bridge: list[float]
    reference: list[float]
    reference_name: str
    compare: Literal["ratio", "added", "none"]
    goal: Goal | None = None

    def compared(self) -> list[float]:
        pairs = zip(self.bridge, self.reference, strict=False)
        if self.compare == "ratio":
            return [ratio(b, r) for b, r in pairs]
        if self.compare == "added":
            return [b - r for b, r in pairs]
        return []

    def as_dict(self) -> dict[str, Any]:
        comp = self.compared()
        value = median(comp) if comp else math.nan
        goal_value = value if self.goal and self.goal.on == "compare" else median(self.bridge)
        return {
            "name": self.name,
            "unit": self.unit,
            "bridge": _num(median(self.bridge)),
            "bridge_runs": [_num(v) for v in self.bridge],
            "reference": _num(median(self.reference)),
            "reference_runs": [_num(v) for v in self.reference],
            "reference_is": self.reference_name,
            "compare": self.compare,
            "compared": _num(value) if comp else None,
            "compared_runs": [_num(v) for v in comp],
            "goal": self.goal.text if self.goal else None,
            "met": self.goal.met(goal_value) if self.goal else None,
        }


def _num(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def _series(runs: Sequence[Raw], *path: str) -> list[float]:
    out: list[float] = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        out.append(float(node) if isinstance(node, int | float) else math.nan)
    return out


def _cpu_per_1000(runs: Sequence[Raw], path: str, groups: Sequence[str]) -> list[float]:
    """CPU seconds of ``groups`` per 1,000 messages over the bridge's bulk remote -> Matrix
    runs (one room and many rooms) of each repeat."""
    out: list[float] = []
    for run in runs:
        seconds = messages = 0.0
        for scenario in ("r2m_1room", "r2m_rooms"):
            measured = run.get(scenario, {}).get(path)
            if measured:
                seconds += sum(measured["cpu_seconds"].get(g, 0.0) for g in groups)
                messages += measured["messages"]
        out.append(seconds / messages * 1000 if messages else math.nan)
    return out


def build_figures(
    runs: Sequence[Raw],
    scale: dict[str, list[dict[str, Any]]],
    opts: Raw,
    media: dict[str, Any] | None = None,
    inbox: Sequence[Raw] = (),
    inbox_e2e: Sequence[Raw] = (),
    broadcast: Raw | None = None,
    encrypted: Sequence[Raw] = (),
    metrics: Sequence[Raw] = (),
    catchup: Sequence[Raw] = (),
) -> list[Figure]:
    rooms, conc = opts["rooms"], opts["concurrency"]
    figs: list[Figure] = []
    tput = Goal("compare", ">=", 0.9, "ratio >= 0.9")
    added = Goal("compare", "<", 5.0, "added < 5 ms")

    def r2m(key: str, label: str, goal_tput: bool) -> None:
        b, d = (key, "bridge"), (key, "direct")
        figs.extend([
            Figure(f"{key}_per_second", f"remote→Matrix msg/s, {label}", "msg/s",
                   _series(runs, *b, "per_second"), _series(runs, *d, "per_second"),
                   "direct appservice API", "ratio", tput if goal_tput else None),
            Figure(f"{key}_p50_ms", f"remote→Matrix p50, {label}", "ms",
                   _series(runs, *b, "p50_ms"), _series(runs, *d, "p50_ms"),
                   "direct appservice API", "added"),
            Figure(f"{key}_p99_ms", f"remote→Matrix p99, {label}", "ms",
                   _series(runs, *b, "p99_ms"), _series(runs, *d, "p99_ms"),
                   "direct appservice API", "added"),
        ])  # fmt: skip

    r2m("r2m_1room", f"1 room, {conc} in flight", True)
    figs.append(
        # Like for like: the bridge keeps the order of a conversation, so it has one message
        # at a time on its way into a room; so does a direct sender that keeps order.
        Figure("r2m_1room_vs_in_order", f"remote→Matrix msg/s, 1 room, {conc} in flight",
               "msg/s", _series(runs, "r2m_1room", "bridge", "per_second"),
               _series(runs, "r2m_seq", "direct", "per_second"),
               "direct, in order: 1 in flight", "ratio")
    )  # fmt: skip
    r2m("r2m_rooms", f"{rooms} rooms, {conc} in flight", True)
    figs.extend([
        Figure("r2m_seq_p50_ms", "remote→Matrix p50, 1 in flight", "ms",
               _series(runs, "r2m_seq", "bridge", "p50_ms"),
               _series(runs, "r2m_seq", "direct", "p50_ms"),
               "direct appservice API", "added", added),
        Figure("r2m_seq_p99_ms", "remote→Matrix p99, 1 in flight", "ms",
               _series(runs, "r2m_seq", "bridge", "p99_ms"),
               _series(runs, "r2m_seq", "direct", "p99_ms"),
               "direct appservice API", "added"),
        Figure("m2r_p50_ms", "Matrix→remote p50, 1 in flight", "ms",
               _series(runs, "m2r_seq", "bridge", "p50_ms"),
               _series(runs, "m2r_seq", "bare", "p50_ms"),
               "bare appservice", "added", added),
        Figure("m2r_p99_ms", "Matrix→remote p99, 1 in flight", "ms",
               _series(runs, "m2r_seq", "bridge", "p99_ms"),
               _series(runs, "m2r_seq", "bare", "p99_ms"),
               "bare appservice", "added"),
        Figure("cpu_per_1000", "CPU s per 1,000 msgs (process)", "s",
               _cpu_per_1000(runs, "bridge", ["bridge"]),
               _cpu_per_1000(runs, "bridge", ["synapse"]),
               "Synapse process", "ratio", Goal("compare", "<", 0.15, "ratio < 0.15")),
        Figure("cpu_per_1000_with_db", "CPU s per 1,000 msgs (+ own DB)", "s",
               _cpu_per_1000(runs, "bridge", ["bridge", "bridge_db"]),
               _cpu_per_1000(runs, "bridge", ["synapse", "synapse_db"]),
               "Synapse + its DB", "ratio"),
    ])  # fmt: skip
    for key, label in (("r2m", "remote→Matrix"), ("m2r", "Matrix→remote")):
        moved = (media or {}).get(key) or {}
        if "peak_increase_mb" not in moved:
            continue
        figs.append(
            # The memory a transfer adds at its peak, against the size of the file moved.
            Figure(f"media_{key}_rss_mb", f"memory added, {moved['size_mb']:g} MB file, {label}",
                   "MB", [moved["peak_increase_mb"]], [moved["size_mb"]], "file size", "ratio",
                   Goal("bridge", "<", 30.0, "< 30 MB"))
        )  # fmt: skip
    for kind, points in scale.items():
        if len(points) < 2:
            continue
        small, big = points[0], points[-1]
        n = f"{big['portals']:,}"
        figs.extend([
            Figure(f"scale_{kind}_startup_s", f"start-up, {n} portals ({kind})", "s",
                   big["startup_s"], small["startup_s"], f"{small['portals']} portals", "ratio",
                   Goal("bridge", "<", 3.0, "< 3 s")),
            Figure(f"scale_{kind}_rss_mb", f"memory (RSS), {n} portals ({kind})", "MB",
                   big["rss_mb"], small["rss_mb"], f"{small['portals']} portals", "ratio",
                   Goal("bridge", "<", 150.0, "< 150 MB")),
            Figure(f"scale_{kind}_lookup_key_ms", f"portal by key, DB p50, {n} ({kind})", "ms",
                   [big["lookup_key_p50_ms"]], [small["lookup_key_p50_ms"]],
                   f"{small['portals']} portals", "ratio"),
            Figure(f"scale_{kind}_lookup_room_ms", f"portal by room, DB p50, {n} ({kind})", "ms",
                   [big["lookup_room_p50_ms"]], [small["lookup_room_p50_ms"]],
                   f"{small['portals']} portals", "ratio"),
            Figure(f"scale_{kind}_lookup_cached_ms", f"portal, cached p50, {n} ({kind})", "ms",
                   [big["lookup_cached_p50_ms"]], [small["lookup_cached_p50_ms"]],
                   f"{small['portals']} portals", "ratio"),
        ])  # fmt: skip
    figs.extend(_inbox_figures(inbox, inbox_e2e, opts))
    figs.extend(_broadcast_figures(broadcast or {}))
    figs.extend(_metrics_figures(metrics))
    figs.extend(_encrypted_figures(encrypted, opts))
    figs.extend(_catchup_figures(catchup))
    return figs


def _catchup_figures(runs: Sequence[Raw]) -> list[Figure]:
    """The catch-up of every active room after an outage against the same reads made directly
    and against one send to each room (bench/catchup.py); the names carry the absolute time
    and the rooms a second. Homeserver CPU is Synapse's process and its database connections."""
    if not runs:
        return []
    n = f"{int(runs[0]['rooms']):,}"
    wall = _series(runs, "catchup", "wall_s")
    per_second = median([r["rooms"] / w for r, w in zip(runs, wall, strict=True) if w > 0])
    cpu = _series(runs, "catchup", "hs_cpu_s")
    return [
        Figure("catchup_wall_s",
               f"catch-up of {n} active rooms: {median(wall):.1f} s, {per_second:.0f} rooms/s",
               "s", wall, _series(runs, "reads", "wall_s"), "the same reads, direct", "ratio"),
        Figure("catchup_hs_cpu_s", f"homeserver CPU, catch-up of {n} rooms", "s", cpu,
               _series(runs, "reads", "hs_cpu_s"), "the same reads, direct", "ratio"),
        Figure("catchup_hs_cpu_vs_sends", f"homeserver CPU, catch-up of {n} rooms", "s", cpu,
               _series(runs, "sends", "hs_cpu_s"), f"sending {n} messages", "ratio"),
        Figure("catchup_requests", f"requests to the homeserver, catch-up of {n} rooms",
               "requests", _series(runs, "catchup", "requests"),
               _series(runs, "reads", "requests"), "the same reads, direct", "ratio"),
    ]  # fmt: skip


ENCRYPTED_TPUT_GOAL = Goal("compare", ">=", 0.8, "ratio >= 0.8")
ENCRYPTED_CPU_GOAL = Goal("compare", "<=", 2.0, "ratio <= 2")
"""Issue 15: encrypted rooms keep at least 0.8 of the plain throughput, at most twice the
bridge's CPU per message."""


def _encrypted_figures(runs: Sequence[Raw], opts: Raw) -> list[Figure]:
    """Encrypted portal rooms against plain ones, the same bridge process, per direction
    (see bench/encrypted.py)."""
    figs: list[Figure] = []
    if not runs:
        return figs
    label = f"{opts.get('enc_rooms')} rooms, {opts.get('concurrency')} in flight"

    def cpu_ms(direction: str, kind: str) -> list[float]:
        out = []
        for run in runs:
            m = run.get(direction, {}).get(kind)
            out.append(m["cpu_seconds"]["bridge"] / m["messages"] * 1000 if m else math.nan)
        return out

    for key, name in (("r2m", "remote→Matrix"), ("m2r", "Matrix→remote")):
        e, p = (key, "encrypted"), (key, "plain")
        figs.extend([
            Figure(f"enc_{key}_per_second", f"{name} msg/s, encrypted, {label}", "msg/s",
                   _series(runs, *e, "per_second"), _series(runs, *p, "per_second"),
                   "plain rooms", "ratio", ENCRYPTED_TPUT_GOAL),
            Figure(f"enc_{key}_p50_ms", f"{name} p50, encrypted, {label}", "ms",
                   _series(runs, *e, "p50_ms"), _series(runs, *p, "p50_ms"),
                   "plain rooms", "added"),
            Figure(f"enc_{key}_cpu_ms", f"{name} bridge CPU per msg, encrypted", "ms",
                   cpu_ms(key, "encrypted"), cpu_ms(key, "plain"), "plain rooms", "ratio",
                   ENCRYPTED_CPU_GOAL),
        ])  # fmt: skip
    return figs


BROADCAST_RATE_GOAL = Goal("compare", ">=", 0.95, "ratio >= 0.95")
BROADCAST_RSS_GOAL = Goal("compare", "<", 20.0, "added < 20 MB")
"""Issue 13: a broadcast keeps to its configured rate, and its memory does not grow with the
number of recipients."""


def _broadcast_figures(broadcast: Raw) -> list[Figure]:
    """Per database: the achieved rate of the full broadcast against the configured one, its
    process's peak memory, snapshot time and CPU per recipient against the reference size's
    (see bench/broadcast.py)."""
    figs: list[Figure] = []
    for kind, runs in broadcast.items():
        if not isinstance(runs, dict) or "full" not in runs:
            continue
        full, ref = runs["full"], runs["reference"]
        n, ref_is = f"{full['size']:,}", f"{ref['size']:,} recipients"
        cpu = [run["cpu_s"] / run["size"] * 1000 for run in (full, ref)]
        figs.extend([
            Figure(f"broadcast_{kind}_per_second", f"broadcast msg/s, {n} recipients ({kind})",
                   "msg/s", [full["per_second"]], [broadcast["rate"]], "configured rate",
                   "ratio", BROADCAST_RATE_GOAL),
            Figure(f"broadcast_{kind}_rss_mb", f"broadcast peak memory (RSS), {n} ({kind})",
                   "MB", [full["rss_peak_mb"]], [ref["rss_peak_mb"]], ref_is, "added",
                   BROADCAST_RSS_GOAL),
            Figure(f"broadcast_{kind}_snapshot_s", f"broadcast snapshot, {n} ({kind})", "s",
                   [full["snapshot_s"]], [ref["snapshot_s"]], ref_is, "ratio"),
            Figure(f"broadcast_{kind}_cpu_ms", f"broadcast CPU per recipient, {n} ({kind})",
                   "ms", cpu[:1], cpu[1:], ref_is, "ratio"),
        ])  # fmt: skip
    return figs


SCRAPE_GOAL = Goal("bridge", "<", 10.0, "scrape < 10 ms")
"""Issue 16: a scrape with 100,000 portals in the database takes under 10 ms."""


def _metrics_figures(metrics: Sequence[Raw]) -> list[Figure]:
    """The scrape of ``/metrics`` against a trivial GET on the same listener (bench/metrics.py);
    the name carries the absolute time too."""
    if not metrics:
        return []
    scrape = _series(metrics, "scrape_p50_ms")
    n = f"{int(metrics[0]['portals']):,}"
    return [
        Figure("metrics_scrape_ms", f"scrape /metrics, {n} portals: {median(scrape):.2f} ms",
               "ms", scrape, _series(metrics, "trivial_p50_ms"), "trivial GET, same listener",
               "ratio", SCRAPE_GOAL),
    ]  # fmt: skip


def _inbox_figures(inbox: Sequence[Raw], e2e: Sequence[Raw], opts: Raw) -> list[Figure]:
    """What the inbox adds to the first message of a conversation end to end (against the
    bridge without it), the work of routing and assignment in-process (against a no-op inbound
    hook), and the assignment flood (against plain updates of the same rows), per database."""
    figs: list[Figure] = []
    for q in ("50", "99") if e2e else ():
        figs.append(
            # No goal here: the inbox's hook runs after the message arrived, and the room's
            # creation, on this path, varies by far more than 2 ms (see bench/inbox_e2e.py).
            Figure(f"inbox_e2e_first_p{q}_ms", f"remote→Matrix p{q}, first message, inbox on",
                   "ms", _series(e2e, "on", f"p{q}_ms"), _series(e2e, "off", f"p{q}_ms"),
                   "inbox off", "added")
        )  # fmt: skip
    modes = {"round_robin": "round robin", "least_open": "least open"}
    for kind in opts.get("inbox_dbs", []) if inbox else []:
        first = ("first", kind, "inbox")
        noop = ("first", kind, "noop")
        for q, goal in (("50", INBOX_GOAL), ("99", None)):
            figs.append(
                Figure(f"inbox_first_{kind}_p{q}_ms",
                       f"routing + assignment per first message p{q} ({kind})", "ms",
                       _series(inbox, *first, f"p{q}_ms"), _series(inbox, *noop, f"p{q}_ms"),
                       "no-op inbound hook", "added", goal)
            )  # fmt: skip
        for mode, label in modes.items():
            flood = ("flood", kind, mode)
            figs.append(
                # Checked in the run: all 100 assigned, 20 to each member, none twice.
                Figure(f"inbox_flood_{kind}_{mode}_ms",
                       f"assignment flood, 100 over 5, {label} ({kind})", "ms",
                       _series(inbox, *flood, "assign_ms"), _series(inbox, *flood, "plain_ms"),
                       "100 plain updates, no locks", "ratio")
            )  # fmt: skip
    return figs


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    return f"{value:.{digits}f}{unit}"


def _with_spread(values: list[float | None], mid: float | None, fmt: Callable[..., str]) -> str:
    finite = [v for v in values if v is not None]
    text = fmt(mid)
    if len(finite) > 1:
        low, high = spread(finite)
        text += f" [{fmt(low)}–{fmt(high)}]"
    return text


def table(figures: list[dict[str, Any]]) -> str:
    """A plain-text table: figure, bridge, reference, ratio or added, goal, met."""
    header = ("figure", "bridge", "reference", "ratio / added", "goal", "met?")
    rows = [header]
    for f in figures:
        comp_fmt: Callable[..., str]
        if f["compare"] == "added":

            def comp_fmt(v: float | None, unit: str = f["unit"]) -> str:
                return "-" if v is None else f"{v:+.1f} {unit}"

        else:
            comp_fmt = _fmt
        met = {True: "yes", False: "NO", None: ""}[f["met"]]
        rows.append((
            f"{f['name']} [{f['unit']}]",
            _with_spread(f["bridge_runs"], f["bridge"], _fmt),
            _with_spread(f["reference_runs"], f["reference"], _fmt) + f"  ({f['reference_is']})",
            _with_spread(f["compared_runs"], f["compared"], comp_fmt) if f["compared_runs"]
            else "-",
            f["goal"] or "",
            met,
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
