"""Workspaces never share a lab (issue "AWS as a real account behaves"): a workspace's lab name
is its folder's name plus a short hash of its absolute path, and, on aws, of the caller, so
`~/a/ex` and `~/b/ex` on one engine, or two trainees' `~/ex` in one AWS account, keep labs of
their own. An existing workspace keeps the name it has."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.config import LAB_NAME
from lab.course.workspace import start, workspace_lab_name
from lab.targets.aws import AwsTarget

HARNESS = 8  # the exercise whose start makes no servers: its workspace needs no engine


def name_in(directory: Path) -> str:
    return str(yaml.safe_load((directory / "lab.yml").read_text())["name"])


def test_two_workspaces_in_folders_of_one_name_get_labs_of_their_own(tmp_path: Path) -> None:
    first = start(HARNESS, tmp_path / "a" / "ex")
    second = start(HARNESS, tmp_path / "b" / "ex")

    names = name_in(first.directory), name_in(second.directory)
    assert names[0] != names[1]  # was ex-ex for both: the second took the first's servers
    assert all(n.startswith("ex-ex-") and LAB_NAME.match(n) for n in names), names


def test_a_workspace_keeps_its_name_when_started_again(tmp_path: Path) -> None:
    workspace = start(HARNESS, tmp_path / "ex")
    before = name_in(workspace.directory)

    start(HARNESS, tmp_path / "ex")

    assert name_in(workspace.directory) == before


def test_a_long_folder_name_keeps_the_hash_and_the_limit(tmp_path: Path) -> None:
    long = tmp_path / ("my-very-long-workshop-folder-name-" * 3)
    name = workspace_lab_name(long)

    assert len(name) <= 32 and LAB_NAME.match(name)
    assert name == workspace_lab_name(long)  # the same folder, the same name
    assert name[-6:] != workspace_lab_name(tmp_path / "other")[-6:]


def test_on_aws_the_caller_is_part_of_the_name(tmp_path: Path) -> None:
    # Two trainees on identical machines: the same path, another IAM user.
    alice = workspace_lab_name(tmp_path / "ex", "arn:aws:iam::111122223333:user/alice")
    bob = workspace_lab_name(tmp_path / "ex", "arn:aws:iam::111122223333:user/bob")
    assert alice != bob != workspace_lab_name(tmp_path / "ex")


@pytest.mark.usefixtures("aws_env")
def test_the_aws_owner_is_the_callers_arn_and_nothing_without_a_region(
        monkeypatch: pytest.MonkeyPatch) -> None:
    owner = AwsTarget.owner()
    assert owner.startswith("arn:aws:") and ":123456789012:" in owner, owner
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    assert AwsTarget.owner() == ""  # asked nothing: `lab doctor` says what is missing


def test_a_lab_of_the_same_name_from_another_folder_is_refused_on_aws(
        aws_env: str, tmp_path: Path) -> None:
    """Names a person chose (`lab init` takes the folder's, `name:` any) can still meet in
    one account: the second lab is refused before it makes anything, never handed the
    first's key pair, groups and balancer (nor its `lab destroy` the first's servers)."""
    from awslab import key_for, lab_config, leftovers

    from lab.errors import ConfigError
    from lab.targets.base import ServerSpec

    spec = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80])]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = lab_config(tmp_path / "a", aws_env, name="demo")
    AwsTarget(first, key_for(first)).create(spec)
    before = leftovers("demo")

    second = lab_config(tmp_path / "b", aws_env, name="demo")
    with pytest.raises(ConfigError, match=r"^name: lab demo already runs in this AWS account"):
        AwsTarget(second, key_for(second)).plan(spec)  # before `lab up` asks to go ahead
    with pytest.raises(ConfigError, match=r"^name: lab demo already runs in this AWS account"):
        AwsTarget(second, key_for(second)).create(
            [ServerSpec("web-2", "web", 1, "lab/base:bookworm", ports=[80])])

    assert leftovers("demo") == before
    again = AwsTarget(first, key_for(first))  # the folder that made it goes on as before
    again.create([ServerSpec("web-2", "web", 1, "lab/base:bookworm", ports=[80])])
    again.destroy()
    assert leftovers("demo") == {}
