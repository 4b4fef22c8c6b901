"""The live console view renders sources, counters and open alerts (user text never read as markup)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from rich.console import Console

from wattwatch.alerts.model import Alert
from wattwatch.app.watchview import LogLines, render
from wattwatch.sources.mqtt import MqttSource


def test_render_shows_sources_counters_and_open_alerts():
    src = MqttSource("[bold]meters", topics=["x/#"])
    src.counters.update(messages=12, readings=10, malformed=2)
    a = Alert(meter_id="[red]M-1", start="2026-01-01T00:00:00.000Z", end="2026-01-01T01:00:00.000Z",
              code="SENSOR_FAULT", severity="critical", score=0.97, detector="sensor_fault", message="open CT")
    eng = SimpleNamespace(counters=Counter(readings=10, stored=10, judged=9, alerts_new=1), open_ids={a.id},
                          alerts={a.id: a})
    con = Console(width=200, record=True)
    con.print(render(eng, [src]))
    text = con.export_text()
    assert "[bold]meters" in text and "[red]M-1" in text  # escaped, shown literally
    assert "malformed" in text and "SENSOR_FAULT" in text and a.id in text
    assert "polls" not in text  # a counter no source has is not a column


def test_log_lines_say_each_alert_once():
    a = Alert(meter_id="M-1", start="2026-01-01T00:00:00.000Z", end="2026-01-01T01:00:00.000Z",
              code="SENSOR_FAULT", severity="critical", score=0.97, detector="sensor_fault", message="open CT")
    eng = SimpleNamespace(counters=Counter(), open_ids={a.id}, alerts={a.id: a})
    out = []
    lines = LogLines(out.append, every_s=1e9)
    lines(eng, SimpleNamespace(new=[a.id], ended=[], notices=[]), [])
    lines(eng, SimpleNamespace(new=[], ended=[a.id], notices=[]), [])
    assert [x.split()[:3] for x in out if x.startswith("alert")] == [["alert", "open", a.id], ["alert", "ended", a.id]]


def test_engine_counters_show_duplicates_and_late():
    """The engine's ``duplicates`` (re-sent copies of stored readings), ``conflicts`` (sent again with
    other values, dropped: rfast) and ``late`` counters are read where an operator reads counters: the
    live table, the pipe's summary line and the stopped line (before, the table and the lines had no
    ``duplicates``: a gateway re-sending everything looked like readings never stored; no
    ``conflicts``: corrections dropped by the store were said only in the log)."""
    from wattwatch.app.watchview import stopped_line

    c = Counter(readings=1000, stored=700, duplicates=264, conflicts=7, late=29, judged=650)
    eng = SimpleNamespace(counters=c, open_ids=set(), alerts={})
    con = Console(width=250, record=True)
    con.print(render(eng, [MqttSource("m", topics=["x/#"])]))
    table = con.export_text().splitlines()
    head = next((i for i, x in enumerate(table) if "duplicates" in x), None)
    assert head is not None, "no duplicates column:\n" + "\n".join(table)
    row = next(x for x in table[head + 1:] if "1,000" in x)
    cols, vals = [x.strip() for x in table[head].split("┃")], [x.strip() for x in row.split("│")]
    assert vals[cols.index("duplicates")] == "264" and vals[cols.index("late")] == "29", (cols, vals)
    assert vals[cols.index("conflicts")] == "7", (cols, vals)
    out = []
    LogLines(out.append, every_s=0)(eng, SimpleNamespace(new=[], ended=[], notices=[]), [])
    assert "duplicates 264" in out[-1] and "conflicts 7" in out[-1] and "late 29" in out[-1], out
    line = stopped_line(c, 0)
    assert line.startswith("stopped: readings 1,000") and "duplicates 264" in line and "late 29" in line, line
    assert "conflicts 7 (" in line, line
    assert "conflicts" not in stopped_line(Counter(readings=5, stored=5), 0)   # said only when there are any


def test_open_alerts_table_and_lines_agree_on_provisional_ones():
    """(pv) Provisional alerts (issue 16) are open while they may still grow, as final ones are: the
    table lists those, marked "(provisional)", and its title, the pipe's summary line and the stopped
    line's count say as many. Before, the table listed every unconfirmed provisional alert, one that
    had ended too, and the summary line counted none of them."""
    def alert(meter, start, **ev):
        return Alert(meter_id=meter, start=start, end=start, code="ALRM_NEUTRAL_TAMPER", severity="critical",
                     score=0.9, detector="neutral_tamper", message="bypass", evidence=ev)

    final = alert("M-1", "2026-01-01T00:00:00.000Z")
    growing = alert("M-2", "2026-01-02T00:00:00.000Z", provisional=True)
    ended = alert("M-3", "2026-01-03T00:00:00.000Z", provisional=True)
    eng = SimpleNamespace(counters=Counter(), open_ids={final.id}, health_open=set(),
                          alerts={a.id: a for a in (final, growing, ended)},
                          provisional={growing.id: growing, ended.id: ended}, provisional_open={growing.id})
    con = Console(width=250, record=True)
    con.print(render(eng, [MqttSource("m", topics=["x/#"])]))
    text = con.export_text()
    assert "open alerts (2, 1 provisional)" in text, text
    assert final.id in text and growing.id in text and ended.id not in text, text
    assert "critical (provisional)" in next(x for x in text.splitlines() if growing.id in x)
    assert "(provisional)" not in next(x for x in text.splitlines() if final.id in x)
    out = []
    LogLines(out.append, every_s=0)(eng, SimpleNamespace(new=[], ended=[], notices=[]), [])
    assert out[-1].endswith("open alerts 2 (1 provisional)"), out
