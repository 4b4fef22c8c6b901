"""Driving the served dashboard from headless Chromium (Playwright): start and stop the server,
sign in, change page, wait until a page is drawn. Used by the browser tests, ``wattwatch bench
dashboard`` and ``scripts/dashboard_screenshots.py``."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from wattwatch.dashboard import serve
from wattwatch.dashboard.settings import Settings
from wattwatch.ports import free_port

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
# Streamlit shows this widget while a script run is in progress.
RUNNING = '[data-testid="stStatusWidget"]'


@contextmanager
def served(settings: Settings, port: int | None = None, timeout: float = 90.0, log: Path | None = None,
           env: dict | None = None):
    """``streamlit run`` of the dashboard on 127.0.0.1:``port`` (a free one by default) until the
    block ends; yields the base URL."""
    port = port or free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = serve.start(settings, "127.0.0.1", port, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {proc.returncode} before serving"
                                   + (f" (log: {log})" if log else ""))
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"the dashboard did not answer on {base} within {timeout:.0f} s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


def idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished the current script run (and started none since)."""
    page.wait_for_timeout(150)
    page.wait_for_function(f"() => !document.querySelector('{RUNNING}')", polling=50, timeout=timeout)
    page.wait_for_timeout(100)
    page.wait_for_function(f"() => !document.querySelector('{RUNNING}')", polling=50, timeout=timeout)


def sign_in(page, base: str, user: str, password: str, timeout: float = 60_000) -> None:
    page.goto(base)
    page.get_by_role("textbox", name="User").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in_ready(page, timeout: float = 60_000) -> None:
    """Wait until the sign-in page's run has finished and the code it preloads is loaded."""
    page.wait_for_function(
        "() => document.querySelector('.ww-done[data-page=\"signin\"]')"
        " && document.querySelector('.st-key-ww-preload .js-plotly-plot')", polling=50, timeout=timeout)


def go(page, name: str) -> None:
    """Open a page of the dashboard from the sidebar."""
    page.locator('[data-testid="stSidebar"]').get_by_text(name, exact=True).click()


def last_run(page) -> int:
    """The number of the last finished script run of this browser session (0: none yet)."""
    return page.evaluate("() => Math.max(0, ...[...document.querySelectorAll('.ww-done')].map(e => +e.dataset.run))")


def drawn(page, name: str, charts: int = 0, tables: int = 0, after: int = 0, timeout: float = 60_000) -> None:
    """Wait until a script run later than ``after`` has finished on page ``name`` and at least
    ``charts`` plotly figures are drawn and ``tables`` tables shown."""
    page.wait_for_function(
        "([n, c, t, a]) => [...document.querySelectorAll('.ww-done')].some(e => e.dataset.page === n && +e.dataset.run > a)"
        " && [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.cartesianlayer')).length >= c"
        " && document.querySelectorAll('[data-testid=\"stDataFrame\"] canvas, [data-testid=\"stDataFrame\"] table')"
        ".length >= t"
        f" && !document.querySelector('{RUNNING}')",
        arg=[name, charts, tables, after], polling=50, timeout=timeout)


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
