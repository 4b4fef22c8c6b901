"""The Streamlit app of ``wattwatch dashboard``: sign-in, fleet, meter, alerts, data, live, grid,
evaluation. Run by ``streamlit run`` on :mod:`wattwatch.dashboard.script`; settings come from the
environment (:mod:`wattwatch.dashboard.settings`)."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from wattwatch.codes import SEVERITIES
from wattwatch.dashboard import actions, data
from wattwatch.dashboard.auth import (AuthError, Authenticator, PermissionDenied, RateLimiter, Session, client_key,
                                      credential, load_users)
from wattwatch.dashboard.settings import Settings, configure_logging
from wattwatch.errors import StoreError

log = logging.getLogger("wattwatch.dashboard.auth")
PAGES = ("Fleet", "Meter", "Alerts", "Data", "Live", "Grid", "Evaluation")
SEV_COLOR = {"info": "rgba(66,133,244,0.18)", "warning": "rgba(255,153,0,0.25)", "critical": "rgba(220,20,60,0.30)"}
SEV_SOLID = {"info": "rgb(66,133,244)", "warning": "rgb(255,153,0)", "critical": "rgb(220,20,60)"}
DEFAULT_CHANNELS = ("p_kw", "v_l1_v", "i_l1_a", "i_n_a", "temp_c")
# Every character Streamlit's markdown gives a meaning to: CommonMark's (links, images, emphasis,
# code, HTML, headings, lists, tables, entities) and Streamlit's own (``:red[...]``, ``:icon:``,
# ``$...$`` math). Each is escaped with a backslash, which CommonMark shows as the character.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&=^\"'])")


def _md(text) -> str:
    """``text`` for a markdown element, shown exactly as it is: alert messages and actions can hold
    text from outside (a tamper report's status, a meter id, a plugin's message) and must never
    become an image fetched from elsewhere, a link with other words, markup or math. (A bare URL
    is still made a link of itself by Streamlit's markdown; ``st.text`` shows text with no link.)"""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


@st.cache_resource(show_spinner=False)
def _limiter(path: str | None) -> RateLimiter:
    """One per process, shared by every browser session and kept when the users file is read again;
    its counts, locks and known addresses kept in ``path`` across restarts (:func:`signin_state_path`)."""
    return RateLimiter(path=path)


def signin_state_path(cfg: Settings) -> Path | None:
    """Where the sign-in counts live: beside the users file (``users.toml.signin.json``), else beside
    the store (``DB.signin.json``); None (kept in the process only) with neither."""
    if cfg.users_file is not None:
        return cfg.users_file.with_name(cfg.users_file.name + ".signin.json")
    if cfg.db is not None:
        return cfg.db.with_name(cfg.db.name + ".signin.json")
    return None


@st.cache_resource(show_spinner=False, max_entries=4)
def _authenticator(users_file: str | None, users_version, users_env: str, read_only: bool, ttl_s: float,
                   idle_s: float, state: str | None = None):
    """One per configuration and version of the users file (its times, size and inode): a user the operator
    removes or changes in the file is gone or changed at the next page run, without a restart."""
    return Authenticator(load_users(users_file, {"WATTWATCH_DASHBOARD_USERS": users_env}), limiter=_limiter(state),
                         ttl_s=ttl_s, idle_s=idle_s, read_only=read_only)


def _auth(cfg: Settings) -> Authenticator:
    import os

    version = None
    if cfg.users_file is not None:
        try:
            st_ = os.stat(cfg.users_file)
            # The change time and the file itself too: a copy that keeps the modification time
            # (`cp -p`, `rsync -t`) of a same-length file (a password's new hash) changes neither
            # mtime nor size, and the old hash would go on signing in.
            version = (st_.st_mtime_ns, st_.st_ctime_ns, st_.st_size, st_.st_ino, st_.st_dev)
        except OSError:
            pass            # load_users says the file is missing
    return _authenticator(str(cfg.users_file) if cfg.users_file else None, version,
                          os.environ.get("WATTWATCH_DASHBOARD_USERS", ""), cfg.read_only,
                          cfg.session_minutes * 60, cfg.idle_minutes * 60,
                          str(signin_state_path(cfg)) if signin_state_path(cfg) else None)


def _current(s: Session | None, auth: Authenticator) -> bool:
    """Whether ``s`` is a live session of a user the users file still has, with the password it was
    signed in with; a user whose role was changed there gets the new role (logged)."""
    if s is None or not s.valid():
        return False
    u = auth.users.get(s.user)
    if u is None:
        log.warning("session of %r ended: no longer a user", s.user)
        return False
    if not hmac.compare_digest(s.credential, credential(u.password_hash)):
        log.warning("session of %r ended: the password it was signed in with was changed", s.user)
        return False
    if u.role != s.role:
        log.warning("session of %r: role %s -> %s (users file changed)", s.user, s.role, u.role)
        s.role = u.role
    return True


def _client() -> str:
    """Who failed sign-ins count against (:func:`~wattwatch.dashboard.auth.client_key`); a forwarded
    header is believed only when ``--proxy-header`` names it."""
    try:
        ip, headers = st.context.ip_address, st.context.headers
    except Exception:  # noqa: BLE001 - AppTest has no client
        return "?"
    return client_key(ip if isinstance(ip, str) else None, headers, Settings.from_env().proxy_header)


def _session(auth: Authenticator) -> Session | None:
    s = st.session_state.get("session")
    if s is None:
        return None
    if not _current(s, auth):
        st.session_state.pop("session", None)
        st.session_state["expired"] = True
        return None
    s.touch()
    return s


def sign_in_page(auth: Authenticator) -> None:
    st.title("wattwatch")
    if st.session_state.pop("expired", False):
        st.warning("Your session has expired; sign in again.")
    with st.form("signin"):
        name = st.text_input("User", key="signin_user")
        pw = st.text_input("Password", type="password", key="signin_password")
        ok = st.form_submit_button("Sign in")
    _preload()
    if ok:
        try:
            st.session_state["session"] = auth.sign_in(name, pw, _client())
        except AuthError as exc:
            st.error(str(exc))
            return
        st.rerun()


def _preload() -> None:
    """Load the browser code of what the next pages show while the user signs in: Streamlit
    fetches each element's code the first time it is shown (plotly.js alone is 4.7 MB), from this
    same server. One of each, empty and hidden; none of them does anything."""
    import plotly.graph_objects as go

    st.html("<style>.st-key-ww-preload{display:none}</style>")
    with st.container(key="ww-preload"):
        st.plotly_chart(go.Figure(), key="ww-preload-chart")
        st.dataframe(pd.DataFrame({"x": []}), key="ww-preload-table")
        st.table(pd.DataFrame({"x": []}))
        st.multiselect("preload", [], key="ww-preload-multiselect")
        st.selectbox("preload", ["-"], key="ww-preload-selectbox")
        st.slider("preload", 0, 1, (0, 1), key="ww-preload-slider")
        st.metric("preload", 0)
        st.checkbox("preload", key="ww-preload-checkbox")
        st.radio("preload", ["-"], key="ww-preload-radio")
        st.button("preload", key="ww-preload-button", disabled=True)
        st.caption("preload")


def _done(page: str) -> None:
    """The end of this run, for browser tests and the benchmark: every element above has been sent."""
    st.session_state["_runs"] = st.session_state.get("_runs", 0) + 1
    st.html(f"<span class='ww-done' data-page='{page}' data-run='{st.session_state['_runs']}'></span>")


def _go(page: str, meter: str | None = None) -> None:
    st.session_state["page"] = page
    if meter is not None:
        st.session_state["meter"] = meter


def _metrics(*tiles: tuple[str, object]) -> None:
    """A row of ``st.metric`` tiles, one per (label, value)."""
    for col, (label, value) in zip(st.columns(len(tiles)), tiles):
        col.metric(label, value)


def _store_ready(cfg: Settings) -> bool:
    """Whether the store can be read; if not, the page says why (no store yet, not a store...)."""
    problem = data.check_store(cfg.db)
    if problem:
        st.info(problem)
    return not problem


# ------------------------------------------------------------------------------------ fleet


def fleet_page(cfg: Settings, session: Session) -> None:
    st.header("Fleet")
    if not _store_ready(cfg):
        return
    alerts = data.alerts_frame(cfg.db)
    meters = data.meters_frame(cfg.db)
    c1, c2, c3, c4 = st.columns(4)
    codes = c1.multiselect("Code", sorted(alerts["code"].unique()), key="f_code")
    sevs = c2.multiselect("Severity", list(SEVERITIES), key="f_sev")
    stats = c3.multiselect("Status", ["open", "acknowledged", "cleared"], key="f_status")
    groups = c4.multiselect("Meter group", sorted(meters["group"].unique()), key="f_group")
    when = None
    if len(alerts):
        lo, hi = alerts["start"].min().to_pydatetime(), alerts["end"].max().to_pydatetime()
        if hi > lo:
            when = st.slider("Time (UTC)", min_value=lo.replace(tzinfo=None), max_value=hi.replace(tzinfo=None),
                             value=(lo.replace(tzinfo=None), hi.replace(tzinfo=None)), step=timedelta(hours=1),
                             key="f_time", format="YYYY-MM-DD HH:mm")
    f = data.filter_alerts(alerts, codes, sevs, stats, groups, None, *(when or (None, None)))
    m = meters[meters["group"].isin(groups)] if groups else meters
    rank = data.ranking(f, None if (codes or sevs or stats) else m)
    _metrics(("Meters", f"{len(m):,}"), ("Alerts", f"{len(f):,}"), ("Open", f"{int((f['status'] == 'open').sum()):,}"),
             ("Critical open", f"{int(((f['status'] == 'open') & (f['severity'] == 'critical')).sum()):,}"))
    st.subheader("Meters, most to act on first")
    st.dataframe(rank.head(500), hide_index=True, key="rank_table",
                 column_config={"max_open_score": st.column_config.NumberColumn(format="%.3f"),
                                "max_score": st.column_config.NumberColumn(format="%.3f")})
    if len(rank) > 500:
        st.caption(f"the first 500 of {len(rank):,} meters")
    if len(rank):
        pick = st.selectbox("Open a meter", list(rank["meter_id"].head(2000)), key="fleet_pick")
        st.button("Open meter", key="fleet_open", on_click=_go, args=("Meter", pick))
    st.subheader("Alerts over time")
    counts = data.counts_over_time(f)
    if len(counts):
        import plotly.graph_objects as go

        fig = go.Figure([go.Bar(x=counts["period"], y=counts[s], name=s, marker_color=SEV_SOLID[s])
                         for s in SEVERITIES])
        fig.update_layout(barmode="stack", height=280, margin=dict(l=10, r=10, t=10, b=10))
        st.plotly_chart(fig, key="counts_chart")
    if cfg.fleet is not None:
        st.subheader("Fleet scoring (`wattwatch fleet`)")
        try:
            table = pd.read_parquet(cfg.fleet)
        except Exception as exc:  # noqa: BLE001 - a file the operator named; say what is wrong
            st.warning(f"{cfg.fleet}: cannot read the fleet table: {exc}")
        else:
            by = "consensus_rank" if "consensus_rank" in table else table.columns[0]
            st.dataframe(table.sort_values(by).head(200), hide_index=True, key="fleet_table")


# ------------------------------------------------------------------------------------ meter


def _meter_figure(series: pd.DataFrame, channels: list[str], binned: bool, spans: pd.DataFrame) -> dict:
    """The meter's channels, one row each on a shared time axis, with the alert spans shaded by
    severity. Built as a plain figure dict: times as epoch milliseconds and values to 6 significant
    digits keep the page small, and skipping make_subplots/add_trace saves most of the build time."""
    import numpy as np

    x = (series["ts"].astype("int64").to_numpy() // 1000) if len(series) else np.array([], np.int64)  # µs -> ms
    n = len(channels)
    gap = 0.04 if n > 1 else 0.0
    h = (1 - gap * (n - 1)) / n
    y6 = lambda v: np.asarray(v, float).round(6)  # noqa: E731 - numpy arrays validate fast; NaN -> null
    traces, layout = [], {"height": 170 * n + 60, "margin": dict(l=10, r=10, t=30, b=10), "showlegend": False,
                          "hovermode": "x unified"}
    annotations = []
    for k, ch in enumerate(channels):
        ax = "" if k == 0 else str(k + 1)
        top = 1 - k * (h + gap)
        layout[f"yaxis{ax}"] = {"domain": [max(0.0, round(top - h, 6)), min(1.0, round(top, 6))], "anchor": f"x{ax}"}
        layout[f"xaxis{ax}"] = {"type": "date", "anchor": f"y{ax}", "showticklabels": k == n - 1,
                                **({"matches": "x"} if k else {})}
        common = {"type": "scatter", "mode": "lines", "x": x, "xaxis": f"x{ax}", "yaxis": f"y{ax}"}
        if binned:
            traces.append({**common, "y": y6(series[ch + "_max"]), "line": {"width": 0}, "hoverinfo": "skip"})
            traces.append({**common, "y": y6(series[ch + "_min"]), "line": {"width": 0}, "fill": "tonexty",
                           "fillcolor": "rgba(31,119,180,0.3)", "name": ch + " min..max", "hoverinfo": "skip"})
        traces.append({**common, "y": y6(series[ch]), "line": {"width": 1, "color": "#1f77b4"}, "name": ch})
        annotations.append({"text": ch, "xref": "paper", "yref": "paper", "x": 0.5, "y": top, "yanchor": "bottom",
                            "showarrow": False})
    layout["annotations"] = annotations
    # One shape per alert over the whole figure height (paper y; the x axes are matched), set in one
    # go: plotly's add_vrect(row="all") validates the layout per call and took ~55 s for 74 alerts.
    ends = spans["end"].where(spans["end"] > spans["start"], spans["start"] + pd.Timedelta(minutes=1))
    layout["shapes"] = [dict(type="rect", xref="x", yref="paper", x0=s0.isoformat(), x1=e0.isoformat(), y0=0, y1=1,
                             line_width=0, layer="below", fillcolor=SEV_COLOR.get(sev, SEV_COLOR["info"]))
                        for s0, e0, sev in zip(spans["start"], ends, spans["severity"])]
    return {"data": traces, "layout": layout}


def meter_page(cfg: Settings, session: Session) -> None:
    st.header("Meter")
    if not _store_ready(cfg):
        return
    meters = data.meters_frame(cfg.db)
    if not len(meters):
        st.info("the store has no meters yet")
        return
    alerts = data.alerts_frame(cfg.db)
    ids = list(meters["meter_id"])
    cur = st.session_state.get("meter")
    if cur not in ids:
        rank = data.ranking(alerts, meters)
        cur = rank["meter_id"].iloc[0]
    meter = st.selectbox("Meter", ids, index=ids.index(cur), key="meter_select")
    st.session_state["meter"] = meter
    first, last, chans, n = data.meter_span(cfg.db, meter)
    mine = alerts[alerts["meter_id"] == meter].sort_values("start")
    st.caption(f"{n:,} readings from {first} to {last}; {len(mine)} alert(s), "
               f"{int((mine['status'] == 'open').sum())} open")
    if first is None:
        return
    default = [c for c in DEFAULT_CHANNELS if c in chans][:3] or chans[:3]
    shown = st.multiselect("Channels", chans, default=default, key="meter_channels")
    labels = ["whole history"] + [f"{r.start:%Y-%m-%d %H:%M} {r.code} ({r.severity}, {r.status})"
                                  for r in mine.itertuples()]
    z = st.selectbox("Zoom to", range(len(labels)), format_func=lambda k: labels[k], key="meter_zoom")
    if z:
        a = mine.iloc[z - 1]
        pad = max(pd.Timedelta(hours=2), (a["end"] - a["start"]) * 0.5)
        lo, hi = max(first, a["start"] - pad), min(last, a["end"] + pad)
    else:
        lo, hi = first, last
    if hi > lo:
        lo, hi = st.slider("Span (UTC)", min_value=first.to_pydatetime().replace(tzinfo=None),
                           max_value=last.to_pydatetime().replace(tzinfo=None),
                           value=(lo.to_pydatetime().replace(tzinfo=None), hi.to_pydatetime().replace(tzinfo=None)),
                           step=timedelta(minutes=1), format="YYYY-MM-DD HH:mm", key=f"meter_span_{meter}_{z}")
        lo, hi = pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC")
    if shown:
        t0 = time.perf_counter()
        series, binned = data.meter_series(cfg.db, meter, shown, lo, hi)
        t1 = time.perf_counter()
        spans = mine[(mine["end"] >= lo) & (mine["start"] <= hi)]
        st.plotly_chart(_meter_figure(series, shown, binned, spans), key="meter_chart")
        st.caption(("binned to {:,} points per channel (min..max band, mean line); zoom in for every reading"
                    if binned else "every reading ({:,})").format(len(series))
                   + f" · query {1000 * (t1 - t0):.0f} ms, figure {1000 * (time.perf_counter() - t1):.0f} ms")
    st.subheader("Alerts of this meter")
    if not len(mine):
        st.write("none")
        return
    pick = st.selectbox("Alert", range(len(mine)), format_func=lambda k: labels[k + 1], key="meter_alert",
                        index=max(0, z - 1))
    a = mine.iloc[pick]
    st.markdown(f"**{_md(a['code'])}** · {_md(a['severity'])} · score {a['score']:.3f} · {_md(a['detector'])} · "
                f"status **{_md(a['status'])}** · id {_md(a['id'])}" + data.provisional_badge(a["evidence"]))
    st.text(a["message"])   # no markdown at all: a message can quote text from outside (a tamper report's)
    st.markdown("**Recommended action:** " + _md(a["action"] or "—"))
    st.table(data.evidence_table(a["evidence"]).map(_md))   # st.table renders its cells as markdown
    st.subheader("History")
    hist = mine[["id", "start", "end", "code", "severity", "score", "status", "status_at", "note"]]
    st.dataframe(hist, hide_index=True, key="meter_history")
    _status_buttons(cfg, session, [a["id"]], "meter")


# ------------------------------------------------------------------------------------ alerts


def _status_buttons(cfg: Settings, session: Session, ids: list[str], where: str) -> None:
    if not session.can_write():
        st.caption("Read-only: acknowledging and clearing need an operator"
                   + (" (the dashboard runs read-only)" if session.read_only else "") + ".")
        return
    note = st.text_input("Note", key=f"{where}_note")
    c1, c2 = st.columns(2)
    for col, label, status in ((c1, "Acknowledge", "acknowledged"), (c2, "Clear", "cleared")):
        if col.button(f"{label} ({len(ids)})", key=f"{where}_{status}", disabled=not ids):
            try:
                res = actions.set_status(session, cfg.db, ids, status, note)
            except PermissionDenied as exc:
                st.error(str(exc))
                return
            bad = [r for r in res if "error" in r]
            st.session_state["flash"] = (f"{len(res) - len(bad)} alert(s) {status}"
                                         + (f"; {len(bad)} refused: {bad[0]['error']}" if bad else ""))
            st.rerun()


def alerts_page(cfg: Settings, session: Session) -> None:
    st.header("Alerts")
    if not _store_ready(cfg):
        return
    alerts = data.alerts_frame(cfg.db)
    c1, c2, c3, c4 = st.columns(4)
    stats = c1.multiselect("Status", ["open", "acknowledged", "cleared"], default=["open"], key="a_status")
    sevs = c2.multiselect("Severity", list(SEVERITIES), key="a_sev")
    codes = c3.multiselect("Code", sorted(alerts["code"].unique()), key="a_code")
    meters = c4.multiselect("Meter", sorted(alerts["meter_id"].unique()), key="a_meter")
    f = data.filter_alerts(alerts, codes, sevs, stats, None, meters).sort_values(["score"], ascending=False)
    st.download_button("Export CSV", data.export_csv(f), file_name="alerts.csv", mime="text/csv", key="a_csv")
    view = f[["id", "meter_id", "code", "severity", "score", "start", "end", "status", "message", "note"]]
    st.dataframe(view, hide_index=True, key="alerts_table",
                 column_config={"score": st.column_config.NumberColumn(format="%.3f")})
    st.caption(f"{len(f):,} alert(s)")
    if not session.can_write():
        _status_buttons(cfg, session, [], "alerts")
        return
    label = {r.id: f"{r.id} {r.meter_id} {r.code}" for r in f.head(1000).itertuples()}
    every = st.checkbox(f"All {len(f):,} shown", key="a_all")
    ids = list(f["id"]) if every else st.multiselect("Alerts to act on", list(label), format_func=label.get,
                                                      key="a_pick")
    _status_buttons(cfg, session, ids, "alerts")


# ------------------------------------------------------------------------------------ data in


def _preview_columns(path) -> dict[str, list[str]]:
    """The columns of an upload per unit (a SQLite export's first 16 tables), from the first read
    block of each: this runs on every run of the Data page, and a whole upload (up to 512 MB, or a
    small .gz inflating to gigabytes) would be decompressed and parsed each time otherwise."""
    from wattwatch.ingest.readers import detect_format, read_batches, sqlite_tables

    path = Path(path)
    units: dict[str, list[str]] = {}
    for table in (sqlite_tables(path)[:16] if detect_format(path) == "sqlite" else [None]):
        batches = read_batches(path, tables=(table,) if table is not None else None)
        try:
            b = next(batches, None)
        finally:
            batches.close()
        if b is not None:
            units.setdefault(b.unit, list(b.table.column_names))
    return units


def _mapping_toml(rows: pd.DataFrame, tz: str, table: str | None = None) -> str:
    """A TOML mapping from the editor's rows (``column``, ``maps_to``); with ``table``, for that
    table of a SQLite export only (``[options] tables``)."""
    cols, extra = {}, {}
    for r in rows.itertuples(index=False):
        to = (r.maps_to or "").strip()
        if not to or to == "(auto)":
            continue
        (extra if to.startswith("extra:") else cols)[to.removeprefix("extra:")] = r.column
    out = []
    if cols:
        out.append("[columns]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in cols.items()))
    if extra:
        out.append("[extra]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items()))
    opts = ([f"timezone = {json.dumps(tz)}"] if tz and tz != "UTC" else []) + \
        ([f"tables = [{json.dumps(table)}]"] if table else [])
    if opts:
        out.append("[options]\n" + "".join(o + "\n" for o in opts))
    return "\n".join(out)


def _tables(units: dict[str, list[str]], path: str) -> dict[str | None, list[str]]:
    """Columns per SQLite table (``path:table`` units), or ``{None: columns}`` for a one-table file."""
    from wattwatch.ingest.readers import LINE, detect_format

    clean = {u: [c for c in cs if c != LINE] for u, cs in units.items()}
    if detect_format(Path(path)) == "sqlite":
        return {u.rsplit(":", 1)[-1]: cs for u, cs in clean.items()}
    return {None: sorted({c for cs in clean.values() for c in cs})}


def data_page(cfg: Settings, session: Session) -> None:
    from wattwatch.schema import CHANNEL_NAMES

    st.header("Data")
    problem = data.check_store(cfg.db)
    if problem is None:
        s = data.store_summary(cfg.db)
        st.write(f"Store `{cfg.db}`: {s['readings']:,} readings of {s['meters']:,} meters, {s['first']} .. {s['last']}")
    else:
        st.info(problem)
    if not session.can_write():
        st.caption("Uploads and detection runs need an operator"
                   + (" (the dashboard runs read-only)." if session.read_only else "."))
        return
    if cfg.db is None or cfg.uploads is None:
        return
    if st.session_state.get("flash_data"):
        st.success(st.session_state.pop("flash_data"))
    st.subheader("Upload telemetry")
    up = st.file_uploader("CSV, Parquet, JSON, JSON Lines or SQLite .db (one table per device group)",
                          type=["csv", "gz", "parquet", "json", "jsonl", "db", "sqlite", "sqlite3"], key="upload")
    if up is not None:
        key = f"{up.name}:{up.size}"
        if st.session_state.get("upload_key") != key:
            try:
                st.session_state["upload_path"] = str(actions.save_upload(session, cfg.uploads, up.name, up.getvalue()))
                st.session_state["upload_key"] = key
            except (PermissionDenied, ValueError) as exc:
                st.error(str(exc))
                return
        path = st.session_state["upload_path"]
        try:
            units = _preview_columns(path)
        except Exception as exc:  # noqa: BLE001 - the reader's message names file and line
            st.error(f"{up.name}: {exc}")
            return
        tables = _tables(units, path)
        if None not in tables:
            st.write(f"SQLite export, {len(tables)} table(s) (one per device group; the table name is the meter id): "
                     + ", ".join(_md(t) for t in tables))
        st.caption("Column mapping: leave (auto) to let the built-in aliases decide; pick a channel to map a "
                   "column yourself, or extra:NAME (e.g. extra:ups_battery_pct) for an extra channel.")
        options = ["(auto)", "meter_id", "ts", *CHANNEL_NAMES]
        tz = st.text_input("Time zone of times without an offset", "UTC", key="upload_tz")
        tomls: dict = {}
        for k, (table, columns) in enumerate(tables.items()):
            with st.expander(f"Mapping of table {_md(table)}" if table else "Mapping", expanded=k == 0):
                rows = pd.DataFrame({"column": columns, "maps_to": ["(auto)"] * len(columns)})
                edited = st.data_editor(rows, key=f"mapping_editor_{k}", hide_index=True, disabled=["column"],
                                        column_config={"maps_to": st.column_config.TextColumn(
                                            help="(auto), meter_id, ts, a channel (" + ", ".join(options[3:8])
                                            + ", ...) or extra:NAME")})
                tomls[table] = st.text_area("Mapping (TOML; edit freely)", _mapping_toml(edited, tz, table),
                                            key=f"mapping_toml_{key}_{k}", height=140)
        if st.button("Ingest into the store", key="ingest"):
            counts = []
            try:
                with st.spinner("ingesting ..."):
                    for table, toml in tomls.items():
                        counts += actions.ingest(session, cfg.db, path, toml)
            except PermissionDenied as exc:
                st.error(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - InputError etc.: shown as the CLI shows it
                st.error(str(exc))
                return
            got = sum(c.stored for c in counts)
            rej = sum(c.rejected for c in counts)
            st.session_state["flash_data"] = f"{up.name}: {got:,} readings stored, {rej:,} rejected"
            st.rerun()
    st.subheader("Run detection")
    from wattwatch.detect.registry import DEFAULT_DETECTORS, LEARNED, names

    dets = st.multiselect("Detectors", names(), default=[d for d in DEFAULT_DETECTORS if d not in LEARNED],
                          key="detectors")
    choice, folder_names = _state_choice(cfg, problem)
    if st.button("Run detection", key="run", disabled=problem is not None and not data.store_exists(cfg.db)):
        bar = st.progress(0.0, text="starting ...")
        state = {"total": None, "done": 0, "stage": ""}

        def on_stage(desc, total):
            state.update(stage=desc, total=total, done=0)
            bar.progress(0.0, text=desc)

        def on_progress(n):
            state["done"] += n
            if state["total"]:
                bar.progress(min(1.0, state["done"] / state["total"]), text=state["stage"])
        folder = choice if choice in folder_names else None
        try:
            res = actions.run_detection(session, cfg.db, dets, on_progress=on_progress, on_stage=on_stage,
                                        model_folder=folder, models_root=cfg.models_dir)
        except PermissionDenied as exc:
            st.error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - OutsideRoot, StateError ...: the message says what
            st.error(str(exc))
            return
        bar.progress(1.0, text="done")
        kind = "model folder" if folder_names.get(folder, ("", "models"))[1] == "models" else "fitted store"
        used = f"{kind} `{folder}` under --models-dir" if folder else "the state kept in the store"
        st.session_state["last_run"] = {"at": f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M:%S} UTC",
                                        "state": f"{kind} {folder}" if folder else "kept in the store",
                                        "detectors": ", ".join(sorted(set(dets) | set(
                                            folder_names[folder][0] if folder and kind == "model folder" else ())))
                                        or "default set",
                                        "alerts": len(res.alerts), "meters": res.meters, "readings": res.readings,
                                        "notices": len(res.notices)}
        st.session_state["flash_data"] = (f"detection: {len(res.alerts)} alert(s) on {res.meters} meter(s), "
                                          f"{res.readings:,} readings, with {used}"
                                          + (f"; {len(res.notices)} notice(s)" if res.notices else ""))
        st.rerun()
    if st.session_state.get("last_run"):
        st.caption("Last run from this page")
        st.dataframe(pd.DataFrame([st.session_state["last_run"]]), hide_index=True, key="last_run_table")


def _state_choice(cfg: Settings, problem: str | None) -> tuple[str, dict]:
    """The state a run uses: the store's own (what `wattwatch fit` kept, meters without it profiled
    on their first days), or a model folder or fitted store listed under --models-dir. Returns the
    choice and {name: (its detectors, kind)} of the usable ones."""
    from wattwatch.dashboard import models
    from wattwatch.errors import StoreError

    found = models.folders(cfg.models_dir, exclude=cfg.db)
    usable = {f.name: (f.detectors, f.kind) for f in found if not f.problem}
    label = {"(store)": "state kept in the store (`wattwatch fit`)"} | {f.name: f.label() for f in found if not f.problem}
    choice = st.selectbox("State / models", list(label), format_func=label.get, key="run_state")
    shown = choice.replace("`", "'")   # a folder's name in a code span, which only a backtick can end
    if choice == "(store)":
        try:
            kept = models.store_state(cfg.db) if problem is None else None
        except StoreError as exc:       # taken by another process since the page checked it
            kept = None
            st.caption(str(exc))
        if kept is not None:
            if kept["meters"]:
                st.caption(f"{kept['meters']:,} meter(s) have kept state ("
                           + ", ".join(f"{h}: {k:,}" for h, k in kept["how"].items()) + f"), last fitted "
                           f"{str(kept['fitted_at'])[:19]}; fleet models: {', '.join(kept['fleet_models']) or 'none'}. "
                           "Meters without state are profiled on their first days and it is kept.")
            else:
                st.caption("The store keeps no fitted state yet: each meter is profiled on its own first days "
                           "and that state is kept (`wattwatch fit` fits it on a period you choose).")
    elif usable[choice][1] == "models":
        st.caption(f"The fleet models of `{shown}` replace the learned detectors' own (as `detect --models`); "
                   f"its detectors ({', '.join(usable[choice][0])}) run with those chosen above.")
    else:
        st.caption(f"The chosen detectors judge each meter with the state `{shown}` keeps (read-only; as "
                   "`detect(state=fit(...))`); meters it has no state for are profiled on their first days.")
    bad = [f for f in found if f.problem]
    if cfg.models_dir is None:
        st.caption("No model folders: start the dashboard with --models-dir DIR to choose `wattwatch train` folders "
                   "or stores `wattwatch fit` fitted.")
    elif not found:
        st.caption(f"No model folder (a folder with {models.MANIFEST}) or fitted store under the models folder.")
    for f in bad:
        st.warning(f"{_md(f.name)}: cannot be used: {_md(f.problem)}")
    return choice, usable


# ------------------------------------------------------------------------------------ live, grid, evaluation


LIVE_METRICS = (("Readings", "readings"), ("Stored", "stored"), ("Judged", "judged"), ("Alerts opened", "alerts_new"))


def live_page(cfg: Settings, session: Session) -> None:
    st.header("Live")
    st.caption(f"refreshes every {cfg.refresh_s:g} s while `wattwatch watch` runs")

    @st.fragment(run_every=cfg.refresh_s)
    def panel():
        # A fragment's run does not pass through main(): the session is checked here too (not
        # touched: the page refreshing itself is not the user being active), and a session that
        # ended brings the whole app back to the sign-in.
        try:
            current = _current(st.session_state.get("session"), _auth(cfg))
        except ValueError:      # the users file became unusable: main() says so
            current = False
        if not current:
            st.rerun()
        if cfg.status is not None:
            _live_status(cfg)
            return
        try:
            _live_store(cfg)
        except StoreError as exc:   # `watch` (or the CLI) took the store since the check
            _store_taken(cfg, exc)

    panel()


def _live_store(cfg: Settings) -> None:
    """The Live panel from the store (opened read-only for a moment per refresh)."""
    problem = data.check_store(cfg.db)
    if problem is not None:
        st.info(problem + "; give --status FILE (a `status` output of watch) to follow a running watch")
        return
    s = data.store_summary(cfg.db)
    a = data.alerts_frame(cfg.db)
    last = "—" if s["last"] is None else f"{pd.Timestamp(s['last']).tz_convert('UTC'):%Y-%m-%d %H:%M:%S}"
    _metrics(("Readings", f"{s['readings']:,}"), ("Latest reading (UTC)", last),
             ("Open alerts", int((a["status"] == "open").sum())))
    st.dataframe(a[a["status"] == "open"].sort_values("last_seen", ascending=False)
                 [["meter_id", "code", "severity", "start", "end", "last_seen"]].head(50),
                 hide_index=True, key="live_alerts")
    st.caption(f"updated {pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC")


def _live_status(cfg: Settings) -> None:
    """The Live panel from the status file a running ``watch`` writes after every step. The store
    is not opened: while ``watch`` runs it holds the store's write lock, and a reader that opens
    the file as ``watch`` starts would make ``watch`` fail to take it."""
    status = data.read_status(cfg.status)
    if status is None:
        st.info(f"waiting for `wattwatch watch` to write {cfg.status} (a `[[sinks]] type = \"status\"` output "
                "of its site config); the other pages show the store when no watch holds it")
        return
    def whole(v) -> int:   # a count from the file, 0 for anything that is not one
        try:
            return int(v)
        except (TypeError, ValueError, OverflowError):
            return 0

    counters = status.get("counters") if isinstance(status.get("counters"), dict) else {}
    opened = status.get("open") if isinstance(status.get("open"), list) else []
    meters = status.get("meters") if isinstance(status.get("meters"), list) else []
    try:
        at = pd.Timestamp(status.get("at"))
        at = at.tz_localize("UTC") if at.tzinfo is None else at
        age = (pd.Timestamp.now(tz="UTC") - at).total_seconds()
    except (TypeError, ValueError):
        age = None
    st.write(f"`watch` status at {status.get('at')}"
             + (f" ({age:,.0f} s ago: is `watch` still running?)" if age is not None and age > 10 * cfg.refresh_s
                else ""))
    _metrics(*[(label, f"{whole(counters.get(k, 0)):,}") for label, k in LIVE_METRICS],
             ("Open alerts", f"{whole(status.get('open_total', len(opened))):,}"),
             ("Meters reporting", f"{len(meters):,}"))
    st.dataframe(pd.DataFrame([{k: str(v) if isinstance(v, (dict, list)) else v for k, v in counters.items()}]),
                 hide_index=True, key="live_counters")
    rows = lambda xs: pd.DataFrame([x for x in xs if isinstance(x, dict)])  # noqa: E731
    if opened:
        st.subheader("Open alerts")
        st.dataframe(rows(opened), hide_index=True, key="live_open")
    if meters:
        st.subheader("Meters")
        st.dataframe(rows(meters), hide_index=True, key="live_meters")
    st.caption(f"updated {pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC")


def _topology(pairs: pd.DataFrame, penalty: pd.Series, isolated: set):
    import numpy as np
    import plotly.graph_objects as go

    nodes = sorted(set(pairs["watcher"]) | set(pairs["prosumer"]) | set(penalty.index))
    ang = np.linspace(0, 2 * np.pi, len(nodes), endpoint=False)
    pos = {n: (np.cos(a), np.sin(a)) for n, a in zip(nodes, ang)}
    edges = pairs[["watcher", "prosumer"]].drop_duplicates()
    xs, ys = [], []
    for w, p in edges.itertuples(index=False):
        xs += [pos[w][0], pos[p][0], None]
        ys += [pos[w][1], pos[p][1], None]
    pen = [float(penalty.get(n, 0.0)) for n in nodes]
    fig = go.Figure([go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#bbb", width=1), hoverinfo="skip"),
                     go.Scatter(x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
                                text=[n + (" ✕" if n in isolated else "") for n in nodes], textposition="top center",
                                marker=dict(size=16, color=pen, colorscale="OrRd", showscale=True,
                                            colorbar=dict(title="penalty"),
                                            line=dict(color=["black" if n in isolated else "white" for n in nodes],
                                                      width=2)),
                                hovertext=[f"{n}: peak penalty {p:.2f}" for n, p in zip(nodes, pen)], hoverinfo="text")])
    fig.update_layout(showlegend=False, height=420, xaxis=dict(visible=False), yaxis=dict(visible=False),
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def grid_page(cfg: Settings, session: Session) -> None:
    import plotly.express as px

    st.header("Grid")
    if cfg.grid is None:
        st.info("no grid run given (start with --grid DIR, the --out folder of `wattwatch grid simulate|monitor`)")
    else:
        try:
            iv = pd.read_parquet(cfg.grid / "intervals.parquet")
            pairs = pd.read_parquet(cfg.grid / "pairs.parquet")
        except Exception as exc:  # noqa: BLE001
            st.warning(f"{cfg.grid}: cannot read the grid run: {exc}")
            iv = None
        if iv is not None:
            peak = iv.groupby("prosumer")["penalty"].max().fillna(0.0)
            isolated = set(iv.loc[iv["isolated"], "prosumer"])
            st.subheader("Topology: neighbours watching each prosumer, coloured by peak penalty (✕ isolated)")
            st.plotly_chart(_topology(pairs, peak, isolated), key="grid_topology")
            st.subheader("Penalty over time")
            fig = px.line(iv, x="ts", y="penalty", color="prosumer", height=320)
            dec = iv[iv["decision"] != ""]
            if len(dec):
                fig.add_scatter(x=dec["ts"], y=dec["penalty"], mode="markers", marker=dict(symbol="x", size=12,
                                color="black"), name="isolate")
            st.plotly_chart(fig, key="grid_penalty")
            st.subheader("Decisions")
            st.dataframe(dec[["ts", "prosumer", "penalty", "signals", "watchers", "decision"]], hide_index=True,
                         key="grid_decisions")
    if data.check_store(cfg.db) is None:
        a = data.alerts_frame(cfg.db)
        g = a[a["code"].isin(["ALRM_PROSUMER_ISOLATE", "WARN_PROSUMER_PENALTY"])]
        st.subheader("Prosumer alerts in the store")
        st.dataframe(g[["meter_id", "code", "severity", "start", "status", "message"]], hide_index=True,
                     key="grid_alerts")


def evaluation_page(cfg: Settings, session: Session) -> None:
    from wattwatch import api

    st.header("Evaluation")
    events = None
    if cfg.events is not None:
        try:
            from wattwatch.evaluate.events import load_events

            events = load_events(cfg.events)
        except ValueError as exc:
            st.error(str(exc))
            return
    elif session.can_write():
        up = st.file_uploader("Labelled events (events.json)", type=["json"], key="events_upload")
        if up is not None:
            try:
                from wattwatch.evaluate.events import check_events

                events = json.loads(up.getvalue().decode("utf-8-sig"))
                if not isinstance(events, list):
                    raise ValueError(f"{up.name}: expected a JSON list of events")
                check_events(events, up.name)
            except (ValueError, UnicodeDecodeError) as exc:
                st.error(str(exc))
                return
    if events is None:
        st.info("no labels given (start with --events events.json" +
                (", or upload one)" if session.can_write() else ")"))
        return
    if not _store_ready(cfg):
        return
    alerts = data.alerts_frame(cfg.db)
    ev = api.evaluate(events, data.alerts_objects(alerts))
    _metrics(("Recall", f"{ev['recall']:.2f}"), ("Precision", f"{ev['precision']:.2f}"), ("F1", f"{ev['f1']:.2f}"),
             ("Events / alerts", f"{ev['events']} / {ev['alerts']}"))
    st.subheader("Per fault type")
    rows = [{"type": k, "events": v["events"], "detected": v["detected"], "recall": v["recall"],
             "recall_visible": v["recall_visible"], "median_delay_min": v["median_delay_min"],
             "expected_code": ", ".join(v["expected_code"])} for k, v in ev["per_type"].items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="eval_types")
    st.subheader("Precision per code")
    per = alerts.groupby("code").size().rename("alerts").to_frame()
    per["false"] = pd.Series(ev["false_alerts_by_code"], dtype=float).reindex(per.index).fillna(0).astype(int)
    per["precision"] = 1 - per["false"] / per["alerts"]
    st.dataframe(per.reset_index(), hide_index=True, key="eval_codes")
    st.subheader("Confusion: fault type × alert code")
    st.dataframe(data.confusion(events, alerts), key="eval_confusion")


# ------------------------------------------------------------------------------------ main

RENDER = {"Fleet": fleet_page, "Meter": meter_page, "Alerts": alerts_page, "Data": data_page, "Live": live_page,
          "Grid": grid_page, "Evaluation": evaluation_page}


def main() -> None:
    st.set_page_config(page_title="wattwatch", layout="wide")
    cfg = Settings.from_env()
    configure_logging(cfg.log)
    try:
        auth = _auth(cfg)
    except ValueError as exc:
        st.error(str(exc))
        return
    session = _session(auth)
    if session is None:
        if not auth.users:
            st.error("no users: give --users FILE or WATTWATCH_DASHBOARD_USERS (see `wattwatch dashboard --help`)")
            return
        sign_in_page(auth)
        _done("signin")
        return
    if "page" not in st.session_state:
        q = st.query_params
        st.session_state["page"] = q.get("page") if q.get("page") in PAGES else "Fleet"
        if q.get("meter"):
            st.session_state["meter"] = q.get("meter")
    with st.sidebar:
        st.markdown(f"**{_md(session.user)}** · {session.role}" + (" · read-only" if session.read_only else ""))
        if st.button("Sign out", key="signout"):
            st.session_state.clear()
            st.rerun()
        st.radio("Page", PAGES, key="page")
    if st.session_state.get("flash"):
        st.success(st.session_state.pop("flash"))
    try:
        RENDER[st.session_state["page"]](cfg, session)
    except StoreError as exc:
        # Each read opens the store for a moment; `watch` or the CLI may take it between two
        # reads of one page (after the page's check). Said, not a traceback.
        _store_taken(cfg, exc)
    _done(st.session_state["page"])


def _store_taken(cfg: Settings, exc: Exception) -> None:
    data.forget(cfg.db)
    st.info(f"{exc} — while `wattwatch watch` runs it holds the store: the pages show it again when it is "
            "free; start the dashboard with --status FILE (a `status` output of watch) to follow a running watch")
