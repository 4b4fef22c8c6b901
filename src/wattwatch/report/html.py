"""The report as one self-contained HTML file.

plotly.js (its "cartesian" partial bundle: scatter, bar, heatmap; 1.5 MB, a third of the full
bundle) and the report's data are embedded once each, gzip-compressed and base64-encoded, and
inflated by the browser (``DecompressionStream``); a small script then builds the page. Text from
the data (meter ids, messages, evidence) only ever reaches the page as text (``textContent``),
never as markup. Per-meter figures are drawn when their section scrolls into view, so opening the
file costs the overview and the first sections whatever the size of the fleet.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
import time
from importlib.resources import files
from pathlib import Path

from wattwatch.atomicfile import write_text
from wattwatch.codes import SEVERITY_POLICY
from wattwatch.report.data import ReportData
from wattwatch.jsonsafe import finite

_PKG = files("wattwatch.report")


def _b64gz(raw: bytes) -> str:
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def _plotly_b64() -> str:
    # The vendored bundle is kept gzipped already: only the base64 step is left.
    return base64.b64encode(_PKG.joinpath("plotly-cartesian.min.js.gz").read_bytes()).decode("ascii")


def document(data: ReportData, title: str = "wattwatch report", evaluation: dict | None = None,
             summary: dict | None = None) -> dict:
    """The JSON document the page is built from."""
    by_meter: dict[str, list[int]] = {}
    for i, a in enumerate(data.alerts):
        by_meter.setdefault(a["meter_id"], []).append(i)
    ov = data.overview()
    codes = sorted({a["code"] for a in data.alerts})
    return finite({
        "title": title,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "period": [data.period[0].isoformat().replace("+00:00", "Z"), data.period[1].isoformat().replace("+00:00", "Z")],
        "fleet_meters": data.fleet_meters, "source": data.source, "db": data.db, "note": data.telemetry_note,
        "has_telemetry": data.db is not None, "panels": data.panels,
        "meters": [{"id": m, "alerts": by_meter.get(m, []), "drawn": m in data.telemetry} for m in data.meters],
        "not_drawn": data.not_drawn,
        "alerts": data.alerts, "overview": ov,
        "consequence": {c: SEVERITY_POLICY[c][3] for c in codes if c in SEVERITY_POLICY},
        "telemetry": {m: t.to_json() for m, t in data.telemetry.items()},
        "series": {m: list(t.series) for m, t in data.telemetry.items()},
        "evaluation": evaluation, "summary": summary,
    })


# What the page may load, enforced by the browser: its own inline script and style, and data: /
# blob: images (plotly's); no request leaves the file (connect, images, fonts, frames, forms).
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
       "font-src data:; connect-src data: blob:; base-uri 'none'; form-action 'none'")


def render(data: ReportData, title: str = "wattwatch report", evaluation: dict | None = None,
           summary: dict | None = None) -> str:
    """The HTML text of the report."""
    d = document(data, title, evaluation, summary)
    # The channels travel in their own block, inflated after the overview is drawn (they are most
    # of the data and no figure in view at the open needs them).
    telemetry = d.pop("telemetry")
    doc, tel = (json.dumps(x, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
                for x in (d, telemetry))
    css = _PKG.joinpath("report.css").read_text(encoding="utf-8")
    js = _PKG.joinpath("report.js").read_text(encoding="utf-8")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        "<div id='loading'>Loading the report&hellip;</div>"
        "<noscript>This report needs JavaScript (it draws its figures with plotly.js, embedded in this file).</noscript>"
        "<div id='app'></div>"
        # base64 text holds no '<', so neither script body can end early.
        f"<script type='application/octet-stream' id='ww-plotly'>{_plotly_b64()}</script>"
        f"<script type='application/octet-stream' id='ww-data'>{_b64gz(doc.encode('utf-8'))}</script>"
        f"<script type='application/octet-stream' id='ww-telemetry'>{_b64gz(tel.encode('utf-8'))}</script>"
        f"<script>{js}</script></body></html>"
    )


MAX_BYTES = 1_900_000


def fit(data: ReportData, title: str = "wattwatch report", evaluation: dict | None = None,
        summary: dict | None = None, max_bytes: int = MAX_BYTES) -> str:
    """The report's HTML within ``max_bytes``: the point budget keeps most reports well below it;
    channels that compress badly (noise) may not, and then the least severe drawn meters' channels
    are left out (their sections stay, the page says so) until it fits."""
    text = render(data, title, evaluation, summary)
    for _ in range(8):
        if len(text) <= max_bytes or not data.telemetry:
            break
        tel = len(text.split("id='ww-telemetry'>", 1)[1].split("<", 1)[0])
        per_meter = tel / len(data.telemetry)
        data.undraw(max(1, math.ceil((len(text) - max_bytes) / per_meter * 1.05)))
        text = render(data, title, evaluation, summary)
    return text


def write(path: str | Path, data: ReportData, title: str = "wattwatch report", evaluation: dict | None = None,
          summary: dict | None = None) -> Path:
    """Write the report to ``path`` (through a temporary file, so a failed write leaves no half page;
    a device or FIFO, such as ``/dev/stdout``, is written in place)."""
    path = Path(path)
    text = fit(data, title, evaluation, summary)
    if path.exists() and not path.is_file():  # a device or FIFO (/dev/stdout): written in place, never replaced
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return path
