import base64
import os
import sqlite3
import stat
from contextlib import closing

import pytest
from flux.config import FluxSettings
from flux.errors import SecretDecryptionError, SecretNotFoundError, UsageError
from flux.secrets import (
    LocalSecretStore,
    decrypt_value,
    derive_key,
    encrypt_value,
    load_or_create_key,
    validate_secret_name,
)

PLAINTEXT = "sk-live-7d1e5c0ffee"


@pytest.fixture
def key():
    return derive_key("test key material")


@pytest.fixture
def store(tmp_path, key):
    return LocalSecretStore(tmp_path / "flux.db", key)


def raw_rows(db_path):
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("SELECT name, value, updated_at FROM secrets ORDER BY name").fetchall()


# --- keys ---------------------------------------------------------------------------------


def test_derive_key_is_deterministic_and_32_bytes():
    key = derive_key("correct horse battery staple")
    assert len(key) == 32
    assert derive_key("correct horse battery staple") == key
    assert derive_key(b"correct horse battery staple") == key
    assert derive_key("correct horse battery staple\n") == key  # trailing newline is harmless
    assert derive_key("correct horse battery stapler") != key
    assert key != b"correct horse battery staple"[:32].ljust(32, b"\0")


@pytest.mark.parametrize("material", ["", "   ", b"", 42])
def test_derive_key_rejects_empty_or_wrong_type(material):
    with pytest.raises(UsageError):
        derive_key(material)


def test_load_or_create_key_creates_a_private_key_file(tmp_path):
    home = tmp_path / "nested" / "home"
    key = load_or_create_key(home, None)
    path = home / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    assert len(key) == 32
    assert load_or_create_key(home, None) == key
    assert [p.name for p in home.iterdir()] == ["encryption.key"]  # no temp file left behind


@pytest.mark.parametrize("umask", [0o000, 0o277], ids=["permissive", "restrictive"])
def test_key_file_is_0600_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        load_or_create_key(tmp_path, None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "encryption.key").stat().st_mode) == 0o600


def test_configured_key_wins_and_creates_no_file(tmp_path):
    key = load_or_create_key(tmp_path, "configured material")
    assert key == derive_key("configured material")
    assert not (tmp_path / "encryption.key").exists()


def test_key_file_contents_work_as_configured_material(tmp_path):
    from_file = load_or_create_key(tmp_path / "a", None)
    material = (tmp_path / "a" / "encryption.key").read_text()
    assert load_or_create_key(tmp_path / "b", material) == from_file


def test_separate_homes_get_different_keys(tmp_path):
    assert load_or_create_key(tmp_path / "a", None) != load_or_create_key(tmp_path / "b", None)


def test_loose_key_file_permissions_are_logged_without_the_key(tmp_path, caplog):
    load_or_create_key(tmp_path, None)
    path = tmp_path / "encryption.key"
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="flux.secrets"):
        load_or_create_key(tmp_path, None)
    assert "chmod 600" in caplog.text
    assert path.read_text().strip() not in caplog.text


def test_empty_key_file_is_an_error_not_silently_replaced(tmp_path):
    (tmp_path / "encryption.key").write_text("")
    with pytest.raises(UsageError, match="is empty"):
        load_or_create_key(tmp_path, None)
    assert (tmp_path / "encryption.key").read_text() == ""


# --- encryption ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [PLAINTEXT, "", 42, 1.5, True, None, ["a", 1], {"user": "u", "nested": {"n": [1, 2]}}, "é✓"],
)
def test_encrypt_decrypt_round_trip(key, value):
    blob = encrypt_value(key, "API_KEY", value)
    assert decrypt_value(key, "API_KEY", blob) == value


def test_ciphertext_hides_the_value_and_uses_a_fresh_nonce(key):
    first = encrypt_value(key, "API_KEY", PLAINTEXT)
    second = encrypt_value(key, "API_KEY", PLAINTEXT)
    assert PLAINTEXT.encode() not in first
    assert first != second
    assert first[1:13] != second[1:13]


def test_wrong_key_raises_decryption_error_without_leaking(key):
    blob = encrypt_value(key, "API_KEY", PLAINTEXT)
    other = derive_key("some other material")
    with pytest.raises(SecretDecryptionError, match="key differs from the one") as info:
        decrypt_value(other, "API_KEY", blob)
    text = str(info.value) + repr(info.value)
    assert "'API_KEY'" in text
    assert PLAINTEXT not in text
    assert "some other material" not in text
    assert "test key material" not in text


def test_blob_is_bound_to_its_name(key):
    blob = encrypt_value(key, "API_KEY", PLAINTEXT)
    with pytest.raises(SecretDecryptionError):
        decrypt_value(key, "OTHER_KEY", blob)


@pytest.mark.parametrize("blob", [b"", b"\x01short", b"\x02" + bytes(40)])
def test_damaged_blob(key, blob):
    with pytest.raises(SecretDecryptionError, match="damaged"):
        decrypt_value(key, "API_KEY", blob)


def test_non_json_value_is_refused_without_echoing_it(key):
    class Token:
        def __repr__(self):
            return PLAINTEXT

    with pytest.raises(UsageError, match="JSON value") as info:
        encrypt_value(key, "API_KEY", Token())
    assert PLAINTEXT not in str(info.value)
    with pytest.raises(UsageError):
        encrypt_value(key, "API_KEY", float("nan"))


def test_key_must_be_32_bytes():
    with pytest.raises(UsageError, match="32 bytes"):
        encrypt_value(b"short", "API_KEY", "v")


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["API_KEY", "_x", "a", "db.password", "svc-token_2", "A" * 128])
def test_valid_names(name):
    assert validate_secret_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "1KEY", "-x", ".x", "has space", "a/b", "ключ", "A" * 129, "KEY\n", None, 5]
)
def test_invalid_names(name):
    with pytest.raises(UsageError, match="invalid secret name"):
        validate_secret_name(name)


# --- store --------------------------------------------------------------------------------


def test_store_round_trip_and_overwrite(store):
    store.set("API_KEY", PLAINTEXT)
    store.set("CONFIG", {"retries": 3})
    assert store.get("API_KEY") == PLAINTEXT
    store.set("API_KEY", "rotated")
    assert store.get("API_KEY") == "rotated"
    assert store.get_many(["CONFIG", "API_KEY"]) == {"CONFIG": {"retries": 3}, "API_KEY": "rotated"}


def test_stored_bytes_are_not_the_plaintext(store):
    store.set("API_KEY", PLAINTEXT)
    [(name, value, updated_at)] = raw_rows(store.db_path)
    assert name == "API_KEY"
    assert isinstance(value, bytes)
    assert PLAINTEXT.encode() not in value
    assert updated_at.endswith("+00:00")


def test_list_returns_sorted_names_only(store):
    for name in ["b_secret", "A_SECRET", "c.secret"]:
        store.set(name, PLAINTEXT)
    assert store.list() == ["A_SECRET", "b_secret", "c.secret"]
    assert LocalSecretStore(store.db_path, derive_key("x")).list() == store.list()


def test_remove(store):
    store.set("API_KEY", "v")
    assert store.remove("API_KEY") is True
    assert store.remove("API_KEY") is False
    assert store.list() == []
    with pytest.raises(SecretNotFoundError):
        store.get("API_KEY")


def test_get_missing_names_the_secret(store):
    with pytest.raises(SecretNotFoundError, match="secret not found: 'NOPE'") as info:
        store.get("NOPE")
    assert isinstance(info.value, KeyError)
    assert info.value.details == {"names": ["NOPE"]}


def test_get_many_lists_every_missing_name(store):
    store.set("PRESENT", PLAINTEXT)
    with pytest.raises(SecretNotFoundError) as info:
        store.get_many(["PRESENT", "MISSING_A", "MISSING_B", "MISSING_A"])
    message = str(info.value)
    assert "secrets not found: 'MISSING_A', 'MISSING_B'" in message
    assert "PRESENT" not in message
    assert PLAINTEXT not in message
    assert info.value.details["names"] == ["MISSING_A", "MISSING_B"]


def test_get_many_handles_more_names_than_one_query_binds(store, key):
    names = [f"S{i}" for i in range(1200)]
    with closing(sqlite3.connect(store.db_path)) as conn, conn:
        conn.executemany(
            "INSERT INTO secrets VALUES (?, ?, 'now')",
            [(n, encrypt_value(key, n, i)) for i, n in enumerate(names)],
        )
    assert store.get_many(names) == {n: i for i, n in enumerate(names)}


def test_store_with_the_wrong_key(store, tmp_path):
    store.set("API_KEY", PLAINTEXT)
    intruder = LocalSecretStore(store.db_path, derive_key("another key"))
    with pytest.raises(SecretDecryptionError, match="key differs") as info:
        intruder.get("API_KEY")
    assert PLAINTEXT not in str(info.value)


def test_store_leaves_other_tables_alone(tmp_path, key):
    db = tmp_path / "flux.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE executions (id TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO executions VALUES ('e1')")
    store = LocalSecretStore(db, key)
    store.set("API_KEY", "v")
    LocalSecretStore(db, key)  # opening again keeps the existing table and rows
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT id FROM executions").fetchall() == [("e1",)]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.get("API_KEY") == "v"


def test_store_rejects_invalid_names_and_values(store):
    with pytest.raises(UsageError, match="invalid secret name"):
        store.set("bad name", "v")
    with pytest.raises(UsageError, match="invalid secret name"):
        store.get("../etc")
    with pytest.raises(UsageError, match="JSON value"):
        store.set("API_KEY", object())
    assert store.list() == []


def test_repr_holds_no_key_or_value(store, key):
    store.set("API_KEY", PLAINTEXT)
    text = repr(store)
    assert str(store.db_path) in text
    assert PLAINTEXT not in text
    assert key.hex() not in text and repr(key) not in text


def test_from_settings_uses_local_db_and_home_key(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("FLUX_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = FluxSettings(home=str(tmp_path / "home"), local_database=str(tmp_path / "l.db"))
    store = LocalSecretStore.from_settings(settings)
    store.set("API_KEY", "v")
    assert store.db_path == tmp_path / "l.db"
    assert (tmp_path / "home" / "encryption.key").exists()
    assert raw_rows(tmp_path / "l.db")[0][0] == "API_KEY"

    configured = FluxSettings(
        home=str(tmp_path / "home"),
        local_database=str(tmp_path / "l.db"),
        security={"encryption_key": "a different key"},
    )
    with pytest.raises(SecretDecryptionError):
        LocalSecretStore.from_settings(configured).get("API_KEY")
