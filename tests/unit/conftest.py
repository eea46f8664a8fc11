"""Fixtures shared by unit tests: moto as the AWS of the aws target's tests (awslab.py), and
no way for any unit test to reach a real AWS endpoint."""

from __future__ import annotations

import pytest
from awslab import aws_env  # noqa: F401 - a fixture, found here by pytest


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No region, credentials, profile or metadata service from this machine: `lab doctor`'s
    aws checks (run by any test of doctor) find nothing to call; moto tests set their own."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
