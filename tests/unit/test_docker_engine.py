"""One lab's containers, network and images (lab/docker/dockerengine.py) on an in-memory
engine that filters labels and names as Docker does: what is found, removed and recorded, and
that nothing of another lab is ever touched. The same engine code runs against a real Docker
in tests/integration/test_lab_docker.py."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound
from fakedocker import Box, Engine, Image, Net

from lab.docker.dockerengine import DockerEngine
from lab.errors import PrerequisiteError
from lab.events import Event
from lab.state import Liveness


@pytest.fixture
def engine() -> Engine:
    """Two labs, `shop` and `shop2` (a name that starts like the other), side by side."""
    engine = Engine()
    for lab in ("shop", "shop2"):
        engine.add(lab, "web-1")
        engine.add(lab, "web-2", status="exited")
        engine.nets.append(Net(f"lab-{lab}", {"lab.name": lab}, engine))
    return engine


def lab(engine: Engine, name: str = "shop") -> DockerEngine:
    return DockerEngine(name, client=engine)  # type: ignore[arg-type]


def left(engine: Engine) -> list[str]:
    return sorted(b.name for b in engine.boxes) + sorted(n.name for n in engine.nets)


def test_a_lab_finds_its_own_containers_running_or_not(engine: Engine) -> None:
    assert sorted(lab(engine).by_server()) == ["web-1", "web-2"]
    assert {c.name for c in lab(engine).containers()} == {"shop-web-1", "shop-web-2"}


def test_removing_named_servers_removes_only_those_of_this_lab(engine: Engine) -> None:
    events: list[Event] = []

    assert lab(engine).remove(["web-2"], events.append) == ["web-2"]

    assert left(engine) == ["shop-web-1", "shop2-web-1", "shop2-web-2", "lab-shop", "lab-shop2"]
    assert [(e.kind, e.message, e.subject) for e in events] == [
        ("destroyed", "web-2 removed", "web-2")]


def test_removing_nothing_named_removes_nothing(engine: Engine) -> None:
    assert lab(engine).remove([]) == []
    assert len(engine.boxes) == 4 and len(engine.nets) == 2


def test_removing_the_whole_lab_leaves_the_other_lab_alone(engine: Engine) -> None:
    removed = lab(engine).remove(None)

    assert sorted(removed) == ["web-1", "web-2"]
    assert left(engine) == ["shop2-web-1", "shop2-web-2", "lab-shop2"]


def test_a_container_gone_meanwhile_is_no_error(engine: Engine) -> None:
    shop = lab(engine)
    found = shop.containers()
    engine.boxes.remove(found[0])
    shop.containers = lambda: found  # type: ignore[method-assign]

    assert sorted(shop.remove(None)) == ["web-1", "web-2"]


def test_the_network_is_made_once_by_its_exact_name(engine: Engine) -> None:
    engine.nets = [n for n in engine.nets if n.name == "lab-shop2"]

    lab(engine).ensure_network()
    lab(engine).ensure_network()

    assert sorted(n.name for n in engine.nets) == ["lab-shop", "lab-shop2"]
    made = next(n for n in engine.nets if n.name == "lab-shop")
    assert made.labels["lab.name"] == "shop"


def test_a_record_is_what_the_container_shows(engine: Engine) -> None:
    box = engine.add("shop", "web-3", status="restarting", labels={
        "lab.generation": "2", "lab.image": "lab/shop-web:v2"}, attrs={
        "NetworkSettings": {
            "Networks": {"bridge": {"IPAddress": "172.17.0.9"},
                         "lab-shop": {"IPAddress": "172.30.0.3"}},
            "Ports": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32022"}],
                      "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32080"}],
                      "443/tcp": None}},
        "Config": {"Image": "lab/base:bookworm"},
        "Created": "2026-11-27T15:00:00.123456789Z"})

    record = lab(engine).record(box, "docker")  # type: ignore[arg-type]

    assert (record.name, record.role, record.target, record.generation) == (
        "web-3", "web", "docker", 2)
    assert (record.address, record.ssh_host, record.ssh_port, record.ssh_user) == (
        "172.30.0.3", "127.0.0.1", 32022, "root")
    assert (record.ports, record.ports_host) == ({80: 32080}, "127.0.0.1")
    assert record.image == "lab/shop-web:v2"
    assert record.liveness is Liveness.RESTARTING
    assert record.created == 1795791600.123456


@pytest.mark.parametrize(("status", "liveness"), [
    ("running", Liveness.RUNNING), ("exited", Liveness.DEAD), ("created", Liveness.DEAD),
    ("paused", Liveness.DEAD)])
def test_only_a_running_or_restarting_container_is_alive(engine: Engine, status: str,
                                                         liveness: Liveness) -> None:
    box = engine.add("shop", "web-4", status=status)
    record = lab(engine).record(box, "docker")  # type: ignore[arg-type]
    assert record.liveness is liveness
    assert (record.address, record.ssh_port, record.image) == ("", 0, "lab/base")


def test_images_only_those_this_lab_baked_are_removed(engine: Engine) -> None:
    engine.pictures = [
        Image("1", ["lab/shop-web:v1", "lab/shop-web:latest"],
              {"lab.name": "shop", "lab.version": "v1"}),
        Image("2", ["lab/shop2-web:v1"], {"lab.name": "shop2", "lab.version": "v1"}),
        Image("3", ["lab/base:bookworm"], {"lab.name": "shop"}),  # not baked
    ]

    assert lab(engine).remove_images() == ["lab/shop-web:v1", "lab/shop-web:latest"]
    assert [i.id for i in engine.pictures] == ["2", "3"]


def test_a_missing_image_says_how_to_get_one(engine: Engine) -> None:
    engine.pictures = [Image("1", ["lab/base:bookworm"], {})]
    shop = lab(engine)

    assert shop.has_image("lab/base:bookworm") and not shop.has_image("lab/base:trixie")
    with pytest.raises(PrerequisiteError) as caught:
        shop.require_image("lab/base:trixie")
    assert str(caught.value) == ("image lab/base:trixie not found: run `lab image build` (or "
                                 "set `image:` in lab.yml)")


def test_a_server_that_stopped_booting_is_explained(engine: Engine) -> None:
    engine.add("shop", "web-5", status="exited", attrs={
        "State": {"ExitCode": 255, "Error": ""}, "NetworkSettings": {}, "Config": {}})
    engine.add("shop", "web-6", status="dead", attrs={
        "State": {"ExitCode": 137, "Error": "OOM"}, "NetworkSettings": {}, "Config": {}})
    shop = lab(engine)

    assert shop.boot_failure("web-1") is None
    assert shop.boot_failure("web-5") == "its container exited with status 255"
    assert shop.boot_failure("web-6") == "its container dead with status 137; OOM"
    assert shop.boot_failure("web-9") == "its container is gone"


def test_the_docker_target_lists_and_destroys_through_its_engine(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lab.docker.dockerengine
    from lab.access.keys import KeyPair
    from lab.config import LabConfig
    from lab.targets.docker import DockerTarget

    monkeypatch.setattr(lab.docker.dockerengine, "docker_client", lambda: engine)
    config = LabConfig.model_validate({"name": "shop", "servers": {"web": {}}})
    target = DockerTarget(config, KeyPair(tmp_path / "k", tmp_path / "k.pub"))

    listed = {s.name: (s.target, s.liveness) for s in target.list()}
    assert listed == {"web-1": ("docker", Liveness.RUNNING), "web-2": ("docker", Liveness.DEAD)}
    assert target.container_name("web-1") == "shop-web-1"
    assert target.destroy(["web-1"]) == ["web-1"]
    assert target.destroy() == ["web-2"]
    assert left(engine) == ["shop2-web-1", "shop2-web-2", "lab-shop2"]


def test_a_container_without_lab_labels_is_known_by_its_name(engine: Engine) -> None:
    """A container a user labelled `lab.name=shop` by hand: found, shown and removed by its
    own name, never skipped."""
    bare = Box("stray", {"lab.name": "shop"}, engine=engine,
               attrs={"NetworkSettings": {}, "Config": {}})
    engine.boxes.append(bare)
    events: list[Event] = []
    shop = lab(engine)

    assert shop.by_server()["stray"] is bare
    record = shop.record(bare, "docker")  # type: ignore[arg-type]
    assert (record.name, record.role, record.image, record.ssh_user) == (
        "stray", "unknown", "", "root")
    assert "stray" in shop.remove(None, events.append)
    assert ("destroyed", "stray removed", "stray") in [
        (e.kind, e.message, e.subject) for e in events]


def test_a_creation_time_without_fractions_is_read(engine: Engine) -> None:
    box = engine.add("shop", "web-3", attrs={"NetworkSettings": {}, "Config": {},
                                             "Created": "2026-11-27T15:00:00Z"})
    assert lab(engine).record(box, "docker").created == 1795791600.0  # type: ignore[arg-type]


def test_the_cache_joined_to_the_network_is_let_go_before_the_network_goes(
        engine: Engine) -> None:
    cache = Box("lab-cache", {}, engine=engine)
    gone = Box("gone", {}, engine=engine, attrs={"refuse": NotFound("gone")})
    busy = Box("busy", {}, engine=engine, attrs={"refuse": APIError("busy")})
    network = next(n for n in engine.nets if n.name == "lab-shop")
    network.containers = [gone, busy, cache]
    network.remove = lambda: engine.nets.remove(network)  # type: ignore[method-assign]

    assert sorted(lab(engine).remove(None)) == ["web-1", "web-2"]

    assert network.containers == [gone, busy]  # each asked once; refusals are no error
    assert left(engine) == ["shop2-web-1", "shop2-web-2", "lab-shop2"]


@pytest.mark.parametrize("refusal", [NotFound("gone"), APIError("has active endpoints")])
def test_a_network_the_engine_will_not_remove_does_not_stop_destroy(
        engine: Engine, refusal: Exception) -> None:
    next(n for n in engine.nets if n.name == "lab-shop").refuse = refusal

    assert sorted(lab(engine).remove(None)) == ["web-1", "web-2"]
    assert left(engine) == ["shop2-web-1", "shop2-web-2", "lab-shop", "lab-shop2"]


def test_images_that_will_not_go_are_skipped_and_the_rest_removed(engine: Engine) -> None:
    engine.pictures = [
        Image("3", ["lab/base:bookworm"], {"lab.name": "shop"}),  # not baked, listed first
        Image("1", ["lab/shop-web:v1"], {"lab.name": "shop", "lab.version": "v1"}),
        Image("2", ["lab/shop-web:v2"], {"lab.name": "shop", "lab.version": "v2"}),
        Image("4", ["lab/shop-web:v3"], {"lab.name": "shop", "lab.version": "v3"}),
    ]
    engine.images.refused = {"lab/shop-web:v1": NotFound("gone"),
                             "lab/shop-web:v2": APIError("in use")}

    assert lab(engine).remove_images() == ["lab/shop-web:v3"]
    assert [i.id for i in engine.pictures] == ["3", "1", "2"]


def test_an_image_that_is_there_is_required_without_error(engine: Engine) -> None:
    engine.pictures = [Image("1", ["lab/base:bookworm"], {})]
    lab(engine).require_image("lab/base:bookworm")


def test_the_docker_target_keeps_what_it_was_made_with(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lab.docker.dockerengine
    from lab.access.keys import KeyPair
    from lab.config import LabConfig
    from lab.targets.docker import DockerTarget

    monkeypatch.setattr(lab.docker.dockerengine, "docker_client", lambda: engine)
    config = LabConfig.model_validate({"name": "shop", "servers": {"web": {}}})
    key = KeyPair(tmp_path / "k", tmp_path / "k.pub")
    target = DockerTarget(config, key)
    events: list[Event] = []

    assert (target.config, target.key, target.client) == (config, key, engine)
    assert target.network_name == "lab-shop"
    assert target.destroy(["web-1"], events.append) == ["web-1"]
    assert [e.subject for e in events] == ["web-1"]


# the docker target's create and bake, on the same engine -----------------------------------


def shop_target(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The docker target of lab `shop` on the in-memory engine, in a run mode of the test's
    (the modes themselves are tests/unit/test_runmode.py's)."""
    import lab.docker.dockerengine
    from lab.access.keys import ensure_keypair
    from lab.config import LabConfig
    from lab.docker.runmode import RunMode
    from lab.targets.docker import DockerTarget

    monkeypatch.setattr(lab.docker.dockerengine, "docker_client", lambda: engine)
    config = LabConfig.model_validate({"name": "shop", "servers": {"web": {}}})
    target = DockerTarget(config, ensure_keypair(tmp_path / ".lab", "lab@shop"))
    target.docker.__dict__["run_mode"] = RunMode("plain", "the test's", ["/sbin/init"])
    return target


def unpacked(data: bytes) -> dict[str, tuple[str, int]]:
    """A tar's files: name -> (text, mode)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        found = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None and member.mtime > 0
            found[member.name] = (extracted.read().decode(), member.mode)
        return found


def test_create_makes_each_server_with_its_labels_keys_and_loopback_ports(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lab.targets.docker as docker_target
    from lab.targets.base import ServerSpec, labels_for

    engine.pictures = [Image("1", ["lab/base:bookworm"], {})]
    engine.nets = [n for n in engine.nets if n.name != "lab-shop"]
    cached: list[tuple[Any, ...]] = []
    monkeypatch.setattr(docker_target, "use_package_cache",
                        lambda client, network, names, on_event: cached.append(
                            (client, network, names, on_event)))
    target = shop_target(engine, monkeypatch, tmp_path)
    specs = [ServerSpec("web-3", "web", 2, "lab/base:bookworm", ports=[8080]),
             ServerSpec("lb-1", "lb", 2, "lab/base:bookworm", fixed_ports={80: 9090})]
    events: list[Event] = []

    records = target.create(specs, events.append)

    web, lb = engine.get("shop-web-3"), engine.get("shop-lb-1")
    assert web.labels == labels_for("shop", specs[0]) | {"lab.image": "lab/base:bookworm",
                                                         "lab.home": str(target.home)}
    assert (web.options["hostname"], web.options["network"], web.options["detach"],
            web.options["command"]) == ("web-3", "lab-shop", True, ["/sbin/init"])
    assert web.options["ports"] == {"22/tcp": ("127.0.0.1", None),
                                    "8080/tcp": ("127.0.0.1", None)}
    assert lb.options["ports"] == {"22/tcp": ("127.0.0.1", None), "80/tcp": ("127.0.0.1", 9090)}
    assert "lab-shop" in [n.name for n in engine.nets]
    # the lab's key may log in as root; the server's own host key, made for it alone
    [(ssh_dir, keys), (etc_ssh, host)] = web.archives
    assert (ssh_dir, etc_ssh) == ("/root/.ssh", "/etc/ssh")
    assert unpacked(keys) == {"authorized_keys": (target.key.public_text + "\n", 0o600)}
    host_files = unpacked(host)
    private, private_mode = host_files["ssh_host_ed25519_key"]
    public, public_mode = host_files["ssh_host_ed25519_key.pub"]
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and private_mode == 0o600
    assert public.endswith(" web-3@lab-shop\n") and public_mode == 0o644
    assert web.status == "running" and lb.status == "running"
    # what create returns is what the container shows, and its host key is trusted there
    ssh_ports = [int(box.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
                 for box in (web, lb)]
    assert [(r.name, r.role, r.generation, r.ssh_host, r.ssh_port, r.address)
            for r in records] == [("web-3", "web", 2, "127.0.0.1", ssh_ports[0], "172.30.0.7"),
                                  ("lb-1", "lb", 2, "127.0.0.1", ssh_ports[1], "172.30.0.7")]
    assert records[1].ports == {80: 9090} and set(records[0].ports) == {8080}
    trusted = target.known_hosts.key_at("127.0.0.1", ssh_ports[0])
    assert trusted is not None and trusted.server == "web-3" and public.startswith(trusted.key)
    assert sorted((e.kind, e.message, e.subject) for e in events) == [
        ("created", "lb-1 started", "lb-1"), ("created", "web-3 started", "web-3")]
    assert cached == [(engine, "lab-shop", ["shop-web-3", "shop-lb-1"], events.append)]
    assert {r.target for r in records} == {"docker"}


def test_create_refused_by_the_engine_names_the_server(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lab.errors import TargetError
    from lab.targets.base import ServerSpec

    engine.pictures = [Image("1", ["lab/base:bookworm"], {})]
    engine.refused = {"lab/base:bookworm": "no space left on device"}
    target = shop_target(engine, monkeypatch, tmp_path)

    with pytest.raises(TargetError) as caught:
        target.create([ServerSpec("web-3", "web", 1, "lab/base:bookworm")])

    assert str(caught.value) == "web-3: docker could not create it: no space left on device"


def test_an_up_the_engine_fails_halfway_leaves_no_container_or_record(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`lab up` of three servers on the docker target: the engine creates and starts web-1
    but will not start web-2 (its port taken, say; web-3 is made or not, as the threads go).
    Every container the call made goes, the one never started too, and state and the lab's
    files forget them all; another lab's container stays."""
    import lab.docker.dockerengine
    import lab.targets.docker as docker_target
    from lab.config import DEFAULT_IMAGE, load_config
    from lab.docker.dockerengine import DockerEngine
    from lab.docker.runmode import RunMode
    from lab.errors import TargetError
    from lab.fleet import Fleet

    engine = Engine()
    engine.pictures = [Image("1", [DEFAULT_IMAGE], {})]
    engine.add("shop2", "web-1")
    create, made = engine.create, []

    def create_one_that_will_not_start(image: str, name: str, labels: dict[str, str],
                                       **options: Any) -> Box:
        box = create(image, name, labels, **options)
        made.append(name)
        if name == "shop-web-2":
            def refuse() -> None:
                raise APIError("refused", explanation="port is already allocated")
            box.start = refuse  # type: ignore[method-assign]
        return box

    engine.create = create_one_that_will_not_start  # type: ignore[method-assign]
    monkeypatch.setattr(lab.docker.dockerengine, "docker_client", lambda: engine)
    monkeypatch.setattr(DockerEngine, "run_mode", RunMode("plain", "the test's", ["/sbin/init"]))
    monkeypatch.setattr(docker_target, "use_package_cache", lambda *_: None)
    (tmp_path / "lab.yml").write_text("name: shop\nservers:\n  web: {count: 3}\n")

    with Fleet(load_config(tmp_path / "lab.yml")) as fleet, pytest.raises(
            TargetError, match="web-2: docker could not create it: port is already allocated"):
        fleet.up()

    assert {"shop-web-1", "shop-web-2"} <= set(made)
    assert [b.name for b in engine.boxes] == ["shop2-web-1"]
    assert fleet.state.servers() == []
    state_dir = tmp_path / ".lab"
    for written in ("inventory.yml", "ssh_config", "known_hosts"):
        assert "web-" not in (state_dir / written).read_text(), written


def test_create_from_a_missing_image_makes_nothing(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lab.targets.base import ServerSpec

    engine.nets = []
    target = shop_target(engine, monkeypatch, tmp_path)

    assert target.create([]) == [] and engine.nets == []
    with pytest.raises(PrerequisiteError, match="image lab/nosuch:v1 not found"):
        target.create([ServerSpec("web-3", "web", 1, "lab/nosuch:v1")])
    assert len(engine.boxes) == 4 and engine.nets == []


def test_bake_commits_the_servers_container_with_its_labels(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lab.state import ServerRecord

    target = shop_target(engine, monkeypatch, tmp_path)
    web = ServerRecord("web-1", "web", "docker")

    assert target.bake(web, "lab/shop-web:v2", {"lab.version": "v2", "lab.role": "web"}) == (
        "lab/shop-web:v2")
    assert target.bake(web, "lab/shop-web", {}) == "lab/shop-web"

    assert [(i.tags, i.labels) for i in engine.pictures] == [
        (["lab/shop-web:v2"], {"changes": str(['LABEL lab.version="v2"', 'LABEL lab.role="web"']),
                               "paused": "True"}),
        (["lab/shop-web:latest"], {"changes": "[]", "paused": "True"})]


def test_a_servers_console_and_boot_report(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    from lab.docker.dockerengine import console_report
    from lab.docker.engine import EngineFacts
    from lab.state import ServerRecord

    engine.add("shop", "web-5", status="exited", attrs={
        "Logs": b"Welcome to \x1b[1mDebian\x1b[0m\r\nFailed to mount cgroup \xff\n",
        "State": {"ExitCode": 255, "Error": ""}, "NetworkSettings": {}, "Config": {}})
    engine.add("shop", "web-6", attrs={"Logs": APIError("dead"), "NetworkSettings": {},
                                        "Config": {}})
    target = shop_target(engine, monkeypatch, tmp_path)
    facts = EngineFacts.from_info({"ServerVersion": "26.1.5", "CgroupVersion": "2",
                                   "CgroupDriver": "systemd", "Architecture": "x86_64",
                                   "OperatingSystem": "Debian", "SecurityOptions": []})
    target.docker.__dict__["facts"] = facts
    web5 = ServerRecord("web-5", "web", "docker")

    assert target.docker.console("web-5") == (
        "Welcome to \x1b[1mDebian\x1b[0m\r\nFailed to mount cgroup \ufffd\n")
    assert target.docker.console("web-6") == "" and target.docker.console("web-9") == ""
    assert target.boot_failure(web5) == "its container exited with status 255"
    assert target.boot_report(web5) == console_report(
        target.docker.console("web-5"), facts, target.run_mode)
    assert "    Failed to mount cgroup" in target.boot_report(web5)
    assert target.has_image("lab/base:bookworm") is False
    engine.pictures = [Image("1", ["lab/base:bookworm"], {})]
    assert target.has_image("lab/base:bookworm") is True


def test_the_docker_target_builds_its_base_image_through_lab_image(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.docker.image
    import lab.targets.docker as docker_target
    from lab.events import ignore

    closed: list[bool] = []
    engine.close = lambda: closed.append(True)  # type: ignore[method-assign]
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr(docker_target, "docker_client", lambda: engine)
    monkeypatch.setattr(lab.docker.image, "build_base_image",
                        lambda client, rebuild, on_event, through:
                        asked.append((client, rebuild, on_event, through.__self__.name,
                                      through.__func__.__name__)) or "lab/base:bookworm")
    monkeypatch.setenv("LAB_CACHE", "t-unit-cache")

    assert docker_target.DockerTarget.prepare_image(None, True, print) == "lab/base:bookworm"
    assert docker_target.DockerTarget.prepare_image(None) == "lab/base:bookworm"
    # Packages through the package cache (lab.docker.cache), asked only when something is built.
    through = ("t-unit-cache", "build_through")
    assert asked == [(engine, True, print, *through), (engine, False, ignore, *through)]
    assert closed == [True, True]


def test_the_base_image_is_built_through_the_package_cache_of_the_same_engine(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab image build` hands the build the cache's way in, on the engine it builds on (the
    build through a real cache, offline: tests/integration/test_cache_offline.py)."""
    import lab.docker.image
    from lab.targets import docker as docker_target

    closed: list[Engine] = []
    engine.close = lambda: closed.append(engine)  # type: ignore[method-assign]
    monkeypatch.setattr(docker_target, "docker_client", lambda: engine)
    asked: dict[str, Any] = {}

    def build(client: Any, rebuild: bool, on_event: Any, through: Any) -> str:
        asked.update(client=client, rebuild=rebuild, cache=through.__self__)
        return "lab/base:bookworm"

    monkeypatch.setattr(lab.docker.image, "build_base_image", build)
    assert docker_target.DockerTarget.prepare_image(None, rebuild=True) == "lab/base:bookworm"
    assert asked["client"] is engine and asked["rebuild"] is True
    assert asked["cache"].client is engine
    assert closed == [engine]


def test_an_engine_out_of_address_pools_is_one_line_not_a_bug(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Docker answers 404 "could not find an available, non-overlapping IPv4 address pool"
    when its ~30 default networks are taken (a class's seats, other projects): exit 3, what
    to do, and no container made."""
    from lab.targets.base import ServerSpec

    engine = Engine()
    engine.pictures = [Image("1", ["lab/base:bookworm"], {})]
    target = shop_target(engine, monkeypatch, tmp_path)

    def out_of_pools(*args: Any, **kwargs: Any) -> None:
        raise NotFound("404", explanation="could not find an available, non-overlapping "
                       "IPv4 address pool among the defaults to assign to the network")

    monkeypatch.setattr(engine.networks, "create", out_of_pools)
    with pytest.raises(PrerequisiteError, match=r"^Docker has no address range left for "
                                                r"network lab-shop .*default-address-pool"):
        target.create([ServerSpec("web-1", "web", 1, "lab/base:bookworm")])
    assert engine.boxes == []
