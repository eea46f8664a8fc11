"""What Molecule gives a scenario's playbooks and tests, given by lab: the inventory, the
variables, the roles path.

Molecule writes, in its ephemeral directory, ``inventory/ansible_inventory.yml`` (each platform a
host, in ``all``, in each of its ``groups`` and, under each of those, in each of its
``children``), the provisioner's ``host_vars`` and ``group_vars`` beside it, ``ansible.cfg``, and
sets MOLECULE_INVENTORY_FILE and its other variables for ansible-playbook and pytest. lab
writes the same files (in ``.lab/molecule-<scenario>/ephemeral``, which a user can open), with
the connection settings of lab's servers (SSH on 127.0.0.1, the lab's key, host keys
checked), so ``AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])`` finds them.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from lab.access.inventory import PYTHON
from lab.access.keys import KeyPair
from lab.access.ssh import MULTIPLEX, common_args
from lab.molecule.scenario import Scenario, ephemeral_directory, molecule_names
from lab.state import ServerRecord

# The variables Molecule puts in every inventory it writes (read lazily, when a play uses one).
MOLECULE_VARS = {
    "molecule_file": "{{ lookup('env', 'MOLECULE_FILE') }}",
    "molecule_ephemeral_directory": "{{ lookup('env', 'MOLECULE_EPHEMERAL_DIRECTORY') }}",
    "molecule_scenario_directory": "{{ lookup('env', 'MOLECULE_SCENARIO_DIRECTORY') }}",
    "molecule_yml": "{{ lookup('file', molecule_file) | from_yaml }}",
    "molecule_instance_config": "{{ lookup('env', 'MOLECULE_INSTANCE_CONFIG') }}",
    "molecule_no_log": "{{ lookup('env', 'MOLECULE_NO_LOG') or not "
                       "molecule_yml.provisioner.log|default(False) | bool }}",
}
ROLES_PATH_DEFAULT = ["~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles"]


def inventory_file(scenario: Scenario) -> Path:
    return ephemeral_directory(scenario.project, scenario.name) / "inventory" / \
        "ansible_inventory.yml"


def connection(server: ServerRecord, key: KeyPair) -> dict[str, Any]:
    """How Ansible and testinfra reach a lab server: its address, the lab's key, the host key
    lab made for it, and the connection lab already holds to it (shared, so a test costs no
    handshake)."""
    return {
        "ansible_connection": "ssh",
        "ansible_host": server.ssh_host,
        "ansible_port": server.ssh_port,
        "ansible_user": server.ssh_user,
        "ansible_ssh_private_key_file": str(key.for_server(server.ssh_key).resolve()),
        "ansible_ssh_common_args": " ".join([common_args(key), *map(shlex.quote, MULTIPLEX)]),
        "ansible_python_interpreter": PYTHON,
    }


def build_inventory(scenario: Scenario, hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Molecule's inventory: ``hosts`` (each platform's connection settings, by its name) in
    ``all``, in each of the platform's groups (``ungrouped`` when it names none), and in each
    of its ``children`` under each of those groups."""
    inventory: dict[str, Any] = {"all": {"hosts": {}, "vars": dict(MOLECULE_VARS)},
                                 "ungrouped": {"hosts": {}, "vars": {}}}
    for platform in scenario.platforms:
        settings = hosts[platform.name]
        inventory["all"]["hosts"][platform.name] = settings
        for group in platform.groups or ["ungrouped"]:
            entry = inventory.setdefault(group, {})
            entry.setdefault("hosts", {})[platform.name] = settings
            if group != "ungrouped":
                entry["vars"] = dict(MOLECULE_VARS)
            for child in platform.children:
                children = entry.setdefault("children", {})
                children.setdefault(child, {"hosts": {}})["hosts"][platform.name] = settings
    return inventory


def write_ephemeral(scenario: Scenario, servers: dict[str, ServerRecord], key: KeyPair) -> Path:
    """Write what Molecule would in the ephemeral directory, for ``servers`` (lab's server of
    each platform, by platform name); returns the inventory file."""
    ephemeral = ephemeral_directory(scenario.project, scenario.name)
    path = inventory_file(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    hosts = {name: connection(server, key) for name, server in servers.items()}
    _write_yaml(path, build_inventory(scenario, hosts))
    for kind, values in (("host_vars", scenario.config.provisioner.inventory.host_vars),
                         ("group_vars", scenario.config.provisioner.inventory.group_vars)):
        for name, variables in values.items():
            _write_yaml(path.parent / kind / f"{name}.yml", variables)
    _write_yaml(ephemeral / "instance_config.yml", [
        {"instance": name, "address": s["ansible_host"], "port": s["ansible_port"],
         "user": s["ansible_user"], "identity_file": s["ansible_ssh_private_key_file"]}
        for name, s in hosts.items()])
    write_config(scenario)
    return path


def write_config(scenario: Scenario) -> None:
    """ansible.cfg with the scenario's options, and the role linked by its full name into a
    roles folder of the ephemeral directory (as ansible-compat links it for Molecule)."""
    ephemeral = ephemeral_directory(scenario.project, scenario.name)
    ephemeral.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by lab from molecule.yml (provisioner.config_options, ansible.cfg)"]
    for section, options in scenario.cfg.items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {value}" for name, value in options.items()]
    (ephemeral / "ansible.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    link = ephemeral / "roles" / scenario.role.name
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(scenario.project, target_is_directory=True)


def molecule_env(scenario: Scenario, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables Molecule sets for ansible-playbook and pytest (the provisioner's ``env``
    over them), with the roles path that finds the role by its full name and its folder's."""
    environ = dict(os.environ if environ is None else environ)
    ephemeral = ephemeral_directory(scenario.project, scenario.name)
    theirs = [p for p in environ.get("ANSIBLE_ROLES_PATH", "").split(os.pathsep) if p]
    roles_path = [str(ephemeral / "roles"), str(scenario.project.parent),
                  *(theirs or ROLES_PATH_DEFAULT)]
    verifier = scenario.verifier
    return molecule_names(scenario.project, scenario.name) | {
        "MOLECULE_INVENTORY_FILE": str(inventory_file(scenario)),
        "MOLECULE_INSTANCE_CONFIG": str(ephemeral / "instance_config.yml"),
        "MOLECULE_DRIVER_NAME": scenario.config.driver.name,
        "MOLECULE_PROVISIONER_NAME": "ansible",
        "MOLECULE_VERIFIER_NAME": verifier.name,
        "MOLECULE_VERIFIER_TEST_DIRECTORY": str(scenario.directory / verifier.directory),
        "MOLECULE_DEPENDENCY_NAME": "galaxy",
        "MOLECULE_DEBUG": "False",
        "ANSIBLE_CONFIG": str(ephemeral / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": os.pathsep.join(dict.fromkeys(roles_path)),
    } | scenario.env


class _Plain(yaml.SafeDumper):
    """Each host's settings written out in full wherever it appears, as Molecule writes
    them, rather than as YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by lab for a Molecule scenario\n" +
                    yaml.dump(data, Dumper=_Plain, sort_keys=False, width=1000), encoding="utf-8")
