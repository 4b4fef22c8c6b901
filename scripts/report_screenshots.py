"""Screenshots of the HTML report for the README: docs/report-overview.png and docs/report-meter.png.

    PYTHONPATH=src python scripts/report_screenshots.py [WORKDIR]

Runs a small demo (simulated fleet, ingest, detect: `wattwatch demo --meters 24 --days 7`) and
photographs its report in headless Chromium (/usr/bin/chromium)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from wattwatch.app.bench import BROWSER_ARGS, CHROMIUM

ROOT = Path(__file__).resolve().parents[1]


def main(workdir: Path) -> None:
    subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "demo", "--out", str(workdir), "--meters", "24",
                    "--days", "7", "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    report = workdir / "report.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 860})
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1'][data-sections='1']", timeout=60_000)
        page.screenshot(path=str(ROOT / "docs" / "report-overview.png"))
        # The most severe meter: its channels with the alert spans, then its alerts and evidence.
        page.eval_on_selector("#m-0", "s => s.scrollIntoView()")
        page.wait_for_selector("#plot-m-0[data-drawn='1']", timeout=60_000)
        page.wait_for_timeout(300)
        box = page.eval_on_selector("#m-0", "s => {const r = s.getBoundingClientRect(); return [r.x, r.y + scrollY, r.width, r.height]}")
        page.set_viewport_size({"width": 1200, "height": int(min(box[3], 1500)) + 20})
        page.eval_on_selector("#m-0", "s => s.scrollIntoView()")
        page.wait_for_timeout(300)
        page.screenshot(path=str(ROOT / "docs" / "report-meter.png"))
        browser.close()
    for name in ("report-overview.png", "report-meter.png"):
        p = ROOT / "docs" / name
        print(f"{p}: {p.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="wattwatch-shots-")))
