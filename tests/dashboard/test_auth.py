"""Sign-in: scrypt hashes, users from TOML and the environment, sessions that expire, failed
sign-ins rate limited and logged, and the operator check every write makes."""

from __future__ import annotations

import base64
import logging

import pytest

from wattwatch.dashboard.auth import (AuthError, Authenticator, PermissionDenied, RateLimiter, Session, UsersError,
                                      hash_password, load_users, require_operator, verify_password)


def test_hash_is_scrypt_salted_and_verifies():
    # the password holds a space and a '!', which base64 never does: it cannot turn up in the random salt or key
    # by chance ("pw" did: ~1.7 % a run, 68 places of 1/4096; CI on 22ea8c6 failed on it)
    pw = "pw 2 do!"
    a, b = hash_password(pw), hash_password(pw)
    assert a.startswith("scrypt$16384$8$1$") and a != b       # a fresh salt each time
    salt, key = a.split("$")[4:]
    assert pw not in a and len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert verify_password(pw, a) and not verify_password("pW 2 do!", a)


def test_plain_text_and_weak_hashes_are_refused(tmp_path):
    f = tmp_path / "users.toml"
    f.write_text('[users.ann]\nrole = "operator"\npassword = "hunter2"\n')
    with pytest.raises(UsersError, match=r"users.toml: user 'ann': password: not a scrypt hash"):
        load_users(f, {})
    weak = hash_password("x", n=2 ** 10)
    f.write_text(f'[users.ann]\nrole = "operator"\npassword = "{weak}"\n')
    with pytest.raises(UsersError, match="weaker than N=16384"):
        load_users(f, {})
    f.write_text(f'[users.ann]\nrole = "admin"\npassword = "{hash_password("x")}"\n')
    with pytest.raises(UsersError, match="role must be viewer or operator"):
        load_users(f, {})


def test_users_from_file_and_environment(tmp_path):
    f = tmp_path / "users.toml"
    f.write_text(f'[users.ann]\nrole = "viewer"\npassword = "{hash_password("a")}"\n')
    env = {"WATTWATCH_DASHBOARD_USERS": f"bob:operator:{hash_password('b')}"}
    users = load_users(f, env)
    assert {u.name: u.role for u in users.values()} == {"ann": "viewer", "bob": "operator"}
    with pytest.raises(UsersError, match="WATTWATCH_DASHBOARD_USERS: entry 1"):
        load_users(None, {"WATTWATCH_DASHBOARD_USERS": "bob:operator"})


@pytest.fixture
def auth():
    users = load_users(None, {"WATTWATCH_DASHBOARD_USERS": f"op:operator:{hash_password('right')};"
                                                           f"vi:viewer:{hash_password('v')}"})
    return Authenticator(users, RateLimiter(limit=3, window_s=60, lock_s=30), ttl_s=100, idle_s=20)


def test_failed_sign_ins_are_rate_limited_and_logged(auth, caplog):
    caplog.set_level(logging.WARNING, "wattwatch.dashboard.auth")
    for k in range(3):
        with pytest.raises(AuthError, match="wrong user name or password"):
            auth.sign_in("op", "wrong", "10.0.0.1", now=1000 + k)
    # Locked now: even the right password is refused until the lock ends.
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        auth.sign_in("op", "right", "10.0.0.2", now=1004)
    assert sum("failed sign-in: user='op'" in r.message for r in caplog.records) == 3
    assert any("rate limited" in r.message for r in caplog.records)
    assert auth.sign_in("op", "right", "10.0.0.2", now=1040).role == "operator"


def test_unknown_user_counts_against_the_client(auth):
    for k in range(3):
        with pytest.raises(AuthError):
            auth.sign_in(f"nobody{k}", "x", "10.9.9.9", now=1000 + k)
    with pytest.raises(AuthError, match="too many"):
        auth.sign_in("vi", "v", "10.9.9.9", now=1005)     # the same client, another (real) user


def test_sessions_expire_absolute_and_idle(auth):
    s = auth.sign_in("op", "right", now=1000)
    assert s.can_write(now=1010)
    s.touch(now=1015)
    assert s.valid(now=1030) and not s.valid(now=1036)     # idle 20 s after the last touch
    s.touch(now=1090)
    assert not s.valid(now=1101)                            # 100 s after sign-in whatever the activity
    with pytest.raises(PermissionDenied, match="expired"):
        require_operator(s, "clear 1 alert(s)", now=1101)


def test_require_operator_refuses_everyone_else(caplog):
    caplog.set_level(logging.WARNING, "wattwatch.dashboard.auth")
    now = 5000.0
    cases = {"anonymous": (None, "sign in"), "empty": (Session(), "sign in"),
             "viewer": (Session("vi", "viewer", now, now), "is a viewer"),
             "read-only": (Session("op", "operator", now, now, read_only=True), "read-only")}
    for _name, (s, why) in cases.items():
        with pytest.raises(PermissionDenied, match=why):
            require_operator(s, "acknowledge 1 alert(s)", now=now)
    assert require_operator(Session("op", "operator", now, now), "x", now=now) == "op"
    assert sum("refused acknowledge" in r.message for r in caplog.records) == 4


# ---------------------------------------------------------------- ops52: sign-in counts kept on disk

def _users():
    return load_users(None, {"WATTWATCH_DASHBOARD_USERS": f"op:operator:{hash_password('right')}"})


def test_a_restart_keeps_the_sign_in_locks_counts_and_known_addresses(tmp_path):
    """adv42 Left: locks lived in the server process, so a restart (a crash, a deploy, or one an
    attacker provokes) gave every name and address its tries back."""
    state = tmp_path / "users.toml.signin.json"
    a = Authenticator(_users(), RateLimiter(limit=3, window_s=600, lock_s=30, path=state))
    a.sign_in("op", "right", "10.0.0.9", now=900)            # her known address
    for k in range(3):
        with pytest.raises(AuthError, match="wrong"):
            a.sign_in("op", "x", "10.0.0.1", now=1000 + k)
    for k in range(2):                                        # two of three on another address
        with pytest.raises(AuthError, match="wrong"):
            a.sign_in("nobody", "x", "10.0.0.2", now=1003 + k)
    assert state.exists() and (state.stat().st_mode & 0o777) == 0o600
    b = Authenticator(_users(), RateLimiter(limit=3, window_s=600, lock_s=30, path=state))  # the restart
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        b.sign_in("op", "right", "10.0.0.3", now=1010)       # the name's lock held
    assert b.sign_in("op", "right", "10.0.0.9", now=1011).user == "op"   # her known address still lets her in
    with pytest.raises(AuthError, match="wrong"):
        b.sign_in("nobody", "x", "10.0.0.2", now=1012)        # the third failure of that address ...
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        b.sign_in("op", "right", "10.0.0.2", now=1013)       # ... locks it


def test_a_damaged_or_foreign_sign_in_state_file_is_said_and_not_trusted(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "wattwatch.dashboard.auth")
    state = tmp_path / "s.signin.json"
    for text in ("{not json", '{"version": 1, "locked": {"user:op": ["x", 1]}}', "[1, 2]"):
        state.write_text(text)
        a = Authenticator(_users(), RateLimiter(limit=3, window_s=600, lock_s=30, path=state))
        assert a.sign_in("op", "right", "10.0.0.3", now=1000).user == "op"
    assert sum("sign-in counts" in r.message and "s.signin.json" in r.message for r in caplog.records) == 3


def test_the_served_dashboard_keeps_its_sign_in_counts_beside_the_users_file_or_the_store(tmp_path):
    from wattwatch.dashboard.app import signin_state_path
    from wattwatch.dashboard.settings import Settings

    assert signin_state_path(Settings(users_file=tmp_path / "u.toml", db=tmp_path / "s.duckdb")) == tmp_path / "u.toml.signin.json"
    assert signin_state_path(Settings(db=tmp_path / "s.duckdb")) == tmp_path / "s.duckdb.signin.json"
    assert signin_state_path(Settings()) is None


def test_a_fifo_or_a_planted_symlink_at_the_sign_in_state_path_is_not_read(tmp_path, caplog):
    """rev52: the state was read with ``read_text`` after a size check by ``stat``, which follows a
    symlink and says 0 bytes for a FIFO or a device: a FIFO there hung the dashboard's start for ever
    (a symlink to /dev/zero would read until memory ran out). Only a regular file, not a symlink, is
    read, and no more than its cap; the next write replaces what is there."""
    import os
    import threading

    caplog.set_level(logging.WARNING, "wattwatch.dashboard.auth")
    fifo = tmp_path / "f.signin.json"
    os.mkfifo(fifo)
    made = []
    th = threading.Thread(target=lambda: made.append(RateLimiter(path=fifo)), daemon=True)
    th.start()
    th.join(10)
    hung = th.is_alive()
    if hung:  # release the reader before failing
        with open(fifo, "w") as fh:
            fh.write("{}")
        th.join(10)
    assert made and not hung, "reading a FIFO at the state path blocked"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"version": 1, "locked": {"user:op": [9e18, 1]}}')
    link = tmp_path / "l.signin.json"
    link.symlink_to(elsewhere)
    a = Authenticator(_users(), RateLimiter(limit=3, window_s=600, lock_s=30, path=link))
    assert a.sign_in("op", "right", "10.0.0.3", now=1000).user == "op"   # the planted lock is not used
    assert not link.is_symlink() and elsewhere.read_text().startswith('{"version": 1, "locked"')
    assert (link.stat().st_mode & 0o777) == 0o600
    assert sum("sign-in counts not read" in r.message for r in caplog.records) == 2


def test_two_dashboards_sharing_one_state_file_keep_each_others_locks_and_counts(tmp_path):
    """rev52 Left: two dashboards given one users file share one state file, and each wrote its own
    whole state over it, erasing the other's locks and counts. Each write now merges under a file
    lock, and each check reads the file again when another process changed it."""
    import json

    state = tmp_path / "users.toml.signin.json"
    a = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    b = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    for k in range(3):
        a.fail("user:op", now=1000 + k)               # a locks the name
    for k in range(3):
        b.fail("client:10.0.0.7", now=1003 + k)       # b, which read the file before, locks an address
    doc = json.loads(state.read_text())
    assert set(doc["locked"]) == {"user:op", "client:10.0.0.7"}      # b's write kept a's lock
    assert a.locked_for("client:10.0.0.7", now=1010) > 0 and b.locked_for("user:op", now=1010) > 0
    assert (state.stat().st_mode & 0o777) == 0o600
    # A guesser taking turns between the two is counted once: locked at the third try, not the sixth.
    a.fail("client:c", now=1100)
    b.fail("client:c", now=1102)
    assert a.locked_for("client:c", now=1103) == 0
    a.fail("client:c", now=1104)
    assert a.locked_for("client:c", now=1105) > 0 and b.locked_for("client:c", now=1105) > 0
    # A sign-in at one (its count reset) clears the failures the other saw before it, not after it.
    a.fail("user:eve", now=1200)
    a.fail("user:eve", now=1202)
    b.success("user:eve", now=1205)
    a.fail("user:eve", now=1206)
    a.fail("user:eve", now=1207)
    assert a.locked_for("user:eve", now=1208) == 0 and b.locked_for("user:eve", now=1208) == 0
    # Addresses a user signed in from at either are known at both, and after a restart.
    a.remember("op", "10.0.0.1", now=1300)
    b.remember("op", "10.0.0.2", now=1301)
    c = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    assert all(x.known("op", ip) for x in (a, b, c) for ip in ("10.0.0.1", "10.0.0.2"))
    assert c.locked_for("user:op", now=1010) > 0 and c.locked_for("client:10.0.0.7", now=1010) > 0


def test_the_merge_rule_keeps_the_later_lock_and_is_the_same_both_ways(tmp_path):
    """The merge of two states: a key's later lock and larger count of locks, its later reset, the
    union of its failures after that reset, the known addresses of both; merging a state with
    itself changes nothing."""
    def limiter(locked, fails, cleared, known):
        r = RateLimiter(limit=5, window_s=600, lock_s=30)
        r._locked, r._fails, r._cleared, r._known = dict(locked), dict(fails), dict(cleared), dict(known)
        return r

    def state(r):
        return (r._fails, r._locked, r._known, r._cleared)

    x = ({"k": (2000.0, 1), "x": (1500.0, 3)}, {"f": [10.0, 20.0], "g": [8.0]}, {"g": 6.0}, {"u": ["a", "b"]})
    y = ({"k": (1800.0, 2)}, {"f": [15.0, 20.0], "g": [4.0, 7.0]}, {"f": 12.0}, {"u": ["c", "a"]})
    xy, yx = limiter(*x), limiter(*y)
    xy._merge(state(limiter(*y)))
    yx._merge(state(limiter(*x)))
    for m in (xy, yx):
        assert m._locked == {"k": (2000.0, 2), "x": (1500.0, 3)}
        assert m._fails == {"f": [15.0, 20.0], "g": [7.0, 8.0]}
        assert m._cleared == {"f": 12.0, "g": 6.0}
        assert sorted(m._known["u"]) == ["a", "b", "c"]
    assert xy._known["u"] == ["c", "a", "b"] and yx._known["u"] == ["b", "c", "a"]   # this side's as the latest
    same = limiter(*x)
    same._merge(state(limiter(*x)))
    assert state(same) == state(limiter(*x))


def test_two_processes_writing_at_once_lose_none_of_each_others_locks(tmp_path):
    """Two processes each setting 40 locks on one state file as fast as they can: the file lock
    around read, merge and write keeps all 80 (a merge without it loses those written between
    another's read and its write)."""
    import json
    import os
    import subprocess
    import sys

    state = tmp_path / "users.toml.signin.json"
    code = ("import sys\nfrom wattwatch.dashboard.auth import RateLimiter\n"
            "r = RateLimiter(limit=1, window_s=600, lock_s=30, path=sys.argv[1])\n"
            "for k in range(40):\n    r.fail(f'client:{sys.argv[2]}-{k}', now=1000.0 + k)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(state), who], env=env) for who in ("a", "b")]
    assert [p.wait(120) for p in procs] == [0, 0]
    locked = json.loads(state.read_text())["locked"]
    assert set(locked) == {f"client:{who}-{k}" for who in "ab" for k in range(40)}


def test_a_guesser_taking_fast_turns_between_two_dashboards_gets_no_more_tries_than_on_one(tmp_path):
    """rev54: a failure that only counted was written at most once a second (SAVE_EVERY_S), so
    the other dashboard did not see it: tries 0.1 s apart, taking turns, got 7 before the lock at
    limit 5 (up to 2 * limit - 1). Each failure is now merged into the file (a lock's write
    fsync'd), so the two together lock at the fifth, like one."""
    def tries(limiters, key, t0):
        n, t = 0, t0
        for i in range(20):
            x = limiters[i % len(limiters)]
            if x.locked_for(key, now=t) > 0:
                return n
            x.fail(key, now=t)
            n, t = n + 1, t + 0.1
        return n

    state = tmp_path / "users.toml.signin.json"
    a = RateLimiter(limit=5, window_s=600, lock_s=30, path=state)
    b = RateLimiter(limit=5, window_s=600, lock_s=30, path=state)
    one = RateLimiter(limit=5, window_s=600, lock_s=30, path=tmp_path / "one.json")
    assert tries([one], "client:g", 1000.0) == 5
    assert tries([a, b], "client:g", 1000.0) == 5
    # After the lock, the next round: still the limit, not more.
    assert tries([a, b], "client:g", 1000.0 + 31) == 5
    # A sign-in at one, 0.1 s after failures at the other, clears them there too.
    a.fail("user:op", now=2000.0)
    a.fail("user:op", now=2000.1)
    b.fail("user:op", now=2000.2)
    a.fail("user:op", now=2000.3)
    b.success("user:op", now=2000.4)
    for k in range(4):
        a.fail("user:op", now=2000.5 + 0.1 * k)
    assert a.locked_for("user:op", now=2001.0) == 0 and b.locked_for("user:op", now=2001.0) == 0
    a.fail("user:op", now=2001.0)
    assert b.locked_for("user:op", now=2001.1) > 0


def test_a_state_folder_it_cannot_write_keeps_the_counts_here_and_says_so_once(tmp_path, monkeypatch, caplog):
    """rev54: the lock file (or the state beside it) cannot be created (a folder the dashboard may
    not write): the counts and locks hold in this process, and the warning is said once, not at
    every failure (every failure is written now, three keys a sign-in)."""
    import errno
    import logging
    import os

    from wattwatch.dashboard import auth

    state = tmp_path / "users.toml.signin.json"
    real = os.open

    def refused(path, flags, *a, **k):
        if os.fspath(path).startswith(str(state)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(auth.os, "open", refused)
    r = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    with caplog.at_level(logging.WARNING, logger=auth.log.name):
        for k in range(6):
            r.fail(f"client:{k % 2}", now=1000 + k)
    assert r.locked_for("client:0", now=1006) > 0 and r.locked_for("client:1", now=1006) > 0
    assert not state.exists()
    assert sum("not written" in m.message for m in caplog.records) == 1
    monkeypatch.setattr(auth.os, "open", real)
    r.remember("op", "10.0.0.1", now=1010)
    assert set(__import__("json").loads(state.read_text())["locked"]) == {"client:0", "client:1"}


def test_failures_at_one_instant_or_before_a_reset_from_a_clock_ahead_all_count(tmp_path):
    """rev54: the merge keeps failures as a set of times after the key's reset, so (1) failures
    given the same time collapsed into one (a state file: five at one instant never locked at
    limit 3; without a file they did), and (2) a dashboard whose clock is behind another's (another
    host, a clock stepped back) dropped its own failures as older than a reset the other made:
    600 s of skew gave a guesser unlimited tries for 600 s after each sign-in there. A failure is
    now counted after the key's last failure and reset, whatever the clock says."""
    state = tmp_path / "users.toml.signin.json"
    r = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    for _ in range(3):
        r.fail("client:x", now=1000.0)
    assert r.locked_for("client:x", now=1000.0) > 0
    ahead = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    behind = RateLimiter(limit=3, window_s=600, lock_s=30, path=state)
    ahead.fail("user:q", now=2600.0)
    ahead.success("user:q", now=2601.0)               # a sign-in, on a clock 600 s ahead
    tries = 0
    for k in range(10):
        if behind.locked_for("user:q", now=2005.0 + k) > 0:
            break
        behind.fail("user:q", now=2005.0 + k)
        tries += 1
    assert tries == 3
    # (A lock ends on the clock of the dashboard that set it: at the one ahead it has ended already.)
    # A sign-in at the clock behind, after failures bumped past its own time, still clears them.
    behind2 = RateLimiter(limit=3, window_s=600, lock_s=30, path=tmp_path / "two.json")
    ahead2 = RateLimiter(limit=3, window_s=600, lock_s=30, path=tmp_path / "two.json")
    ahead2.fail("user:z", now=3600.0)
    ahead2.success("user:z", now=3600.5)
    behind2.fail("user:z", now=3001.0)
    behind2.fail("user:z", now=3002.0)
    behind2.success("user:z", now=3003.0)
    ahead2.fail("user:z", now=3604.0)
    ahead2.fail("user:z", now=3605.0)
    assert ahead2.locked_for("user:z", now=3606.0) == 0 and behind2.locked_for("user:z", now=3006.0) == 0
