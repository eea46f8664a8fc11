"""Vagrant target: each server is a Vagrant machine, so Vagrant's own commands work on it too.

The lab's Vagrantfile (``lab init`` writes it) lists no machines: it reads
``.lab/vagrant/machines.json``, which this module writes before every ``vagrant up`` and after
every ``vagrant destroy``. Plain ``vagrant status``, ``vagrant ssh web-1`` and ``vagrant
destroy`` in the lab directory therefore act on the machines lab manages, and lab.yml stays
the one description of the lab.

The docker provider (lab's base image, one network per lab, labels as the docker target sets
them) runs anywhere Docker does; virtualbox and libvirt run the same lab on VMs from a box.
Above this module only :class:`ServerRecord` is seen: the SSH endpoint is Vagrant's (user
vagrant, the key Vagrant generated for the machine), which the inventory, ``lab ssh`` and
verify already honour, so provisioning and tests need nothing Vagrant-specific. Vagrant makes
each machine's host key, so lab records the one it meets first and checks it from then on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import vagrant
from pydantic import AfterValidator, Field, field_validator

from lab.access.knownhosts import scan_host_key
from lab.config import LabConfig, TargetSettings
from lab.docker.cache import use_package_cache
from lab.docker.dockerengine import PUBLISH_ADDRESS, DockerEngine
from lab.docker.engine import docker_client
from lab.errors import LabError, PrerequisiteError, TargetError, UsageError
from lab.events import Event, Listener, ignore
from lab.prerequisites import Check
from lab.state import Liveness, ServerRecord
from lab.targets.base import LABEL_PREFIX, ServerSpec, Target, labels_for

T = TypeVar("T")
DATA = files("lab") / "data"
# How long Vagrant waits for SSH: a container boots in seconds, a VM from a box in minutes.
BOOT_TIMEOUT = {"docker": 60, "virtualbox": 300, "libvirt": 300}
# Vagrant states as lab statuses; any other state of a created machine (stopped, poweroff,
# aborted, ...) is dead, and a machine Vagrant calls not created is missing.
STATUS = {"running": Liveness.RUNNING, "preparing": Liveness.CREATING}
NOT_CREATED = {"not_created", "not created"}
RUN_KEYS = ("docker_args", "command", "run_mode")  # machines.json: how containers start
INSTALL = "vagrant not found: install it (Debian: apt-get install --no-install-recommends vagrant)"


# Boxes Vagrant starts from when its provider runs virtual machines; the docker provider uses
# lab.yml's `image:` instead, so a baked image works with `lab release --from-image`.
DEFAULT_BOXES = {"virtualbox": "debian/bookworm64", "libvirt": "debian/bookworm64"}


def _box_name(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"must be a box name like 'debian/bookworm64', got {value!r}")
    return value


BoxName = Annotated[str, Field(strict=True), AfterValidator(_box_name)]


class VagrantSettings(TargetSettings):
    """``vagrant:`` in lab.yml: which Vagrant provider runs the machines (target vagrant)."""

    provider: Literal["docker", "virtualbox", "libvirt"] = "docker"
    boxes: dict[str, BoxName] = Field(default_factory=dict)  # provider -> box

    @field_validator("boxes")
    @classmethod
    def _box_providers(cls, boxes: dict[str, str]) -> dict[str, str]:
        for provider in boxes:
            if provider == "docker":
                raise ValueError("docker: the docker provider starts from `image:`, not a box")
            if provider not in DEFAULT_BOXES:
                raise ValueError(f"{provider!r}: boxes are for {' or '.join(DEFAULT_BOXES)}")
        return boxes

    def box(self, provider: str) -> str:
        """The box for ``provider``: lab.yml's, else the documented default."""
        return self.boxes.get(provider) or DEFAULT_BOXES[provider]


class VagrantTarget(Target):
    """Servers as Vagrant machines of the lab directory, through python-vagrant.

    Vagrant is the source of truth for what exists (``vagrant status``); machines.json says
    what lab asked for (role, generation, ports, labels) and where to reach it.
    """

    name = "vagrant"
    settings_model = VagrantSettings

    def __init__(self, config, key) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, key)
        self.vagrant = cast(VagrantSettings, config.settings(self.name))
        self.provider: str = self.vagrant.provider
        self.root: Path = config.directory
        self.listing: Path = config.state_dir / "vagrant" / "machines.json"
        self._engine: DockerEngine | None = None

    @property
    def engine(self) -> DockerEngine:
        """The Docker engine, shared with the docker target: the docker provider's containers
        are found, inspected, baked and (when Vagrant cannot) removed exactly as that
        target's."""
        if self._engine is None:
            self._engine = DockerEngine(self.config.name)
        return self._engine

    # create --------------------------------------------------------------------------------

    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        if not specs:
            return []
        names = [s.name for s in specs]
        _require_vagrant()
        run: dict[str, Any] = {}
        if self.provider == "docker":
            for image in {s.image for s in specs}:
                self.engine.require_image(image)
            # The same decision as the docker target's: how systemd boots on this engine.
            mode = self.engine.run_mode
            run = {"docker_args": mode.cli_args(), "command": mode.command,
                   "run_mode": mode.name}
            self.engine.ensure_network()  # before `vagrant up`: create_args names it
        self._ensure_vagrantfile(on_event)
        with self._editing(run) as machines:
            machines.update({s.name: self._entry(s) for s in specs})
        on_event(Event("create", f"vagrant up {' '.join(names)} ({self.provider} provider)"))

        def up(client: vagrant.Vagrant) -> None:
            for line in client.up(vm_name=_pattern(names), provider=self.provider,
                                  stream_output=True):
                if line.strip():
                    on_event(Event("build-log", line.rstrip(), subject=_machine_of(line)))

        try:
            self._call("up", names, up)
        except TargetError as exc:
            raise TargetError(f"{exc}{self._boot_reports(names)}") from None
        if self.provider == "docker":
            use_package_cache(self.engine.client, self.network_name,
                              [self.engine.container_name(n) for n in names], on_event)
        endpoints = self._ssh_endpoints(names)
        self._trust_first_contact(endpoints)
        addresses: dict[str, str] = {}
        if self.provider != "docker":  # a container's address comes from the engine
            with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
                addresses = dict(zip(names, pool.map(self._guest_address, names), strict=True))
        with self._editing() as machines:
            for name in names:
                machines[name]["ssh"] = endpoints[name]
                machines[name]["address"] = addresses.get(name, "")
            made = {name: machines[name] for name in names}
        records = self._records(made, dict.fromkeys(names, "running"), orphans=False)
        for record in records:
            on_event(Event("created", f"{record.name} up ({self.provider}, ssh port "
                                      f"{record.ssh_port})", subject=record.name))
        return records

    def _entry(self, spec: ServerSpec) -> dict[str, Any]:
        """One machine as the Vagrantfile reads it from machines.json."""
        # The docker provider publishes on a port Docker picks; a VM's forward needs a number.
        ports = [{"guest": p, "host": None if self.provider == "docker" else _free_port(),
                  "fixed": False} for p in spec.ports]
        ports += [{"guest": g, "host": h, "fixed": True} for g, h in spec.fixed_ports.items()]
        image = spec.image if self.provider == "docker" else self.vagrant.box(
            self.provider)
        labels = labels_for(self.config.name, spec) | {f"{LABEL_PREFIX}image": image,
                                                      f"{LABEL_PREFIX}target": self.name}
        return {"name": spec.name, "role": spec.role, "generation": spec.generation,
                "image": image, "ports": ports, "labels": labels, "created": time.time()}

    def _boot_reports(self, names: list[str]) -> str:
        """For the docker provider, each machine whose container stopped: its console and the
        engine (Vagrant's own message only says that SSH never answered)."""
        if self.provider != "docker":
            return ""
        reports = []
        for name in names:
            failure = self.engine.boot_failure(name)
            if failure:
                reports.append(f"\n  {name}: {failure}{self.engine.boot_report(name)}")
        return "".join(reports)

    def _ssh_endpoints(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Where each machine takes SSH, from `vagrant ssh-config`: Vagrant replaces its
        insecure key on first boot, so the key is the one it made for that machine."""
        hosts = parse_ssh_config(self._call(
            "ssh-config", names, lambda c: c.ssh_config(vm_name=_pattern(names))))
        missing = [n for n in names if n not in hosts]
        if missing:
            raise TargetError(f"{', '.join(missing)}: `vagrant ssh-config` gave no endpoint")
        return {n: {"host": hosts[n].get("HostName", PUBLISH_ADDRESS),
                    "port": int(hosts[n].get("Port", 22)),
                    "user": hosts[n].get("User", "vagrant"),
                    "key": hosts[n].get("IdentityFile", "")} for n in names}

    def _trust_first_contact(self, endpoints: dict[str, dict[str, Any]]) -> None:
        """Record the host key each new machine shows now, to be checked strictly from then
        on: Vagrant makes a machine's host key itself (a box's first boot, the image's sshd),
        so lab cannot hand it one, and trusts what it meets first, as ssh's accept-new would.
        """
        for name, ssh in endpoints.items():
            self.known_hosts.trust(name, ssh["host"], ssh["port"],
                                   scan_host_key(ssh["host"], ssh["port"]))

    def _guest_address(self, name: str) -> str:
        """The address other machines of the lab (the balancer) reach this VM on."""
        out = self._call("ssh", [name], lambda c: c.ssh(vm_name=name, command="hostname -I"))
        found = out.split()
        # VirtualBox: NAT first (10.0.2.15 on every VM), then the private network. libvirt:
        # the management network, shared by every VM on the host, comes first.
        if not found:
            return ""
        return found[-1] if self.provider == "virtualbox" else found[0]

    def _ensure_vagrantfile(self, on_event: Listener) -> None:
        """Labs made before the vagrant target have no Vagrantfile: give them lab's."""
        path = self.root / "Vagrantfile"
        if not path.exists():
            shutil.copyfile(str(DATA / "example" / "Vagrantfile"), path)
            on_event(Event("create", f"wrote {path} (reads .lab/vagrant/machines.json)"))

    # list / wait ---------------------------------------------------------------------------

    def list(self) -> list[ServerRecord]:
        """Machines lab listed, in the state Vagrant sees them, plus any container with the
        lab's label that Vagrant does not know (found dead, so `lab up` replaces it)."""
        machines = self._read()
        states: dict[str, str] = {}
        if machines:
            statuses = self._call("status", list(machines), lambda c: c.status())
            states = {s.name: s.state for s in statuses}
        return self._records(machines, states)

    def _records(self, machines: dict[str, dict[str, Any]], states: dict[str, str],
                 orphans: bool = True) -> list[ServerRecord]:
        containers = self.engine.by_server() if self.provider == "docker" else {}
        records = []
        for name, machine in machines.items():
            state = states.get(name, "not_created")
            if state in NOT_CREATED:
                continue
            container = containers.pop(name, None)
            records.append(self._record(machine, STATUS.get(state, Liveness.DEAD), container))
        if orphans:
            records += [replace(self.engine.record(c, self.name), liveness=Liveness.DEAD)
                        for c in containers.values()]
        return records

    def _record(self, machine: dict[str, Any], liveness: Liveness,
                container: Any) -> ServerRecord:
        ssh = machine.get("ssh", {})
        common = {"target": self.name, "ssh_user": ssh.get("user", "vagrant"),
                  "ssh_key": ssh.get("key", ""), "image": machine["image"],
                  "liveness": liveness, "created": machine["created"]}
        if container is not None:  # address on the lab network, ports as published now
            return replace(self.engine.record(container, self.name), **common)
        return ServerRecord(
            name=machine["name"], role=machine["role"], generation=machine["generation"],
            address=machine.get("address", ""), ssh_host=ssh.get("host", PUBLISH_ADDRESS),
            ssh_port=int(ssh.get("port", 0)), ports_host=PUBLISH_ADDRESS,
            ports={p["guest"]: p["host"] for p in machine["ports"] if p["host"]}, **common)

    # destroy -------------------------------------------------------------------------------

    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        machines = self._read()
        doomed = [n for n in machines if names is None or n in names]
        removed = set()
        if doomed:
            try:
                self._call("destroy", doomed, lambda c: c.destroy(vm_name=_pattern(doomed)))
                removed.update(doomed)
            except LabError as exc:
                if self.provider != "docker":  # a VM only Vagrant can remove: keep it listed
                    raise
                on_event(Event("warning", f"{exc}; removing its containers by label instead"))
            with self._editing() as listed:
                for name in doomed:
                    listed.pop(name, None)
        # Whatever Vagrant did not remove (no vagrant, a lost .vagrant/, an older lab's
        # containers), and with names None the lab's network.
        with contextlib.suppress(PrerequisiteError):
            if self.provider == "docker" or names is None:
                removed.update(self.engine.remove(names))
        for name in sorted(removed):
            on_event(Event("destroyed", f"{name} removed", subject=name))
        return sorted(removed)

    def bake(self, server: ServerRecord, tag: str, labels: dict[str, str]) -> str:
        if self.provider != "docker":
            raise UsageError(f"lab bake needs the docker provider; with {self.provider}, "
                             f"package the machine with `vagrant package {server.name}`")
        container = self.engine.client.containers.get(self.engine.container_name(server.name))
        # Vagrant replaced its insecure key with the machine's own; a machine started from the
        # image must accept the insecure one again, or Vagrant's first connection fails.
        container.exec_run(["sh", "-c", 'printf "%s\\n" "$KEY" > /home/vagrant/.ssh/'
                            "authorized_keys"],
                           environment={"KEY": (DATA / "image" / "vagrant.pub").read_text()})
        return self.engine.commit(server.name, tag, labels)

    def boot_failure(self, server: ServerRecord) -> str | None:
        return self.engine.boot_failure(server.name) if self.provider == "docker" else None

    def boot_report(self, server: ServerRecord) -> str:
        return self.engine.boot_report(server.name) if self.provider == "docker" else ""

    def has_image(self, image: str) -> bool:
        return self.engine.has_image(image) if self.provider == "docker" else True

    def remove_images(self) -> list[str]:
        if self.provider != "docker":
            return []
        return self.engine.remove_images()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    # what the target needs -----------------------------------------------------------------

    @classmethod
    def prerequisites(cls) -> list[Check]:
        """Vagrant (for `target: vagrant`), its version, and which of its providers work
        here; none required, as a lab may never use this target."""
        return vagrant_checks()

    @classmethod
    def prepare_image(cls, config: LabConfig | None, rebuild: bool = False,
                      on_event: Listener = ignore) -> str | None:
        """The docker provider starts from lab's base image, built as the docker target
        builds it; a VM provider starts from a box, which Vagrant fetches on `vagrant up`."""
        from lab.targets.docker import DockerTarget

        settings = cast(VagrantSettings, config.settings(cls.name)) if config else (
            VagrantSettings())
        if settings.provider == "docker":
            return DockerTarget.prepare_image(config, rebuild, on_event)
        on_event(Event("image", f"the {settings.provider} provider starts from box "
                                f"{settings.box(settings.provider)}: Vagrant fetches it on "
                                "`lab up`"))
        return None

    # vagrant and machines.json ---------------------------------------------------------------

    def _call(self, verb: str, names: list[str], action: Callable[[vagrant.Vagrant], T]) -> T:
        """Run a python-vagrant call in the lab directory; a failure becomes a TargetError
        that names the machines and says what Vagrant said."""
        _require_vagrant()
        env = os.environ | {
            "VAGRANT_DEFAULT_PROVIDER": self.provider,
            "VAGRANT_CHECKPOINT_DISABLE": "1",  # no version check over the network
            "LAB_VAGRANT_MACHINES": str(self.listing),
        }
        if self.config.state_dir != self.root / ".lab":  # `lab test`'s lab beside this one
            env["VAGRANT_DOTFILE_PATH"] = str(self.listing.parent / "dotfile")
        self.listing.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as output, open(self.listing.with_name("vagrant.lock"),
                                                      "w") as lock:
            # One vagrant command at a time per lab, across threads (a release verifies while
            # it watches) and processes: Vagrant 2.3's machine index breaks under concurrent
            # commands on the same machines (a lock file deleted under another's feet).
            fcntl.flock(lock, fcntl.LOCK_EX)
            client = vagrant.Vagrant(root=str(self.root), env=env,
                                     out_cm=lambda: contextlib.nullcontext(output),
                                     err_cm=lambda: contextlib.nullcontext(output))
            try:
                return action(client)
            except subprocess.CalledProcessError as exc:
                output.seek(0)
                text = output.read() + (exc.output or b"")  # captured stdout, when there is
                raise TargetError(vagrant_failure(verb, names, text.decode(errors="replace"))
                                  ) from None

    def _read(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self._read_listing().get("machines", [])}

    def _read_listing(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.listing.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise TargetError(f"{self.listing}: not valid JSON ({exc}); lab writes this file, "
                              "remove it and run `lab destroy`") from None

    @contextlib.contextmanager
    def _editing(self, run: dict[str, Any] | None = None) -> Iterator[dict[str, dict[str, Any]]]:
        """machines.json, read and written back under a lock: two lab commands may run.

        ``run`` is how the docker provider starts containers (``docker_args``, ``command``,
        from :mod:`lab.docker.runmode`); without it, what the file said is kept.
        """
        self.listing.parent.mkdir(parents=True, exist_ok=True)
        with open(self.listing.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            listing = self._read_listing()
            machines = {m["name"]: m for m in listing.get("machines", [])}
            yield machines
            data = {
                "comment": "Written by lab (lab up, release, destroy); read by the Vagrantfile",
                "lab": self.config.name, "provider": self.provider,
                "box": None if self.provider == "docker" else self.vagrant.box(
                    self.provider),
                "network": self.network_name, "boot_timeout": BOOT_TIMEOUT[self.provider],
                **{key: listing[key] for key in RUN_KEYS if key in listing},
                **(run or {}),
                "machines": list(machines.values()),
            }
            partial = self.listing.with_suffix(".tmp")
            partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            partial.replace(self.listing)  # readers (the Vagrantfile) never see half a file

    @property
    def network_name(self) -> str:
        return f"lab-{self.config.name}"


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """`vagrant ssh-config` output for several machines: Host name -> its settings (the
    first value of each, as ssh uses it)."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if not key or key.startswith("#"):
            continue
        if key == "Host":
            current = hosts.setdefault(value.strip(), {})
        elif current is not None:
            current.setdefault(key, value.strip().strip('"'))
    return hosts


def vagrant_failure(verb: str, names: list[str], output: str) -> str:
    """One line: which machines, which command, and Vagrant's own error message."""
    failed = list(dict.fromkeys(re.findall(r"on the '([^']+)'\s+machine", output))) or names
    lines = []
    for line in output.splitlines():
        row = line.split(",", 4)
        if len(row) >= 4 and row[0].isdigit():  # --machine-readable: only errors are news
            if row[2] == "error-exit":
                lines.append(row[-1].replace("%!(VAGRANT_COMMA)", ",").replace("\\n", " "))
        elif line.strip() and not re.match(r"(==> |\s+[\w.-]+: |\s+from )", line):
            lines.append(line)  # not progress, not a Ruby backtrace's frames
    message = " ".join(" ".join(lines).split()) or "no message (see `vagrant status`)"
    # A failed docker command: its argv says less than its stderr, which it would crowd out.
    message = re.sub(r"Command: \[.*?\] (?=Stderr:)", "", message)
    if len(message) > 600:
        message = message[:597] + "..."
    return f"{', '.join(failed)}: vagrant {verb} failed: {message}"


def _pattern(names: list[str]) -> str:
    """One name, or a Vagrant regex naming several, so one vagrant command does them all
    (the docker provider brings machines up in parallel)."""
    if len(names) == 1:
        return names[0]
    return "/^(?:" + "|".join(re.escape(n) for n in names) + ")$/"


def _machine_of(line: str) -> str | None:
    match = re.match(r"(?:==> |\s+)([\w.-]+): ", line)
    return match.group(1) if match else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((PUBLISH_ADDRESS, 0))
        return int(sock.getsockname()[1])


def _require_vagrant() -> None:
    if shutil.which("vagrant") is None:
        raise PrerequisiteError(f"{INSTALL}; `lab doctor` checks the rest")


def vagrant_checks() -> list[Check]:
    """Vagrant's version and which of its providers work here (`lab doctor`)."""
    if shutil.which("vagrant") is None:
        return [Check("vagrant (optional)", False, "not found",
                      "apt-get install -y --no-install-recommends vagrant", required=False)]
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
