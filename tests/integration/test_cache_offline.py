"""A course runs offline after one warm-up: lab's package cache, proven with no route out.

`lab cache warm` fills the run's own cache (``LAB_CACHE``, set by conftest; labelled with the
test run, so removed at the end whatever happens). Then the cache is cut from every network
with a route out, and a lab whose network is ``--internal`` (the engine gives its containers
no route anywhere but to each other and this machine) goes through up, provision, verify and
a release: every package comes from the cache. A package the warm-up never fetched fails with
a message that names it and says to warm the cache while online. `lab image build --rebuild`
makes the base image again, every step, through the cache alone. `lab destroy` leaves the
cache and its volume; `lab cache clear` removes both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from labhelpers import RUN_LABEL, Lab, new_lab, teardown_lab

from lab.config import DEFAULT_IMAGE
from lab.scaffold import edit_lab_yml

MISSING = "sl"  # in Debian, installed by no lab: never in a warmed cache

NOT_WARMED = f"""
    - name: A package the warm-up never fetched (first, so the run stops there)
      ansible.builtin.apt:
        name: {MISSING}
"""


def exists(client: docker.DockerClient, kind: str, name: str) -> bool:
    try:
        getattr(client, kind).get(name)
    except NotFound:
        return False
    return True


def served(lab: Lab) -> int:
    """Files the cache has served from what it holds (hits), by `lab cache status`."""
    return int(json.loads(lab.run("cache", "status", "--json").stdout)["traffic"]["hits"])


def internal_network(client: docker.DockerClient, lab: Lab, run_label: str) -> None:
    """The lab's network, made before `lab up` (which then uses it) with no route out."""
    key, _, value = run_label.partition("=")
    client.networks.create(f"lab-{lab.name}", driver="bridge", internal=True,
                           labels={"lab.managed": "true", "lab.name": lab.name, key: value})


def test_offline_after_warm_up(tmp_path: Path, docker_client: docker.DockerClient,
                               test_run_label: str) -> None:
    cache_name = os.environ["LAB_CACHE"]
    assert cache_name.startswith("t-cache-")  # never the user's cache
    # One web server behind the balancer: every path a package takes, at the least cost.
    lab = new_lab(docker_client, tmp_path, count=1, balancer=True)
    edit_lab_yml(lab.dir / "lab.yml", step_seconds=1)
    try:
        lab.run("cache", "warm", timeout=600)
        cache = docker_client.containers.get(cache_name)
        assert cache.labels[RUN_LABEL] == test_run_label.partition("=")[2]
        assert not cache.attrs["NetworkSettings"]["Ports"].get("3142/tcp")  # nothing published

        # Offline: the cache keeps only the labs' networks, the lab's network leads nowhere.
        docker_client.networks.get("bridge").disconnect(cache)
        internal_network(docker_client, lab, test_run_label)
        lab.run("up", timeout=300)
        web = sorted(n for n, s in lab.status().items() if s["role"] == "web")[0]
        no_route = lab.container(web).exec_run(
            ["timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/deb.debian.org/80"])
        assert no_route.exit_code != 0
        lab.run("provision", timeout=600)
        lab.run("verify", timeout=300)
        lab.run("release", "--set", "version=v2", timeout=600)
        status = lab.run("cache", "status", "--json").stdout
        assert '"offline": true' in status and '"hits": 0,' not in status, status

        # What the warm-up never fetched: named, with what to do.
        playbook = lab.dir / "playbooks" / "web.yml"
        text = playbook.read_text()
        assert "\n  tasks:\n" in text
        playbook.write_text(text.replace("\n  tasks:\n", f"\n  tasks:{NOT_WARMED}", 1))
        web = sorted(n for n, s in lab.status().items() if s["role"] == "web")[0]
        failed = lab.run("provision", web, check=False, timeout=600)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        named = re.search(rf"packages? [a-z0-9+., -]*\b{MISSING}\b[a-z0-9+., -]* could not be "
                          "fetched", failed.stderr)
        assert named and "run `lab cache warm` while online" in failed.stderr, failed.stderr

        # The base image made again, every step, with no network: the warm-up built its
        # Dockerfile through the cache too, and the build's steps reach only the cache.
        before = docker_client.images.get(DEFAULT_IMAGE).id
        hits = served(lab)
        lab.run("image", "build", "--rebuild", timeout=600)
        assert docker_client.images.get(DEFAULT_IMAGE).id != before
        assert served(lab) >= hits + 20  # the Dockerfile installs some 70 packages
        assert not [n for n in docker_client.networks.list()
                    if n.name.startswith(f"{cache_name}-build-")]

        lab.run("destroy")
        # The image replaced above was kept while the lab's servers ran from it: gone now.
        with contextlib.suppress(APIError):
            docker_client.images.remove(before)
        assert exists(docker_client, "containers", cache_name)
        assert exists(docker_client, "volumes", cache_name)
        assert not lab.networks()
        lab.run("cache", "clear")
        assert not exists(docker_client, "containers", cache_name)
        assert not exists(docker_client, "volumes", cache_name)
    finally:
        teardown_lab(lab)
        with contextlib.suppress(NotFound):  # also removed by its label at the run's end
            docker_client.containers.get(cache_name).remove(force=True, v=True)
        with contextlib.suppress(NotFound):
            docker_client.volumes.get(cache_name).remove(force=True)
