"""Users, roles and access tokens, kept in a small TOML file (``users.toml``).

Each user has a role (``admin``, ``operator``, ``observer``) and one token. A
token is shown once when made (``taggerhub user add``/``rotate``); the file
keeps only a salted scrypt hash of it. Tokens look like ``NAME.SECRET`` so the
server checks one hash per connection, and remembers tokens it has already
verified (keyed by a keyed hash, never the token) so that each new proxy
connection does not pay for scrypt again. The store re-reads the file when it
changes on disk or when asked to (SIGHUP), so edits apply without a restart.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@-]{0,63}$")
# scrypt cost: ~30 ms per check on a laptop; verified tokens are cached for the server's lifetime.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class Role(enum.IntEnum):
    """Roles, ordered: each may do everything the one below may."""

    observer = 1
    operator = 2
    admin = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ConfigError(f"unknown role {name!r} (roles: {', '.join(r.name for r in cls)})") from None


@dataclass
class User:
    name: str
    role: Role
    token_hash: str
    created: str = ""


def hash_token(token: str, salt: bytes | None = None) -> str:
    """Return ``scrypt$n$r$p$salt$hash`` for ``token`` (a fresh salt unless given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_token(token: str, stored: str) -> bool:
    """Check ``token`` against a stored ``hash_token`` string in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(token.encode(), salt=base64.urlsafe_b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_token(name: str) -> str:
    return f"{name}.{secrets.token_urlsafe(32)}"


# A token given by the admin (``--token-stdin``, the Ansible role) must be as hard to guess as
# one we make: ``NAME.SECRET`` with SECRET of at least 32 URL-safe characters (~190 bits).
MIN_SECRET_CHARS = 32
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


def check_given_token(name: str, token: str) -> str:
    """Refuse a given token that is not ``NAME.SECRET`` or whose secret is weak; never echo it."""
    prefix, _, secret = token.partition(".")
    if prefix != name or not secret:
        raise ConfigError(f"the token for {name!r} must look like '{name}.SECRET'")
    if not SECRET_PATTERN.match(secret):
        raise ConfigError(f"the token for {name!r}: SECRET may hold only letters, digits, '_' and '-'")
    if len(secret) < MIN_SECRET_CHARS or len(set(secret)) < 12:
        raise ConfigError(f"the token for {name!r} is too weak: SECRET needs at least {MIN_SECRET_CHARS} "
                          "random characters (e.g. `openssl rand -hex 24`)")
    return token


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"invalid user name {name!r}: use letters, digits, '_', '-', '@' (max 64)")
    return name


def _keep_access(path: Path, fd: int) -> None:
    """Give the new file the old one's owner, group and mode, so a server reading it as its
    service group (root:taggerhub 0640, set by the Ansible role) can still read it after a change."""
    try:
        old = path.stat()
    except FileNotFoundError:
        return
    if os.geteuid() == 0:  # only root may give a file away; others keep it theirs, as before
        os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, old.st_mode & 0o777)


class UserStore:
    """The users file: read, verify tokens, change and write back atomically."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, str] = {}  # keyed hash of a verified token -> user name

    # -- reading --------------------------------------------------------------------
    def load(self) -> None:
        """(Re)read the file; a missing file means no users."""
        with self._lock:
            try:
                with open(self.path, "rb") as file:  # stamp and text of the same file (replaced whole, never edited)
                    stat = os.fstat(file.fileno())
                    data = tomllib.loads(file.read().decode())
            except FileNotFoundError:
                self._users, self._stamp = {}, None
                self._verified.clear()
                return
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"users file {self.path} is not valid TOML: {exc}") from None
            users: dict[str, User] = {}
            for name, entry in (data.get("users") or {}).items():
                where = f"users file {self.path} [users.{name}]"
                if not isinstance(entry, dict) or not isinstance(entry.get("token_hash"), str):
                    raise ConfigError(f"{where}: needs role and token_hash")
                users[check_name(name)] = User(name, Role.parse(str(entry.get("role", ""))),
                                               entry["token_hash"], str(entry.get("created", "")))
            self._users = users
            self._stamp = (stat.st_mtime_ns, stat.st_size)
            self._verified.clear()

    def reload_if_changed(self, min_interval_s: float = 1.0) -> bool:
        """Re-read the file if it changed since the last read (checked at most every ``min_interval_s``)."""
        now = time.monotonic()
        if now - self._checked_at < min_interval_s:  # the per-call fast path: no lock, no stat
            return False
        with self._lock:
            if now - self._checked_at < min_interval_s:
                return False
            self._checked_at = now
            try:
                stat = self.path.stat()
                stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp == self._stamp:
                return False
            self.load()
            return True

    def users(self) -> list[User]:
        with self._lock:
            return sorted(self._users.values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        return self._users.get(name)  # the dict is replaced whole on reload, never changed in place

    def authenticate(self, token: str) -> User | None:
        """The user whose token this is, or None."""
        if not token or len(token) > 512:
            return None
        name = token.rpartition(".")[0]
        key = hmac.new(self._cache_key, token.encode(), hashlib.sha256).digest()
        with self._lock:
            user = self._users.get(name)
            if user is None:
                return None
            if self._verified.get(key) == name:
                return user
            stored = user.token_hash
        if not verify_token(token, stored):
            return None
        with self._lock:
            if self._users.get(name) is user:  # not rotated meanwhile
                self._verified[key] = name
        return user

    # -- changing -------------------------------------------------------------------
    def add(self, name: str, role: str) -> str:
        """Add a user; return their new token (shown once, never stored)."""
        with self._changing():
            if check_name(name) in self._users:
                raise ConfigError(f"user {name!r} already exists (use 'rotate' for a new token)")
            token = new_token(name)
            self._users[name] = User(name, Role.parse(role), hash_token(token),
                                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._write()
            return token

    def rotate(self, name: str) -> str:
        """Give ``name`` a new token; the old one stops working at the server's next reload."""
        with self._changing():
            user = self._require(name)
            token = new_token(name)
            user.token_hash = hash_token(token)
            self._write()
            return token

    def put(self, name: str, role: str, token: str) -> bool:
        """Create or update ``name`` with this role and the admin's own token; return whether anything changed.

        Lab-wide users: one token on every PC, chosen once on the controller.
        """
        check_given_token(check_name(name), token)
        with self._changing():
            user, wanted = self._users.get(name), Role.parse(role)
            if user is not None and user.role is wanted and verify_token(token, user.token_hash):
                return False
            if user is None:
                user = self._users[name] = User(name, wanted, "", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            user.role, user.token_hash = wanted, hash_token(token)
            self._write()
            return True

    def remove(self, name: str) -> None:
        with self._changing():
            self._require(name)
            del self._users[name]
            self._write()

    def set_role(self, name: str, role: str) -> None:
        with self._changing():
            self._require(name).role = Role.parse(role)
            self._write()

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the file lock (``users.toml.lock``, ``flock``) and re-read under it, for one change.

        Without it, 10 parallel ``taggerhub user add`` each read the same file and wrote it back
        with only their own user, and a ``remove`` racing an ``add`` was silently undone.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.load()
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock

    def _require(self, name: str) -> User:
        user = self._users.get(name)
        if user is None:
            raise ConfigError(f"no user {name!r} in {self.path}")
        return user

    def _write(self) -> None:
        lines = ["# taggerhub users: managed by `taggerhub user ...`; tokens are stored as scrypt hashes only.", ""]
        for user in sorted(self._users.values(), key=lambda u: u.name):
            lines += [f"[users.{user.name}]", f'role = "{user.role.name}"',
                      f'token_hash = "{user.token_hash}"', f'created = "{user.created}"', ""]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write("\n".join(lines))
                _keep_access(self.path, out.fileno())
                out.flush()
                os.fsync(out.fileno())  # whole on disk before it replaces the old file (readers see old or new)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.load()
