"""lab's module payload store (lab/data/ansible/callback/lab_module_cache.py), through real
ansible-playbook runs by lab.provision.run_playbook on this machine (``connection: local``):
the first run keeps ansible-core's payloads, the next one starts from them instead of building
them again; a module of the user's own is never kept; a store others may write to is left alone.
The user's own callbacks, from the environment or the lab's ansible.cfg (lab.ansiblecfg), still
run beside lab's.
That provisioning with it works on servers is proven by tests/integration (every playbook there
runs through run_playbook)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab.provision import RunResult, module_store, run_playbook

PLAYBOOK = """\
- hosts: local
  gather_facts: false
  tasks:
    - ansible.builtin.stat: {path: /}
    - mine: {}
"""
# A module of the user's own, next to the playbook (Ansible's library/): never kept.
MINE = """\
from ansible.module_utils.basic import AnsibleModule
AnsibleModule(argument_spec={}).exit_json(changed=False, mine=True)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "mine.py").write_text(MINE)
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "inventory.yml").write_text(
        "all:\n  children:\n    local:\n      hosts:\n        local-1:\n"
        "          ansible_connection: local\n"
        f"          ansible_python_interpreter: {sys.executable}\n")
    return tmp_path


def run(project: Path) -> RunResult:
    result = run_playbook(project / "site.yml", project / "inventory.yml", project / "runs",
                          ["local-1"], project=project)
    assert result.ok, (result.run_dir / "stdout").read_text() if result.run_dir else result
    return result


def kept() -> list[str]:
    return sorted(p.name for p in module_store().glob("*/*"))


def debug_lines(result: RunResult) -> list[str]:
    """What Ansible's debug output said about building payloads, in order."""
    text = "".join(p.read_text() for p in result.run_dir.glob("artifacts/*/stdout"))
    return [line.split("ANSIBALLZ: ", 1)[1] for line in text.splitlines()
            if "ANSIBALLZ: Creating module" in line or "ANSIBALLZ: using cached module" in line]


def test_first_run_keeps_ansible_core_modules_only(project: Path) -> None:
    run(project)

    assert kept() == ["ansible.modules.stat-ZIP_DEFLATED-none"]
    store = next(module_store().iterdir())
    assert store.stat().st_mode & 0o777 == 0o700


def test_next_run_starts_from_the_store_instead_of_building(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(project)
    monkeypatch.setenv("ANSIBLE_DEBUG", "1")

    said = debug_lines(run(project))

    # stat comes from the store; only the user's own module is built again.
    assert any(line.startswith("using cached module") and "ansible.modules.stat" in line
               for line in said)
    assert said.count("Creating module") == 1


def test_a_store_others_may_write_to_is_not_used(project: Path) -> None:
    module_store().mkdir(parents=True)
    module_store().chmod(0o777)

    run(project)

    assert kept() == []


def test_the_users_own_callbacks_still_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ansible-core's tree callback writes each host's results to a directory when enabled.
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "tree")
    monkeypatch.setenv("ANSIBLE_CALLBACK_TREE_DIR", str(project / "tree"))

    run(project)

    assert (project / "tree" / "local-1").is_file()
    assert kept() == ["ansible.modules.stat-ZIP_DEFLATED-none"]  # lab's own ran as well


def test_the_labs_own_ansible_cfg_is_read_and_its_callbacks_run(project: Path) -> None:
    (project / "ansible.cfg").write_text(
        "[defaults]\ncallbacks_enabled = tree  ; as users write it\n"
        f"[callback_tree]\ndirectory = {project / 'from-cfg'}\n")

    run(project)

    assert (project / "from-cfg" / "local-1").is_file()
    assert kept() == ["ansible.modules.stat-ZIP_DEFLATED-none"]
