"""(adv2) ``watch --demo --duration 60`` ended "judged 0, alerts new 0, open 0" while every meter was still
learning its normal (the demo profiles each device on its first 60 s; its faults come later): a new user
read it as "healthy". The stop line now says how many meters were still learning, on what span, and how
much more of their readings they need before they are judged."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pandas as pd

from wattwatch import api
from wattwatch.app.watchview import stopped_line


def test_the_stop_line_says_which_meters_were_still_learning_and_for_how_long():
    c = Counter(readings=787, stored=787, judged=0)
    line = stopped_line(c, 0, learning={"pdu-1": 15.0, "em-2": 40.2, "em-3": 22.0}, profile_s=60.0)
    assert line.startswith("stopped: readings 787") and "judged 0, alerts new 0, open 0" in line, line
    assert ("3 meter(s) not judged yet, still learning their normal on their first 60 s of readings (no alert "
            "from them means nothing yet): the first is judged after 15 s more of its readings, the last after 40 s"
            in line), line
    one = stopped_line(c, 0, learning={"M1": 3 * 86400.0}, profile_s=14 * 86400.0)
    assert "1 meter(s) not judged yet" in one and "first 14.0 days" in one and "after 3.0 days more" in one, one
    assert "learning" not in stopped_line(c, 0) and "learning" not in stopped_line(c, 0, learning={}, profile_s=60)


def test_a_watch_stopped_early_names_the_meters_still_learning(tmp_path):
    # A replay of three meters read hourly with a one-day profile: A has 30 readings (profiled, judged), B 10
    # (9 h of span: 15 h to go), C 4 (21 h to go). Stopped (not --until-done, which profiles every meter at its end).
    ts = pd.date_range("2025-03-03", periods=30, freq="h", tz="UTC")
    rows = [pd.DataFrame({"meter_id": m, "ts": ts[:n], "p_kw": 1.0 + 0.1 * (ts[:n].hour % 5)})
            for m, n in (("A", 30), ("B", 10), ("C", 4))]
    src = tmp_path / "r.csv"
    pd.concat(rows).sort_values("ts", kind="stable").to_csv(src, index=False)
    site = api.load_site({"sources": [{"type": "replay", "path": str(src)}], "store": {"path": str(tmp_path / "s.duckdb")},
                          "engine": {"profile_days": 1.0}, "detectors": ["baseline_macd"]})
    stop, seen, box = threading.Event(), {}, {}
    t = threading.Thread(target=lambda: box.update(w=api.watch(site, stop=stop, on_step=lambda e, r, b: seen.update(e=e))),
                         daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ("e" in seen and seen["e"].counters.get("stored", 0) >= 44):
        time.sleep(0.05)
    stop.set()
    t.join(60)
    w = box["w"]
    assert w.counters["stored"] == 44 and w.profile_s == 86400.0
    assert {m: round(s / 3600, 1) for m, s in w.learning.items()} == {"B": 15.0, "C": 21.0}, w.learning
    assert "2 meter(s) not judged yet" in stopped_line(w.counters, len(w.open_ids), learning=w.learning,
                                                       profile_s=w.profile_s)
