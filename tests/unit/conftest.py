"""Fixtures shared by unit tests: moto as the AWS of the aws target's tests (awslab.py)."""

from awslab import aws_env  # noqa: F401 - a fixture, found here by pytest
