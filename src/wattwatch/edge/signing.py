"""Signed tamper reports: the canonical payload, HMAC-SHA256 or Ed25519 signatures, verification.

The signature covers the *canonical payload*: the message without ``sig``, as JSON with sorted
keys, no spaces, ASCII only, no NaN (:func:`canonical`). Among the signed fields are the meter id,
a monotonic ``counter`` (persisted at the meter, never reused) and ``ts`` (seconds since the epoch
when it was signed), so the head-end can refuse replays: a counter it already took from that meter
or one too far below the latest; the time decides for a meter it holds no report of and for a
counter below the latest it took (a known meter's report with a newer counter signed outside the
window is taken by its counter and its clock flagged; so is a meter's first report ever, counter 1,
from a meter the head-end never heard of, and a counter the head-end's counter record says it
already passed is refused even after its store was restored from a backup: edg58).

Keys: HMAC-SHA256 takes a shared secret of at least 16 bytes, written as hex in a key file
(``(umask 077; openssl rand -hex 32 > M-17.key)``: only its owner may read it; ``wattwatch edge``
warns of a key file other users can read). Ed25519 takes a PEM private key at the meter and the
matching PEM public key at the head-end (``cryptography``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

HMAC = "hmac-sha256"
ED25519 = "ed25519"
ALGS = (HMAC, ED25519)
METER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")   # \Z: "$" also matched before a final newline (rev58)


def canonical(doc: dict) -> bytes:
    """The bytes that are signed: ``doc`` without ``sig``, sorted keys, compact, ASCII, strict."""
    return json.dumps({k: v for k, v in doc.items() if k != "sig"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode("ascii")


def digest(doc: dict) -> str:
    return hashlib.sha256(canonical(doc) + str(doc.get("sig")).encode()).hexdigest()


def load_key(path: Path, private: bool):
    """(alg, key) from a key file: a PEM Ed25519 key (private at the meter, public at the head-end)
    or a hex HMAC secret. ValueError names the file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the key file ({exc.strerror or exc})") from None
    if raw.lstrip().startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

        try:
            key = (serialization.load_pem_private_key(raw, password=None) if private
                   else serialization.load_pem_public_key(raw))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable PEM {'private' if private else 'public'} key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
            raise ValueError(f"{path}: an Ed25519 key is required, got {type(key).__name__}")
        return ED25519, key
    text = raw.decode("ascii", "replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: line 1: expected a hex HMAC secret or a PEM Ed25519 key") from None
    if len(secret) < 16:
        raise ValueError(f"{path}: HMAC secret of {len(secret)} bytes; give at least 16 (32 recommended)")
    return HMAC, secret


class Signer:
    def __init__(self, alg: str, key):
        if alg not in ALGS:
            raise ValueError(f"alg must be one of {', '.join(ALGS)}, got {alg!r}")
        self.alg, self.key = alg, key

    @classmethod
    def from_file(cls, path: Path) -> "Signer":
        return cls(*load_key(path, private=True))

    def sign(self, doc: dict) -> dict:
        out = {k: v for k, v in doc.items() if k != "sig"}
        out["alg"] = self.alg
        msg = canonical(out)
        if self.alg == HMAC:
            sig = hmac.new(self.key, msg, hashlib.sha256).digest()
        else:
            sig = self.key.sign(msg)
        out["sig"] = base64.b64encode(sig).decode("ascii")
        return out


def verify(doc: dict, alg: str, key) -> bool:
    """True when ``doc['sig']`` is a valid signature of its canonical payload under ``key``."""
    if doc.get("alg") != alg or not isinstance(doc.get("sig"), str):
        return False
    try:
        sig = base64.b64decode(doc["sig"], validate=True)
        msg = canonical(doc)
    except (ValueError, TypeError):
        return False
    if alg == HMAC:
        return hmac.compare_digest(hmac.new(key, msg, hashlib.sha256).digest(), sig)
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(sig, msg)
        return True
    except InvalidSignature:
        return False
