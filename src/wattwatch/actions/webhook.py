"""``type = "webhook"``: POST the alert as JSON to a URL, signed, retried with backoff.

Keys (besides the common ones of :mod:`wattwatch.actions.base`)::

    url = "https://ops.example.com/hooks/wattwatch"
    secret_env = "WATTWATCH_HOOK_SECRET"   # the HMAC key is read from this environment variable
    timeout_s = 5          # per attempt
    retries = 3            # attempts after the first, on 5xx, 408, 429, timeouts, refused connections
    backoff_s = 0.5        # wait before retry k: backoff_s * 2**(k-1)
    headers = { "X-Site" = "plant-2" }
    ca_file = "ops-ca.pem"  # https: trust this CA (PEM; relative to the config file) besides the system's

Every request carries ``Content-Type: application/json``, ``X-Wattwatch-Timestamp`` (Unix
seconds; the body's ``sent_at`` is the same instant and is covered by the signature) and, with
``secret_env``, ``X-Wattwatch-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``: the
receiver recomputes it over the raw body with the shared secret and compares in constant time.
A retry sends the same body, timestamp and signature (a receiver can de-duplicate on them).
The secret must be set when the config is read (otherwise the config is refused), and is never
logged. Redirects are not followed (a redirect is a failed delivery: the URL in the config is the
only place the alert goes). Only ``http`` and ``https`` URLs; certificates are verified (the
system's CAs, plus ``ca_file``), and a certificate that does not verify is not retried. The
environment's ``HTTPS_PROXY``/``NO_PROXY`` apply as for any urllib client.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from wattwatch.actions.base import COMMON, Action, Result, number, only, text

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Wattwatch-Signature`` header value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookAction(Action):
    kind = "webhook"

    def __init__(self, name: str, spec: dict, root: Path | None):
        super().__init__(name, spec)
        only(spec, COMMON | {"url", "secret_env", "timeout_s", "retries", "backoff_s", "headers", "ca_file"})
        self.url = text(spec, "url", required=True)
        scheme = self.url.split(":", 1)[0].lower()
        if scheme not in ("http", "https") or "://" not in self.url:
            raise ValueError(f"url must be an http:// or https:// URL, got {self.url!r}")
        self.secret_env = text(spec, "secret_env")
        self.secret = None
        if self.secret_env is not None:
            v = os.environ.get(self.secret_env)
            if not v:
                raise ValueError(f"secret_env: the environment variable {self.secret_env} is not set (or empty)")
            self.secret = v.encode()
        self.timeout_s = number(spec, "timeout_s", 5.0, 0.01, 600.0)
        self.retries = number(spec, "retries", 3, 0, 20, True)
        self.backoff_s = number(spec, "backoff_s", 0.5, 0.0, 600.0)
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) and "\n" not in k + v
                                                    and "\r" not in k + v for k, v in headers.items()):
            raise ValueError("headers must be a table of NAME = \"text\" (one line each)")
        self.headers = headers
        self.ssl = None
        ca = text(spec, "ca_file")
        if ca is not None:
            if scheme != "https":
                raise ValueError("ca_file is for https:// URLs")
            p = Path(ca) if Path(ca).is_absolute() or root is None else root / ca
            try:
                self.ssl = ssl.create_default_context(cafile=str(p))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"ca_file: {p}: not a readable PEM certificate file ({exc})") from None
        self._opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self.ssl))

    def perform(self, alert, event: str, dry_run: bool) -> Result:
        if dry_run:
            return Result("ok", f"dry run: would POST to {self.url}", 0)
        now = time.time()
        body = self.payload(alert, event, now)
        ts = str(int(now))
        headers = {**self.headers, "Content-Type": "application/json", "X-Wattwatch-Timestamp": ts,
                   "User-Agent": "wattwatch"}
        if self.secret is not None:
            headers["X-Wattwatch-Signature"] = sign(self.secret, body)
        why = ""
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                time.sleep(self.backoff_s * 2 ** (attempt - 2))
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with self._opener.open(req, timeout=self.timeout_s) as r:
                    r.read(1 << 16)
                    return Result("ok", f"HTTP {r.status}", attempt)
            except urllib.error.HTTPError as exc:
                why = f"HTTP {exc.code}"
                exc.close()
                if exc.code not in RETRY_STATUS:
                    return Result("failed", why + " (not retried)", attempt)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                why = f"{type(reason).__name__}: {reason}"
                if isinstance(reason, ssl.SSLCertVerificationError):   # trying again will not help
                    return Result("failed", why + " (not retried)", attempt)
        return Result("failed", f"{why} after {self.retries + 1} attempt(s)", self.retries + 1)


def from_spec(name: str, spec: dict, root: Path | None = None) -> WebhookAction:
    return WebhookAction(name, spec, root)
