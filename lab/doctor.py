"""``lab doctor``: each prerequisite, whether it is there, and what to do when it is not."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from lab.config import DEFAULT_IMAGE
from lab.engine import EngineFacts, engine_facts
from lab.errors import LabError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def run_checks() -> list[Check]:
    return [_python(), *_docker(), _binary("ssh", "OpenSSH client", "apt-get install -y "
                                           "openssh-client"), _ansible(), *_vagrant()]


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", sys.version_info >= (3, 11), version, "install Python 3.11 or newer")


def _docker() -> list[Check]:
    from lab.engine import docker_client
    from lab.image import image_is_current

    try:
        client = docker_client(timeout=10)
    except LabError as exc:
        fix = ("run `make setup` (installs docker.io and starts dockerd)" if os.geteuid() == 0
               else "install Docker Engine or Docker Desktop and start it")
        return [Check("docker engine", False, str(exc).split(";")[0], fix)]
    facts = engine_facts(client)
    current = image_is_current(client, DEFAULT_IMAGE)
    image = Check("base image", current, DEFAULT_IMAGE if current else f"{DEFAULT_IMAGE} missing "
                  "or out of date", "run `lab image build`")
    return [Check("docker engine", True, facts.describe()), _run_mode(facts), image]


def _run_mode(facts: EngineFacts) -> Check:
    """How servers will run on this engine so that systemd boots, or why they cannot."""
    from lab.targets.runmode import choose

    try:
        mode = choose(facts)
    except LabError as exc:
        return Check("server run mode", False, "none works on this engine", str(exc))
    detail = "; ".join([f"{mode.name}: {mode.why}", *mode.notes])
    return Check("server run mode", True, detail)


def _binary(command: str, what: str, fix: str, required: bool = True) -> Check:
    path = shutil.which(command)
    return Check(what, path is not None, path or "not found", fix, required)


def _ansible() -> Check:
    try:
        import ansible_runner  # noqa: F401
        from ansible.release import __version__
    except ImportError:
        return Check("ansible", False, "not installed", "pip install ansible-core ansible-runner")
    return Check("ansible", True, f"ansible-core {__version__}")


def _vagrant() -> list[Check]:
    """Vagrant (for `target: vagrant`), its version, and which of its providers work here."""
    if shutil.which("vagrant") is None:
        return [Check("vagrant (optional)", False, "not found",
                      "apt-get install -y --no-install-recommends vagrant", required=False)]
    import tempfile

    import vagrant

    # An empty directory: no Vagrantfile is loaded, and no version check goes over the network.
    with tempfile.TemporaryDirectory() as empty:
        client = vagrant.Vagrant(root=empty, env=os.environ | {"VAGRANT_CHECKPOINT_DISABLE": "1"})
        try:
            version = client.version()
            plugins = {p.name for p in client.plugin_list()}
        except Exception as exc:  # CalledProcessError, OSError, or python-vagrant's own
            return [Check("vagrant (optional)", False, f"does not run: {exc}",
                          "reinstall vagrant", required=False)]
    try:
        from lab.engine import docker_client

        docker_client(timeout=10).close()
        engine = True
    except LabError:
        engine = False
    providers = [
        ("docker", engine, "the Docker engine answers" if engine else "no Docker engine",
         "start Docker (see `docker engine` above)"),
        ("virtualbox", shutil.which("VBoxManage") is not None,
         "VBoxManage on PATH" if shutil.which("VBoxManage") else "VBoxManage not found",
         "install VirtualBox"),
        ("libvirt", "vagrant-libvirt" in plugins,
         "plugin vagrant-libvirt" if "vagrant-libvirt" in plugins else "plugin not installed",
         "apt-get install vagrant-libvirt (or `vagrant plugin install vagrant-libvirt`)"),
    ]
    return [Check("vagrant (optional)", True, f"Vagrant {version}", required=False)] + [
        Check(f"vagrant provider {name}", ok, detail, fix, required=False)
        for name, ok, detail, fix in providers
    ]
