"""Self-contained HTML report: summary, evaluation, and per alerted meter its channels with the
anomalous spans shaded and the evidence listed. plotly.js is inlined once, so the file opens
offline."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from wattwatch.alerts.model import Alert, _plain

SEV_COLOR = {"info": "rgba(80,120,200,0.18)", "warning": "rgba(240,170,0,0.25)", "critical": "rgba(220,40,40,0.25)"}
PANELS = (
    ("power (kW)", ("p_kw",)),
    ("current (A)", ("i_l1_a", "i_l2_a", "i_l3_a", "i_n_a")),
    ("voltage (V)", ("v_l1_v", "v_l2_v", "v_l3_v")),
    ("energy register (kWh)", ("e_kwh",)),
    ("temperature (°C) / THD (%)", ("temp_c", "thd_i_pct")),
)


def meter_figure(frame: pd.DataFrame, alerts: list[Alert], title: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if len(frame) > 3000:
        # 15-minute means keep the picture (and the file small); the alert spans are drawn exactly.
        num = frame.drop(columns=[c for c in frame.columns if c.startswith("_") or c == "meter_id"])
        frame = num.set_index("ts").resample("15min").mean().reset_index()
    panels = [(name, [c for c in cols if c in frame.columns and frame[c].notna().any()]) for name, cols in PANELS]
    panels = [(n, c) for n, c in panels if c]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=[n for n, _ in panels])
    for r, (_, cols) in enumerate(panels, start=1):
        for c in cols:
            fig.add_trace(go.Scattergl(x=frame["ts"], y=frame[c], name=c, mode="lines", line={"width": 1}), row=r, col=1)
    for a in alerts:
        fig.add_vrect(x0=a.start, x1=a.end if a.end != a.start else pd.Timestamp(a.end) + pd.Timedelta("5min"),
                      fillcolor=SEV_COLOR.get(a.severity, SEV_COLOR["warning"]), line_width=0, layer="below",
                      annotation_text=a.code, annotation_position="top left", annotation_font_size=9)
    fig.update_layout(title=title, height=170 * len(panels) + 80, margin={"l": 50, "r": 20, "t": 60, "b": 30},
                      legend={"orientation": "h"}, template="plotly_white")
    return fig


def write_report(path: str | Path, frames: dict[str, pd.DataFrame], alerts: list[Alert], summary: dict,
                 evaluation: dict | None = None, max_meters: int = 12) -> Path:
    """Write the report; ``frames`` maps meter id -> its telemetry (only alerted meters needed)."""
    import plotly.io as pio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rank = {"critical": 0, "warning": 1, "info": 2}
    by_meter: dict[str, list[Alert]] = {}
    for a in alerts:
        by_meter.setdefault(a.meter_id, []).append(a)
    meters = sorted(by_meter, key=lambda m: (min(rank.get(a.severity, 3) for a in by_meter[m]), m))[:max_meters]
    parts = [f"<h1>wattwatch report</h1><p>{html.escape(json.dumps(summary, default=_plain))}</p>"]
    if evaluation:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v['events']}</td><td>{v['detected']}</td><td>{v['recall']:.2f}</td>"
            f"<td>{'' if v['median_delay_min'] is None else round(v['median_delay_min'])}</td></tr>"
            for k, v in evaluation["per_type"].items())
        parts.append(f"<h2>Evaluation</h2><p>event recall {evaluation['recall']:.3f}, alert precision "
                     f"{evaluation['precision']:.3f}, F1 {evaluation['f1']:.3f}</p><table border=1 cellpadding=4>"
                     f"<tr><th>event type</th><th>events</th><th>detected</th><th>recall</th>"
                     f"<th>median delay (min)</th></tr>{rows}</table>")
    parts.append("<h2>Alerts</h2><table border=1 cellpadding=4><tr><th>meter</th><th>code</th><th>severity</th>"
                 "<th>start</th><th>end</th><th>message</th><th>evidence</th></tr>" + "".join(
                     f"<tr><td>{html.escape(a.meter_id)}</td><td>{a.code}</td><td>{a.severity}</td><td>{a.start}</td>"
                     f"<td>{a.end}</td><td>{html.escape(a.message)}</td><td><code>{html.escape(json.dumps(a.evidence, default=_plain))}"
                     f"</code></td></tr>" for a in alerts) + "</table>")
    first = True
    for m in meters:
        if m not in frames or frames[m].empty:
            continue
        # plotly renders tags in titles (<a href>, <b>): a meter id is text
        title = html.escape(f"{m}: " + ", ".join(sorted({a.code for a in by_meter[m]})))
        fig = meter_figure(frames[m], by_meter[m], title)
        parts.append(pio.to_html(fig, include_plotlyjs="inline" if first else False, full_html=False))
        first = False
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>wattwatch report</title></head><body "
                    "style='font-family:sans-serif'>" + "\n".join(parts) + "</body></html>")
    return path
