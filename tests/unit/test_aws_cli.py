"""The aws commands, in-process against moto: `lab up` on aws shows what it will create and
what it costs, and asks (--yes agrees); `lab aws sweep` removes what expired; bad aws
settings end in one line and exit 2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from awslab import CIDR, REGION, leftovers
from typer.testing import CliRunner

from lab.aws import resources
from lab.cli.main import app
from lab.targets.aws import AwsTarget

runner = CliRunner(env={"LAB_FILE": None})


def write_lab(tmp_path: Path, ami: str, extra: str = "") -> Path:
    path = tmp_path / "lab.yml"
    path.write_text(f"name: t\ntarget: aws\nservers: {{web: {{count: 2, ports: [80]}}}}\n"
                    f"balancer: {{routes_to: web}}\n"
                    f"aws: {{ssh_cidr: {CIDR}, image: {ami}, lifetime: 1h{extra}}}\n")
    return path


def test_up_shows_the_plan_and_a_no_creates_nothing(aws_env: str, tmp_path: Path) -> None:
    lab = write_lab(tmp_path, aws_env)
    result = runner.invoke(app, ["-f", str(lab), "up"], input="n\n")
    assert result.exit_code == 0, result.stderr
    assert "2 x EC2 t3.small instance" in result.stderr
    assert "1 x Application Load Balancer" in result.stderr
    assert "estimated cost: $0." in result.stderr and "nothing created" in result.stderr
    assert leftovers("t") == {}


def test_up_yes_creates_then_destroy_and_sweep(aws_env: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)  # moto: no SSH
    lab = write_lab(tmp_path, aws_env)
    result = runner.invoke(app, ["-f", str(lab), "up", "--yes"])
    assert result.exit_code == 0, result.stderr
    assert "web-1" in result.stdout and "web-2" in result.stdout
    assert {"instances", "load_balancers"} <= set(leftovers("t"))
    result = runner.invoke(app, ["aws", "sweep", "--region", REGION])
    assert (result.exit_code, result.stdout.strip()) == (0, "nothing lab made has expired")
    in_two_hours = datetime.now(UTC) + timedelta(hours=2)  # the lab lives 1 h
    monkeypatch.setattr(resources, "expired",
                        lambda now=None, real=resources.expired: real(in_two_hours))
    result = runner.invoke(app, ["aws", "sweep", "--region", REGION])
    assert result.exit_code == 0, result.stderr
    assert "removed 2 instances" in result.stdout and "removed 1 load balancers" in result.stdout
    assert leftovers("t") == {}


def test_bad_aws_settings_exit_2_in_one_line(aws_env: str, tmp_path: Path) -> None:
    lab = write_lab(tmp_path, aws_env, ", instance_type: t3.huuge")
    result = runner.invoke(app, ["-f", str(lab), "up", "--yes"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: aws.instance_type: not offered in eu-west-1: The "
                                      "following supplied instance types do not exist: "
                                      "[t3.huuge]")
    assert runner.invoke(app, ["aws", "sweep", "--region", "mars-1"]).exit_code == 2
    assert leftovers("t") == {}
