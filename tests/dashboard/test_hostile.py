"""The dashboard against hostile text and a careless setup (adv42): alert text that anyone able to
publish on a tamper topic chooses is shown as text (no image fetched, no link, no markup); a store
that another process takes between two reads is said, not a traceback; the CSV export cannot run a
formula in a spreadsheet; an idle session on the self-refreshing Live page ends; an unknown user
costs the sign-in what the costliest user's hash costs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.dashboard.conftest import VIEWER
from tests.dashboard.test_pages import app  # noqa: F401 - the AppTest fixture
from wattwatch.dashboard import browser as B
from wattwatch.dashboard.settings import Settings

# What a publisher without any key can put in an alert's message: the tamper source refuses the
# report (status unknown) and says what it got.
HOSTILE_STATUS = ("![x](http://127.0.0.1:9/beacon.png) [re-key the meter here](https://evil.example/login) "
                  ":red[URGENT] <b>bold</b> $x^2$")
METER = "M00007"


def _hostile_store(db: Path):
    """A store with a few readings of METER and the ALRM_SECURITY_EVENT the tamper source raises
    for a report whose status is HOSTILE_STATUS; returns that alert as stored."""
    from wattwatch import api
    from wattwatch.alerts import store as alert_store
    from wattwatch.sources.tamper import TamperSource
    from wattwatch.store import Store

    ts = pd.date_range("2025-01-06", periods=12, freq="15min", tz="UTC")
    api.ingest(pd.DataFrame({"meter_id": METER, "ts": ts, "p_kw": 1.0 + pd.Series(range(12)) / 10}), db)
    keys = db.parent / "keys"
    keys.mkdir(exist_ok=True)
    src = TamperSource("t", keys_dir=str(keys), host="127.0.0.1", port=1883,
                       clock=lambda: ts[3].timestamp())
    report = {"meter_id": METER, "ts": ts[3].timestamp(), "counter": 3, "status": HOSTILE_STATUS, "alg": "hmac",
              "sig": "x", "event": "e", "evidence": {}}
    alerts = src.handle(f"meter/{METER}/tamper", json.dumps(report).encode())
    assert len(alerts) == 1 and "beacon.png" in alerts[0].message, [a.message for a in alerts]
    with Store(db) as s:
        alert_store.upsert(s.con, alerts)
    return alerts[0]


@pytest.fixture(scope="module")
def _chromium():
    """One Chromium (and Playwright driver) for the module's two browser tests: a second driver and
    browser start cost seconds of CI (tt11). Returns a getter: a browser that died (crashed, killed)
    is launched again, so one test's crash does not fail the next (rtt11)."""
    if not Path(B.CHROMIUM).exists():
        pytest.skip(f"{B.CHROMIUM} is missing (bash scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        held = [B.launch(pw)]

        def get():
            if not held[0].is_connected():
                held[0] = B.launch(pw)
            return held[0]
        try:
            yield get
        finally:
            held[0].close()


@pytest.fixture
def browser(_chromium):
    """The shared Chromium; each test opens its page in a context of its own (``new_page``: no cookie
    or storage shared) against a server of its own, and its contexts are closed when it ends, passed
    or failed (no page of a finished test left polling a stopped server beside the next one)."""
    from playwright.sync_api import Error

    b = _chromium()
    yield b
    for context in list(b.contexts):
        try:
            context.close()
        except Error:   # the browser died: the next test gets a new one
            pass


def test_alert_text_from_the_network_stays_text_in_the_browser(browser, tmp_path, users_env):
    db = tmp_path / "site.duckdb"
    alert = _hostile_store(db)
    settings = Settings(db=db, uploads=tmp_path / "uploads")
    with B.served(settings, env={"WATTWATCH_DASHBOARD_USERS": users_env}, log=tmp_path / "server.log") as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/?page=Meter&meter={METER}")
        page.get_by_role("textbox", name="User").fill(VIEWER[0])
        page.get_by_role("textbox", name="Password").fill(VIEWER[1])
        page.get_by_role("button", name="Sign in").click()
        B.drawn(page, "Meter", charts=1)
        page.get_by_text("refused this hour").first.wait_for()
        page.wait_for_timeout(1000)
        main = page.locator("[data-testid='stMain']")
        shown = main.inner_text()
        # The whole message is on the page as the tamper source wrote it ...
        assert alert.message in shown, shown
        # ... and nothing of it became an image, markup, math or a link under other words (the
        # evidence table's cells are markdown in Streamlit: a bare URL there is a link to itself).
        assert main.locator("img, b, strong:has-text('bold'), .katex").count() == 0
        links = main.locator("a:not([href^='#'])").evaluate_all("as => as.map(a => [a.href, a.innerText])")
        assert all(href.rstrip("/") == text.strip().rstrip("/") for href, text in links), links
        assert main.get_by_text("re-key the meter here").count() >= 1   # as text, not a link's words
        assert main.locator("a", has_text="re-key").count() == 0
        assert not [u for u in requests if "beacon" in u or "evil.example" in u], requests
        assert errors == []
        page.close()


def _hold(db: Path):
    """Another process holding the store's write lock (as `watch` does while it runs)."""
    p = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                          "print('held', flush=True); time.sleep(120)", str(db)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _users_file_env(monkeypatch, users, store, tmp_path) -> None:
    """The dashboard's environment for a test that edits its users file ``users`` as it runs: no
    users from the environment, the store ``store``, uploads under ``tmp_path``, no read-only, status
    or events settings; streamlit's cached resources cleared."""
    import streamlit as st

    st.cache_resource.clear()
    monkeypatch.delenv("WATTWATCH_DASHBOARD_USERS", raising=False)
    monkeypatch.setenv("WATTWATCH_DASHBOARD_USERS_FILE", str(users))
    monkeypatch.setenv("WATTWATCH_DB", str(store))
    monkeypatch.setenv("WATTWATCH_DASHBOARD_UPLOADS", str(tmp_path / "uploads"))
    for k in ("WATTWATCH_DASHBOARD_READ_ONLY", "WATTWATCH_DASHBOARD_STATUS", "WATTWATCH_DASHBOARD_EVENTS"):
        monkeypatch.delenv(k, raising=False)


def test_a_store_taken_by_another_process_between_two_reads_is_said_not_a_traceback(monkeypatch, users_env,
                                                                                   store_copy, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.test_pages import SCRIPT, goto, sign_in

    st.cache_resource.clear()
    monkeypatch.setenv("WATTWATCH_DASHBOARD_USERS", users_env)
    monkeypatch.setenv("WATTWATCH_DB", str(store_copy))
    monkeypatch.setenv("WATTWATCH_DASHBOARD_UPLOADS", str(tmp_path / "uploads"))
    for k in ("WATTWATCH_DASHBOARD_READ_ONLY", "WATTWATCH_DASHBOARD_STATUS", "WATTWATCH_DASHBOARD_EVENTS"):
        monkeypatch.delenv(k, raising=False)
    at = sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), VIEWER)
    goto(at, "Meter")         # the store read (and its alerts kept) while it was free
    holder = _hold(store_copy)
    try:
        for name in ("Meter", "Data", "Live", "Fleet", "Alerts"):
            at.sidebar.radio(key="page").set_value(name).run()
            assert not at.exception, (name, [e.value for e in at.exception][:1])
            said = " ".join(x.value for x in [*at.info, *at.warning])
            assert "locked by another process" in said, (name, said)
    finally:
        holder.kill()
        holder.wait()


def test_csv_export_cannot_run_a_formula_in_a_spreadsheet():
    from wattwatch.dashboard import data

    evil = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", "ok-meter"]
    df = pd.DataFrame({"id": [f"a{k}" for k in range(len(evil))], "meter_id": evil,
                       "start": pd.Timestamp("2025-01-06", tz="UTC"), "end": pd.Timestamp("2025-01-06 01:00", tz="UTC"),
                       "code": "INFO_SUPPLY_OUTAGE", "severity": "info", "score": [-0.5, 0.5, 1, 2, 3, 4, 5],
                       "detector": "outage", "message": evil[::-1], "evidence": "{}", "action": "", "status": "open",
                       "note": "=HYPERLINK(\"http://evil.example\",\"x\")"})
    rows = list(csv.DictReader(io.StringIO(data.export_csv(df).decode("utf-8"), newline="")))
    for r in rows:
        for col in ("meter_id", "message", "note"):
            assert r[col][:1] not in ("=", "+", "-", "@", "\t", "\r"), (col, r[col])
    # The text is all there (behind a quote), numbers stay numbers, plain ids are untouched.
    assert [r["meter_id"] for r in rows] == ["'" + e for e in evil[:-1]] + ["ok-meter"]
    assert [float(r["score"]) for r in rows] == [-0.5, 0.5, 1, 2, 3, 4, 5]


def test_an_idle_session_on_the_live_page_ends(browser, tmp_path, users_env, sim_store):
    import shutil

    db = tmp_path / "s.duckdb"
    shutil.copy(sim_store[0], db)
    # idle after 6 s (tt6 tried 3 s; rtt6 measured, at load 12-14, 1.0-1.9 s from the session's last
    # touch to "Open alerts" on screen: the page must be drawn before the limit, and a 3 s limit left
    # ~1 s of margin on a loaded CI; 6 s leaves ~4 s and still holds five of the panel's 1-s refreshes)
    settings = Settings(db=db, uploads=tmp_path / "uploads", refresh_s=1.0, idle_minutes=0.1)
    with B.served(settings, env={"WATTWATCH_DASHBOARD_USERS": users_env}, log=tmp_path / "server.log") as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/?page=Live")
        page.get_by_role("textbox", name="User").fill(VIEWER[0])
        page.get_by_role("textbox", name="Password").fill(VIEWER[1])
        page.get_by_role("button", name="Sign in").click()
        B.drawn(page, "Live")
        page.get_by_text("Open alerts").first.wait_for()
        t0 = time.monotonic()
        # Nobody touches the page: the panel refreshes itself every second; the session's idle
        # limit (6 s) must end it and bring the sign-in back, with nothing of the store on screen.
        page.get_by_role("button", name="Sign in").wait_for(timeout=40_000)
        waited = time.monotonic() - t0
        assert page.get_by_text("Your session has expired").is_visible()
        assert page.locator("[data-testid='stMetric']:not(.st-key-ww-preload *)").count() == 0
        assert waited < 30, waited
        page.close()


def test_an_unknown_user_costs_what_the_costliest_users_hash_costs(monkeypatch, caplog):
    import hashlib

    from wattwatch.dashboard import auth

    users = {"a": auth.User("a", "operator", auth.hash_password("x")),
             "b": auth.User("b", "viewer", auth.hash_password("y", n=2 ** 15))}
    a = auth.Authenticator(users)
    calls = []
    real = hashlib.scrypt

    def spy(password, **kw):
        calls.append((kw["n"], kw["r"], kw["p"]))
        return real(password, **kw)

    monkeypatch.setattr(auth.hashlib, "scrypt", spy)
    for name in ("b", "nobody", "B", " b"):
        with pytest.raises(auth.AuthError):
            a.sign_in(name, "wrong", client=f"c-{name}")
    assert calls == [(2 ** 15, 8, 1)] * 4, calls
    # 'a' (N=2^14) still answers a wrong password faster than an unknown name: the log says so.
    assert any("users 'a' have cheaper password hashes than N=32768" in r.getMessage() for r in caplog.records)


def test_the_upload_preview_reads_only_the_head_of_a_huge_file(tmp_path, monkeypatch):
    """The Data page shows an upload's columns on every run of the page (each click in the mapping
    editor): it must read the first block, not decompress and parse a whole 512 MB upload (or a
    small .gz that inflates to gigabytes)."""
    import gzip

    from wattwatch.dashboard.app import _preview_columns
    from wattwatch.ingest import readers

    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"meter_id,ts,p_kw\n")
        f.write(b"M1,2025-01-06T00:00:00Z,1.0\n" * 2_500_000)   # 70 MB of text: three read blocks
    pulled = []
    real = readers.read_csv

    def counting(*args, **kw):
        for b in real(*args, **kw):
            pulled.append(b.table.num_rows)
            yield b

    monkeypatch.setattr(readers, "read_csv", counting)
    assert _preview_columns(path) == {str(path): ["meter_id", "ts", "p_kw", "_line"]}
    assert len(pulled) == 1, pulled


def test_a_write_just_after_a_read_is_not_hidden_by_the_kept_snapshot(store_copy, monkeypatch):
    """The pages keep the store's alerts until the file changes. A write that lands after the read
    closed the store but before the snapshot was filed (an `alerts ack` from the CLI that was
    waiting for the file) must not be filed as already seen: the page would show the alert open
    until some later write."""
    from wattwatch.alerts import store as alert_store
    from wattwatch.dashboard import data
    from wattwatch.store import Store

    with Store(store_copy, read_only=True) as s:
        first = s.con.execute("SELECT id FROM alerts WHERE status = 'open' ORDER BY id LIMIT 1").fetchone()[0]
    real = data.meter_group
    wrote = []

    def cli_ack_meanwhile(ids):      # runs after the read closed the store, before the snapshot is filed
        if not wrote:
            with Store(store_copy) as s:
                alert_store.set_status(s.con, first, "acknowledged", "[cli] seen")
            wrote.append(time.time())
        return real(ids)

    data.forget(store_copy)
    monkeypatch.setattr(data, "meter_group", cli_ack_meanwhile)
    before = data.alerts_frame(store_copy)
    monkeypatch.setattr(data, "meter_group", real)
    assert wrote and before.set_index("id").loc[first, "status"] == "open"     # read before the write
    after = data.alerts_frame(store_copy)
    assert after.set_index("id").loc[first, "status"] == "acknowledged"


def test_the_fleet_page_unfiltered_counts_every_alert_the_store_keeps(app, store_copy):
    """With no filter touched the Fleet page's tiles are the store's counts, a one-reading alert
    that starts where the latest alert ends included (the time window's end was exclusive)."""
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts.model import Alert
    from wattwatch.store import Store

    with Store(store_copy) as s:
        last, meter = s.con.execute('SELECT max("end"), any_value(meter_id) FROM alerts').fetchone()
        at = pd.Timestamp(last).tz_convert("UTC").isoformat().replace("+00:00", "Z")
        alert_store.upsert(s.con, [Alert(meter_id=meter, start=at, end=at, code="SENSOR_FAULT", severity="critical",
                                         score=0.9, detector="sensor", message="one reading")])
        n, opened, critical = s.con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'open'), count(*) "
                                            "FILTER (WHERE status = 'open' AND severity = 'critical') FROM alerts"
                                            ).fetchone()
    from tests.dashboard.test_pages import sign_in

    page = sign_in(app(), VIEWER)
    tiles = {m.label: m.value for m in page.metric}
    assert (tiles["Alerts"], tiles["Open"], tiles["Critical open"]) == (f"{n:,}", f"{opened:,}", f"{critical:,}")


def test_visitors_behind_a_local_proxy_do_not_share_one_sign_in_lock(monkeypatch, users_env):
    """Behind a TLS proxy on the same host every connection comes from 127.0.0.1, for which
    Streamlit names no address: failed sign-ins were all counted against one client '?', so five
    wrong passwords from anyone locked every user out (60 s, doubling to a day)."""
    from types import SimpleNamespace

    from wattwatch.dashboard import app as dash
    from wattwatch.dashboard.auth import AuthError, Authenticator, load_users

    auth = Authenticator(load_users(environ={"WATTWATCH_DASHBOARD_USERS": users_env}))
    monkeypatch.setenv("WATTWATCH_DASHBOARD_PROXY_HEADER", "X-Forwarded-For")   # --proxy-header (rev42)

    def visitor(forwarded: str) -> str:
        fake = SimpleNamespace(context=SimpleNamespace(ip_address=None, headers={"X-Forwarded-For": forwarded}))
        monkeypatch.setattr(dash, "st", fake)
        return dash._client()

    attacker, user = visitor("198.51.100.9"), visitor("10.0.0.5, 203.0.113.7")
    assert attacker != user
    for k in range(5):
        with pytest.raises(AuthError):
            auth.sign_in(f"guess{k}", "wrong", attacker)
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        auth.sign_in(VIEWER[0], VIEWER[1], attacker)
    assert auth.sign_in(VIEWER[0], VIEWER[1], user).user == VIEWER[0]   # the others still sign in
    # A remote connection is named by its own address, whatever it claims in its headers.
    fake = SimpleNamespace(context=SimpleNamespace(ip_address="192.0.2.1", headers={"X-Forwarded-For": "1.2.3.4"}))
    monkeypatch.setattr(dash, "st", fake)
    assert dash._client() == "192.0.2.1"


def test_a_user_taken_out_of_the_users_file_is_signed_out_and_cannot_sign_in(monkeypatch, store_copy, tmp_path):
    """An operator who removes a user (a leaked password) or makes an operator a viewer edits
    users.toml; the running dashboard read it once and kept the old users until restarted: the
    removed user stayed signed in, and could sign in again."""
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import OPERATOR
    from tests.dashboard.test_pages import SCRIPT, goto, sign_in
    from wattwatch.dashboard.auth import hash_password

    users = tmp_path / "users.toml"
    hashed = {who[0]: hash_password(who[1]) for who in (OPERATOR, VIEWER)}   # an edit keeps the other lines (rev42)
    entry = lambda who, role: f'[users.{who[0]}]\nrole = "{role}"\npassword = "{hashed[who[0]]}"\n'  # noqa: E731
    users.write_text(entry(OPERATOR, "operator") + entry(VIEWER, "viewer"))
    _users_file_env(monkeypatch, users, store_copy, tmp_path)
    viewer = sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), VIEWER)
    op = sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), OPERATOR)
    goto(op, "Alerts")
    assert "alerts_acknowledged" in {b.key for b in op.button}
    goto(viewer, "Alerts")
    # The viewer's password leaked; the operator made a viewer of herself for the day.
    users.write_text(entry(OPERATOR, "viewer") + "\n# victor removed\n")
    viewer.sidebar.radio(key="page").set_value("Fleet").run()
    assert [h.value for h in viewer.header] == [] and "signin_user" in {t.key for t in viewer.text_input}
    again = sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), VIEWER)
    assert any("wrong user name or password" in e.value for e in again.error)
    op.sidebar.radio(key="page").set_value("Fleet").run()
    goto(op, "Alerts")
    assert "alerts_acknowledged" not in {b.key for b in op.button}    # her session has the new role


def test_the_live_page_says_the_zone_of_the_latest_reading(app, store_copy, monkeypatch):
    """The tile showed the time cut to 19 characters (its '+00:00' dropped) under 'Latest reading':
    a time with no zone, whatever zone the server or the browser is in."""
    from tests.dashboard.test_pages import goto, sign_in
    from wattwatch.store import Store

    monkeypatch.setenv("TZ", "America/New_York")
    with Store(store_copy, read_only=True) as s:
        last = pd.Timestamp(s.con.execute("SELECT max(ts) FROM readings_raw").fetchone()[0]).tz_convert("UTC")
    at = goto(sign_in(app(), VIEWER), "Live")
    tiles = {m.label: m.value for m in at.metric}
    assert tiles.get("Latest reading (UTC)") == f"{last:%Y-%m-%d %H:%M:%S}", tiles


def test_failing_on_a_name_from_elsewhere_does_not_keep_its_user_out():
    """Five wrong passwords on a name lock the name (60 s, doubling to a day): anyone who knows a
    user name could keep that user out all day. From an address the user has signed in from, the
    name's lock does not hold (that address's own lock still does); a new address is still refused."""
    from wattwatch.dashboard import auth

    a = auth.Authenticator({"olga": auth.User("olga", "operator", auth.hash_password("op-secret"))})
    t0 = 1_000_000.0
    assert a.sign_in("olga", "op-secret", "203.0.113.7", now=t0).user == "olga"    # her usual address
    for k in range(5):
        with pytest.raises(auth.AuthError):
            a.sign_in("olga", f"guess{k}", f"198.51.100.{k}", now=t0 + 10 + k)        # an attacker, five addresses
    with pytest.raises(auth.AuthError, match="too many failed sign-ins"):
        a.sign_in("olga", "op-secret", "192.0.2.1", now=t0 + 20)                       # a new address: the name's lock
    assert a.sign_in("olga", "op-secret", "203.0.113.7", now=t0 + 21).user == "olga"  # hers: in
    for k in range(5):   # her address's own lock still counts every try made from it
        with pytest.raises(auth.AuthError):
            a.sign_in("olga", f"typo{k}", "203.0.113.7", now=t0 + 30 + k)
    with pytest.raises(auth.AuthError, match="too many failed sign-ins"):
        a.sign_in("olga", "op-secret", "203.0.113.7", now=t0 + 40)


# ----------------------------------------------------------------------------------------- rev42


def test_an_insider_cannot_brute_force_a_name_by_signing_in_as_herself_between_guesses():
    """(rev42) From an address the victim signed in from, only the address's lock held (adv42),
    and a successful sign-in at that address clears the address's count: anyone with an account of
    her own at that address (a viewer on the same host or office address, or a local process that
    names it in X-Forwarded-For) could guess four times, sign in as herself, and guess four more,
    for ever. The name's count at that address must be cleared only by the name's own sign-in."""
    from wattwatch.dashboard import auth

    a = auth.Authenticator({"olga": auth.User("olga", "operator", auth.hash_password("op-secret")),
                            "vic": auth.User("vic", "viewer", auth.hash_password("vi-secret"))})
    t0 = 1_000_000.0
    shared, home = "proxied:203.0.113.7", "proxied:198.51.100.4"
    assert a.sign_in("olga", "op-secret", home, now=t0 - 1).user == "olga"
    assert a.sign_in("olga", "op-secret", shared, now=t0).user == "olga"
    refused_at = None
    for k in range(40):
        now = t0 + 10 + 2 * k
        try:
            a.sign_in("olga", f"guess{k}", shared, now=now)
        except auth.AuthError as exc:
            if "too many failed sign-ins" in str(exc):
                refused_at = k
                break
        if k % 4 == 3:
            assert a.sign_in("vic", "vi-secret", shared, now=now + 1).user == "vic"   # her own account
    assert refused_at is not None and refused_at <= 5, refused_at
    with pytest.raises(auth.AuthError, match="too many failed sign-ins"):
        a.sign_in("olga", "op-secret", shared, now=t0 + 30)          # the guessers' address: held for her name
    with pytest.raises(auth.AuthError, match="too many failed sign-ins"):
        a.sign_in("olga", "op-secret", "proxied:192.0.2.1", now=t0 + 30)    # a new address: her name's lock
    assert a.sign_in("olga", "op-secret", home, now=t0 + 30).user == "olga"  # another address of hers: in
    assert a.sign_in("vic", "vi-secret", shared, now=t0 + 31).user == "vic"  # the address's own lock is not held


def test_without_a_proxy_a_local_client_cannot_name_its_own_address(monkeypatch, users_env):
    """(rev42) X-Forwarded-For was believed on every connection from this host, proxy or not: on
    the default setup (`wattwatch dashboard` on 127.0.0.1, no proxy) any local process named a fresh
    address per try (the address's lock never held: a password spray over every name) or the one a
    user signed in from. A forwarded header names the client only with --proxy-header, and then only
    the header named (a proxy that sets X-Real-IP passes the client's own X-Forwarded-For on)."""
    from types import SimpleNamespace

    from wattwatch.dashboard import app as dash
    from wattwatch.dashboard.auth import AuthError, Authenticator, load_users
    from wattwatch.dashboard.settings import ENV

    def visitor(headers: dict, trusted: str | None = None) -> str:
        monkeypatch.setattr(dash, "st", SimpleNamespace(context=SimpleNamespace(ip_address=None, headers=headers)))
        if trusted is None:
            monkeypatch.delenv(ENV["proxy_header"], raising=False)
        else:
            monkeypatch.setenv(ENV["proxy_header"], trusted)
        return dash._client()

    auth = Authenticator(load_users(environ={"WATTWATCH_DASHBOARD_USERS": users_env}))
    names = [visitor({"X-Forwarded-For": f"198.51.100.{k}"}) for k in range(6)]
    assert set(names) == {"local"}, names
    for k in range(5):
        with pytest.raises(AuthError, match="wrong"):
            auth.sign_in(f"name{k}", "guess", names[k])
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        auth.sign_in("name5", "guess", names[5])       # the spray is held at the fifth try
    # Told of the proxy: the header it sets, its last hop for X-Forwarded-For (the one it adds).
    assert visitor({"X-Forwarded-For": "1.2.3.4, 203.0.113.7"}, "X-Forwarded-For") == "proxied:203.0.113.7"
    assert visitor({"X-Real-IP": "203.0.113.8", "X-Forwarded-For": "1.2.3.4"}, "x-real-ip") == "proxied:203.0.113.8"
    assert visitor({"X-Forwarded-For": "1.2.3.4"}, "X-Real-IP") == "local"   # not the header the proxy sets
    monkeypatch.setattr(dash, "st", SimpleNamespace(context=SimpleNamespace(ip_address="192.0.2.1",
                                                                            headers={"X-Forwarded-For": "1.2.3.4"})))
    assert dash._client() == "192.0.2.1"     # a remote connection: its own address, told of a proxy or not


def test_a_password_changed_in_the_users_file_applies_even_when_its_size_and_time_stay(monkeypatch, tmp_path):
    """(rev42) The users file is read again when it changes, told by its modification time and size.
    A leaked password is replaced by a new hash of the same length (the same cost, salt and key
    sizes); a copy that keeps times (`cp -p`, `rsync -t`, `install -p`, an unpacked archive) leaves
    the time as it was: the running dashboard kept the old hash, and the leaked password went on
    signing in until a restart."""
    import os

    import streamlit as st

    from wattwatch.dashboard import app as dash
    from wattwatch.dashboard.auth import AuthError, hash_password

    monkeypatch.delenv("WATTWATCH_DASHBOARD_USERS", raising=False)
    users = tmp_path / "users.toml"
    entry = lambda pw: f'[users.olga]\nrole = "operator"\npassword = "{hash_password(pw)}"\n'  # noqa: E731
    users.write_text(entry("leaked"))
    cfg = Settings(users_file=users)
    st.cache_resource.clear()
    assert dash._auth(cfg).sign_in("olga", "leaked", "c1").user == "olga"
    before = os.stat(users)
    fresh = tmp_path / "fresh.toml"
    fresh.write_text(entry("new-secret"))
    assert fresh.stat().st_size == before.st_size
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))     # as `cp -p` would leave it
    os.replace(fresh, users)
    assert (os.stat(users).st_mtime_ns, os.stat(users).st_size) == (before.st_mtime_ns, before.st_size)
    with pytest.raises(AuthError, match="wrong user name or password"):
        dash._auth(cfg).sign_in("olga", "leaked", "c2")
    assert dash._auth(cfg).sign_in("olga", "new-secret", "c3").user == "olga"
    st.cache_resource.clear()


def test_a_users_file_missing_or_half_written_during_an_edit_shows_nothing(monkeypatch, store_copy, tmp_path):
    """(rev42) The users file is read at every page run that finds it changed: while an editor has it
    removed, empty or half-written, a signed-in operator's page must show nothing of the store (and
    offer no write), and come back when the file does."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import OPERATOR
    from tests.dashboard.test_pages import SCRIPT, goto, sign_in
    from wattwatch.dashboard.auth import hash_password

    users = tmp_path / "users.toml"
    whole = f'[users.{OPERATOR[0]}]\nrole = "operator"\npassword = "{hash_password(OPERATOR[1])}"\n'
    users.write_text(whole)
    _users_file_env(monkeypatch, users, store_copy, tmp_path)
    op = goto(sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), OPERATOR), "Alerts")
    assert "alerts_acknowledged" in {b.key for b in op.button}
    for state in ("missing", "", whole[: whole.index("password")], whole[:-20]):
        if state == "missing":
            users.unlink()
        else:
            users.write_text(state)
        op.run()
        assert op.error and not op.header and not op.dataframe, (state, [e.value for e in op.error])
        assert "alerts_acknowledged" not in {b.key for b in op.button}, state
    users.write_text(whole)
    op.run()
    assert "signin_user" not in {t.key for t in op.text_input}       # the same session, back
    assert "alerts_acknowledged" in {b.key for b in goto(op, "Alerts").button}
    st.cache_resource.clear()


def test_csv_export_leaves_a_number_in_a_text_column_a_number():
    """(rev42) The formula guard put a quote before every text cell starting with '-' or '+': a
    note "-1.5" or a meter id "-7" came out as the text '-1.5 in a spreadsheet (and no longer the
    id the store keeps). A plain number runs nothing; it is left as it is, and what a spreadsheet
    would compute ("-2+3", "-1.5*2", "+A1") still gets its quote."""
    from wattwatch.dashboard import data

    plain = ["-1.5", "+2", "-7", "-0.25e-3", "-.5"]
    quoted = ["-2+3", "-1.5*2", "+A1", "-1.5 ", "- 1", "-1.5\n=1+1", "-1,5", "-\u0661"]   # formulas, or not plainly a number
    vals = plain + quoted
    df = pd.DataFrame({"id": [f"a{k}" for k in range(len(vals))], "meter_id": vals,
                       "start": pd.Timestamp("2025-01-06", tz="UTC"), "end": pd.Timestamp("2025-01-06 01:00", tz="UTC"),
                       "code": "INFO_SUPPLY_OUTAGE", "severity": "info", "score": -1.5, "detector": "outage",
                       "message": "m", "evidence": "{}", "action": "", "status": "open", "note": vals})
    rows = list(csv.DictReader(io.StringIO(data.export_csv(df).decode("utf-8"), newline="")))
    for col in ("meter_id", "note"):
        got = [r[col] for r in rows]
        assert got[:len(plain)] == plain, got
        assert got[len(plain):] == ["'" + v for v in quoted], got
    assert {r["score"] for r in rows} == {"-1.5"}


def test_failed_sign_ins_with_long_or_ever_new_names_keep_no_memory():
    """(rev42) Every failed sign-in keeps its name in the rate limiter's counts (and, since rev42's
    lock per name and address, twice), never dropped: a name is anything a client types, a sign-in
    form field has no length limit (a WebSocket message may carry 200 MB), so a few hundred tries
    with a 10 MB name each filled the server's memory; ever-new short names grew it without end. A
    name longer than any user's can only be wrong: such names share one count. Counts that are
    over (no failure within the window, no lock for a day) are dropped."""
    from wattwatch.dashboard import auth

    a = auth.Authenticator({"olga": auth.User("olga", "operator", auth.hash_password("op-secret"))})
    lim = a.limiter
    size = lambda: sum(len(k) for d in (lim._fails, lim._locked) for k in d)  # noqa: E731
    t0 = 1_000_000.0
    for k in range(8):
        with pytest.raises(auth.AuthError):
            a.sign_in(f"{k}" * 1_000_000, "x", "proxied:198.51.100.1" if k < 4 else "proxied:198.51.100.2",
                      now=t0 + k)
    assert size() < 2_000, size()
    # Ever-new names: the counts of those whose window and lock are long over are dropped.
    for k in range(3 * lim.PRUNE_AT):
        lim.fail(f"user:n{k}", now=t0 + k)
    lim.fail("user:olga", now=t0 + 10 * 86400)
    assert len(lim._fails) + len(lim._locked) <= lim.PRUNE_AT + 1, (len(lim._fails), len(lim._locked))
    # ... but not a lock still counting its doublings within the day.
    for k in range(10):
        lim.fail("client:c", now=t0 + 20 * 86400 + k)
    assert lim.locked_for("client:c", now=t0 + 20 * 86400 + 10) > 0
    for k in range(3 * lim.PRUNE_AT):
        lim.fail(f"user:m{k}", now=t0 + 20 * 86400 + 200 + k / 100)
    assert lim._locked["client:c"][1] == 2


def test_a_password_changed_in_the_users_file_signs_out_its_sessions(monkeypatch, store_copy, tmp_path):
    """(rev42) Since adv42 a user taken out of the users file is signed out at the next page run; but
    the usual answer to a leaked password is a new hash for the same name, and the sessions signed
    in with the leaked one went on (up to the session's 8 hours). A session holds for the password
    it was signed in with."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import OPERATOR
    from tests.dashboard.test_pages import SCRIPT, goto, sign_in
    from wattwatch.dashboard.auth import hash_password

    users = tmp_path / "users.toml"
    entry = lambda who, pw, role: f'[users.{who}]\nrole = "{role}"\npassword = "{pw}"\n'  # noqa: E731
    kept = hash_password(VIEWER[1])
    users.write_text(entry(OPERATOR[0], hash_password(OPERATOR[1]), "operator") + entry(VIEWER[0], kept, "viewer"))
    _users_file_env(monkeypatch, users, store_copy, tmp_path)
    thief = goto(sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), OPERATOR), "Alerts")
    other = goto(sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), VIEWER), "Alerts")
    assert "alerts_acknowledged" in {b.key for b in thief.button}
    # The operator's password leaked: she gives herself a new one (same name, same role).
    users.write_text(entry(OPERATOR[0], hash_password("a-new-secret"), "operator") + entry(VIEWER[0], kept, "viewer"))
    thief.run()
    assert not thief.header and "signin_user" in {t.key for t in thief.text_input}
    assert "alerts_acknowledged" not in {b.key for b in thief.button}
    other.run()
    assert [h.value for h in other.header] == ["Alerts"]        # the others' sessions are untouched
    again = sign_in(AppTest.from_file(SCRIPT, default_timeout=60).run(), OPERATOR)
    assert any("wrong user name or password" in e.value for e in again.error)
    st.cache_resource.clear()
