"""Sign-in for the dashboard: users and roles, scrypt password hashes, sessions that expire,
failed sign-ins rate limited and logged.

Users come from a TOML file::

    [users.alice]
    role = "operator"                       # or "viewer"
    password = "scrypt$16384$8$1$<salt>$<hash>"   # `wattwatch dashboard --hash-password`

or from the environment, ``WATTWATCH_DASHBOARD_USERS="alice:operator:scrypt$...;bob:viewer:scrypt$..."``.
A password is never kept or accepted in plain text: an entry whose password is not a scrypt hash
is refused when the users are loaded (naming the file and the user).

Every function that writes (acknowledge, clear, upload, run) takes a :class:`Session` and calls
:func:`require_operator` itself, so the rule holds whatever the page shows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
import time
from wattwatch.atomicfile import read_regular, write_text
from wattwatch.tomlfile import read_toml
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("wattwatch.dashboard.auth")

ROLES = ("viewer", "operator")
# scrypt cost: N = 2^14, r = 8 -> 16 MiB of memory per hash (memory-hard), ~50 ms on one core.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_MAXMEM = 64 * 1024 * 1024


class AuthError(Exception):
    """A sign-in that failed (wrong name or password, or rate limited)."""


class PermissionDenied(Exception):
    """A write asked for by a session that may not write (anonymous, viewer, expired, read-only)."""


class UsersError(ValueError):
    """A users file or variable that cannot be used (names the file and the user)."""


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P,
                  salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password`` with a fresh random salt."""
    if not isinstance(password, str) or not password:
        raise ValueError("a password must be non-empty text")
    salt = secrets.token_bytes(16) if salt is None else salt
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(dk)}"


def _parse_hash(h: str) -> tuple[int, int, int, bytes, bytes]:
    parts = h.split("$") if isinstance(h, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt hash (make one with `wattwatch dashboard --hash-password`)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, dk = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError("a damaged scrypt hash (N, r, p must be integers; salt and hash base64)") from None
    if n < 2 ** 14 or n & (n - 1) or r < 8 or not 1 <= p <= 16 or len(salt) < 16 or len(dk) < 32:
        raise ValueError("a scrypt hash weaker than N=16384, r=8, a 16-byte salt and a 32-byte key")
    if 128 * r * n > _MAXMEM:
        raise ValueError(f"a scrypt hash whose cost (N={n}, r={r}) needs more than {_MAXMEM >> 20} MiB")
    return n, r, p, salt, dk


def verify_password(password: str, stored: str) -> bool:
    n, r, p, salt, dk = _parse_hash(stored)
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(dk))
    return hmac.compare_digest(got, dk)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = field(repr=False)


def _user(name, role, pw, where: str) -> User:
    if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
        raise UsersError(f"{where}: a user name must be printable text of 1..64 characters, got {name!r}")
    if role not in ROLES:
        raise UsersError(f"{where}: user {name!r}: role must be viewer or operator, got {role!r}")
    try:
        _parse_hash(pw)
    except ValueError as exc:
        raise UsersError(f"{where}: user {name!r}: password: {exc}") from None
    return User(name, role, pw)


def load_users(path: str | Path | None = None, environ: dict | None = None) -> dict[str, User]:
    """Users from a TOML file (``[users.NAME] role, password``) and/or ``WATTWATCH_DASHBOARD_USERS``."""
    environ = os.environ if environ is None else environ
    users: dict[str, User] = {}
    if path is not None:
        path = Path(path)
        doc = read_toml(path, "users file", UsersError)
        table = doc.get("users")
        if not isinstance(table, dict):
            raise UsersError(f"{path}: expected a [users.NAME] table per user")
        for name, entry in table.items():
            if not isinstance(entry, dict):
                raise UsersError(f"{path}: [users.{name}] must be a table with role and password")
            extra = sorted(set(entry) - {"role", "password"})
            if extra:
                raise UsersError(f"{path}: [users.{name}]: unknown key(s) {', '.join(extra)}")
            users[name] = _user(name, entry.get("role"), entry.get("password"), str(path))
    text = environ.get("WATTWATCH_DASHBOARD_USERS", "")
    for k, item in enumerate(x for x in text.split(";") if x.strip()):
        bits = item.strip().split(":", 2)
        if len(bits) != 3:
            raise UsersError(f"WATTWATCH_DASHBOARD_USERS: entry {k + 1}: expected name:role:scrypt$..., "
                             f"got {len(bits)} field(s)")
        users[bits[0]] = _user(bits[0], bits[1], bits[2], f"WATTWATCH_DASHBOARD_USERS entry {k + 1}")
    return users


def credential(password_hash: str) -> str:
    """A short digest of a user's stored hash, kept by the sessions it signed in (not the hash)."""
    return hashlib.sha256(str(password_hash).encode()).hexdigest()[:32]


@dataclass
class Session:
    """Who is signed in, since when; ``None`` user = anonymous."""

    user: str | None = None
    role: str | None = None
    started: float = 0.0
    last_seen: float = 0.0
    ttl_s: float = 8 * 3600
    idle_s: float = 30 * 60
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    # Which password the session was signed in with (:func:`credential` of its hash): a new hash for
    # the user in the users file (a leaked password replaced) ends it.
    credential: str = field(default="", repr=False)

    def valid(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return (self.user is not None and now - self.started <= self.ttl_s and now - self.last_seen <= self.idle_s)

    def touch(self, now: float | None = None) -> None:
        self.last_seen = time.time() if now is None else now

    def can_write(self, now: float | None = None) -> bool:
        return self.valid(now) and self.role == "operator" and not self.read_only


def require_operator(session: Session | None, what: str, now: float | None = None) -> str:
    """The signed-in operator's name, or :class:`PermissionDenied` (logged) saying why not."""
    if session is None or session.user is None:
        why = "sign in as an operator"
    elif not session.valid(now):
        why = "the session has expired; sign in again"
    elif session.read_only:
        why = "the dashboard runs read-only"
    elif session.role != "operator":
        why = f"{session.user} is a {session.role}; only an operator may"
    else:
        return session.user
    log.warning("refused %s for %s: %s", what, getattr(session, "user", None) or "anonymous", why)
    raise PermissionDenied(f"{what}: refused: {why}")


def client_key(ip: str | None, headers=None, proxy_header: str | None = None) -> str:
    """The client a failed sign-in counts against. A remote connection is named by its own address
    (headers a remote client sends are not trusted). Streamlit names no address (``None``) for a
    connection from this host: with no proxy (``proxy_header`` None) that is ``local`` whatever
    headers it sends, since any local process could name a fresh address per try or one a user signed
    in from. Behind a TLS proxy on this host (``--proxy-header``) every visitor connects from here:
    the header the proxy sets names the client -- for ``X-Forwarded-For`` its last address, the one
    the proxy adds (what a client sends itself comes before it) -- so five wrong passwords from one
    visitor do not lock everyone out; without that header, ``local``."""
    if ip:
        return str(ip)[:64]
    get = getattr(headers, "get", None)
    which = (proxy_header or "").strip().lower()
    if get is None or which not in ("x-forwarded-for", "x-real-ip"):
        return "local"
    if which == "x-forwarded-for":
        hops = [h.strip() for h in str(get("X-Forwarded-For") or "").split(",") if h.strip()]
        named = hops[-1] if hops else ""
    else:
        named = str(get("X-Real-IP") or "").strip()
    return "proxied:" + named[:64] if named else "local"


class RateLimiter:
    """Failed sign-ins per key (user name, client address): after ``limit`` failures within
    ``window_s`` the key is locked for ``lock_s``, doubled at each further lock (capped at a day).

    With a ``path``, the counts, locks and known addresses are kept in a JSON file that every
    dashboard given the same users file shares. Each change (a failure, a sign-in's reset, a known
    address) is made under an ``flock`` on ``<path>.lock`` beside it: the file is read, its state and
    this process's are merged (the rule below), the change is made on the merge, which is written
    whole (:func:`wattwatch.atomicfile.write_text`, mode 0600) and becomes this process's state. Before each check the file is read again if it changed
    (``stat``: inode, mtime, size), so a lock another process set holds here at the next try.

    The merge rule (the same both ways, and merging a state with itself changes nothing):

    - a lock: the one that ends later; its count of locks (what the next lock doubles from) the larger;
    - a count's reset (``cleared``: the time a lock was set from a key's failures, or its user signed
      in): the later one;
    - failures: the union of both sides' failure times after the key's reset: failures one process
      saw add to those another saw, so a guesser spreading tries over two dashboards is counted once
      (a failure is given a time after the key's last failure and reset, so that two at one instant,
      or one on a clock behind the one that made the reset, are not lost in the union);
    - known addresses: the other side's not known here, then this process's (taken as the latest),
      the last ``KNOWN`` kept.

    Every change is made under that ``flock``, after the merge and before the write: a failure is
    counted with every failure the other processes wrote before it, and the lock is decided on that
    count (a guesser taking turns between two dashboards, however fast, gets the limit of tries, as
    on one). A failure that only counts is written without ``fsync`` (a power cut may lose it; a
    crash does not); a lock, a reset by a lock and a known address are fsync'd."""

    # Keys are dropped once over (no failure within the window, no lock for a day) when there are
    # more than PRUNE_AT of them: ever-new names and addresses would otherwise grow the counts without end.
    PRUNE_AT = 10_000
    KEEP_LOCK_S = 86400.0

    MAX_STATE_BYTES = 16 << 20
    # How long a write waits for another process's merge to finish before it gives up (logged; the
    # counts are kept here and the next change writes them).
    FILE_LOCK_WAIT_S = 5.0

    def __init__(self, limit: int = 5, window_s: float = 900.0, lock_s: float = 60.0, path: str | Path | None = None):
        """``path``: a JSON file the counts, locks and known addresses are kept in across restarts
        and shared with other processes given it (read here, merged and written after each change,
        atomically and readable by the owner only)."""
        self.limit, self.window_s, self.lock_s = limit, window_s, lock_s
        self._fails: dict[str, list[float]] = {}
        self._locked: dict[str, tuple[float, int]] = {}
        self._known: dict[str, list[str]] = {}
        self._cleared: dict[str, float] = {}
        self._lock = threading.Lock()
        self._prune_at = self.PRUNE_AT
        self.path = Path(path) if path is not None else None
        self._seen: tuple | None = None       # (inode, mtime, size) of the file last read or written
        self._unsound: tuple | None = None    # ... of the last one found damaged or foreign (said once)
        self._unwritten: tuple | None = None  # (type, errno) of the last failure to write it (said once)
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        """The state a previous process left; a damaged or foreign file is said (logged) and not used:
        its counts are not trusted, and the next change writes a sound one over it."""
        doc = self._read_doc()
        if doc is None:
            return
        self._fails, self._locked, self._known, self._cleared = doc
        log.info("%s: sign-in counts read: %d lock(s), %d count(s), known addresses of %d user(s)",
                 self.path, len(self._locked), len(self._fails), len(self._known))

    def _read_doc(self):
        """(fails, locked, known, cleared) from the file, or None when there is none or it is not
        sound (said in the log); :attr:`_seen` notes the file read."""
        import json

        try:
            self._seen = self._signature()
            doc = json.loads(self._read_state())
            if not isinstance(doc, dict) or doc.get("version") != 1:
                raise ValueError("not a wattwatch sign-in state (version 1)")
            fails = {str(k): [float(t) for t in v] for k, v in dict(doc.get("fails") or {}).items()}
            locked = {str(k): (float(v[0]), int(v[1])) for k, v in dict(doc.get("locked") or {}).items()}
            known = {str(k): [str(c) for c in v][-self.KNOWN:] for k, v in dict(doc.get("known") or {}).items()}
            cleared = {str(k): float(t) for k, t in dict(doc.get("cleared") or {}).items()}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            if self._seen != self._unsound:       # said once per file, not at every merge
                log.warning("%s: sign-in counts not read (%s): starting with none", self.path,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._unsound = self._seen
            return None
        return fails, locked, known, cleared

    def _signature(self) -> tuple | None:
        """What tells a changed file: (inode, mtime, size) of the path itself (not followed), or None."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read_state(self) -> str:
        """The file's text: a regular file only, not followed if a symlink (the writer replaces a link,
        it never writes through one), opened without blocking (a FIFO would hold the start for ever),
        and no more of it than :data:`MAX_STATE_BYTES` (``stat`` says 0 bytes for a device)."""
        return read_regular(self.path, self.MAX_STATE_BYTES, follow=False).decode("utf-8")

    def _merge(self, other) -> None:
        """Merge another process's (fails, locked, known, cleared) into this state (the class's rule;
        called with the lock held)."""
        fails, locked, known, cleared = other
        for k, t in cleared.items():
            if t > self._cleared.get(k, float("-inf")):
                self._cleared[k] = t
        for k, (until, times) in locked.items():
            mine = self._locked.get(k)
            if mine is None:
                self._locked[k] = (until, times)
            else:
                self._locked[k] = (max(mine[0], until), max(mine[1], times))
        for k in set(fails) | set(self._fails):
            after = self._cleared.get(k, float("-inf"))
            ts = sorted(t for t in set(fails.get(k, ())) | set(self._fails.get(k, ())) if t > after)
            if ts:
                self._fails[k] = ts
            else:
                self._fails.pop(k, None)
        for user, theirs in known.items():
            mine = self._known.get(user, [])
            self._known[user] = ([c for c in theirs if c not in mine] + mine)[-self.KNOWN:]

    def _refresh(self) -> None:
        """Merge the file into this state if another process changed it since it was last read or
        written here (called with the lock held; a ``stat`` when it has not)."""
        if self.path is None or self._signature() == self._seen:
            return
        doc = self._read_doc()
        if doc is not None:
            self._merge(doc)

    def _update(self, now: float, change) -> None:
        """Make ``change`` (a function of no argument: it changes this state and returns None when
        there is nothing to write, else whether the write must be fsync'd) and write the result
        (called with the lock held). With a path, under an ``flock`` on ``<path>.lock``: the file is
        merged first, so the change sees what other processes wrote, and no other process writes
        between that read and this write; the file is replaced whole (temporary file of mode 0600
        beside it, renamed over it), so a crash or a power cut leaves the old file or the new one,
        never half of one. A file that cannot be locked, read or written: the change is made here
        (logged; it lasts until a restart and the next write takes it to the file)."""
        if self.path is None:
            change()
            return
        import fcntl
        import json

        done = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                deadline = time.monotonic() + self.FILE_LOCK_WAIT_S
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise OSError(f"another process has held {self.path.name}.lock for "
                                          f"{self.FILE_LOCK_WAIT_S:.0f} s") from None
                        time.sleep(0.01)
                self._seen = None                 # read it whatever it is now
                self._refresh()
                durable = change()
                done = True
                if durable is None:
                    return
                self._prune(now)
                doc = {"version": 1, "fails": self._fails, "locked": {k: list(v) for k, v in self._locked.items()},
                       "known": self._known, "cleared": self._cleared}
                write_text(self.path, json.dumps(doc, separators=(",", ":")), mode=0o600, durable=durable)
                self._seen = self._signature()
                if self._unwritten is not None:
                    log.info("%s: sign-in counts written again", self.path)
                    self._unwritten = None
            finally:
                os.close(fd)                      # releases the flock
        except OSError as exc:
            if not done:
                change()
            # Said once until a write succeeds: every failure is written, three keys a sign-in.
            if (type(exc), exc.errno) != self._unwritten:
                log.warning("%s: sign-in counts not written (%s); they last until a restart", self.path, exc)
            self._unwritten = (type(exc), exc.errno)

    def _prune(self, now: float) -> None:
        """Drop the counts that are over (called with the lock held)."""
        self._fails = {k: ts for k, ts in self._fails.items() if ts and now - ts[-1] <= self.window_s}
        self._locked = {k: v for k, v in self._locked.items() if now - v[0] <= self.KEEP_LOCK_S}
        # A reset older than the window only drops failures the window drops anyway.
        self._cleared = {k: t for k, t in self._cleared.items() if now - t <= self.window_s}
        # The next sweep when the live counts have doubled: a sweep costs O(keys), not every failure.
        self._prune_at = max(self.PRUNE_AT, 2 * self._size())

    def _size(self) -> int:
        return len(self._fails) + len(self._locked) + len(self._cleared)

    def locked_for(self, key: str, now: float | None = None) -> float:
        now = time.time() if now is None else now
        with self._lock:
            self._refresh()
            until, _ = self._locked.get(key, (0.0, 0))
            return max(0.0, until - now)

    def fail(self, key: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        def change() -> bool:
            # Counted after the key's last failure and reset, whatever this clock says: failures are
            # merged as a set of times after the reset, so one at the same time as another would be
            # one, and one before a reset that a clock ahead of this one made would be none.
            prev = self._fails.get(key, [])
            floor = max(prev[-1:] + [self._cleared.get(key, float("-inf"))])
            t = now if now > floor else math.nextafter(floor, math.inf)
            recent = [x for x in prev if now - x <= self.window_s] + [t]
            self._fails[key] = recent
            if len(recent) < self.limit:
                return False
            _, times = self._locked.get(key, (0.0, 0))
            self._locked[key] = (now + min(self.lock_s * 2 ** times, 86400.0), times + 1)
            self._fails[key] = []
            self._cleared[key] = t
            return True

        with self._lock:
            self._update(now, change)
            if self._size() > self._prune_at:
                self._prune(now)

    def success(self, key: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        def change() -> bool | None:
            ts = self._fails.pop(key, None)
            if ts is None:
                return None
            self._cleared[key] = max(ts[-1:] + [now, self._cleared.get(key, float("-inf"))])
            return False

        with self._lock:
            self._refresh()
            if key in self._fails:
                self._update(now, change)

    # Addresses a user has signed in from (at most KNOWN per user, the latest kept): a name's lock
    # does not hold there, so anyone failing five times on a name from elsewhere cannot keep that
    # user out; the address's own lock still counts every try made from it.
    KNOWN = 16

    def known(self, user: str, client: str) -> bool:
        with self._lock:
            self._refresh()
            return client in self._known.get(user, ())

    def remember(self, user: str, client: str, now: float | None = None) -> None:
        def change() -> bool:
            seen = self._known.setdefault(user, [])
            if client in seen:
                seen.remove(client)
            seen.append(client)
            del seen[:-self.KNOWN]
            return True

        with self._lock:
            self._update(time.time() if now is None else now, change)


# A hash to check when the user is unknown, so a wrong name costs the same time as a wrong password
# (the Authenticator uses one of its costliest user's parameters; this one when it has no users).
_DUMMY = hash_password("wattwatch-dummy", salt=b"\0" * 16)


def _dummy_for(users: dict[str, User]) -> str:
    """A hash of the cost (N, r, p) of the costliest user's: an unknown name is checked against it,
    so it takes as long as a wrong password of that user. A user with a cheaper hash still answers
    faster, which tells that name from an unknown one: said in the log, naming them."""
    cost = {name: _parse_hash(u.password_hash)[:3] for name, u in users.items()}
    if not cost:
        return _DUMMY
    n, r, p = max(set(cost.values()), key=lambda c: (c[0] * c[1] * c[2], c))
    cheaper = sorted(name for name, c in cost.items() if c != (n, r, p))
    if cheaper:
        log.warning("users %s have cheaper password hashes than N=%d, r=%d, p=%d: a wrong password for them "
                    "answers faster than for an unknown name, which tells their names apart; hash their "
                    "passwords again with `wattwatch dashboard --hash-password`", ", ".join(map(repr, cheaper)), n, r, p)
    return _DUMMY if (n, r, p) == (SCRYPT_N, SCRYPT_R, SCRYPT_P) else \
        hash_password("wattwatch-dummy", n=n, r=r, p=p, salt=b"\0" * 16)


def _shown(name) -> str:
    """A signed-in name for the log: at most 80 characters (a name is anything a client types)."""
    text = str(name)
    return repr(text if len(text) <= 80 else text[:80] + f"... ({len(text):,} characters)")


class Authenticator:
    def __init__(self, users: dict[str, User], limiter: RateLimiter | None = None, ttl_s: float = 8 * 3600,
                 idle_s: float = 30 * 60, read_only: bool = False):
        self.users = users
        self._dummy = _dummy_for(users)
        self.limiter = limiter or RateLimiter()
        self.ttl_s, self.idle_s, self.read_only = ttl_s, idle_s, read_only

    def sign_in(self, name: str, password: str, client: str = "?", now: float | None = None) -> Session:
        now = time.time() if now is None else now
        name = "" if name is None else str(name)
        # A name longer than any user's can only be wrong: all such names share one count (each kept
        # as typed would let a few tries with names of megabytes fill the server's memory).
        counted = name if len(name) <= 64 else "(a name over 64 characters)"
        # The name's count, the address's, and the name's at this address. At an address the user
        # has signed in from, the name's lock gives way to the name's lock at that address (so failing
        # on the name elsewhere cannot keep her out), never to the address's alone: a sign-in of
        # someone else there clears the address's count, and could otherwise be put between guesses.
        keys = [f"user:{counted}", f"client:{client}", f"user:{counted}@client:{client}"]
        held = keys[1:] if self.limiter.known(name, client) else keys
        wait = max(self.limiter.locked_for(k, now) for k in held)
        if wait > 0:
            log.warning("sign-in refused (rate limited, %.0f s left): user=%s client=%s", wait, _shown(name), client)
            raise AuthError(f"too many failed sign-ins; try again in {int(wait) + 1} s")
        user = self.users.get(name)
        ok = verify_password(password or "", user.password_hash if user else self._dummy) and user is not None
        if not ok:
            for k in keys:
                self.limiter.fail(k, now)
            log.warning("failed sign-in: user=%s client=%s", _shown(name), client)
            raise AuthError("wrong user name or password")
        for k in keys:
            self.limiter.success(k, now)
        self.limiter.remember(name, client, now)
        log.info("signed in: user=%r role=%s client=%s", name, user.role, client)
        return Session(user=name, role=user.role, started=now, last_seen=now, ttl_s=self.ttl_s,
                       idle_s=self.idle_s, read_only=self.read_only, credential=credential(user.password_hash))
