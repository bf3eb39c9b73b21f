"""Shared loaders for the deploy tests (all offline)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as bundled by check-jsonschema."""
    files = resources.files("check_jsonschema.builtin_schemas")
    schema: dict[str, Any] = json.loads(files.joinpath("vendor/compose-spec.json").read_text())
    return schema


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yml, with YAML anchors and merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data
