"""Settings: read once from CQRS_* variables, typed, and loud about bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from command_api.settings import CommandApiSettings
from query_api.settings import QueryApiSettings
from shared.settings import DatabaseSettings, Secret, SettingsError, load_settings
from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY

BASE = {
    "CQRS_PROFILE": "dev",
    "CQRS_DATABASE_URL": "postgresql://db.internal:5432/cqrs",
    "CQRS_NATS_URLS": "nats://n1:4222, nats://n2:4222",
    "CQRS_REDIS_URL": "redis://cache:6379/0",
}
PROD_KEY = (
    Ed25519PrivateKey.generate()
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)
PROD_KEY_BODY = PROD_KEY.splitlines()[1]


def test_values_are_read_and_converted_to_their_types() -> None:
    """Each field comes from CQRS_<NAME>, converted to the field's type."""
    settings = load_settings(
        CommandApiSettings, {**BASE, "CQRS_COMMAND_API_PORT": "9000", "CQRS_DEBUG": "true"}
    )
    assert settings.command_api_port == 9000
    assert settings.debug is True
    assert settings.nats_urls == ("nats://n1:4222", "nats://n2:4222")


def test_defaults_apply_when_a_variable_is_unset() -> None:
    """An unset optional variable takes its documented default."""
    settings = load_settings(CommandApiSettings, BASE)
    assert settings.command_api_port == 8000
    assert settings.nats_stream == "EVENTS"
    assert settings.signing_key.reveal() == DEV_JWT_PRIVATE_KEY


def test_the_development_key_needs_a_declared_dev_or_test_profile() -> None:
    """Without CQRS_PROFILE=dev or test, the signing key must be configured: no silent dev key."""
    undeclared = {k: v for k, v in BASE.items() if k != "CQRS_PROFILE"}
    with pytest.raises(SettingsError, match="CQRS_JWT_PRIVATE_KEY or CQRS_JWT_PUBLIC_KEYS is required"):
        load_settings(CommandApiSettings, undeclared)
    configured = load_settings(CommandApiSettings, {**undeclared, "CQRS_JWT_PRIVATE_KEY": PROD_KEY})
    assert configured.signing_key.reveal() == PROD_KEY


@pytest.mark.parametrize("missing", sorted(set(BASE) - {"CQRS_PROFILE"}))
def test_a_missing_required_value_names_the_variable(missing: str) -> None:
    """A required variable that is unset stops start-up with its name in the message."""
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        load_settings(CommandApiSettings, env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CQRS_COMMAND_API_PORT", "eighty"),
        ("CQRS_COMMAND_API_PORT", "70000"),
        ("CQRS_PROFILE", "staging"),
        ("CQRS_DATABASE_URL", "mysql://db/cqrs"),
        ("CQRS_NATS_URLS", "http://n1:4222"),
        ("CQRS_REDIS_URL", "memcached://cache"),
        ("CQRS_NATS_STREAM", "has.dots"),
        ("CQRS_DATABASE_POOL_SIZE", "0"),
        ("CQRS_JWT_LEEWAY_SECONDS", "120"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str) -> None:
    """A value of the wrong type, range or form stops start-up with the variable's name."""
    with pytest.raises(SettingsError, match=variable):
        load_settings(CommandApiSettings, {**BASE, variable: value})


def test_a_secret_can_come_from_a_file(tmp_path: Path) -> None:
    """CQRS_<NAME>_FILE names a file whose content, less trailing line breaks, is the value."""
    key_file = tmp_path / "jwt.pem"
    key_file.write_text(PROD_KEY + "\n")
    settings = load_settings(CommandApiSettings, {**BASE, "CQRS_JWT_PRIVATE_KEY_FILE": str(key_file)})
    assert settings.jwt_private_key.reveal() == PROD_KEY.rstrip("\n")


def test_an_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    """A _FILE variable pointing at nothing fails with the variable's name."""
    with pytest.raises(SettingsError, match="CQRS_JWT_PRIVATE_KEY_FILE"):
        load_settings(CommandApiSettings, {**BASE, "CQRS_JWT_PRIVATE_KEY_FILE": str(tmp_path / "absent")})


def test_a_value_and_its_file_together_are_refused(tmp_path: Path) -> None:
    """Setting both CQRS_X and CQRS_X_FILE is ambiguous and refused."""
    key_file = tmp_path / "jwt.pem"
    key_file.write_text(PROD_KEY)
    env = {**BASE, "CQRS_JWT_PRIVATE_KEY": PROD_KEY, "CQRS_JWT_PRIVATE_KEY_FILE": str(key_file)}
    with pytest.raises(SettingsError, match="CQRS_JWT_PRIVATE_KEY"):
        load_settings(CommandApiSettings, env)


def test_secrets_never_show_in_a_repr() -> None:
    """Printing or logging the settings never reveals a secret."""
    settings = load_settings(CommandApiSettings, {**BASE, "CQRS_JWT_PRIVATE_KEY": PROD_KEY})
    assert PROD_KEY_BODY not in repr(settings)
    assert PROD_KEY_BODY not in str(Secret(PROD_KEY))


def test_prod_refuses_the_development_key() -> None:
    """The prod profile will not start with the committed development JWT key."""
    with pytest.raises(SettingsError, match="CQRS_JWT_PRIVATE_KEY"):
        load_settings(CommandApiSettings, {**BASE, "CQRS_PROFILE": "prod"})
    with pytest.raises(SettingsError, match="CQRS_JWT_PRIVATE_KEY"):
        load_settings(
            CommandApiSettings, {**BASE, "CQRS_PROFILE": "prod", "CQRS_JWT_PRIVATE_KEY": DEV_JWT_PRIVATE_KEY}
        )


def test_prod_refuses_debug_output() -> None:
    """The prod profile will not start with debug on."""
    env = {**BASE, "CQRS_PROFILE": "prod", "CQRS_JWT_PRIVATE_KEY": PROD_KEY, "CQRS_DEBUG": "1"}
    with pytest.raises(SettingsError, match="CQRS_DEBUG"):
        load_settings(CommandApiSettings, env)
    with pytest.raises(SettingsError, match="CQRS_DEBUG"):
        load_settings(DatabaseSettings, env)


def test_prod_refuses_a_wildcard_cors_origin() -> None:
    """The prod profile will not start with CORS open to every origin."""
    env = {**BASE, "CQRS_PROFILE": "prod", "CQRS_JWT_PRIVATE_KEY": PROD_KEY, "CQRS_CORS_ORIGINS": "*"}
    with pytest.raises(SettingsError, match="CQRS_CORS_ORIGINS"):
        load_settings(QueryApiSettings, env)


def test_prod_starts_with_its_own_key_and_safe_values() -> None:
    """A correct prod configuration loads."""
    env = {
        **BASE,
        "CQRS_PROFILE": "prod",
        "CQRS_JWT_PRIVATE_KEY": PROD_KEY,
        "CQRS_CORS_ORIGINS": "https://app.example.org",
        "CQRS_CURSOR_SECRET": "a-cursor-secret-of-more-than-32-characters",
    }
    assert load_settings(QueryApiSettings, env).cors_origins == ("https://app.example.org",)


def test_the_query_api_needs_its_own_cursor_secret_outside_dev_and_test() -> None:
    """Cursors are signed: prod refuses to start with the development secret, or a short one."""
    env = {**BASE, "CQRS_PROFILE": "prod", "CQRS_JWT_PRIVATE_KEY": PROD_KEY}
    with pytest.raises(SettingsError, match="CQRS_CURSOR_SECRET is required"):
        load_settings(QueryApiSettings, env)
    with pytest.raises(SettingsError, match="at least 32 characters"):
        load_settings(QueryApiSettings, {**env, "CQRS_CURSOR_SECRET": "short"})
    dev = load_settings(QueryApiSettings, {**BASE, "CQRS_PROFILE": "dev"})
    assert dev.effective_cursor_secret


def test_the_read_database_defaults_to_the_primary() -> None:
    """Without CQRS_READ_DATABASE_URL the query API reads from the primary database."""
    assert load_settings(QueryApiSettings, BASE).effective_read_database_url == BASE["CQRS_DATABASE_URL"]
    replica = "postgresql://replica:5432/cqrs"
    settings = load_settings(QueryApiSettings, {**BASE, "CQRS_READ_DATABASE_URL": replica})
    assert settings.effective_read_database_url == replica


def test_migrations_need_only_the_database() -> None:
    """`cqrs migrate` starts with just CQRS_DATABASE_URL."""
    settings = load_settings(DatabaseSettings, {"CQRS_DATABASE_URL": BASE["CQRS_DATABASE_URL"]})
    assert settings.database_url == BASE["CQRS_DATABASE_URL"]
