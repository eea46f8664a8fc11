"""What a real account answers that a fresh moto one never does (issue "AWS as a real account
behaves"), each as one line saying what to do, with the exit status of lab.aws.api's
docstring and nothing left behind: ELB's service-linked role missing, the vCPU quota used up,
an instance type not offered (or out of capacity) in the subnet's zone, and an image of
another architecture than the instance type runs (caught by the plan, before anything is
made). Errors are injected with ``fail`` and, where lab reads AWS's text, ``saying``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from awslab import answer, fail, key_for, lab_config, leftovers, saying

from lab.aws import api
from lab.aws.api import Clients
from lab.balancers import alb
from lab.balancers.alb import ALB
from lab.errors import ExitStatus, LabError
from lab.targets.aws import AwsTarget
from lab.targets.base import ServerSpec

SPECS = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])]
ROLE_DENIED = (
    "User: arn:aws:iam::123456789012:user/trainee is not authorized to perform: "
    "iam:CreateServiceLinkedRole on resource: arn:aws:iam::123456789012:role/aws-service-role/"
    "elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing because no "
    "identity-based policy allows the iam:CreateServiceLinkedRole action")
VCPU = ("You have requested more vCPU capacity than your current vCPU limit of 32 allows for "
        "the instance bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.")
UNSUPPORTED = ("Your requested instance type (t3.small) is not supported in your requested "
               "Availability Zone (eu-west-1a). Please retry your request by not specifying an "
               "Availability Zone or choosing eu-west-1b, eu-west-1c.")
NO_CAPACITY = ("We currently do not have sufficient t3.small capacity in the Availability Zone "
               "you requested (eu-west-1a). Our system will be working on provisioning "
               "additional capacity. You can currently get t3.small capacity by not specifying "
               "an Availability Zone in your request or choosing eu-west-1b, eu-west-1c.")


def one_line(call: Any, status: ExitStatus) -> str:
    """The LabError ``call`` raises: one line, of exit ``status``."""
    with pytest.raises(LabError) as caught:
        call()
    assert caught.value.exit_code == status, str(caught.value)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# ELB's service-linked role --------------------------------------------------------------------


@pytest.fixture
def denied_alb(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``ALB.ensure`` of a lab whose CreateLoadBalancer AWS refuses, saying ``message``."""
    config = lab_config(tmp_path, aws_env, balancer=True)

    def ensure(message: str) -> str:
        real = alb.clients

        def clients(region: str | None) -> Clients:
            made = real(region)
            fail(made.elbv2, "CreateLoadBalancer", "AccessDenied", status=403)
            saying(made.elbv2, "CreateLoadBalancer", message)
            return made

        monkeypatch.setattr(alb, "clients", clients)
        return one_line(lambda: ALB.ensure(config, [], key_for(config)),
                        ExitStatus.MISSING_PREREQUISITE)

    return ensure


def test_the_first_alb_of_an_account_needs_the_service_linked_role(denied_alb: Any) -> None:
    assert denied_alb(ROLE_DENIED) == (
        "not allowed to CreateLoadBalancer in eu-west-1 (AccessDenied): the account's first "
        "load balancer needs iam:CreateServiceLinkedRole, or an admin to create ELB's "
        "service-linked role once (`aws iam create-service-linked-role --aws-service-name "
        "elasticloadbalancing.amazonaws.com`); see docs/aws.md, AWS permissions")
    assert leftovers("t") == {}  # the security groups it made went too


def test_other_refusals_of_create_load_balancer_do_not_blame_the_role(denied_alb: Any) -> None:
    assert denied_alb("User: x is not authorized to perform: "
                      "elasticloadbalancing:CreateLoadBalancer") == (
        "not allowed to CreateLoadBalancer in eu-west-1 (AccessDenied): ask for an IAM policy "
        "that allows it (docs/aws.md, AWS permissions)")
    assert leftovers("t") == {}


# RunInstances ---------------------------------------------------------------------------------


@pytest.fixture
def target(aws_env: str, tmp_path: Path) -> AwsTarget:
    config = lab_config(tmp_path, aws_env)
    return AwsTarget(config, key_for(config))


def launch_refused(target: AwsTarget, code: str, message: str, status: ExitStatus) -> str:
    """``create``'s error when RunInstances answers ``code`` with AWS's ``message``."""
    fail(target.aws.ec2, "RunInstances", code)
    if message:
        saying(target.aws.ec2, "RunInstances", message)
    error = one_line(lambda: target.create(SPECS), status)
    assert leftovers("t") == {}  # key pair, groups and template removed
    return error


def test_the_vcpu_quota_used_up_says_what_to_do(target: AwsTarget) -> None:
    assert launch_refused(target, "VcpuLimitExceeded", VCPU,
                          ExitStatus.MISSING_PREREQUISITE) == (
        "the account's vCPU quota in eu-west-1 for this instance family is used up (32 vCPUs): "
        "set a smaller `aws.instance_type` or fewer servers, `lab destroy` labs no longer "
        "needed, or ask for a higher \"Running On-Demand instances\" quota in Service Quotas")


def test_the_vcpu_quota_without_aws_s_figure(target: AwsTarget) -> None:
    assert launch_refused(target, "VcpuLimitExceeded", "", ExitStatus.MISSING_PREREQUISITE
                          ).startswith("the account's vCPU quota in eu-west-1 for this instance "
                                       "family is used up: set a smaller `aws.instance_type`")


def test_a_type_not_offered_in_the_subnet_s_zone_names_the_zones_that_offer_it(
        target: AwsTarget) -> None:
    assert launch_refused(target, "Unsupported", UNSUPPORTED, ExitStatus.BAD_INPUT) == (
        "aws.instance_type: t3.small is not offered in zone eu-west-1a: set `aws.subnet` to a "
        "subnet in another zone (AWS offers it in eu-west-1b, eu-west-1c) or another "
        "`aws.instance_type`")


def test_no_capacity_in_the_subnet_s_zone_names_the_zones_that_have_it(
        target: AwsTarget) -> None:
    assert launch_refused(target, "InsufficientInstanceCapacity", NO_CAPACITY,
                          ExitStatus.MISSING_PREREQUISITE) == (
        "AWS has no capacity for t3.small in eu-west-1 now (zone eu-west-1a): set `aws.subnet` "
        "to a subnet in another zone (AWS offers it in eu-west-1b, eu-west-1c) or another "
        "`aws.instance_type`, or try again later")


def test_unsupported_is_about_the_zone_only_when_aws_says_so() -> None:
    """AWS's Unsupported also refuses other configurations: those keep AWS's own words; a
    type refused without a zone named is still the instance type's fault (exit 2)."""
    from botocore.exceptions import ClientError

    def explained(message: str) -> tuple[ExitStatus, str]:
        error = api.explain(ClientError({"Error": {"Code": "Unsupported", "Message": message}},
                                        "RunInstances"), "eu-west-1")
        return error.exit_code, str(error)

    assert explained("The requested configuration is currently not supported.") == (
        ExitStatus.CHECK_FAILED, "AWS in eu-west-1: RunInstances failed: Unsupported: The "
                                 "requested configuration is currently not supported.")
    assert explained("Your requested instance type (t3.small) is not supported.") == (
        ExitStatus.BAD_INPUT, "aws.instance_type: t3.small is not offered in the zone of the "
                              "subnet in eu-west-1: set `aws.subnet` to a subnet in another "
                              "zone or another `aws.instance_type`")


# architecture --------------------------------------------------------------------------------


def described_as(architecture: str) -> Any:
    """DescribeImages as AWS answers it, with each image's Architecture (moto's RegisterImage
    drops it)."""

    def change(parsed: dict[str, Any]) -> bool:
        for image in parsed.get("Images", []):
            image["Architecture"] = architecture
        return bool(parsed.get("Images"))

    return change


def test_an_amd64_image_on_a_graviton_type_stops_at_the_plan(aws_env: str,
                                                             tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env, instance_type="t4g.small")
    target = AwsTarget(config, key_for(config))
    answer(target.aws.ec2, "DescribeImages", described_as("x86_64"))

    assert one_line(lambda: target.plan(SPECS), ExitStatus.BAD_INPUT) == (
        f"aws.instance_type: t4g.small runs arm64 but aws.image ({aws_env}) is x86_64: set "
        "aws.image to an arm64 one (Debian 12's: /aws/service/debian/release/bookworm/latest/"
        "arm64) or aws.instance_type to an x86_64 type (t3.small is x86_64, t4g.small arm64)")
    assert leftovers("t") == {}  # nothing made


def test_a_baked_image_of_another_architecture_is_named(aws_env: str, tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env)  # t3.small: x86_64
    target = AwsTarget(config, key_for(config))
    answer(target.aws.ec2, "DescribeImages", described_as("arm64"))

    assert one_line(lambda: target.image_id(aws_env), ExitStatus.BAD_INPUT).startswith(
        f"aws.instance_type: t3.small runs x86_64 but {aws_env} is arm64: set aws.image to an "
        "x86_64 one (Debian 12's: /aws/service/debian/release/bookworm/latest/amd64)")


def test_an_image_the_type_runs_passes_asking_the_type_once(aws_env: str,
                                                            tmp_path: Path) -> None:
    config = lab_config(tmp_path, aws_env, instance_type="t4g.small")
    target = AwsTarget(config, key_for(config))
    answer(target.aws.ec2, "DescribeImages", described_as("arm64"))
    asked: list[int] = []
    target.aws.ec2.meta.events.register("provide-client-params.ec2.DescribeInstanceTypes",
                                        lambda **_: asked.append(1))

    assert target.image_id("lab/base:bookworm") == aws_env
    assert target.image_id(aws_env) == aws_env  # a second image: the type is known
    assert asked == [1]
