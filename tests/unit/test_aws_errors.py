"""What a trainee meets on AWS, each as one line with what to do and exit 2 or 3, with
nothing left behind: bad settings, no credentials, a wrong region, an unknown instance type,
an AMI not found, no capacity, not allowed, throttling (retried first), a VPC without a
default subnet; and `lab doctor`'s checks of the caller identity and the region."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from awslab import REGION, fail, fresh_sessions, key_for, lab_config, leftovers
from botocore.config import Config

from lab.aws import api
from lab.config import load_config
from lab.errors import ExitStatus, LabError
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

SPECS = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])]


def settings_error(tmp_path: Path, aws: str) -> str:
    (tmp_path / "lab.yml").write_text(f"name: t\ntarget: aws\nservers: {{web: {{}}}}\n{aws}")
    with pytest.raises(LabError) as caught:
        load_config(tmp_path / "lab.yml").settings("aws")
    assert caught.value.exit_code == ExitStatus.BAD_INPUT and "\n" not in str(caught.value)
    return str(caught.value).split(": ", 1)[1]


@pytest.mark.parametrize(("aws", "expected"), [
    ("", "aws.ssh_cidr: is required: the addresses allowed to reach SSH, e.g. your own (find "
         "yours with `curl -s https://checkip.amazonaws.com` and add /32)"),
    ("aws: {ssh_cidr: 0.0.0.0/0}\n", "aws.ssh_cidr: 0.0.0.0/0 would let the whole internet "
                                     "try SSH: use your own address"),
    ("aws: {ssh_cidr: me}\n", "aws.ssh_cidr: must be a CIDR like 203.0.113.7/32, got 'me'"),
    ("aws: {ssh_cidr: 203.0.113.7/32, lifetime: forever}\n",
     "aws.lifetime: must be a duration like 4h, 90m or 2d, got 'forever'"),
    ("aws: {ssh_cidr: 203.0.113.7/32, image: debian}\n",
     "aws.image: must be an AMI id (ami-...) or a public SSM parameter"),
    ("aws: {ssh_cidr: 203.0.113.7/32, subnet: default}\n", "aws.subnet: "),
    ("aws: {ssh_cidr: 203.0.113.7/32, size: 2}\n", "aws.size: unknown field"),
])
def test_settings_errors_name_the_field(tmp_path: Path, aws: str, expected: str) -> None:
    assert settings_error(tmp_path, aws).startswith(expected)


def test_settings_defaults(tmp_path: Path) -> None:
    (tmp_path / "lab.yml").write_text("name: t\ntarget: aws\nservers: {web: {}}\n"
                                      "aws: {ssh_cidr: 203.0.113.7}\n")
    settings = load_config(tmp_path / "lab.yml").settings("aws")
    assert settings.instance_type == "t3.small" and settings.ssh_cidr == "203.0.113.7/32"
    assert settings.image == "/aws/service/debian/release/bookworm/latest/amd64"
    assert settings.lifetime_delta.total_seconds() == 4 * 3600


def error_of(target: AwsTarget, code: ExitStatus) -> str:
    with pytest.raises(LabError) as caught:
        target.create(SPECS)
    assert caught.value.exit_code == code, str(caught.value)
    assert "\n" not in str(caught.value)
    assert leftovers(target.config.name) == {}
    return str(caught.value)


def make(tmp_path: Path, ami: str, **aws: str) -> AwsTarget:
    config = lab_config(tmp_path, ami, **aws)
    return AwsTarget(config, key_for(config))


def test_no_credentials(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    fresh_sessions(monkeypatch)
    message = error_of(make(tmp_path, aws_env), ExitStatus.MISSING_PREREQUISITE)
    assert message.startswith("no AWS credentials found: run `aws configure`")


def test_wrong_region(aws_env: str, tmp_path: Path) -> None:
    message = error_of(make(tmp_path, aws_env, region="eu-wst-1"), ExitStatus.BAD_INPUT)
    assert message.startswith("aws.region: 'eu-wst-1' is not an AWS region")


def test_unknown_instance_type(aws_env: str, tmp_path: Path) -> None:
    message = error_of(make(tmp_path, aws_env, instance_type="t3.huuge"), ExitStatus.BAD_INPUT)
    assert message.startswith("aws.instance_type: not offered in eu-west-1")


def test_ami_not_found(aws_env: str, tmp_path: Path) -> None:
    message = error_of(make(tmp_path, "ami-0123456789abcdef0"), ExitStatus.BAD_INPUT)
    assert message.startswith("AMI not found in eu-west-1")


def test_no_capacity_removes_the_groups_key_and_template(aws_env: str, tmp_path: Path) -> None:
    target = make(tmp_path, aws_env)
    fail(target.aws.ec2, "RunInstances", "InsufficientInstanceCapacity", status=500)
    message = error_of(target, ExitStatus.MISSING_PREREQUISITE)
    assert message.startswith("AWS has no capacity for this instance type in eu-west-1 now")


def test_not_allowed(aws_env: str, tmp_path: Path) -> None:
    target = make(tmp_path, aws_env)
    fail(target.aws.ec2, "CreateLaunchTemplate", "UnauthorizedOperation", status=403)
    message = error_of(target, ExitStatus.MISSING_PREREQUISITE)
    assert message.startswith("not allowed to CreateLaunchTemplate in eu-west-1")


def test_throttling_is_retried_with_backoff_then_explained(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = make(tmp_path, aws_env)
    attempts = fail(target.aws.ec2, "DescribeInstances", "RequestLimitExceeded", times=2,
                    status=503, retried=True)
    assert target.list() == [] and len(attempts) == 3
    monkeypatch.setattr(api, "RETRIES", Config(retries={"mode": "standard",
                                                        "total_max_attempts": 2}))
    fresh_sessions(monkeypatch)
    impatient = make(tmp_path, aws_env)
    attempts = fail(impatient.aws.ec2, "DescribeInstances", "RequestLimitExceeded", status=503,
                    retried=True)
    with pytest.raises(LabError, match="AWS is throttling requests in eu-west-1 even after "
                                       "retries") as caught:
        impatient.list()
    assert caught.value.exit_code == ExitStatus.MISSING_PREREQUISITE and len(attempts) == 2


def test_a_vpc_without_default_subnets(aws_env: str, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    for subnet in ec2.describe_subnets()["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    message = error_of(make(tmp_path, aws_env), ExitStatus.BAD_INPUT)
    assert message.startswith("aws.subnet: the default VPC of eu-west-1 has no default subnet: "
                              "set aws.subnet")


def test_doctor_checks_the_caller_identity_and_the_region(
        aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    region, credentials = AwsTarget.prerequisites()
    assert (region.ok, region.detail) == (True, REGION)
    assert credentials.ok and credentials.detail.startswith("arn:aws:sts::123456789012:")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    [missing] = AwsTarget.prerequisites()
    assert (missing.ok, missing.required) == (False, False) and "AWS_REGION" in missing.fix
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    fresh_sessions(monkeypatch)
    region, credentials = AwsTarget.prerequisites()  # no billing look without credentials
    assert region.ok and not credentials.ok and "aws configure" in credentials.fix


@pytest.mark.parametrize(("code", "status", "starts"), [
    ("AuthFailure", ExitStatus.MISSING_PREREQUISITE, "AWS refused the credentials (AuthFailure)"),
    ("OptInRequired", ExitStatus.MISSING_PREREQUISITE,
     "the account has not enabled region eu-west-1"),
    ("InvalidSubnetID.NotFound", ExitStatus.BAD_INPUT, "aws.subnet: not found in eu-west-1"),
    ("InvalidAMIID.Malformed", ExitStatus.BAD_INPUT, "AMI not found in eu-west-1"),
    ("ParameterNotFound", ExitStatus.BAD_INPUT, "aws.image: no such public parameter"),
    ("InternalError", ExitStatus.CHECK_FAILED,
     "AWS in eu-west-1: RunInstances failed: InternalError: boom"),
])
def test_each_aws_error_code_as_one_line(code: str, status: ExitStatus, starts: str) -> None:
    from botocore.exceptions import ClientError

    error = api.explain(ClientError({"Error": {"Code": code, "Message": "boom"}},
                                    "RunInstances"), REGION)
    assert error.exit_code == status and str(error).startswith(starts)
