"""lab's module payload store (lab/data/ansible/callback/lab_module_cache.py), through real
ansible-playbook runs by lab.provision.run_playbook on this machine (``connection: local``):
the first run keeps ansible-core's payloads, the next one starts from them instead of building
them again; a module of the user's own is never kept; a store others may write to is left alone.
For servers on this machine the payloads are kept with bytecode that Python's zipimport takes,
and only where it fits.
The user's own callbacks, from the environment or the lab's ansible.cfg
(lab.access.ansiblecfg), still run beside lab's.
That provisioning with it works on servers is proven by tests/integration (every playbook there
runs through run_playbook)."""

from __future__ import annotations

import base64
import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lab.data.ansible.callback.lab_module_cache import with_bytecode
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


def run(project: Path, nearby: bool = False) -> RunResult:
    result = run_playbook(project / "site.yml", project / "inventory.yml", project / "runs",
                          ["local-1"], project=project, nearby=nearby)
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


# bytecode, for servers on this machine ----------------------------------------------------------

WHERE_FROM = """\
import sys
sys.path.insert(0, sys.argv[1])
import {module} as imported
print(imported.{function}.__code__.co_filename)
"""
SOURCE = b"def where():\n    return 1\n"


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def unzipped(payload: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(payload))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def stored_payload(pattern: str) -> dict[str, bytes]:
    [stored] = module_store().glob(pattern)
    return unzipped(pickle.loads(stored.read_bytes()).zip_data)


def compiled_from(files: dict[str, bytes], tmp_path: Path, module: str, function: str) -> str:
    """Where this Python took ``module``'s code from, the payload's zip first on its path as
    AnsiballZ puts it: zipimport names code it compiles from source by the archive's path,
    and bytecode keeps the name it was compiled with, the file's path inside the payload."""
    archive = tmp_path / "payload.zip"
    archive.write_bytes(zipped(files))
    found = subprocess.run(
        [sys.executable, "-c", WHERE_FROM.format(module=module, function=function), str(archive)],
        capture_output=True, text=True, check=True).stdout.strip()
    return "bytecode" if found == module.replace(".", "/") + ".py" else found.removeprefix(
        f"{archive}/")


def test_servers_nearby_get_payloads_with_bytecode_that_python_takes(
        project: Path, tmp_path: Path) -> None:
    run(project, nearby=True)

    files = stored_payload("*-bytecode/ansible.modules.stat-*")
    sources = [name for name in files if name.endswith(".py")]
    assert len(sources) > 20 and all(name + "c" in files for name in sources)
    # What a server does with it (this Python reads the same bytecode as the payload's).
    assert compiled_from(files, tmp_path, "ansible.module_utils.basic",
                         "AnsibleModule.__init__") == "bytecode"
    del files["ansible/module_utils/basic.pyc"]
    assert compiled_from(files, tmp_path, "ansible.module_utils.basic",
                         "AnsibleModule.__init__") == "ansible/module_utils/basic.py"
    run(project, nearby=True)  # and Ansible runs it, from the store


def test_servers_across_a_network_get_payloads_without_bytecode(project: Path) -> None:
    run(project)

    assert not [name for name in stored_payload("*/ansible.modules.stat-*") if name.endswith("c")]
    assert not list(module_store().glob("*-bytecode"))


def test_bytecode_another_python_cannot_read_is_passed_over(tmp_path: Path) -> None:
    files = unzipped(with_bytecode(base64.b64encode(zipped({"mod.py": SOURCE}))))
    assert compiled_from(files, tmp_path, "mod", "where") == "bytecode"

    files["mod.pyc"] = b"\x00\x00" + files["mod.pyc"][2:]  # another Python's magic number

    assert compiled_from(files, tmp_path, "mod", "where") == "mod.py"


def test_bytecode_of_another_source_is_passed_over(tmp_path: Path) -> None:
    files = unzipped(with_bytecode(base64.b64encode(zipped({"mod.py": SOURCE}))))

    files["mod.py"] = SOURCE.replace(b"1", b"2")  # the source changed after it was compiled

    assert compiled_from(files, tmp_path, "mod", "where") == "mod.py"
