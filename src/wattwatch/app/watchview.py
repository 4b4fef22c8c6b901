"""The live view of ``wattwatch watch``: a rich table on a terminal, quiet log lines in a pipe."""

from __future__ import annotations

import time

from rich.console import Group
from rich.markup import escape
from rich.table import Table

SHOWN = ("readings", "messages", "malformed", "polls", "lost", "timeouts", "crc_errors", "reconnects", "errors", "late",
         "connects", "disconnects")


# Counters of outputs (sinks, actions) worth a column when one has them.
OUT_SHOWN = ("matched", "queue", "ok", "refused", "failed", "rate_limited", "dropped", "already_done", "failures",
             "written", "buffered", "flushed", "backlog")
# The engine's counters, in the engine table's order: ``duplicates`` = re-sent copies of stored
# readings (counted, re-judging nothing), ``conflicts`` = readings sent again with other values than
# the ones kept (the store keeps the first; their values dropped, said in the log), ``late`` =
# readings at or before their meter's last judged one.
ENGINE_SHOWN = ("readings", "stored", "duplicates", "conflicts", "judged", "late", "rejected", "profiled",
                "alerts_new", "alerts_updated", "alerts_ended", "alerts_withdrawn")
DEVICE_SHOWN = ("polls", "lost", "timeouts", "exceptions", "malformed", "crc_errors", "retries")


def open_alert_ids(engine) -> tuple[set[str], set[str]]:
    """The ids of the alerts still open (the final ones that may still grow, the health alerts sources
    keep open, the provisional ones that may still grow: issue 16, and the edge reports of a meter
    still in the state reported: le2, a tamper until its ``cleared`` report), and of those the
    provisional ones. One place for the table, the lines and the stop line, so their counts agree
    (pv: the table listed every unconfirmed provisional alert, ended or not, and the summary line none)."""
    prov = set(getattr(engine, "provisional_open", ())) & set(getattr(engine, "provisional", ()))
    return (set(engine.open_ids) | set(getattr(engine, "health_open", ())) | prov
            | set(getattr(engine, "events_open", ())), prov)


def _open_title(n: int, prov: set[str]) -> str:
    return f"{n}" + (f", {len(prov)} provisional" if prov else "")


def render(engine, sources, outputs=(), demo=None) -> Group:
    """Sources and their counters, polled devices (Modbus) and their counters, the engine's
    counters, the outputs (sinks and actions: what they did), the alerts still open (newest
    first); with ``demo``, the simulated devices too."""
    extra = []
    rows = [d for s in sources for d in (s.devices_view() if hasattr(s, "devices_view") else [])]
    if rows:
        dev = Table("meter", "gateway", "unit", *DEVICE_SHOWN, "p50 ms", "slow", title="polled devices",
                    title_justify="left")
        for d in rows[:30]:
            dev.add_row(escape(d["meter_id"]), escape(d["gateway"]), str(d["unit"]),
                        *(f"{int(d.get(k, 0)):,}" for k in DEVICE_SHOWN), f"{d.get('p50_ms', 0):.1f}",
                        "yes" if d.get("slow") else "")
        extra.append(dev)
    if demo is not None:
        sim = Table("device", "kind", "status", "port", "faults", "requests/published", title="simulated devices",
                    title_justify="left")
        for v in demo.views():
            sim.add_row(escape(str(v.get("name"))), str(v.get("kind")), str(v.get("status")), str(v.get("port")),
                        escape(str(v.get("faults", "-"))), f"{int(v.get('requests', v.get('published', 0))):,}")
        extra.append(sim)
    watch = getattr(engine, "silence", None)   # meters that stopped answering (runners/silence.py)
    silent = watch.rows() if watch is not None else []
    if silent:
        quiet = Table("meter", "source", "silent since", "lost", "why", title=f"silent meters ({len(silent)})",
                      title_justify="left")
        for r in silent[:30]:
            quiet.add_row(escape(r["meter_id"]), escape(r["source"]), r["since"], f"{r['lost']:,}", escape(r["why"]))
        extra.append(quiet)
    views = [s.view() for s in sources]
    # Counters that some source has (an MQTT source has no polls, a poller no messages).
    shown = [k for k in SHOWN if any(v.get(k) for v in views)] or ["readings"]
    src = Table("source", "kind", "status", *shown, title="sources", title_justify="left")
    for s, v in zip(sources, views):
        src.add_row(escape(s.name), s.kind, escape(str(v.get("status", ""))), *(f"{int(v.get(k, 0)):,}" for k in shown))
    c = engine.counters
    eng = Table("readings", "stored", "duplicates", "conflicts", "judged", "late", "rejected", "profiled",
                "alerts new", "updated", "ended", "withdrawn", title="engine", title_justify="left")
    eng.add_row(*(f"{int(c.get(k, 0)):,}" for k in ENGINE_SHOWN))
    # (provisional alerts, issue 16: shown with their severity marked "(provisional)")
    open_ids, prov = open_alert_ids(engine)
    al = Table("id", "meter", "code", "severity", "start", "until", "score",
               title=f"open alerts ({_open_title(len(open_ids), prov)})", title_justify="left")
    events = getattr(engine, "events_open", {})   # (le2: one read back at a restart is not in engine.alerts)
    open_alerts = sorted((a for i in open_ids for a in [engine.alerts.get(i) or events.get(i)] if a is not None),
                         key=lambda a: a.start, reverse=True)
    for a in open_alerts[:15]:
        al.add_row(a.id, escape(a.meter_id), a.code, a.severity + (" (provisional)" if a.id in prov else ""),
                   a.start, a.end, f"{a.score:.3f}")
    parts = [src, *extra, eng]
    if outputs:
        ov = [o.view() for o in outputs]
        cols = [k for k in OUT_SHOWN if any(v.get(k) for v in ov)]
        out = Table("output", "kind", "status", *cols, title="sinks and actions", title_justify="left")
        for v in ov:
            out.add_row(escape(str(v["name"])), escape(str(v["kind"])), escape(str(v.get("status", ""))),
                        *(f"{int(v.get(k, 0)):,}" for k in cols))
        parts.append(out)
    return Group(*parts, al)


def stopped_line(counters, n_open: int, resumed: bool = False, learning: dict | None = None,
                 profile_s: float = 0.0) -> str:
    """The line ``watch`` prints when it stops: the engine's counters, re-sent copies, corrections
    dropped (``conflicts``, when there were any) and late readings among them, and the alerts still open;
    then the meters still learning their normal (``learning``: meter -> seconds of readings still needed
    of the first ``profile_s``), which no alert says nothing about."""
    c = counters
    line = (f"stopped: readings {c.get('readings', 0):,}, stored {c.get('stored', 0):,}, duplicates "
            f"{c.get('duplicates', 0):,}, "
            + (f"conflicts {c['conflicts']:,} (sent again with other values; the stored kept), "
               if c.get("conflicts") else "")
            + f"late {c.get('late', 0):,}, judged {c.get('judged', 0):,}, alerts new "
            f"{c.get('alerts_new', 0):,}, open {n_open}" + (" (resumed from checkpoint)" if resumed else ""))
    return line + learning_note(learning, profile_s)


def _span(seconds: float) -> str:
    """A duration as a person says it: 40 s, 5 min, 3.5 h, 12.0 days."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def learning_note(learning: dict | None, profile_s: float) -> str:
    """(adv2) '; N meter(s) still learning ...': a ``watch --demo --duration 60`` ended "judged 0, alerts
    new 0" while every meter was still being profiled, and a new user read that as healthy. Says how many,
    the span they learn on and how much more of their readings the nearest and the last need."""
    if not learning:
        return ""
    left = sorted(learning.values())
    when = (f"it is judged after {_span(left[0])} more of its readings" if len(left) == 1 else
            f"the first is judged after {_span(left[0])} more of its readings, the last after {_span(left[-1])}")
    return (f"; {len(left):,} meter(s) not judged yet, still learning their normal on their first "
            f"{_span(profile_s)} of readings (no alert from them means nothing yet): {when}")


class LogLines:
    """One line per alert opened or ended, and a summary line at most every ``every_s``."""

    def __init__(self, echo, every_s: float = 10.0):
        self.echo = echo
        self.every_s = every_s
        self.last = 0.0

    def __call__(self, engine, rep, batches) -> None:
        for i in rep.new:
            a = engine.alerts[i]
            p = " (provisional)" if a.evidence.get("provisional") else ""
            self.echo(f"alert open{p} {a.id} {a.meter_id!r} {a.code} {a.severity} from {a.start}: {a.message}")
        for i in getattr(rep, "confirmed", ()):
            self.echo(f"alert confirmed (no longer provisional) {i}")
        for i in getattr(rep, "reopened", ()):   # (ah) told ended, open again: its next end follows this
            a = engine.alerts.get(i)
            self.echo(f"alert open again {i}" + (f" {a.meter_id!r} {a.code} {a.severity} from {a.start}: {a.message}"
                                                 if a else ""))
        withdrawn = getattr(rep, "withdrawn", None) or {}
        for i in rep.ended:
            if i in withdrawn:
                self.echo(f"alert withdrawn {i} {withdrawn[i].meter_id!r} {withdrawn[i].code}: "
                          f"{withdrawn[i].evidence.get('withdrawn')}")
                continue
            a = engine.alerts.get(i)
            u = a.evidence.get("undecided") if a else None   # (pc) a provisional alert no verdict can decide
            self.echo(f"alert ended {i}" + (f" {a.meter_id!r} {a.code} until {a.end}" if a else "")
                      + (f" (provisional, {u})" if u else ""))
        for i in withdrawn:   # (le2) withdrawn after its end (told ended then): said as withdrawn only
            if i not in rep.ended:
                self.echo(f"alert withdrawn {i} {withdrawn[i].meter_id!r} {withdrawn[i].code}: "
                          f"{withdrawn[i].evidence.get('withdrawn')}")
        for i in getattr(rep, "stopped", ()):   # (pc) its condition ended; its verdict (and ``ended``) to come
            a = engine.alerts.get(i)
            self.echo(f"alert back to normal (provisional, final verdict pending) {i}"
                      + (f" {a.meter_id!r} {a.code} until {a.end}" if a else ""))
        for n in rep.notices:
            self.echo(f"notice: {n}")
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            c = engine.counters
            self.echo(f"readings {c.get('readings', 0):,} stored {c.get('stored', 0):,} "
                      f"duplicates {c.get('duplicates', 0):,} "
                      + (f"conflicts {c['conflicts']:,} " if c.get("conflicts") else "")
                      + f"judged {c.get('judged', 0):,} "
                      f"late {c.get('late', 0):,} open alerts {_line_open(engine)}")


def _line_open(engine) -> str:
    ids, prov = open_alert_ids(engine)
    return f"{len(ids)}" + (f" ({len(prov)} provisional)" if prov else "")
