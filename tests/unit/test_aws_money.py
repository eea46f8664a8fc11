"""What a lab costs on AWS (issue "AWS as a real account behaves", money), against moto: the
ALB's line bills its public IPv4 addresses, one per zone; `lab up` says what still bills
after aws.lifetime (the load balancer does: nothing powers it off); and what bills now, per
lab, in `lab aws sweep --dry-run` (which removes nothing) and in `lab doctor`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from awslab import CIDR, REGION, fail, key_for, lab_config, leftovers
from typer.testing import CliRunner

from lab.aws import api, pricing, resources
from lab.cli.main import app
from lab.fleet import Fleet
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

runner = CliRunner(env={"LAB_FILE": None, "COLUMNS": "200"})
SPECS = [ServerSpec(f"web-{i}", "web", 1, "lab/base:bookworm", ports=[80]) for i in (1, 2)]
INSTANCE = pricing.instances_line("t3.small", 1).hourly or 0.0
ALB = pricing.ALB_HOURLY + 2 * pricing.PUBLIC_IPV4_HOURLY  # two zones, two addresses


@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AwsTarget, "wait_ready", lambda *a, **k: None)  # moto: no SSH


def up(tmp_path: Path, ami: str, name: str, balancer: bool, count: int,
       lifetime: str = "4h") -> None:
    with Fleet(lab_config(tmp_path / name, ami, name=name, balancer=balancer, count=count,
                          lifetime=lifetime)) as fleet:
        fleet.up()


def destroy(tmp_path: Path, ami: str, *names: str) -> None:
    for name in names:
        with Fleet(lab_config(tmp_path / name, ami, name=name, balancer=True)) as fleet:
            fleet.destroy()
        assert leftovers(name) == {}


def test_the_albs_line_bills_a_public_ipv4_address_per_zone(aws_env: str,
                                                             tmp_path: Path) -> None:
    line = pricing.balancer_line(2)
    assert line.what == "Application Load Balancer (2 zones, 2 public IPv4)"
    assert line.hourly == pytest.approx(0.0405)
    assert pricing.balancer_line(3).hourly == pytest.approx(0.0455)
    config = lab_config(tmp_path, aws_env, balancer=True, count=2)
    plan = AwsTarget(config, key_for(config)).plan(SPECS)
    assert plan is not None and plan.lines[1] == line  # lab's ALB spans two zones
    assert plan.hourly == pytest.approx(2 * INSTANCE + ALB)
    assert leftovers("t") == {}


def test_the_plan_says_the_load_balancer_bills_after_the_lifetime(
        aws_env: str, tmp_path: Path) -> None:
    balanced = lab_config(tmp_path, aws_env, balancer=True, lifetime="2h")
    [note] = AwsTarget(balanced, key_for(balanced)).plan(SPECS).notes  # type: ignore[union-attr]
    assert note.startswith("after 2h (aws.lifetime) the instances power off and terminate, "
                           "but the load balancer keeps billing (~$0.0405/h, $0.97 a day) "
                           "until `lab destroy` or `lab aws sweep`; also made (free): ")
    alone = lab_config(tmp_path, aws_env, lifetime="2h")
    [note] = AwsTarget(alone, key_for(alone)).plan(SPECS).notes  # type: ignore[union-attr]
    assert note.startswith("after 2h (aws.lifetime) the instances power off and terminate; ")
    assert "load balancer" not in note
    path = tmp_path / "lab.yml"  # and `lab up` shows it before it asks
    path.write_text(f"name: t\ntarget: aws\nservers: {{web: {{count: 2, ports: [80]}}}}\n"
                    f"balancer: {{routes_to: web}}\naws: {{ssh_cidr: {CIDR}, image: "
                    f"{aws_env}, lifetime: 1h}}\n")
    result = runner.invoke(app, ["-f", str(path), "up"], input="n\n")
    assert result.exit_code == 0, result.stderr
    assert "1 x Application Load Balancer (2 zones, 2 public IPv4)  ~$0.0405/h" in result.stderr
    assert "the load balancer keeps billing (~$0.0405/h" in result.stderr
    assert leftovers("t") == {}


def test_holdings_count_and_price_what_each_lab_holds_now(
        aws_env: str, tmp_path: Path, no_ssh: None) -> None:
    up(tmp_path, aws_env, "short", balancer=True, count=2, lifetime="1h")
    up(tmp_path, aws_env, "long", balancer=False, count=1, lifetime="8h")
    held = resources.holdings(api.clients(REGION), now=datetime.now(UTC) + timedelta(hours=2))
    by = {(h.lab, h.kind): h for h in held}
    assert [h.lab for h in held] == ["long"] * 4 + ["short"] * 7  # labs apart, sorted
    assert by["short", "instances"] == resources.Held("short", "instances", 2, 2,
                                                      pytest.approx(2 * INSTANCE))
    assert by["short", "load_balancers"] == resources.Held("short", "load_balancers", 1, 1,
                                                           pytest.approx(ALB))
    assert (by["short", "listeners"].count, by["short", "listeners"].hourly) == (1, 0.0)
    assert by["long", "instances"] == resources.Held("long", "instances", 1, 0,
                                                     pytest.approx(INSTANCE))
    assert resources.billing(held) == "3 instances, 1 load balancer of 2 labs: about $0.12/h"
    assert resources.billing([]) == "nothing lab made"
    free = [h for h in held if h.hourly == 0.0 and h.lab == "long"]
    assert resources.billing(free) == ("nothing that bills (free: 1 launch template, "
                                       "1 security group, 1 key pair of 1 lab)")
    destroy(tmp_path, aws_env, "short", "long")


def test_a_price_not_known_makes_the_sum_a_lower_bound(aws_env: str, tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env, instance_type="t3.2xlarge")  # not in the table
    AwsTarget(config, key_for(config)).create(SPECS[:1])
    held = resources.holdings(api.clients(REGION))
    assert [h.hourly for h in held if h.kind == "instances"] == [None]
    assert resources.billing(held) == "1 instance of 1 lab: at least $0.00/h"
    AwsTarget(config, key_for(config)).destroy()
    assert leftovers("t") == {}


def test_sweep_dry_run_lists_what_bills_marks_what_expired_and_removes_nothing(
        aws_env: str, tmp_path: Path, no_ssh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    up(tmp_path, aws_env, "short", balancer=True, count=2, lifetime="1h")
    up(tmp_path, aws_env, "long", balancer=False, count=1, lifetime="8h")
    made = {lab: leftovers(lab) for lab in ("short", "long")}
    in_two_hours = datetime.now(UTC) + timedelta(hours=2)  # short has expired, long has not
    monkeypatch.setattr(resources, "expired",
                        lambda now=None, real=resources.expired: real(in_two_hours))
    result = runner.invoke(app, ["aws", "sweep", "--dry-run", "--region", REGION])
    assert result.exit_code == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == f"{REGION} now: 3 instances, 1 load balancer of 2 labs: about $0.12/h"
    assert lines[1:3] == ["  lab long:", f"    1 instance{' ' * 15}~$0.0267/h"]
    short = lines[lines.index("  lab short:") + 1:]
    assert f"    2 instances{' ' * 14}~$0.0534/h      expired: would be removed" in short
    assert f"    1 load balancer{' ' * 10}~$0.0405/h      expired: would be removed" in short
    assert f"    1 listener{' ' * 15}free            expired: would be removed" in short
    assert "nothing removed (--dry-run)" in result.stderr
    assert {lab: leftovers(lab) for lab in ("short", "long")} == made
    result = runner.invoke(app, ["aws", "sweep", "--region", REGION])  # the real one
    assert "removed 2 instances" in result.stdout and leftovers("short") == {}
    result = runner.invoke(app, ["aws", "sweep", "--dry-run", "--region", REGION])
    assert result.stdout.splitlines()[0] == f"{REGION} now: 1 instance of 1 lab: about $0.03/h"
    assert "expired" not in result.stdout and "nothing removed" not in result.stderr
    destroy(tmp_path, aws_env, "long")
    result = runner.invoke(app, ["aws", "sweep", "--dry-run", "--region", REGION])
    assert result.stdout.strip() == f"{REGION} now: nothing lab made"


def test_sweep_help_teaches_the_dry_run() -> None:
    result = runner.invoke(app, ["aws", "sweep", "--help"])
    assert result.exit_code == 0 and "--dry-run" in result.stdout
    assert "Example:  lab aws sweep --dry-run" in result.stdout


def test_doctor_says_what_bills_now(aws_env: str, tmp_path: Path, no_ssh: None) -> None:
    [billing] = AwsTarget.standing()
    assert (billing.name, billing.ok, billing.required) == ("aws billing now", True, False)
    assert billing.detail == "nothing lab made"
    up(tmp_path, aws_env, "t", balancer=True, count=2)
    [billing] = AwsTarget.standing()
    assert billing.detail == ("2 instances, 1 load balancer of 1 lab: about $0.09/h; "
                              "`lab aws sweep --dry-run` lists them")
    aws = api.clients(REGION)
    fail(aws.elbv2, "DescribeLoadBalancers", "AccessDenied")
    refused = resources.billing_check(aws)
    assert (refused.ok, refused.required, refused.detail) == (False, False, "could not look")
    assert refused.fix.startswith("not allowed to DescribeLoadBalancers in eu-west-1")
    destroy(tmp_path, aws_env, "t")


def test_doctor_looks_in_one_pass(aws_env: str, tmp_path: Path) -> None:
    """Each of the finder's describe calls once, whatever it finds: no second look per
    resource for its lab, its type or its zones."""
    config = lab_config(tmp_path, aws_env)
    AwsTarget(config, key_for(config)).create(SPECS)
    asked: list[str] = []
    aws = api.clients(REGION)
    for client in (aws.ec2, aws.elbv2):
        client.meta.events.register("before-call", lambda model, **_: asked.append(model.name))
    assert resources.billing_check(aws).detail.startswith("2 instances of 1 lab: about $0.05/h")
    assert sorted(asked) == sorted(set(asked)) and len(asked) <= 9
    AwsTarget(config, key_for(config)).destroy()
    assert leftovers("t") == {}
