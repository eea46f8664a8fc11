"""Provision with real Ansible, verify with real testinfra, against real containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import yaml
from labhelpers import Lab, lab_for_module

MakeLab = Callable[..., Lab]


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory,
                docker_client: docker.DockerClient) -> Iterator[Lab]:
    """Two web servers, up and provisioned once, shared by this module's tests."""
    with lab_for_module(docker_client, tmp_path_factory.mktemp("prov"), ("up",),
                        ("provision",)) as lab:
        yield lab


@contextmanager
def web_role_changed(lab: Lab, folder: str, name: str, text: str) -> Iterator[None]:
    """Within the block, the web role uses a new file: a playbook, or one more test file."""
    (lab.dir / folder / name).write_text(text)
    original = lab.read_yml()
    data = yaml.safe_load(yaml.safe_dump(original))
    web = data["servers"]["web"]
    if folder == "playbooks":
        web["playbook"] = f"playbooks/{name}"
    else:
        web["tests"].append(f"tests/{name}")
    lab.write_yml(data)
    try:
        yield
    finally:
        lab.write_yml(original)


def test_provision_serves_a_page_naming_host_and_version(provisioned: Lab) -> None:
    for name in ("web-1", "web-2"):
        page = provisioned.run("ssh", name, "--", "curl", "-fsS", "http://127.0.0.1/").stdout
        assert page.strip() == f"{name} v1"


def test_idempotence_passes_on_the_example(provisioned: Lab) -> None:
    result = provisioned.run("provision", "--idempotence")
    assert "second run (idempotence)" in result.stderr


def test_verify_passes_and_writes_junit(provisioned: Lab, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    result = provisioned.run("verify", "--junit", str(report))
    assert "passed" in result.stdout
    root = ET.parse(report).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"web-1", "web-2"}
    for suite in suites.values():
        cases = list(suite.iter("testcase"))
        assert len(cases) == 5
        assert not any(c.find("failure") is not None for c in cases)


def test_verify_json_lists_each_test_per_host(provisioned: Lab) -> None:
    outcomes = json.loads(provisioned.run("verify", "--json", "web-2").stdout)
    assert {o["host"] for o in outcomes} == {"web-2"}
    assert all(o["status"] == "passed" for o in outcomes) and len(outcomes) == 5


def test_failing_assertion_names_test_and_host(provisioned: Lab, tmp_path: Path) -> None:
    report = tmp_path / "fail.xml"
    with web_role_changed(provisioned, "tests", "test_fails.py",
                          "def test_port_8081_listens(host):\n"
                          "    assert host.socket('tcp://0.0.0.0:8081').is_listening\n"):
        result = provisioned.run("verify", "--junit", str(report), check=False)
    assert result.returncode == 1
    assert "test_port_8081_listens" in result.stderr and "web-1" in result.stderr
    failures = [c for c in ET.parse(report).getroot().iter("testcase")
                if c.find("failure") is not None]
    assert len(failures) == 2  # one per host


def test_test_file_with_syntax_error_is_a_clear_error(provisioned: Lab) -> None:
    with web_role_changed(provisioned, "tests", "test_broken.py", "def test_x(host)\n    pass\n"):
        result = provisioned.run("verify", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "tests/test_broken.py:1" in result.stderr and "Traceback" not in result.stderr


def test_drift_finds_a_hand_made_change_and_provision_removes_it(provisioned: Lab) -> None:
    provisioned.run("ssh", "web-2", "--", "sh", "-c",
                    "echo '# one-line fix' >> /etc/nginx/sites-available/default")
    drifted = provisioned.run("drift", check=False)
    assert drifted.returncode == 1
    assert "web-2: Page naming host and version" in drifted.stdout
    assert "-# one-line fix" in drifted.stdout
    assert "Reload nginx" not in drifted.stdout  # a handler is a consequence, not drift
    assert "web-1" not in drifted.stdout
    provisioned.run("provision", "web-2")
    clean = provisioned.run("drift")
    assert "no drift" in clean.stdout


def test_inventory_works_with_ansible_by_hand(provisioned: Lab) -> None:
    inventory = provisioned.dir / ".lab" / "inventory.yml"
    data = yaml.safe_load(inventory.read_text())
    assert set(data["all"]["children"]["web"]["hosts"]) == {"web-1", "web-2"}
    ansible = Path(sys.executable).parent / "ansible"
    result = subprocess.run([str(ansible), "-i", str(inventory), "web", "-m", "ping"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env=os.environ | {"ANSIBLE_HOST_KEY_CHECKING": "False"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_playbook_failing_on_one_host(provisioned: Lab) -> None:
    with web_role_changed(provisioned, "playbooks", "fail_one.yml",
                          "- hosts: web\n  gather_facts: false\n  tasks:\n"
                          "    - name: Refuse on web-1\n"
                          "      ansible.builtin.fail:\n        msg: web-1 is not welcome\n"
                          "      when: inventory_hostname == 'web-1'\n"
                          "    - name: Say hello\n"
                          "      ansible.builtin.debug:\n        msg: hello\n"):
        result = provisioned.run("provision", check=False)
    assert result.returncode == 1
    assert "web-1: task 'Refuse on web-1' failed: web-1 is not welcome" in result.stderr
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("web-2"))
    assert row.split()[1:6] == ["1", "0", "0", "0", "1"]  # web-2: ok 1, skipped 1, no failure
    runs = list((provisioned.dir / ".lab" / "runs").iterdir())
    assert any((r / "artifacts").is_dir() for r in runs)


def test_non_idempotent_task_is_named(provisioned: Lab) -> None:
    with web_role_changed(provisioned, "playbooks", "stamp.yml",
                          "- hosts: web\n  gather_facts: false\n  tasks:\n"
                          "    - name: Stamp the time\n"
                          "      ansible.builtin.shell: date > /tmp/stamp\n"):
        result = provisioned.run("provision", "--idempotence", "web-1", check=False)
    assert result.returncode == 1
    assert "not idempotent" in result.stderr and "web-1: Stamp the time" in result.stderr


def test_lab_test_runs_the_whole_cycle_beside_lab_up(make_lab: MakeLab,
                                                     docker_client: docker.DockerClient) -> None:
    lab = make_lab(count=2)
    lab.run("up", "--role", "web")
    before = {c.name for c in lab.containers()}
    result = lab.run("test", timeout=600)
    for phase in ("create", "provision", "idempotence", "verify", "destroy"):
        assert phase in result.stdout
    assert "passed" in result.stdout
    assert {c.name for c in lab.containers()} == before  # `lab up`'s servers untouched
    leftovers = docker_client.containers.list(all=True,
                                              filters={"label": f"lab.name={lab.name}-test"})
    assert leftovers == []
