"""The report in headless Chromium: it opens without errors, every figure is drawn (SVG paths),
the overview, every alerting meter's section and every alert's evidence table are there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattwatch import api
from wattwatch.alerts.model import Alert, read_jsonl

from .conftest import draw_all, open_page


def _check_full_page(page, alerts):
    paths = draw_all(page)
    assert page.errors == []
    assert paths["plot-counts"] > 0 and paths["plot-strip"] > 0
    meters = sorted({a.meter_id for a in alerts})
    shown = page.eval_on_selector_all("section.meter", "ss => ss.map(s => s.dataset.meter)")
    assert sorted(shown) == meters
    for i in range(len(meters)):
        assert paths[f"plot-m-{i}"] > 0, f"meter figure {i} drawn without a line"
    assert page.locator("table.evidence, .alert p.muted").count() == len(alerts)
    assert page.locator("#overview #counts").count() == 1 and page.locator("#index a").count() == len(meters)
    return paths


def test_store_report_draws_every_meter_with_its_channels_and_evidence(browser, sim_run, tmp_path):
    db, jsonl = sim_run
    out = api.report(tmp_path / "r.html", db=db)
    alerts = read_jsonl(jsonl)
    page = open_page(browser, out)
    try:
        _check_full_page(page, alerts)
        # Channels drawn: each meter figure has several panels (y axes) and a line per channel.
        axes = page.eval_on_selector("#plot-m-0", "d => d.querySelectorAll('.main-svg .yaxislayer-above').length")
        assert axes >= 3
        # Every alert's action is shown, and its evidence keys appear as table headers.
        first = alerts[0]
        sec = page.locator(f"section.meter[data-meter='{first.meter_id}']")
        assert first.action and first.action in sec.inner_text()
        for k in list(first.evidence)[:3]:
            assert sec.locator("table.evidence th", has_text=k).count() >= 1
        assert page.locator("#telemetry-note").count() == 0  # everything drawn, nothing to say
    finally:
        page.close()


def test_alerts_file_alone_draws_the_spans_and_says_telemetry_was_missing(browser, sim_run, tmp_path):
    _, jsonl = sim_run
    out = api.report(tmp_path / "r.html", alerts=jsonl)
    page = open_page(browser, out)
    try:
        _check_full_page(page, read_jsonl(jsonl))
        assert "telemetry was not available" in page.inner_text("#telemetry-note")
    finally:
        page.close()


def test_user_text_stays_text_in_the_page(browser, tmp_path):
    m = '<img src=x onerror="document.title=\'pwned\'">M1'
    a = Alert(m, "2025-01-06T01:00:00Z", "2025-01-06T02:00:00Z", "<b>C</b>", "info", 0.6, "d", "<script>x</script>",
              evidence={"<i>k</i>": "<a href='https://example.invalid'>v</a>"}, action="<u>act</u>")
    out = api.report(tmp_path / "r.html", alerts=[a])
    text = out.read_text()
    assert "<img" not in text and "<b>C</b>" not in text and "<script>x" not in text
    page = open_page(browser, out)
    try:
        draw_all(page)
        assert page.errors == []
        assert page.title() == "wattwatch report"
        assert page.locator("section.meter img, section.meter a[href^='https'], #index img").count() == 0
        assert page.locator("section.meter h2 span").inner_text() == m
        assert "<u>act</u>" in page.inner_text("section.meter")
        assert page.locator(".main-svg b, .main-svg a[href^='https']").count() == 0  # plotly did not render tags
    finally:
        page.close()


def test_demo_like_evaluation_is_shown(browser, sim_run, tmp_path):
    db, jsonl = sim_run
    ev = {"recall": 0.9, "precision": 0.8, "f1": 0.85,
          "per_type": {"open_ct": {"events": 2, "detected": 1, "recall": 0.5, "median_delay_min": 3.0}}}
    out = api.report(tmp_path / "r.html", db=db, alerts=jsonl, evaluation=ev, title="wattwatch demo")
    page = open_page(browser, out)
    try:
        assert page.errors == [] and page.title() == "wattwatch demo"
        assert "open_ct" in page.inner_text("#evaluation")
    finally:
        page.close()


def test_the_report_loads_nothing_from_the_network_and_the_browser_enforces_it(browser, sim_run, tmp_path):
    """adv42: every figure is drawn with no request leaving the file, and the page's own policy
    (Content-Security-Policy) blocks an image or a fetch to elsewhere should any text ever slip
    through as markup."""
    db, jsonl = sim_run
    out = api.report(tmp_path / "r.html", db=db, alerts=jsonl)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    try:
        page.goto(out.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1'][data-sections='1']", timeout=30_000)
        paths = draw_all(page)
        assert errors == [] and all(n > 0 for n in paths.values()), (errors, paths)
        assert [u for u in requests if not u.startswith("file:")] == []
        blocked = page.evaluate("""async () => {
            const seen = [];
            document.addEventListener('securitypolicyviolation', e => seen.push(e.violatedDirective));
            const img = new Image(); img.src = 'http://127.0.0.1:9/beacon.png';
            await fetch('http://127.0.0.1:9/data').catch(() => null);
            await new Promise(r => setTimeout(r, 300));
            return seen.sort(); }""")
        assert blocked == ["connect-src", "img-src"], blocked
    finally:
        page.close()


def test_no_figure_offers_to_upload_itself_to_plotly_cloud(browser, sim_run, tmp_path):
    """(rev42) plotly.js 4 shows a 'Share chart...' button on every figure by default
    (``showSendToCloud``): two clicks open cloud.plotly.com in a new window and post the figure --
    a meter's readings and its alerts -- to it. The page's Content-Security-Policy does not govern a
    new window or postMessage, so the README's "no request leaves it" held only until a click."""
    db, jsonl = sim_run
    page = open_page(browser, api.report(tmp_path / "r.html", db=db, alerts=jsonl))
    try:
        draw_all(page)
        titles = page.eval_on_selector_all(".modebar-btn", "bs => bs.map(b => b.getAttribute('data-title'))")
        assert "Download plot as a PNG" in titles, titles        # the modebar is there
        assert not [t for t in titles if "share" in t.lower() or "cloud" in t.lower()], sorted(set(titles))
        assert page.errors == []
    finally:
        page.close()
