"""Encrypted secrets, shared by local runs, the ``flux secrets`` CLI and the server.

Values are JSON, encrypted with AES-256-GCM under a 12-byte random nonce, with the secret's name
as associated data (a blob copied to another name does not decrypt). A stored blob is::

    version (1 byte, 0x01) | nonce (12 bytes) | ciphertext + GCM tag

The key comes from key material, either ``security.encryption_key`` in the settings or the
contents of ``{home}/encryption.key`` (generated on first use, mode 0600). Both pass through
:func:`derive_key` (HKDF-SHA256), so copying the key file's contents into
``FLUX_SECURITY__ENCRYPTION_KEY`` yields the same key. The material is a key, not a password:
HKDF does not slow down guessing, so use a long random value (the generated file holds 32 bytes).

Secret values never appear in exceptions, reprs or logs.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import os
import re
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux._files import private_dir, private_file
from flux.errors import SecretDecryptionError, SecretNotFoundError, UsageError

if TYPE_CHECKING:
    from flux.config import FluxSettings

__all__ = [
    "KEY_FILE_NAME",
    "LocalSecretStore",
    "decrypt_value",
    "derive_key",
    "encrypt_value",
    "load_or_create_key",
    "validate_secret_name",
]

KEY_FILE_NAME = "encryption.key"

_log = logging.getLogger(__name__)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_VERSION = b"\x01"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_TAG_BYTES = 16
_HKDF_INFO = b"flux secrets v1: aes-256-gcm"
# SQLite caps bound parameters per statement (999 on old builds).
_QUERY_CHUNK = 500


def derive_key(material: str | bytes) -> bytes:
    """Turn key material into a 32-byte AES key with HKDF-SHA256 (no salt, fixed info label).

    Deterministic: the same material always gives the same key. A ``str`` is UTF-8 encoded after
    stripping surrounding whitespace (so a trailing newline in a file or variable is harmless).

    Raises:
        UsageError: the material is empty or not text/bytes.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if isinstance(material, str):
        material = material.strip().encode()
    if not isinstance(material, bytes | bytearray):
        raise UsageError(
            f"an encryption key must be text or bytes, got a {type(material).__name__}"
        )
    if not material:
        raise UsageError("the encryption key is empty; set security.encryption_key or unset it")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=_HKDF_INFO)
    return hkdf.derive(bytes(material))


def encrypt_value(key: bytes, name: str, value: Any) -> bytes:
    """Encrypt a JSON value for the secret ``name``; returns the blob to store.

    Raises:
        UsageError: the key is not 32 bytes, the name is invalid or the value is not JSON.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    name = validate_secret_name(name)
    try:
        plaintext = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        # The message must not echo the value.
        raise UsageError(
            f"secret {name!r} must be a JSON value (str, number, bool, None, list or dict of "
            f"those), got a {type(value).__name__}",
            name=name,
        ) from None
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(_check_key(key)).encrypt(nonce, plaintext.encode(), name.encode())
    return _VERSION + nonce + ciphertext


def decrypt_value(key: bytes, name: str, blob: bytes) -> Any:
    """Decrypt a blob made by :func:`encrypt_value` for the same ``name``.

    Raises:
        SecretDecryptionError: the key differs from the one the secret was stored with, or the
            blob is damaged.
        UsageError: the key is not 32 bytes or the name is invalid.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(_check_key(key))
    name = validate_secret_name(name)
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES or blob[:1] != _VERSION:
        raise SecretDecryptionError(
            f"stored secret {name!r} is damaged or from an unknown format; set it again",
            name=name,
        )
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        plaintext = aes.decrypt(nonce, ciphertext, name.encode())
    except InvalidTag:
        raise SecretDecryptionError(
            f"cannot decrypt secret {name!r}: the encryption key differs from the one the secrets "
            "were stored with; restore that key (security.encryption_key / "
            "FLUX_SECURITY__ENCRYPTION_KEY or the encryption.key file in the Flux home) or set "
            "the secret again",
            name=name,
        ) from None
    return json.loads(plaintext)


def load_or_create_key(home: Path, configured: str | None) -> bytes:
    """The secrets key: from ``configured`` material when set, else from ``{home}/encryption.key``,
    which is created with 32 random bytes (base64) and mode 0600 when missing.

    Raises:
        UsageError: the key file cannot be read or is empty.
    """
    if configured is not None and configured.strip():
        return derive_key(configured)
    home = Path(home)
    path = home / KEY_FILE_NAME
    if not path.exists():
        private_dir(home)
        _create_key_file(path)
    try:
        material = path.read_text(encoding="ascii").strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the key file {str(path)!r}: {exc}", path=str(path)) from None
    if not material:
        raise UsageError(
            f"the key file {str(path)!r} is empty; restore it, or delete it to generate a new key "
            "(secrets stored with the old key are then lost)",
            path=str(path),
        )
    if mode & 0o077:
        _log.warning("key file %s is readable by other users (mode %o); chmod 600 it", path, mode)
    return derive_key(material)


def _create_key_file(path: Path) -> None:
    """Write a new key file without ever replacing one another process wrote first."""
    material = base64.b64encode(os.urandom(_KEY_BYTES)) + b"\n"
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask (it may have removed bits)
        os.write(fd, material)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic and fails when the file exists: first writer wins
    except FileExistsError:
        pass
    except OSError:
        # Filesystems without hard links: exclusive create, still never overwriting.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, material)
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)


def validate_secret_name(name: Any) -> str:
    """Return ``name`` when it is a valid secret name: a letter or underscore, then up to 127
    letters, digits, ``_``, ``.`` or ``-``.

    Raises:
        UsageError: it is not.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid secret name {name!r}: use a letter or '_' followed by up to 127 letters, "
            "digits, '_', '.' or '-' (e.g. 'API_KEY')"
        )
    return name


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != _KEY_BYTES:
        raise UsageError(
            "a secrets key must be 32 bytes; build one with derive_key() or load_or_create_key()"
        )
    return bytes(key)


class LocalSecretStore:
    """Secrets in the ``secrets`` table of a SQLite file (the local-run database by default).

    Only that table is touched; other tables in the same file belong to other components. Each
    call opens its own connection, so one store may be shared between threads.
    """

    def __init__(self, db_path: Path, key: bytes) -> None:
        self.db_path = Path(db_path)
        self._key = _check_key(key)
        private_file(self.db_path)
        with self._connect() as conn:
            # WAL lets readers and the one writer share the file with other components.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS secrets ("
                "name TEXT PRIMARY KEY, value BLOB NOT NULL, updated_at TEXT NOT NULL)"
            )

    @classmethod
    def from_settings(cls, settings: FluxSettings) -> LocalSecretStore:
        """The store for ``settings``: its local database and its secrets key."""
        key = load_or_create_key(Path(settings.home), settings.security.encryption_key)
        return cls(settings.local_db_path, key)

    def __repr__(self) -> str:
        return f"LocalSecretStore({str(self.db_path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.db_path, timeout=5.0)) as conn:
            conn.execute("PRAGMA busy_timeout = 5000")
            with conn:  # commits on success, rolls back on error
                yield conn

    def set(self, name: str, value: Any) -> None:
        """Create or replace the secret ``name`` (any JSON value).

        Raises:
            UsageError: the name is invalid or the value is not JSON.
        """
        blob = encrypt_value(self._key, name, value)
        updated_at = datetime.now(UTC).isoformat()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO secrets (name, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (name, blob, updated_at),
            )

    def get(self, name: str) -> Any:
        """The value of ``name``.

        Raises:
            SecretNotFoundError: there is no such secret.
            SecretDecryptionError: it was stored with another key.
        """
        return self.get_many([name])[name]

    def get_many(self, names: Iterable[str]) -> dict[str, Any]:
        """The values of ``names``, by name.

        Raises:
            SecretNotFoundError: some are missing; the message names all of them.
            SecretDecryptionError: a secret was stored with another key.
        """
        wanted = list(dict.fromkeys(validate_secret_name(name) for name in names))
        blobs: dict[str, bytes] = {}
        with self._connect() as conn:
            for start in range(0, len(wanted), _QUERY_CHUNK):
                chunk = wanted[start : start + _QUERY_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT name, value FROM secrets WHERE name IN ({marks})", chunk
                )
                blobs.update(rows.fetchall())
        missing = [name for name in wanted if name not in blobs]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            noun = "secret" if len(missing) == 1 else "secrets"
            raise SecretNotFoundError(
                f"{noun} not found: {listed}; create with `flux secrets set NAME VALUE`",
                names=missing,
            )
        return {name: decrypt_value(self._key, name, blobs[name]) for name in wanted}

    def list(self) -> builtins.list[str]:
        """All secret names, sorted; never the values."""
        with self._connect() as conn:
            rows = conn.execute("SELECT name FROM secrets ORDER BY name").fetchall()
        return [name for (name,) in rows]

    def remove(self, name: str) -> bool:
        """Delete ``name``; ``True`` when it existed.

        Raises:
            UsageError: the name is invalid.
        """
        validate_secret_name(name)
        with self._connect() as conn:
            return conn.execute("DELETE FROM secrets WHERE name = ?", (name,)).rowcount > 0
