"""boto3 clients for one region, and AWS's errors as lab's one-line errors.

Every call lab makes goes through clients from :func:`clients`, whose retry mode backs off
and retries throttled calls (and the other transient errors) before giving up. What still
fails is turned by :func:`translated` into a :class:`~lab.errors.LabError` that says what to
do, with the exit status a person expects: 2 for what lab.yml asked for, 3 for what the
account or machine lacks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from lab.errors import ConfigError, LabError, PrerequisiteError, TargetError, UsageError

# Standard retry mode: exponential backoff with jitter on throttling and transient errors.
RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 8}, connect_timeout=10,
                 read_timeout=60)
CREDENTIALS_FIX = ("run `aws configure` (or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY), then `lab doctor`")
OWN_ADDRESS_HINT = "find yours with `curl -s https://checkip.amazonaws.com` and add /32"
PERMISSIONS = "docs/aws.md, AWS permissions"  # where a person finds what lab calls
# ELB makes this role the first time an account makes a load balancer: the caller needs
# iam:CreateServiceLinkedRole then (AWS's "Elastic Load Balancing service-linked role").
ELB_ROLE = ("aws iam create-service-linked-role --aws-service-name "
            "elasticloadbalancing.amazonaws.com")


@dataclass(frozen=True)
class Clients:
    """The services lab uses, in one region."""

    region: str
    ec2: Any
    elbv2: Any
    ssm: Any
    sts: Any


def default_region() -> str | None:
    """The region boto3 would use: AWS_REGION, AWS_DEFAULT_REGION or the profile's."""
    return os.environ.get("AWS_REGION") or boto3.session.Session().region_name


@functools.cache
def regions() -> frozenset[str]:
    """EC2's regions as botocore's own data lists them (no call to AWS)."""
    session = boto3.session.Session()
    return frozenset(session.get_available_regions("ec2")
                     + session.get_available_regions("ec2", "aws-us-gov")
                     + session.get_available_regions("ec2", "aws-cn"))


def clients(region: str | None) -> Clients:
    """Clients for ``region`` (None: boto3's default), each retrying with backoff."""
    region = region or default_region()
    if not region:
        raise ConfigError("aws.region: is required (or set AWS_REGION), e.g. eu-west-1")
    if region not in regions():
        raise ConfigError(f"aws.region: {region!r} is not an AWS region "
                          "(e.g. eu-west-1, us-east-1; `aws ec2 describe-regions` lists them)")
    make = functools.partial(_session(region).client, config=RETRIES)
    with translated(region):  # half a set of credentials fails here already
        return Clients(region, make("ec2"), make("elbv2"), make("ssm"), make("sts"))


@functools.cache
def _session(region: str) -> boto3.session.Session:
    """One session per region for the whole process: a session loads each service's model
    (megabytes of JSON) once, and every client made from it shares them."""
    return boto3.session.Session(region_name=region)


# errors ----------------------------------------------------------------------------------

# Error codes AWS answers with, by what a person does about them.
NOT_ALLOWED = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException",
               "OperationNotPermitted"}
BAD_CREDENTIALS = {"AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch",
                   "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
                   "InvalidAccessKeyId"}
THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded",
             "TooManyRequestsException"}
NO_CAPACITY = {"InsufficientInstanceCapacity", "InsufficientCapacity",
               "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity"}


# Errors AWS documents as eventual consistency: a resource just made is not yet seen by the
# next call (EC2's "Eventual consistency" page names InvalidGroup.NotFound after
# CreateSecurityGroup); boto3's retries do not retry them.
NOT_YET = ("InvalidGroup.NotFound", "InvalidAMIID.NotFound", "InvalidInstanceID.NotFound")


def eventually(call: Any, *args: Any, seconds: float = 60.0, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, tried again while AWS answers that something just made is
    not there yet (:data:`NOT_YET`), backing off up to ``seconds``; any other error at once."""
    import time

    deadline, delay = time.monotonic() + seconds, 0.5
    while True:
        try:
            return call(*args, **kwargs)
        except ClientError as exc:
            if code_of(exc) not in NOT_YET or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 8.0)


def code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def explain(exc: BaseException, region: str = "") -> LabError:
    """One error from boto3 as the LabError a person can act on."""
    where = f" in {region}" if region else ""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PrerequisiteError(f"no AWS credentials found: {CREDENTIALS_FIX}")
    if isinstance(exc, NoRegionError):
        return ConfigError("aws.region: is required (or set AWS_REGION), e.g. eu-west-1")
    if isinstance(exc, EndpointConnectionError):
        return PrerequisiteError(f"AWS cannot be reached{where} ({exc.kwargs.get('endpoint_url')})"
                                 ": check the network and `aws.region` in lab.yml")
    if not isinstance(exc, ClientError):
        return TargetError(f"AWS{where}: {exc}")
    code, message = code_of(exc), exc.response.get("Error", {}).get("Message", "")
    operation = exc.operation_name
    if code in BAD_CREDENTIALS:
        return PrerequisiteError(f"AWS refused the credentials ({code}): {CREDENTIALS_FIX}")
    if code == "OptInRequired":
        return PrerequisiteError(f"the account has not enabled region {region}: enable it in "
                                 "the AWS console or set another `aws.region` in lab.yml")
    if code in NOT_ALLOWED:
        return _not_allowed(code, operation, message, where)
    if code in THROTTLED:
        return PrerequisiteError(f"AWS is throttling requests{where} even after retries: "
                                 "wait a minute and run the command again")
    if code in NO_CAPACITY:
        kind, zone, others = _placement(message)
        return PrerequisiteError(
            f"AWS has no capacity for {kind or 'this instance type'}{where} now"
            + (f" (zone {zone})" if zone else "") + ": set `aws.subnet` to a subnet in another "
            f"zone{others} or another `aws.instance_type`, or try again later")
    if code == "Unsupported" and "instance type" in message.lower():
        kind, zone, others = _placement(message)
        return ConfigError(
            f"aws.instance_type: {kind or 'the type'} is not offered in "
            + (f"zone {zone}" if zone else f"the zone of the subnet{where}") + ": set "
            f"`aws.subnet` to a subnet in another zone{others} or another `aws.instance_type`")
    if code == "VcpuLimitExceeded":
        limit = re.search(r"vCPU limit of (\d+)", message)
        return PrerequisiteError(
            f"the account's vCPU quota{where} for this instance family is used up"
            + (f" ({limit[1]} vCPUs)" if limit else "") + ": set a smaller "
            "`aws.instance_type` or fewer servers, `lab destroy` labs no longer needed, or ask "
            "for a higher \"Running On-Demand instances\" quota in Service Quotas")
    if code in ("InvalidInstanceType",) or (code == "InvalidParameterValue"
                                            and "instance type" in message.lower()):
        return ConfigError(f"aws.instance_type: not offered{where}: {message}")
    if code.startswith("InvalidAMIID"):
        return UsageError(f"AMI not found{where}: {message} (AMIs are per region; "
                          "`lab history` shows what each release ran)")
    if code == "ParameterNotFound":
        return ConfigError(f"aws.image: no such public parameter{where}: {message}")
    if code.startswith("InvalidSubnetID"):
        return ConfigError(f"aws.subnet: not found{where}: {message}")
    return TargetError(f"AWS{where}: {operation} failed: {code}: {message}")


def _not_allowed(code: str, operation: str, message: str, where: str) -> PrerequisiteError:
    """AccessDenied and its kin. An account's first load balancer (or target group) also
    makes ELB's service-linked role: IAM's permission, which elasticloadbalancing:* lacks."""
    if operation in ("CreateLoadBalancer", "CreateTargetGroup") and re.search(
            r"service-?linked ?role", message, re.IGNORECASE):
        return PrerequisiteError(
            f"not allowed to {operation}{where} ({code}): the account's first load balancer "
            "needs iam:CreateServiceLinkedRole, or an admin to create ELB's service-linked role "
            f"once (`{ELB_ROLE}`); see {PERMISSIONS}")
    return PrerequisiteError(f"not allowed to {operation}{where} ({code}): ask for an IAM "
                             f"policy that allows it ({PERMISSIONS})")


def _placement(message: str) -> tuple[str, str, str]:
    """From RunInstances' Unsupported and InsufficientInstanceCapacity messages: the instance
    type, its zone, and " (AWS offers it in a, b)" for the zones AWS suggests ("" for what
    the message does not say)."""
    kind = re.search(r"instance type \(([^)]+)\)|sufficient (\S+) capacity", message)
    zone = re.search(r"Availability Zone[^(.]*\(([a-z0-9-]+)\)", message)
    others = re.search(r"choosing ([a-z0-9-]+(?:,? (?:or )?[a-z0-9-]+)*)", message)
    return (next((k for k in kind.groups() if k), "") if kind else "",
            zone[1] if zone else "", f" (AWS offers it in {others[1]})" if others else "")


@contextlib.contextmanager
def translated(region: str = "") -> Iterator[None]:
    """Turn what boto3 raises inside the block into lab's one-line errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, region) from None


# tags ------------------------------------------------------------------------------------


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """``{"k": "v"}`` as AWS's ``[{"Key": "k", "Value": "v"}]``."""
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    """A resource's ``Tags`` (or ``TagSet``) as a mapping."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or resource.get("TagSet") or []}


def tag_specs(tags: dict[str, str], *types: str) -> list[dict[str, Any]]:
    """``TagSpecifications`` that tag each resource type at creation."""
    return [{"ResourceType": kind, "Tags": tag_list(tags)} for kind in types]
