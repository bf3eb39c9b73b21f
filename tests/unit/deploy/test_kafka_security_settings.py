"""Kafka SASL/TLS settings (LOGRIVER_KAFKA_*) turn into aiokafka's options."""

from __future__ import annotations

import ssl

import pytest
from pydantic import SecretStr, ValidationError

from logriver_common import clients
from logriver_common.settings import KafkaSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SECURITY_PROTOCOL",
        "SASL_MECHANISM",
        "SASL_USERNAME",
        "SASL_PASSWORD",
        "SSL_CAFILE",
    ):
        monkeypatch.delenv(f"LOGRIVER_KAFKA_{name}", raising=False)


def test_the_local_default_is_plaintext_without_credentials() -> None:
    options = clients.kafka_security_options(KafkaSettings())
    assert options == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_scram_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGRIVER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LOGRIVER_KAFKA_SASL_USERNAME", "logriver-writer")
    monkeypatch.setenv("LOGRIVER_KAFKA_SASL_PASSWORD", "s3cret")
    settings = KafkaSettings()
    assert "s3cret" not in repr(settings)
    options = clients.kafka_security_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "logriver-writer"
    assert options["sasl_plain_password"] == "s3cret"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_sasl_plaintext_has_no_tls_context() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password=SecretStr("p")
    )
    options = clients.kafka_security_options(settings)
    assert "ssl_context" not in options
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_a_missing_ca_file_fails_at_start_up() -> None:
    settings = KafkaSettings(security_protocol="SSL", ssl_cafile="/nonexistent/ca.crt")
    with pytest.raises(FileNotFoundError):
        clients.kafka_security_options(settings)


@pytest.mark.parametrize(
    "values",
    [
        {"security_protocol": "SASL_SSL"},
        {"security_protocol": "SASL_SSL", "sasl_username": "u"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_password": "p"},
        {"security_protocol": "SASL_SSL", "sasl_username": "", "sasl_password": "p"},
        {"security_protocol": "sasl_ssl", "sasl_username": "u", "sasl_password": "p"},
        {"security_protocol": "KERBEROS"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
        {"security_protocol": ["SASL_SSL"]},
        {"security_protocol": "PLAINTEXT\x00SSL"},
        {"sasl_mechanism": "SCRAM-SHA-512" * 10_000},
    ],
)
def test_invalid_security_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(**values)  # type: ignore[arg-type]
