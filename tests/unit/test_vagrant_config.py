"""The vagrant target without Vagrant: lab.yml's `vagrant:` section, the Vagrantfile's place,
machines.json, and how Vagrant's answers (and failures) become records and one-line errors.

A fake `vagrant` on PATH plays Vagrant's part: it logs each call, prints what a real one
prints for that verb, and fails when told to.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from fakedocker import Engine

from lab.access.keys import ensure_keypair
from lab.access.knownhosts import KnownHosts
from lab.config import LabConfig, load_config
from lab.docker.dockerengine import DockerEngine
from lab.errors import ConfigError, PrerequisiteError, TargetError
from lab.events import Event
from lab.scaffold import example_dir, init_lab
from lab.state import Liveness, ServerRecord
from lab.targets.base import ServerSpec, get_target
from lab.targets.vagrant import DEFAULT_BOXES, VagrantTarget, parse_ssh_config, vagrant_failure

REPO = Path(__file__).resolve().parents[2]


# the Vagrantfile ---------------------------------------------------------------------------


def test_repo_vagrantfile_is_the_example_one() -> None:
    """One Vagrantfile: the repository's is lab's own copy, which `lab init` hands out."""
    root = REPO / "Vagrantfile"
    assert root.read_bytes() == (example_dir() / "Vagrantfile").read_bytes()


def test_init_copies_the_vagrantfile(tmp_path: Path) -> None:
    init_lab(tmp_path / "demo")
    assert (tmp_path / "demo" / "Vagrantfile").read_bytes() == (
        example_dir() / "Vagrantfile").read_bytes()


def test_vagrantfile_reads_machines_json_beside_it_or_where_lab_says() -> None:
    text = (example_dir() / "Vagrantfile").read_text()
    assert 'ENV["LAB_VAGRANT_MACHINES"]' in text
    assert '".lab", "vagrant", "machines.json"' in text
    assert "127.0.0.1" in text and "--label" in text and '"--network"' in text
    # How containers start is lab's decision (lab/docker/runmode.py), not a copy in Ruby.
    assert 'lab.fetch("docker_args", [])' in text and "d.cmd = run_command" in text
    assert "/sys/fs/cgroup" not in text


def test_machines_json_keeps_the_run_mode_lab_chose(tmp_path: Path) -> None:
    """`lab up` writes how containers start; a later edit (destroy) keeps it for the
    Vagrantfile, without asking the engine again."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.yml").write_text("name: demo\ntarget: vagrant\nservers: {web: {}}\n")
    config = load_config(lab / "lab.yml")
    target = VagrantTarget(config, ensure_keypair(config.state_dir, comment="lab-demo"))
    run = {"docker_args": ["--cgroupns", "private"], "command": ["/bin/sh", "-c", "x"],
           "run_mode": "private-cgroup"}
    with target._editing(run) as machines:
        machines["web-1"] = {"name": "web-1"}
    with target._editing() as machines:
        machines.pop("web-1")
    written = json.loads(target.listing.read_text())
    assert {key: written[key] for key in run} == run
    assert written["machines"] == []


def test_vagrant_target_is_registered() -> None:
    assert get_target("vagrant") is VagrantTarget


# lab.yml's vagrant section ---------------------------------------------------------------------

BASE = "name: demo\nservers: {web: {}}\n"


def load(tmp_path: Path, extra: str) -> LabConfig:
    (tmp_path / "lab.yml").write_text(BASE + extra, encoding="utf-8")
    return load_config(tmp_path / "lab.yml")


def error(tmp_path: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    message = str(caught.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]  # without the file's path


def test_vagrant_section_is_optional_with_documented_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, "").vagrant
    assert settings.provider == "docker"
    assert settings.boxes == {}
    assert settings.box("virtualbox") == settings.box("libvirt") == "debian/bookworm64"
    assert DEFAULT_BOXES == {"virtualbox": "debian/bookworm64", "libvirt": "debian/bookworm64"}


def test_vagrant_section_as_written(tmp_path: Path) -> None:
    config = load(tmp_path, "target: vagrant\nvagrant:\n  provider: libvirt\n"
                            "  boxes: {libvirt: generic/debian12}\n")
    assert config.target == "vagrant"
    assert config.vagrant.provider == "libvirt"
    assert config.vagrant.box("libvirt") == "generic/debian12"
    assert config.vagrant.box("virtualbox") == "debian/bookworm64"


@pytest.mark.parametrize(("extra", "expected"), [
    ("vagrant: {provider: vmware}\n",
     "vagrant.provider: must be one of 'docker', 'virtualbox' or 'libvirt', got 'vmware'"),
    ("vagrant: {provder: docker}\n", "vagrant.provder: unknown field"),
    ("vagrant: docker\n", "vagrant: must be a mapping"),
    ("vagrant:\n", "vagrant: must be a mapping"),
    ("vagrant: {boxes: [debian/bookworm64]}\n", "vagrant.boxes: must be a mapping, got a list"),
    ("vagrant: {boxes: {docker: x}}\n",
     "vagrant.boxes: docker: the docker provider starts from `image:`, not a box"),
    ("vagrant: {boxes: {vmware: x}}\n", "vagrant.boxes: 'vmware': boxes are for virtualbox or"),
    ("vagrant: {boxes: {virtualbox: ''}}\n",
     "vagrant.boxes.virtualbox: must be a box name like 'debian/bookworm64', got ''"),
    ("vagrant: {boxes: {virtualbox: 'a box'}}\n", "vagrant.boxes.virtualbox: must be a box name"),
    ("vagrant: {boxes: {virtualbox: 3}}\n", "vagrant.boxes.virtualbox: must be a string, got 3"),
    ("vagrant: {boxes: {libvirt: }}\n", "vagrant.boxes.libvirt: must be a string"),
], ids=["provider", "unknown-field", "scalar", "empty", "boxes-list", "box-docker",
        "box-provider", "box-empty", "box-space", "box-int", "box-null"])
def test_vagrant_section_errors_name_the_field(tmp_path: Path, extra: str,
                                                expected: str) -> None:
    assert error(tmp_path, extra).startswith(expected)


# Vagrant's output ------------------------------------------------------------------------------

SSH_CONFIG = """Host web-1
  HostName 127.0.0.1
  User vagrant
  Port 2200
  IdentityFile "/lab/.vagrant/machines/web-1/docker/private_key"
  IdentityFile /home/u/.vagrant.d/insecure_private_key
  IdentitiesOnly yes

Host lb-1
  HostName 127.0.0.1
  User vagrant
  Port 2201
  IdentityFile /lab/.vagrant/machines/lb-1/docker/private_key
"""


def test_ssh_config_of_several_machines() -> None:
    hosts = parse_ssh_config(SSH_CONFIG)
    assert set(hosts) == {"web-1", "lb-1"}
    assert hosts["web-1"]["Port"] == "2200"
    # The first IdentityFile is the one ssh tries first: the key Vagrant made.
    assert hosts["web-1"]["IdentityFile"] == "/lab/.vagrant/machines/web-1/docker/private_key"
    assert hosts["lb-1"]["User"] == "vagrant"


PARALLEL_FAILURE = """==> web-1: Creating the container...
    web-1:   Name: demo-web-1
An error occurred while executing multiple actions in parallel.
Any errors that occurred are shown below.

An error occurred while executing the action on the 'web-2'
machine. Please handle this error then try again:

A Docker command executed by Vagrant didn't complete successfully!
The command run along with the output from the command is shown
below.

Command: ["docker", "run", "--name", "demo-web-2", "-d", "-h", "web-2", {:notify=>[:stdout]}]

Stderr: docker: Error response from daemon: port is already allocated.
"""


def test_failure_names_the_failing_machine_and_quotes_vagrant() -> None:
    message = vagrant_failure("up", ["web-1", "web-2"], PARALLEL_FAILURE)
    assert message.startswith("web-2: vagrant up failed: An error occurred")
    assert "port is already allocated" in message
    assert "Creating the container" not in message  # progress is not the error
    assert '"--name"' not in message  # the docker command line would crowd out its error
    assert "\n" not in message


def test_failure_without_a_machine_in_it_names_all_asked_for() -> None:
    message = vagrant_failure("destroy", ["web-1", "lb-1"], "Something went wrong.\n")
    assert message == "web-1, lb-1: vagrant destroy failed: Something went wrong."
    assert len(vagrant_failure("up", ["a"], "x" * 5000)) < 700


def test_failure_in_machine_readable_output_or_a_ruby_crash() -> None:
    readable = ("1,web-1,metadata,provider,docker\n"
                "1,,error-exit,Vagrant::Errors::MachineNotFound,The machine with the name "
                "'web-9' was not found configured for\\nthis Vagrant environment%!(VAGRANT_COMMA) "
                "sorry.\n")
    assert vagrant_failure("status", ["web-9"], readable) == (
        "web-9: vagrant status failed: The machine with the name 'web-9' was not found "
        "configured for this Vagrant environment, sorry.")
    crash = ("/usr/lib/vagrant/machine_index.rb:304:in `delete': No such file (Errno::ENOENT)\n"
             "\tfrom /usr/lib/vagrant/machine_index.rb:304:in `unlocked_release'\n"
             "\tfrom /usr/bin/vagrant:25:in `<main>'\n")
    message = vagrant_failure("status", ["web-1"], crash)
    assert message.endswith("No such file (Errno::ENOENT)") and "unlocked_release" not in message


# the target, with a fake vagrant ---------------------------------------------------------------

FAKE = r'''
import json, os, sys, time
args = sys.argv[1:]
started = time.time()
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "machines": os.environ.get("LAB_VAGRANT_MACHINES"),
                          "provider": os.environ.get("VAGRANT_DEFAULT_PROVIDER"),
                          "cwd": os.getcwd(), "started": started, "ended": time.time()}) + "\n")
verb = args[0]
listing = json.load(open(os.environ["LAB_VAGRANT_MACHINES"]))
names = [m["name"] for m in listing["machines"]]
if verb == os.environ.get("FAKE_FAIL"):
    print("==> web-1: Creating the machine...")
    print("The box 'debian/bookworm64' could not be found.", file=sys.stderr)
    sys.exit(1)
if verb == "up":
    for name in names:
        print(f"==> {name}: Machine booted and ready!")
elif verb == "ssh-config":
    host, user = os.environ.get("FAKE_SSH", "127.0.0.1 vagrant").split()
    for i, name in enumerate(names):
        print(f"Host {name}\n  HostName {host}\n  User {user}\n  Port {2200 + i}\n"
              f"  IdentityFile {os.getcwd()}/.vagrant/machines/{name}/virtualbox/private_key\n")
elif verb == "ssh":
    print("10.0.2.15 192.168.56.7 ")
elif verb == "status":
    states = json.loads(os.environ.get("FAKE_STATES", "{}"))
    for name in [n for n in names if states.get(n) != "absent"]:  # absent: Vagrant knows none
        print(f"1,{name},provider-name,virtualbox")
        print(f"1,{name},state,{states.get(name, 'running')}")
'''

FAKE_KEYSCAN = r'''
import sys
args = sys.argv[1:]
port, host = args[args.index("-p") + 1], args[-1]
print(f"[{host}]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKE{port}")
'''


@pytest.fixture
def fake_vagrant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `vagrant` on PATH that logs its calls (one JSON line each) to the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vagrant"
    script.write_text(f"#!{sys.executable}\n{FAKE}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    # ssh-keyscan too: the fake machines have no sshd (test_vagrant.py meets a real one).
    scan = bin_dir / "ssh-keyscan"
    scan.write_text(f"#!{sys.executable}\n{FAKE_KEYSCAN}")
    scan.chmod(scan.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "vagrant-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("LAB_LABELS", "lab.test-run=unit")

    def no_engine(self: VagrantTarget) -> None:
        raise PrerequisiteError("no Docker engine in unit tests")

    monkeypatch.setattr(VagrantTarget, "engine", property(no_engine))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def virtualbox_target(tmp_path: Path) -> VagrantTarget:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.yml").write_text("name: demo\ntarget: vagrant\nservers: {web: {count: 2}}\n"
                                 "vagrant: {provider: virtualbox}\n")
    config = load_config(lab / "lab.yml")
    return VagrantTarget(config, ensure_keypair(config.state_dir, comment="lab-demo"))


SPECS = [ServerSpec("web-1", "web", 1, "lab/base:bookworm", ports=[80]),
         ServerSpec("lb-1", "lb", 1, "lab/base:bookworm", fixed_ports={80: 18080})]


def test_create_lists_machines_then_brings_them_up_in_one_call(
        tmp_path: Path, fake_vagrant: Path) -> None:
    target = virtualbox_target(tmp_path)
    events = []
    records = target.create(SPECS, events.append)
    listing = json.loads(target.listing.read_text())
    assert listing["lab"] == "demo" and listing["provider"] == "virtualbox"
    assert listing["box"] == "debian/bookworm64"
    web = listing["machines"][0]
    assert web["name"] == "web-1" and web["role"] == "web" and web["generation"] == 1
    assert web["labels"]["lab.name"] == "demo" and web["labels"]["lab.server"] == "web-1"
    assert web["labels"]["lab.test-run"] == "unit"  # LAB_LABELS reach Vagrant's machines
    assert web["ports"][0]["guest"] == 80 and web["ports"][0]["host"] > 0
    assert listing["machines"][1]["ports"] == [{"guest": 80, "host": 18080, "fixed": True}]
    up = [c for c in calls(fake_vagrant) if c["args"][0] == "up"]
    assert len(up) == 1 and "/^(?:web\\-1|lb\\-1)$/" in up[0]["args"]
    assert "--provider=virtualbox" in up[0]["args"]
    assert up[0]["cwd"] == str(target.root) and up[0]["provider"] == "virtualbox"
    assert up[0]["machines"] == str(target.listing)
    assert (target.root / "Vagrantfile").is_file()  # so plain `vagrant` works there too
    web_record = records[0]
    assert (web_record.name, web_record.target, web_record.ssh_user) == ("web-1", "vagrant",
                                                                        "vagrant")
    assert web_record.ssh_port == 2200
    assert web_record.ssh_key.endswith(".vagrant/machines/web-1/virtualbox/private_key")
    assert web_record.address == "192.168.56.7"  # the private network, not NAT's
    assert web_record.ports == {80: web["ports"][0]["host"]}
    assert records[1].ports == {80: 18080}
    assert any(e.kind == "build-log" and "Machine booted" in e.message for e in events)
    # Vagrant made their host keys: the ones met first are recorded, to be checked from now on
    known = {e.server: e for e in KnownHosts(target.key.known_hosts).entries()}
    assert known["web-1"].pattern == "[127.0.0.1]:2200"
    assert known["web-1"].key == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKE2200"
    assert known["lb-1"].pattern == "[127.0.0.1]:2201"


def test_failing_up_is_a_target_error_in_vagrants_words(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "up")
    target = virtualbox_target(tmp_path)
    with pytest.raises(TargetError) as caught:
        target.create(SPECS)
    assert str(caught.value) == ("web-1, lb-1: vagrant up failed: The box 'debian/bookworm64' "
                                 "could not be found.")


def test_list_joins_vagrant_status_with_machines_json(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = virtualbox_target(tmp_path)
    target.create(SPECS)
    monkeypatch.setenv("FAKE_STATES", json.dumps({"web-1": "poweroff"}))
    assert {s.name: s.status for s in target.list()} == {"web-1": "dead", "lb-1": "running"}
    monkeypatch.setenv("FAKE_STATES", json.dumps({"web-1": "not_created"}))
    assert [s.name for s in target.list()] == ["lb-1"]  # missing, as fleet will say


def test_a_vm_is_listed_as_machines_json_and_vagrant_say(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = virtualbox_target(tmp_path)
    monkeypatch.setenv("FAKE_SSH", "127.0.0.3 admin")  # where and as whom Vagrant says
    target.create([replace(SPECS[0], generation=2), SPECS[1]])
    listing = json.loads(target.listing.read_text())
    web = next(m for m in listing["machines"] if m["name"] == "web-1")
    records = {r.name: r for r in target.list()}
    assert records["web-1"] == ServerRecord(
        name="web-1", role="web", generation=2, address="192.168.56.7", target="vagrant",
        ssh_host="127.0.0.3", ssh_port=2200, ssh_user="admin", ssh_key=web["ssh"]["key"],
        ports_host="127.0.0.1", ports={80: web["ports"][0]["host"]}, image=web["image"],
        liveness=Liveness.RUNNING, created=web["created"])
    assert (records["lb-1"].ports, records["lb-1"].ssh_port) == ({80: 18080}, 2201)
    # A machine whose create was cut short (no SSH yet), and one Vagrant does not know.
    del web["ssh"], web["address"]
    target.listing.write_text(json.dumps(listing))
    monkeypatch.setenv("FAKE_STATES", json.dumps({"lb-1": "absent"}))
    monkeypatch.setenv("FAKE_FAIL", "status")
    with pytest.raises(TargetError, match=r"^web-1, lb-1: vagrant status failed: The box"):
        target.list()
    monkeypatch.delenv("FAKE_FAIL")
    [unfinished] = target.list()
    assert (unfinished.name, unfinished.address, unfinished.ssh_host, unfinished.ssh_port,
            unfinished.ssh_user, unfinished.ssh_key) == ("web-1", "", "127.0.0.1", 0, "vagrant", "")


def test_one_vagrant_command_at_a_time(tmp_path: Path, fake_vagrant: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Vagrant 2.3 breaks under concurrent commands on the same machines, and a release
    lists the lab from two threads (its probe loop, and verify)."""
    target = virtualbox_target(tmp_path)
    target.create(SPECS)
    monkeypatch.setenv("FAKE_SLEEP", "0.3")
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: target.list(), range(3)))
    spans = sorted((c["started"], c["ended"]) for c in calls(fake_vagrant)
                   if c["args"][0] == "status")
    assert len(spans) == 3
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(spans))


def test_list_of_a_lab_never_up_asks_vagrant_nothing(tmp_path: Path, fake_vagrant: Path) -> None:
    assert virtualbox_target(tmp_path).list() == []
    assert calls(fake_vagrant) == []


def test_destroy_forgets_what_vagrant_destroyed(tmp_path: Path, fake_vagrant: Path) -> None:
    target = virtualbox_target(tmp_path)
    target.create(SPECS)
    assert target.destroy(["web-1"]) == ["web-1"]
    assert [m["name"] for m in json.loads(target.listing.read_text())["machines"]] == ["lb-1"]
    assert target.destroy(None) == ["lb-1"]
    assert json.loads(target.listing.read_text())["machines"] == []
    destroys = [c["args"] for c in calls(fake_vagrant) if c["args"][0] == "destroy"]
    assert destroys == [["destroy", "web-1", "--force"], ["destroy", "lb-1", "--force"]]


def test_a_vm_vagrant_could_not_destroy_stays_listed(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = virtualbox_target(tmp_path)
    target.create(SPECS)
    monkeypatch.setenv("FAKE_FAIL", "destroy")
    with pytest.raises(TargetError, match="vagrant destroy failed"):
        target.destroy(None)
    assert len(json.loads(target.listing.read_text())["machines"]) == 2


def test_without_vagrant_the_error_says_how_to_install_it(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = virtualbox_target(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(PrerequisiteError, match="apt-get install --no-install-recommends"):
        target.create(SPECS)


def docker_provider(target: VagrantTarget, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """``target`` as its docker provider sees it: machines.json as create wrote it, the
    lab's containers in an in-memory engine (returned, to put containers in)."""
    fake = Engine()
    engine = DockerEngine(target.config.name, fake)  # type: ignore[arg-type]
    monkeypatch.setattr(VagrantTarget, "engine", property(lambda self: engine))
    target.provider = "docker"
    return fake


def test_the_docker_provider_joins_machines_with_their_containers_and_others_are_dead(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = virtualbox_target(tmp_path)
    target.create(SPECS)
    fake = docker_provider(target, monkeypatch)
    web = fake.add("demo", "web-1", labels={"lab.target": "vagrant"})
    web.attrs = {"Config": {"Image": "lab/base"}, "NetworkSettings": {
        "Networks": {"lab-demo": {"IPAddress": "172.30.0.9"}},
        "Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}}}
    fake.add("demo", "lb-1")
    fake.add("demo", "web-9")  # an older run's, running still: Vagrant knows nothing of it
    fake.add("demo2", "web-1")  # another lab's
    listed = json.loads(target.listing.read_text())["machines"]
    machine = next(m for m in listed if m["name"] == "web-1")
    records = {r.name: r for r in target.list()}
    assert {n: r.status for n, r in records.items()} == {
        "web-1": "running", "lb-1": "running", "web-9": "dead"}
    web1 = records["web-1"]
    # Where to reach it from the container as the engine shows it now; the rest from
    # machines.json (SSH as Vagrant set it up, the box, when lab made it).
    assert (web1.address, web1.ports) == ("172.30.0.9", {80: 32768})
    assert (web1.target, web1.ssh_user, web1.ssh_key, web1.image, web1.created) == (
        "vagrant", "vagrant", machine["ssh"]["key"], machine["image"], machine["created"])
    assert records["web-9"].target == "vagrant"


def test_the_docker_provider_removes_containers_vagrant_could_not_and_no_other_labs(
        tmp_path: Path, fake_vagrant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = virtualbox_target(tmp_path)
    target.create(SPECS)
    fake = docker_provider(target, monkeypatch)
    for server in ("web-1", "lb-1"):
        fake.add("demo", server)
    fake.add("demo", "web-9", status="exited")
    fake.add("demo2", "web-1")
    monkeypatch.setenv("FAKE_FAIL", "destroy")
    events: list[Event] = []
    assert target.destroy(["web-1"], events.append) == ["web-1"]
    [warning, removed] = events
    assert warning.kind == "warning" and warning.message.startswith(
        "web-1: vagrant destroy failed") and warning.message.endswith(
        "; removing its containers by label instead")
    assert (removed.kind, removed.message, removed.subject) == (
        "destroyed", "web-1 removed", "web-1")
    assert sorted(b.name for b in fake.boxes) == ["demo-lb-1", "demo-web-9", "demo2-web-1"]
    assert [m["name"] for m in json.loads(target.listing.read_text())["machines"]] == ["lb-1"]
    assert target.destroy(None) == ["lb-1", "web-9"]
    assert [b.name for b in fake.boxes] == ["demo2-web-1"]


def test_a_machines_json_that_is_not_json_says_what_to_do(
        tmp_path: Path, fake_vagrant: Path) -> None:
    target = virtualbox_target(tmp_path)
    target.listing.parent.mkdir(parents=True, exist_ok=True)
    target.listing.write_text('{"machines": [', encoding="utf-8")
    with pytest.raises(TargetError) as caught:
        target.list()
    assert str(caught.value).startswith(f"{target.listing}: not valid JSON (")
    assert str(caught.value).endswith(
        "); lab writes this file, remove it and run `lab destroy`")
