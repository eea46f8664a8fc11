"""moto, in-process, as the AWS that unit tests of the aws target and the ALB talk to.

``aws_env`` starts ``mock_aws`` with fake credentials in eu-west-1 (never a real endpoint:
moto intercepts every call before it leaves the process). ``leftovers`` (tests/awsleftovers.py)
lists, service by service and independently of lab's own finder, every resource carrying a
lab's name tag: each test ends by asserting it is empty.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from awsleftovers import REGION, leftovers  # noqa: F401 - leftovers: the unit tests take it from here
from moto import mock_aws

from lab.access.keys import ensure_keypair
from lab.config import LabConfig
from lab.release.probe import Window

CIDR = "203.0.113.7/32"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto in this process, fake credentials, no metadata service: returns the id of an AMI
    registered for the test (moto has no Debian parameter, so labs name an AMI). Every
    service's data starts empty, as in a fresh account."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_REGION": REGION,
                        "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE":
                        "/nonexistent",
                        # moto's 1,300 stock AMIs cost seconds per test: one of our own will do
                        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("LAB_LABELS", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        yield ec2.register_image(
            Name="debian-12-amd64-test", RootDeviceName="/dev/xvda", Architecture="x86_64",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]


class Clock:
    """A module's clock (the ALB's, lab.aws.resources'), made virtual: ``sleep`` moves it on
    at once and is logged. The waits for health, for deregistration and for a deletion AWS
    refuses are then decided by what AWS answers at each look, never by how fast this machine
    is, a test sees how often AWS is asked without a timed assertion, and a broken wait costs
    a few looks instead of minutes."""

    def __init__(self) -> None:
        self.now, self.naps = 1000.0, list[float]()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        if len(self.naps) > 1000:
            raise RuntimeError("AWS is asked again and again: a wait without an end")
        self.now += seconds


def share_service_models() -> None:
    """Every boto3 session of the test process reads AWS's service models through one loader.

    lab keeps a session per region for its process, and the unit tests start each test with
    new sessions (a session keeps the credentials it found); each new session would parse
    megabytes of botocore's JSON again (EC2's alone takes about 0.3 s), about 1.5 s of every
    moto test. The models are the same files for every session, so sharing what was parsed
    changes nothing a test sees; it makes the moto tests (and each mutant mutmut runs against
    them) about twice as fast.
    """
    import botocore.loaders
    import botocore.session

    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)


def fresh_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 sessions made from here to the end of the test are this test's own: a session
    keeps the credentials it found, and other tests must not get one that found none."""
    from lab.aws import api

    monkeypatch.setattr(api, "_session", functools.cache(api._session.__wrapped__))


def lab_config(tmp_path: Path, ami: str, name: str = "t", balancer: bool = False,
               count: int = 1, **aws: Any) -> LabConfig:
    data: dict[str, Any] = {
        "name": name, "target": "aws",
        "servers": {"web": {"count": count, "ports": [80], "health": {"path": "/health"}}},
        "aws": {"ssh_cidr": CIDR, "image": ami} | aws,
    }
    if balancer:
        data["balancer"] = {"kind": "haproxy", "routes_to": "web", "listen": 8080}
    return LabConfig.model_validate(data).located(tmp_path)


def key_for(config: LabConfig):  # type: ignore[no-untyped-def]
    return ensure_keypair(config.state_dir, comment=f"lab-{config.name}")


def fail(client: Any, operation: str, code: str, times: int = 1_000_000, status: int = 400,
         retried: bool = False) -> list[int]:
    """Make ``client``'s ``operation`` answer AWS's error ``code`` the next ``times`` times.
    Returns a list that grows by one at each attempt.

    ``retried``: the answer is sent back as from the wire, so boto3's retries and parsing run
    as on AWS; moto still carries the call out (botocore asks every before-send handler), so
    use it for reads only. Otherwise the call stops before it is sent and moto never sees
    it: as on AWS, a refused call makes nothing.
    """
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}'
            f'</Code><Message>injected {code}</Message></Error></Errors>'
            '<RequestID>test</RequestID></Response>').encode()
    attempts: list[int] = []

    def on_the_wire(request: Any, **_: Any) -> AWSResponse | None:
        attempts.append(1)
        if len(attempts) > times:
            return None
        return AWSResponse(request.url, status, {}, MockRawResponse(body))

    def before_sending(**_: Any) -> tuple[Any, dict[str, Any]] | None:
        attempts.append(1)
        if len(attempts) > times:
            return None
        parsed = {"Error": {"Code": code, "Message": f"injected {code}"},
                  "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse("https://aws.invalid/", status, {}, MockRawResponse(b"")), parsed

    service = client.meta.service_model.service_name
    if retried:
        client.meta.events.register_first(f"before-send.{service}.{operation}", on_the_wire)
    else:
        client.meta.events.register_first(f"before-call.{service}.{operation}", before_sending)
    return attempts


def saying(client: Any, operation: str, message: str) -> None:
    """The errors ``operation`` answers (those :func:`fail` injects) carry AWS's own
    ``message``: lab reads some (a service-linked role, the zones offering a type)."""

    def reword(parsed: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed:
            parsed["Error"]["Message"] = message

    service = client.meta.service_model.service_name
    client.meta.events.register(f"after-call.{service}.{operation}", reword)


def answer(client: Any, operation: str, change: Any, times: int = 1_000_000) -> list[int]:
    """Edit what ``operation`` answers, as AWS would answer where moto skips a state (an
    ALB provisioning, an AMI pending, a target draining): ``change(parsed)`` edits the parsed
    answer in place and says whether it applied; it is asked until it has applied ``times``
    times. Returns a list that grows by one each time it applies."""
    applied: list[int] = []

    def edit(parsed: dict[str, Any], **_: Any) -> None:
        if len(applied) < times and "Error" not in parsed and change(parsed):
            applied.append(1)

    service = client.meta.service_model.service_name
    client.meta.events.register(f"after-call.{service}.{operation}", edit)
    return applied


class QuietProbe:
    """The probe's stand-in: nothing can send traffic to a moto ALB."""

    def __init__(self, url: str) -> None:
        self.url = url

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def window(self, since: float, until: float | None = None) -> Window:
        return Window(seconds=1.0, requests=10, errors=0, p50_ms=1.0, p99_ms=2.0)

    def generations(self, since: float, new: Any, old_versions: Any,
                    until: float | None = None) -> tuple[Window, Window]:
        return self.window(since), self.window(since)

    def settle(self, until: float) -> None: ...

    def series(self, since: float, until: float | None = None) -> list[Window]:
        return [self.window(since, until)]


def passing(fleet: Any, names: list[str], overrides: Any, on_event: Any) -> str:
    """Provisioning and tests of a new generation, passed: moto's instances have no SSH."""
    return ""
