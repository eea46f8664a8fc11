"""A scenario mapped onto lab: platforms become servers on an image lab has (or a one-line
refusal naming the field), Molecule's inventory and variables for lab's servers, the testinfra
verifier's arguments and report read per host, a playbook's own error named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lab.access.keys import ensure_keypair
from lab.config import DEFAULT_IMAGE
from lab.errors import ConfigError, ExitStatus
from lab.molecule.cycle import playbook_problem
from lab.molecule.inventory import build_inventory, molecule_env, write_ephemeral
from lab.molecule.platforms import (
    LAB_IMAGE_LABEL,
    distribution,
    lab_name,
    scenario_lab,
    servers_for,
)
from lab.molecule.scenario import Scenario, load_scenario
from lab.molecule.verifier import by_host, option_args
from lab.provision import RunResult, TaskOutcome
from lab.state import ServerRecord


def scenario_with(where: Path, platforms: str, rest: str = "", name: str = "default",
                  folder: str = "ansible-role-motd") -> Scenario:
    project = where / folder
    (project / "molecule" / name).mkdir(parents=True)
    (project / "molecule" / name / "molecule.yml").write_text(
        f"driver: {{name: docker}}\nplatforms:\n{platforms}{rest}")
    return load_scenario(project, name)


def nowhere(image: str) -> dict[str, str] | None:
    """No image is on this machine."""
    return None


@pytest.mark.parametrize(("image", "found"), [
    ("debian:12", ("debian", "12")),
    ("debian:12.5-slim", ("debian", "12")),
    ("docker.io/library/debian:bookworm-slim", ("debian", "12")),
    ("geerlingguy/docker-debian12-ansible:latest", ("debian", "12")),
    ("quay.io/someone/debian-12-systemd", ("debian", "12")),
    ("localhost:5000/debian:trixie", ("debian", "13")),
    ("geerlingguy/docker-debian13-ansible", ("debian", "13")),
    ("debian:latest", ("debian", None)),
    ("ubuntu:22.04", ("ubuntu", "22.04")),
    ("geerlingguy/docker-ubuntu2404-ansible", ("ubuntu", "24.04")),
    ("rockylinux/rockylinux:9", ("rockylinux", "9")),
    ("busybox", None),
])
def test_the_distribution_an_image_names(image: str, found: tuple[str, str | None]) -> None:
    assert distribution(image) == found


def test_platforms_become_servers_on_lab_s_base_said_in_one_line(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: web-a, image: "
                             "geerlingguy/docker-debian12-ansible:latest}\n"
                             "  - {name: db.1, image: 'debian:bookworm'}\n")
    here = {"debian:bookworm": {}}  # on this machine, not made by lab

    servers = servers_for(scenario, here.get)

    assert [(s.platform, s.role, s.image) for s in servers] == [
        ("web-a", "web_a", DEFAULT_IMAGE), ("db.1", "db_1", DEFAULT_IMAGE)]
    assert servers[0].note == ("platform web-a: geerlingguy/docker-debian12-ansible:latest is "
                               "not on this machine and lab pulls no image: using "
                               "lab/base:bookworm (Debian 12) instead")
    assert servers[1].note == ("platform db.1: debian:bookworm is not one of lab's server "
                               "images (systemd and sshd): using lab/base:bookworm (Debian 12) "
                               "instead")


def test_an_image_lab_made_is_used_as_it_is(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: a, image: 'lab/motd-web:v3'}\n")

    servers = servers_for(scenario, {"lab/motd-web:v3": {LAB_IMAGE_LABEL: "abc"}}.get)

    assert (servers[0].image, servers[0].note) == ("lab/motd-web:v3", "")


@pytest.mark.parametrize(("image", "expected"), [
    ("geerlingguy/docker-debian13-ansible:latest",
     "platforms[1].image: 'geerlingguy/docker-debian13-ansible:latest' is Debian 13, and lab "
     "has no server image for it yet (lab has Debian 12 (lab/base:bookworm))"),
    ("ubuntu:24.04", "platforms[1].image: 'ubuntu:24.04' is Ubuntu 24.04, and lab has no "
                     "server image for it yet"),
    ("debian", "platforms[1].image: 'debian' does not say which Debian release it is"),
    ("busybox:1.36", "platforms[1].image: cannot tell which distribution 'busybox:1.36' is"),
])
def test_an_image_lab_has_no_server_for_is_refused_naming_the_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = scenario_with(tmp_path, f"  - {{name: a, image: 'debian:12'}}\n"
                                       f"  - {{name: b, image: '{image}'}}\n")

    with pytest.raises(ConfigError) as raised:
        servers_for(scenario, nowhere)

    assert str(raised.value).startswith(
        f"ansible-role-motd/molecule/default/molecule.yml: {expected}")
    assert raised.value.exit_code == ExitStatus.BAD_INPUT


def test_a_platform_without_an_image_is_refused(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: a}\n")

    with pytest.raises(ConfigError, match=r"platforms\[0\]\.image: is required"):
        servers_for(scenario, nowhere)


def test_the_scenario_s_lab(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: Web-A, image: 'debian:12'}\n"
                                       "  - {name: web_a, image: 'debian:12'}\n"
                                       "  - {name: 1st, image: 'debian:12'}\n",
                             name="Not_Idempotent")

    config = scenario_lab(scenario, servers_for(scenario, nowhere))

    # without meta/main.yml, the role is its folder's name less "ansible-", as in Molecule
    assert scenario.role.name == "role-motd"
    assert config.name == lab_name(scenario) == "role-motd-not-idempotent-test"
    assert list(config.servers) == ["web_a", "web_a_2", "p_1st"]
    assert {role.count for role in config.servers.values()} == {1}
    assert config.image == DEFAULT_IMAGE and config.balancer is None
    assert config.directory == scenario.project
    assert config.state_dir == scenario.project / ".lab" / "molecule-Not_Idempotent"


# Molecule's inventory and variables ---------------------------------------------------------


def test_inventory_groups_and_children_as_molecule_makes_them(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: a, image: 'debian:12', groups: [web, edge], "
                                       "children: [frontend]}\n"
                                       "  - {name: b, image: 'debian:12', groups: [db]}\n"
                                       "  - {name: c, image: 'debian:12'}\n")
    hosts = {name: {"ansible_host": name} for name in "abc"}

    inventory = build_inventory(scenario, hosts)

    assert set(inventory["all"]["hosts"]) == {"a", "b", "c"}
    assert set(inventory["ungrouped"]["hosts"]) == {"c"}
    assert set(inventory["web"]["hosts"]) == set(inventory["edge"]["hosts"]) == {"a"}
    assert inventory["web"]["children"] == {"frontend": {"hosts": {"a": {"ansible_host": "a"}}}}
    assert inventory["edge"]["children"]["frontend"]["hosts"] == {"a": {"ansible_host": "a"}}
    assert set(inventory["db"]["hosts"]) == {"b"} and "children" not in inventory["db"]
    assert inventory["all"]["vars"]["molecule_file"] == "{{ lookup('env', 'MOLECULE_FILE') }}"


def test_the_files_molecule_writes_for_lab_s_servers(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: a, image: 'debian:12', groups: [web]}\n",
                             "provisioner:\n  inventory:\n    host_vars: {a: {x: 1}}\n"
                             "    group_vars: {web: {y: 2}}\n"
                             "  config_options: {defaults: {forks: 7}}\n")
    key = ensure_keypair(tmp_path / "state", comment="t")
    server = ServerRecord("a_1", "a", "docker", ssh_host="127.0.0.1", ssh_port=2201)

    path = write_ephemeral(scenario, {"a": server}, key)

    ephemeral = path.parent.parent
    inventory = yaml.safe_load(path.read_text())
    host = inventory["web"]["hosts"]["a"]
    assert (host["ansible_host"], host["ansible_port"], host["ansible_user"]) == \
           ("127.0.0.1", 2201, "root")
    assert "StrictHostKeyChecking=yes" in host["ansible_ssh_common_args"]
    assert "ControlPath=/tmp/lab-ssh-%C" in host["ansible_ssh_common_args"]
    assert "&id" not in path.read_text()  # written out, no YAML aliases
    assert yaml.safe_load((path.parent / "host_vars" / "a.yml").read_text()) == {"x": 1}
    assert yaml.safe_load((path.parent / "group_vars" / "web.yml").read_text()) == {"y": 2}
    assert "[defaults]\nforks = 7" in (ephemeral / "ansible.cfg").read_text()
    assert (ephemeral / "roles" / "role-motd").resolve() == scenario.project
    assert yaml.safe_load((ephemeral / "instance_config.yml").read_text())[0]["port"] == 2201


def test_molecule_s_variables(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "  - {name: a, image: 'debian:12'}\n",
                             "provisioner: {env: {MY_VAR: 1}}\nverifier: {name: testinfra}\n")
    ephemeral = scenario.project / ".lab" / "molecule-default" / "ephemeral"

    env = molecule_env(scenario, {"ANSIBLE_ROLES_PATH": "/mine"})

    assert env["MOLECULE_INVENTORY_FILE"] == str(ephemeral / "inventory" /
                                                 "ansible_inventory.yml")
    assert env["MOLECULE_EPHEMERAL_DIRECTORY"] == str(ephemeral)
    assert env["MOLECULE_SCENARIO_NAME"] == "default"
    assert env["MOLECULE_SCENARIO_DIRECTORY"] == str(scenario.directory)
    assert env["MOLECULE_PROJECT_DIRECTORY"] == str(scenario.project)
    assert env["MOLECULE_VERIFIER_NAME"] == "testinfra"
    assert env["ANSIBLE_CONFIG"] == str(ephemeral / "ansible.cfg")
    assert env["ANSIBLE_ROLES_PATH"].split(os.pathsep) == [
        str(ephemeral / "roles"), str(scenario.project.parent), "/mine"]
    assert env["MY_VAR"] == "1"


# the testinfra verifier, a playbook's error ---------------------------------------------------


def test_verifier_options_as_molecule_passes_them() -> None:
    assert option_args({"p": "no:cacheprovider", "connection": "ansible", "v": True,
                        "junit_prefix": "x", "s": False, "sudo": None}) == [
        "-p", "no:cacheprovider", "--connection=ansible", "-v", "--junit-prefix=x"]


def test_each_test_outcome_has_its_host(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_m" name="test_a[ansible://web-a]" file="tests/test_m.py"/>'
        '<testcase classname="tests.test_m" name="test_a[ansible://db-1]" file="tests/test_m.py">'
        '<failure message="assert False">assert False</failure></testcase>'
        '<testcase classname="tests.test_m" name="test_local" file="tests/test_m.py"/>'
        '</testsuite></testsuites>')

    outcomes = by_host(report, tmp_path)

    assert [(o.host, o.test, o.status) for o in outcomes] == [
        ("web-a", "test_m::test_a", "passed"), ("db-1", "test_m::test_a", "failed"),
        ("all", "test_m::test_local", "passed")]


def test_a_playbook_ansible_refused_is_named_by_ansible_s_own_line(tmp_path: Path) -> None:
    stdout = tmp_path / "artifacts" / "x" / "stdout"
    stdout.parent.mkdir(parents=True)
    stdout.write_text("warning: noise\n[ERROR]: the role 'motd' was not found in /a:/b\n")
    refused = RunResult("r", tmp_path, Path("converge.yml"), rc=1)
    failed = RunResult("r", tmp_path, Path("converge.yml"), rc=2, tasks=[
        TaskOutcome("a", "Write it", "failed", "disk full")])

    assert playbook_problem(refused) == (f"converge.yml: the role 'motd' was not found in /a:/b "
                                         f"(see {stdout})")
    assert playbook_problem(failed).startswith("a: task 'Write it' failed: disk full")
    assert playbook_problem(RunResult("r", tmp_path, Path("c.yml"))) == ""
