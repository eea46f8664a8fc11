"""The real `lab` program, as a separate process, against moto's server on 127.0.0.1 (what
`AWS_ENDPOINT_URL` points boto3 at): `lab destroy` finds a lab by tag after its state is
deleted, `lab aws sweep` answers, a wrong region exits 2. Nothing reaches a real endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from awslab import CIDR, REGION, fresh_sessions, leftovers
from moto.server import ThreadedMotoServer

from lab.access.keys import ensure_keypair
from lab.config import load_config
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

LAB = str(Path(sys.executable).with_name("lab"))


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto's server on a free loopback port; returns the environment a `lab` process needs."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
           "AWS_EC2_METADATA_DISABLED": "true", "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fresh_sessions(monkeypatch)  # this endpoint's, not another test's
    try:
        yield os.environ | env
    finally:
        server.stop()


def lab(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAB, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)


def test_destroy_and_sweep_as_a_separate_process(moto_server: dict[str, str],
                                                 tmp_path: Path) -> None:
    ami = boto3.client("ec2", region_name=REGION).register_image(
        Name="debian-12-test", RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    (tmp_path / "lab.yml").write_text(
        f"name: t\ntarget: aws\nservers: {{web: {{count: 2}}}}\n"
        f"aws: {{ssh_cidr: {CIDR}, image: {ami}}}\n")
    config = load_config(tmp_path / "lab.yml")
    target = AwsTarget(config, ensure_keypair(config.state_dir, "lab-t"))
    target.create([ServerSpec(f"web-{i}", "web", 1, "lab/base:bookworm") for i in (1, 2)])
    assert "instances" in leftovers("t")
    shutil.rmtree(config.state_dir)

    swept = lab(["aws", "sweep"], moto_server, tmp_path)
    assert (swept.returncode, swept.stdout.strip()) == (0, "nothing lab made has expired")
    destroyed = lab(["destroy"], moto_server, tmp_path)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "destroyed 2 server(s)" in destroyed.stderr
    assert leftovers("t") == {}
    wrong = lab(["aws", "sweep", "--region", "eu-wst-1"], moto_server, tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == ("error: aws.region: 'eu-wst-1' is not an AWS region (e.g. "
                                    "eu-west-1, us-east-1; `aws ec2 describe-regions` lists "
                                    "them)")
