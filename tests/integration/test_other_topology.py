"""A lab lab never wrote: two roles, a playbook built from an Ansible role laid out as a
Galaxy role is (defaults, tasks, handlers, templates, meta), facts gathered, and tests
of its own. Nothing in it is shaped for lab."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from labhelpers import Lab, lab_for_module

ROLE = {
    "defaults/main.yml": "motd_owner: platform team\nmotd_packages: [tree]\n",
    "meta/main.yml": ("galaxy_info:\n  role_name: motd\n  author: someone else\n"
                      "  min_ansible_version: '2.14'\n  platforms:\n"
                      "    - name: Debian\n      versions: [bookworm]\ndependencies: []\n"),
    "tasks/main.yml": (
        "- name: Packages the role wants\n"
        "  ansible.builtin.apt:\n    name: \"{{ motd_packages }}\"\n    state: present\n"
        "    update_cache: true\n    cache_valid_time: 86400\n"
        "- name: Message of the day from facts\n"
        "  ansible.builtin.template:\n    src: motd.j2\n    dest: /etc/motd\n    mode: '0644'\n"
        "  notify: Say motd changed\n"
        "- name: A user for the service\n"
        "  ansible.builtin.user:\n    name: svc\n    shell: /usr/sbin/nologin\n"
    ),
    "handlers/main.yml": ("- name: Say motd changed\n"
                          "  ansible.builtin.command: logger motd changed\n"
                          "  changed_when: false\n"),
    "templates/motd.j2": ("{{ ansible_facts['hostname'] }} ({{ ansible_facts['os_family'] }}) "
                          "belongs to the {{ motd_owner }}, group {{ group_names | join(',') }}\n"),
}

PLAYBOOK = """- name: Every server gets the motd role
  hosts: all
  become: true
  gather_facts: true
  roles:
    - role: motd
      vars:
        motd_owner: "{{ owner }}"
"""

TESTS = '''def test_motd_names_host_family_owner_and_group(host):
    motd = host.file("/etc/motd")
    assert motd.exists and motd.mode == 0o644
    hostname = host.check_output("hostname")
    assert motd.content_string.startswith(f"{hostname} (Debian) belongs to the data team")


def test_service_user(host):
    svc = host.user("svc")
    assert svc.exists and svc.shell == "/usr/sbin/nologin"


def test_role_package(host):
    assert host.package("tree").is_installed
'''


def write_lab(lab: Lab) -> None:
    for relative, text in ROLE.items():
        path = lab.dir / "playbooks" / "roles" / "motd" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (lab.dir / "playbooks" / "site.yml").write_text(PLAYBOOK)
    (lab.dir / "tests" / "test_motd.py").write_text(TESTS)
    role = {"playbook": "playbooks/site.yml", "tests": ["tests/test_motd.py"]}
    data = {"name": lab.name, "servers": {"app": {"count": 2, **role}, "db": {"count": 1, **role}},
            "vars": {"owner": "data team"}}
    (lab.dir / "lab.yml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory,
          docker_client: docker.DockerClient) -> Iterator[Lab]:
    with lab_for_module(docker_client, tmp_path_factory.mktemp("other"), ("up",),
                        edit=write_lab) as lab:
        yield lab


def test_three_servers_in_two_roles(other: Lab) -> None:
    status = other.status()
    assert sorted(status) == ["app-1", "app-2", "db-1"]
    assert {s["role"] for s in status.values()} == {"app", "db"}


def test_a_galaxy_shaped_role_provisions_idempotently(other: Lab) -> None:
    result = other.run("provision", "--idempotence", timeout=600)
    for host in ("app-1", "app-2", "db-1"):
        assert host in result.stdout


def test_its_own_tests_pass_on_every_server(other: Lab, tmp_path: Path) -> None:
    result = other.run("verify")
    assert result.stdout.count("passed") == 9  # 3 tests on 3 servers
    motd = other.run("ssh", "db-1", "--", "cat", "/etc/motd").stdout
    assert motd.strip() == "db-1 (Debian) belongs to the data team, group db"


def test_lab_test_runs_it_too(other: Lab) -> None:
    result = other.run("test", "--json", timeout=600)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] is True and report["problem"] == ""
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == ["create", "provision", "idempotence", "verify", "destroy"]
    assert all(p["ok"] and p["seconds"] > 0 for p in phases.values())
    assert phases["verify"]["figures"]["failed"] == 0
    assert phases["verify"]["figures"]["passed"] > 0
