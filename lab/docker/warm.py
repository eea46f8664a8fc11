"""``lab cache warm``: fill lab's package cache by provisioning labs through it.

No package list is kept by hand: what a lab installs is what its playbooks install, so the
way to have it cached is to run them. Each lab (the example ``lab init`` writes, and any lab
directory given: an exercise's, a course's) is copied to a throwaway lab with one server per
role, brought up while the cache runs, provisioned, and destroyed. One of those servers also
fetches Debian's whole package index afresh, so servers whose image holds older lists than
the warm-up's find every index file they ask for in the cache too. First of all, the base
image's own Dockerfile is built through the cache, every step, under a throwaway tag: then
`lab image build` can make the base image again with no network.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import yaml
from docker.errors import APIError

from lab.access.ports import free_local_port
from lab.access.ssh import as_root, ssh_argv
from lab.config import CONFIG_FILE, DEFAULT_IMAGE, LabConfig, load_config
from lab.docker.cache import CacheStatus, PackageCache
from lab.docker.engine import docker_client
from lab.docker.image import build_base_image
from lab.errors import CheckFailed, ConfigError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import provision
from lab.scaffold import edit_lab_yml, example_dir, init_lab

# Every index file a server could ask for: lists removed, then fetched through the cache.
REFRESH_INDEX = "rm -rf /var/lib/apt/lists/* && apt-get update -q"


@dataclass
class WarmReport:
    labs: list[tuple[str, float]] = field(default_factory=list)  # lab, seconds
    cache: CacheStatus | None = None


def warm(directories: Sequence[Path] = (), on_event: Listener = ignore) -> WarmReport:
    """Start the cache, then provision the example lab and each of ``directories`` through
    it; a lab that fails to provision stops the warm-up with its problem."""
    for source in directories:  # before anything starts; named as the user gave them
        if not (source / CONFIG_FILE).is_file():
            raise ConfigError(f"{source}: no {CONFIG_FILE} here; give lab directories")
        load_config(source / CONFIG_FILE)
    client = docker_client()
    try:
        cache = PackageCache(client)
        container = cache.start(on_event)
        if cache.follow_network(container, on_event):
            raise CheckFailed(f"{cache.name}: Debian's mirror does not answer; warm the "
                              "cache while online")
        report = WarmReport()
        started = time.monotonic()
        _warm_base_image(client, cache, on_event)
        report.labs.append(("the base image's Dockerfile", time.monotonic() - started))
        for index, source in enumerate([example_dir(), *directories]):
            started = time.monotonic()
            _warm_lab(source, refresh_index=index == 0, on_event=on_event)
            report.labs.append((str(source), time.monotonic() - started))
        report.cache = cache.status()
        return report
    finally:
        client.close()


def _warm_base_image(client: docker.DockerClient, cache: PackageCache,
                     on_event: Listener) -> None:
    """The base image's packages: its Dockerfile built through the cache, every step, under a
    throwaway tag that is removed after (the base image itself is left as it is)."""
    tag = f"{DEFAULT_IMAGE.partition(':')[0]}-warm:{secrets.token_hex(3)}"
    on_event(Event("phase", "warming through the base image's Dockerfile"))
    try:
        build_base_image(client, tag, rebuild=True, on_event=on_event,
                         through=cache.build_through)
    finally:
        with contextlib.suppress(APIError):
            client.images.remove(tag)


def _warm_lab(source: Path, refresh_index: bool, on_event: Listener) -> None:
    """One lab, copied to a throwaway directory, up, provisioned, destroyed."""
    directory = Path(tempfile.mkdtemp(prefix="lab-warm-"))
    try:
        config = _throwaway_copy(source, directory)
        on_event(Event("phase", f"warming through {source}"))
        with Fleet(config, on_event) as fleet:
            try:
                servers = fleet.up()
                if refresh_index and servers:
                    command = as_root(servers[0], ["sh", "-c", REFRESH_INDEX])
                    _run(ssh_argv(servers[0], fleet.key, command))
                result = provision(fleet, on_event=on_event)
                if not result.ok:
                    raise CheckFailed(f"warming through {source}: {result.problem}")
            finally:
                fleet.destroy()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _throwaway_copy(source: Path, directory: Path) -> LabConfig:
    """The lab at ``source`` under a new name in ``directory``: one server per role, the
    balancer on a free port, no state of the original."""
    name = f"warm-{secrets.token_hex(3)}"
    if source == example_dir():
        init_lab(directory, name=name, force=True)
    else:
        shutil.copytree(source, directory, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".lab", ".vagrant"))
    path = directory / CONFIG_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config = edit_lab_yml(path, name=name, listen=free_local_port() if data.get("balancer")
                          else None, balancer=bool(data.get("balancer")))
    for role in config.servers:
        config = edit_lab_yml(path, count=1, role=role, balancer=bool(data.get("balancer")))
    return config


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise CheckFailed(f"refreshing the package index failed: "
                          f"{(result.stderr or result.stdout).strip()[-300:]}")
