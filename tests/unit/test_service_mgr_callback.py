"""lab's Ansible callback (lab/data/ansible/callback/lab_service_mgr.py), run by real Ansible
objects: the hosts lab names get ansible_service_mgr=systemd at the start of each play, so the
service action skips its setup run; other hosts and other facts are left alone. That
provisioning with it works end to end is proven on servers by tests/integration (every
example playbook starts nginx or HAProxy with the service module)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.vars.manager import VariableManager

from lab.provision import CALLBACKS


def callback_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lab_service_mgr",
                                                  CALLBACKS / "lab_service_mgr.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_named_hosts_get_systemd_as_their_service_manager(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    web:\n      hosts: {web-1: {}, web-2: {}}\n"
                         "    other:\n      hosts: {db-1: {}}\n")
    loader = DataLoader()
    manager = VariableManager(loader=loader,
                              inventory=InventoryManager(loader, sources=[str(inventory)]))
    manager.set_host_facts("web-2", {"ansible_distribution": "Debian"})
    play = Play.load({"hosts": "all", "gather_facts": False, "tasks": []},
                     variable_manager=manager, loader=loader)
    monkeypatch.setenv("LAB_SYSTEMD_HOSTS", "web-1,web-2")

    callback_module().CallbackModule().v2_playbook_on_play_start(play)

    def facts(name: str) -> dict[str, object]:
        host = manager._inventory.get_host(name)
        return dict(manager.get_vars(play=play, host=host)["ansible_facts"])

    assert facts("web-1") == {"service_mgr": "systemd"}
    assert facts("web-2") == {"service_mgr": "systemd", "distribution": "Debian"}
    assert "service_mgr" not in facts("db-1")

