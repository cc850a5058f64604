"""Accounts, roles, argon2id password hashes, sessions with CSRF tokens, login rate limit.

Only hashes are stored: passwords by argon2id (memory-hard), session tokens by SHA-256 (a
stolen database gives no usable cookie). There is no default account.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tools.hub.serve.db import HubDB

ROLES = ("guard", "manager", "admin")  # each may do what the ones before it may
MIN_PASSWORD = 10
SESSION_S = 12 * 3600
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")

_hasher = PasswordHasher()  # argon2id, 64 MiB, t=3, p=4 (RFC 9106 second recommendation)


class AuthError(ValueError):
    """A refused account operation, with the reason."""


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    role: str
    csrf: str
    expires_at: float

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def read_password_file(path: Path) -> str:
    """The first line of ``path`` (trailing newline dropped); refuses short passwords."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AuthError(f"cannot read --password-file {path}: {e.strerror or e}") from None
    password = text.splitlines()[0] if text else ""
    check_password(password, str(path))
    return password


def check_password(password: str, where: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"{where}: a password needs at least {MIN_PASSWORD} characters")


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise AuthError(f"user name {name!r}: 1-64 letters, digits or . _ - @")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AuthError(f"role {role!r} is not one of {', '.join(ROLES)}")


def add_user(db: HubDB, name: str, role: str, password: str) -> None:
    _check_name(name)
    _check_role(role)
    check_password(password)
    now = time.time()
    try:
        with db.write() as con:
            con.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                (name, role, _hasher.hash(password), now, now),
            )
    except sqlite3.IntegrityError:
        raise AuthError(f"user {name!r} exists (use passwd to change the password)") from None


def set_password(db: HubDB, name: str, password: str) -> None:
    check_password(password)
    with db.write() as con:
        cur = con.execute(
            "UPDATE users SET hash=?, updated_at=? WHERE name=?",
            (_hasher.hash(password), time.time(), name),
        )
        if cur.rowcount == 0:
            raise AuthError(f"no user {name!r}")
        con.execute("DELETE FROM sessions WHERE user=?", (name,))  # log out everywhere


def remove_user(db: HubDB, name: str) -> None:
    with db.write() as con:
        row = con.execute("SELECT role FROM users WHERE name=?", (name,)).fetchone()
        if row is None:
            raise AuthError(f"no user {name!r}")
        admins = con.execute("SELECT COUNT(*) FROM users WHERE role='admin'").fetchone()[0]
        if row["role"] == "admin" and admins == 1:
            raise AuthError(f"{name!r} is the last admin; add another admin first")
        con.execute("DELETE FROM sessions WHERE user=?", (name,))
        con.execute("DELETE FROM users WHERE name=?", (name,))


def list_users(db: HubDB) -> list[dict]:
    rows = db.read().execute("SELECT name, role, created_at, updated_at FROM users ORDER BY name")
    return [dict(r) for r in rows]


class RateLimit:
    """Failed logins within ``window_s``, per user name (after ``free_user``) and per client
    address (after ``free_client``): each further attempt waits ``base_s * 2**extra`` seconds
    (at most ``max_s``) after the last failure, whatever the password."""

    def __init__(
        self,
        free_user: int = 5,
        free_client: int = 20,
        window_s: float = 900,
        base_s: float = 2,
        max_s: float = 300,
    ):
        self.free = {"user": free_user, "client": free_client}
        self.window_s, self.base_s, self.max_s = window_s, base_s, max_s

    def wait_s(self, con: sqlite3.Connection, user: str, client: str, now: float) -> float:
        worst = 0.0
        for col, value in (("user", user), ("client", client)):
            rows = con.execute(
                f"SELECT at FROM login_attempts WHERE {col}=? AND ok=0 AND at>? ORDER BY at",
                (value, now - self.window_s),
            ).fetchall()
            free = self.free[col]
            if len(rows) >= free:
                delay = min(self.max_s, self.base_s * 2 ** (len(rows) - free))
                worst = max(worst, rows[-1]["at"] + delay - now)
        return worst


def login(
    db: HubDB, user: str, password: str, client: str, limit: RateLimit
) -> tuple[str, Session]:
    """Check the password; returns (cookie token, session). Raises AuthError (bad) or
    ``TooMany`` (rate limited, with the seconds to wait)."""
    now = time.time()
    con = db.read()
    wait = limit.wait_s(con, user, client, now)
    if wait > 0:
        raise TooMany(wait)
    row = con.execute("SELECT role, hash FROM users WHERE name=?", (user,)).fetchone()
    ok = False
    if row is not None:
        try:
            ok = _hasher.verify(row["hash"], password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher.hash(password)  # same cost for unknown names: no user enumeration by timing
    with db.write() as w:
        w.execute(
            "INSERT INTO login_attempts (user, client, at, ok) VALUES (?, ?, ?, ?)",
            (user, client, now, int(ok)),
        )
        w.execute("DELETE FROM login_attempts WHERE at<?", (now - 86400,))
        if not ok:
            token = None
        else:
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            w.execute("DELETE FROM sessions WHERE expires_at<?", (now,))
            w.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (_digest(token), user, csrf, now, now + SESSION_S),
            )
    if token is None:
        raise AuthError("wrong user name or password")
    return token, Session(user, row["role"], csrf, now + SESSION_S)


class TooMany(Exception):
    def __init__(self, wait_s: float):
        super().__init__(f"too many failed logins: try again in {wait_s:.0f} s")
        self.wait_s = wait_s


def session(db: HubDB, token: str | None) -> Session | None:
    if not token:
        return None
    row = (
        db.read()
        .execute(
            "SELECT s.user, u.role, s.csrf, s.expires_at FROM sessions s "
            "JOIN users u ON u.name = s.user WHERE s.token_hash=?",
            (_digest(token),),
        )
        .fetchone()
    )
    if row is None or row["expires_at"] < time.time():
        return None
    return Session(row["user"], row["role"], row["csrf"], row["expires_at"])


def logout(db: HubDB, token: str) -> None:
    with db.write() as con:
        con.execute("DELETE FROM sessions WHERE token_hash=?", (_digest(token),))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
