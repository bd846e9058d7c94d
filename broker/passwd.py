"""Mosquitto password files, written without the ``mosquitto_passwd`` binary.

Mosquitto 2.0 stores one ``user:$7$<iterations>$<salt b64>$<hash b64>`` line per
user, where the hash is PBKDF2-HMAC-SHA512 of the password over a 12-byte salt
(64-byte output; ``mosquitto_passwd`` uses 101 iterations). Doing it with
:mod:`hashlib` lets the compose init step and tests create credentials on
machines that have no mosquitto installed.

Usernames double as device ids (the ACL grants ``delta/%u``), so device names
go through :func:`fedmq.topics.validate_id`; the service accounts below are
reserved so that no device can take the aggregator's identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedmq.errors import ConfigError
from fedmq.topics import validate_id

log = logging.getLogger(__name__)

#: PBKDF2-SHA512 marker in mosquitto's format.
HASH_ID = "7"
#: mosquitto_passwd's iteration count; the broker reads whatever the line says.
DEFAULT_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64
#: Accounts with their own ACL sections (broker/acl); never device ids.
SERVICE_USERS = frozenset({"aggregator", "simulator", "monitor"})


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One parsed ``$7$`` hash."""

    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def create(
        cls, password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
    ) -> PasswordHash:
        if not password:
            raise ConfigError("empty password")
        if iterations < 1:
            raise ConfigError(f"iterations must be positive, got {iterations}")
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
        return cls(iterations, salt, digest)

    @classmethod
    def parse(cls, encoded: str) -> PasswordHash:
        parts = encoded.split("$")
        if len(parts) != 5 or parts[0] != "" or parts[1] != HASH_ID or not parts[2].isdigit():
            raise ConfigError(f"not a mosquitto PBKDF2-SHA512 hash: {encoded[:12]!r}...")
        try:
            salt = base64.b64decode(parts[3], validate=True)
            digest = base64.b64decode(parts[4], validate=True)
        except ValueError as exc:
            raise ConfigError("bad base64 in password hash") from exc
        return cls(int(parts[2]), salt, digest)

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        return f"${HASH_ID}${self.iterations}${salt}${digest}"

    def verify(self, password: str) -> bool:
        candidate = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), self.salt, self.iterations, len(self.digest)
        )
        return hmac.compare_digest(candidate, self.digest)


def validate_username(name: str, *, device: bool) -> str:
    """Usernames are topic-safe ids; devices may not use a service account's name."""
    validate_id(name, "device id" if device else "username")
    if device and name in SERVICE_USERS:
        raise ConfigError(f"{name!r} is a service account, not a device id")
    return name


def generate_password() -> str:
    """A random password that needs no escaping in a broker URL (``[A-Za-z0-9_-]``)."""
    return secrets.token_urlsafe(24)


def read_passwd(path: Path) -> dict[str, str]:
    """``{user: encoded hash}`` from a password file; a missing file is empty."""
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{path}:{number}: not a user:hash line")
        entries[user] = encoded
    return entries


def write_passwd(path: Path, entries: Mapping[str, str]) -> None:
    """Replace ``path`` atomically with mode 0600 (it holds password hashes)."""
    text = "".join(f"{user}:{encoded}\n" for user, encoded in sorted(entries.items()))
    write_secret(path, text)


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only.

    A replaced file keeps its owner when we can set it (root), so that adding a
    device as root leaves the password file readable by the broker's account.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_password(path: Path, user: str, password: str) -> None:
    """Add ``user`` or change its password in the file at ``path``."""
    entries = read_passwd(path)
    entries[user] = PasswordHash.create(password).encode()
    write_passwd(path, entries)
    log.info("password for %s written to %s", user, path)


def remove_user(path: Path, user: str) -> bool:
    """Drop ``user`` from the file; False if it was not there."""
    entries = read_passwd(path)
    if entries.pop(user, None) is None:
        return False
    write_passwd(path, entries)
    log.info("removed %s from %s", user, path)
    return True


def check_password(path: Path, user: str, password: str) -> bool:
    encoded = read_passwd(path).get(user)
    return encoded is not None and PasswordHash.parse(encoded).verify(password)
