"""Fixtures shared by unit tests: moto as the AWS of the aws target's tests (awslab.py), and
no way for any unit test to reach a real AWS endpoint; a lab on the fake target and balancer
of ``release_fakes`` for the tests of `lab release`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import release_fakes
from awslab import aws_env, share_service_models  # noqa: F401 - aws_env: a fixture
from release_fakes import LAB_YML, Cycle, MakeCycle, World, populate

import lab.aws.api
import lab.balancers.registry
import lab.targets.registry
from lab.config import load_config
from lab.fleet import Fleet


@pytest.fixture(autouse=True, scope="session")
def _service_models_parsed_once() -> None:
    share_service_models()


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
    # lab keeps one boto3 session per region for the process, and a session keeps the
    # credentials it found: a moto test's fake ones must not reach the next test, which
    # would then call AWS itself with them.
    lab.aws.api._session.cache_clear()


@pytest.fixture(autouse=True)
def _roomy_host(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No limit of this machine is read (lab.docker.limits: an empty /proc/sys): a unit test
    that makes servers must not be refused because other programs here hold inotify
    instances. The tests of the limits give their own."""
    monkeypatch.setenv("LAB_PROC_SYS", str(tmp_path_factory.getbasetemp() / "no-proc-sys"))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A fresh fake world behind the fake target (registered by name, as a real target is),
    for driving the CLI in ``tmp_path``, where internal-error logs are kept too. A test
    module that needs a lab.yml overrides this fixture and writes one."""
    world = World()
    monkeypatch.setattr(release_fakes, "world", world)
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "fake", "release_fakes:FakeTarget")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return world


@pytest.fixture
def make_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeCycle]:
    """Makes a lab on the fake target and balancer from a lab.yml (default: ``LAB_YML``),
    with two old servers (web-1, web-2) at full share and a db server."""
    monkeypatch.setitem(lab.balancers.registry.BUILT_IN, "fake", "release_fakes:FakeBalancer")
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "fake", "release_fakes:FakeTarget")
    with ExitStack() as stack:

        def make(lab_yml: str = LAB_YML) -> Cycle:
            world = World()
            monkeypatch.setattr(release_fakes, "world", world)
            (tmp_path / "lab.yml").write_text(lab_yml)
            # The fake target and balancer are validated against their registries, like
            # real ones.
            config = load_config(tmp_path / "lab.yml", target="fake")
            populate(world)
            fleet = stack.enter_context(Fleet(config.located(tmp_path)))
            return Cycle(world, fleet, [])

        yield make


@pytest.fixture
def cycle(make_cycle: MakeCycle) -> Cycle:
    """The lab of ``LAB_YML``: web-1 and web-2 at full share behind the fake balancer."""
    return make_cycle()
