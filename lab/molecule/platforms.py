"""A scenario's platforms as lab's servers: one server each, from an image that boots systemd
and sshd.

Molecule's docker platforms name images made for Molecule's own connection (``docker exec``):
systemd maybe, sshd rarely, and here no registry to pull them from. So a platform's image is
used as it is only when it is on this machine and lab made it (its base image, or one `lab
bake` made from it); any other is replaced by lab's base image of the same distribution, said
in one line, or refused naming the field when lab has no base for that distribution.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.config import DEFAULT_IMAGE, LabConfig
from lab.docker.image import HASH_LABEL
from lab.errors import ConfigError
from lab.molecule.scenario import Scenario, state_directory

# A label every image lab builds carries, and so every image `lab bake` commits from one.
LAB_IMAGE_LABEL = HASH_LABEL
# lab's base images, by distribution and release.
BASES = {("debian", "12"): DEFAULT_IMAGE}
DISTRIBUTIONS = {"debian": "Debian", "ubuntu": "Ubuntu", "rockylinux": "Rocky Linux",
                 "rocky": "Rocky Linux", "almalinux": "AlmaLinux", "centos": "CentOS",
                 "fedora": "Fedora", "alpine": "Alpine", "opensuse": "openSUSE",
                 "archlinux": "Arch Linux", "amazonlinux": "Amazon Linux",
                 "oraclelinux": "Oracle Linux"}
CODENAMES = {"buster": ("debian", "10"), "bullseye": ("debian", "11"),
             "bookworm": ("debian", "12"), "trixie": ("debian", "13"),
             "forky": ("debian", "14"), "focal": ("ubuntu", "20.04"),
             "jammy": ("ubuntu", "22.04"), "noble": ("ubuntu", "24.04")}
_DISTRIBUTION = re.compile(rf"({'|'.join(sorted(DISTRIBUTIONS, key=len, reverse=True))})"
                           r"[-_]?(\d+(?:\.\d+)?)?")

# What the engine says of an image: its labels, or None when it is not on this machine.
ImageLabels = Callable[[str], dict[str, str] | None]


@dataclass(frozen=True)
class Server:
    """One platform as lab makes it."""

    platform: str  # the instance's name: the inventory's host
    role: str  # lab's role for it (lab names the server ROLE-N)
    image: str
    note: str = ""  # why the image is not the platform's, in one line


def distribution(image: str) -> tuple[str, str | None] | None:
    """``(distribution, release)`` an image reference names, or None when it names none:
    ``debian:12-slim``, ``geerlingguy/docker-debian12-ansible`` and ``debian:bookworm`` are
    all ``("debian", "12")``; ``debian:latest`` is ``("debian", None)``."""
    reference = image.lower().split("@", 1)[0]
    parts = reference.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry
    repository, _, tag = parts[-1].partition(":")
    for word in re.split(r"[^a-z0-9.]+", f"{repository} {tag}"):
        if word in CODENAMES:
            return CODENAMES[word]
    found = _DISTRIBUTION.search(repository)
    if found is None:
        return None
    name = "rockylinux" if found[1] == "rocky" else found[1]
    release = found[2] or _release(tag)
    if release and name == "ubuntu" and "." not in release and len(release) == 4:
        release = f"{release[:2]}.{release[2:]}"  # ubuntu2204
    elif release and name == "debian":
        release = release.split(".")[0]  # 12.5 is Debian 12
    return name, release


def _release(tag: str) -> str | None:
    found = re.match(r"(\d+(?:\.\d+)?)", tag)
    return found[1] if found else None


def servers_for(scenario: Scenario, image_labels: ImageLabels) -> list[Server]:
    """Each platform's server; a ConfigError naming the platform's image when lab has
    nothing to run it on."""
    servers: list[Server] = []
    roles = _role_names([p.name for p in scenario.platforms])
    for index, platform in enumerate(scenario.platforms):
        where = f"{scenario.label}: platforms[{index}].image"
        if not platform.image:
            raise ConfigError(f"{where}: is required (driver {scenario.config.driver.name})")
        image, note = _image_for(platform.name, platform.image, where, image_labels)
        servers.append(Server(platform.name, roles[index], image, note))
    images = sorted({s.image for s in servers})
    if len(images) > 1:
        raise ConfigError(f"{scenario.label}: platforms: lab runs one image per scenario for "
                          f"now, and these need {' and '.join(images)}")
    return servers


def _image_for(platform: str, image: str, where: str,
               image_labels: ImageLabels) -> tuple[str, str]:
    labels = image_labels(image)
    if labels is not None and LAB_IMAGE_LABEL in labels:
        return image, ""
    found = distribution(image)
    ours = ", ".join(f"{DISTRIBUTIONS[d]} {r} ({tag})" for (d, r), tag in BASES.items())
    if found is None:
        raise ConfigError(f"{where}: cannot tell which distribution {image!r} is; lab has a "
                          f"server image for {ours}: name that distribution's image")
    name, release = found
    if release is None:
        raise ConfigError(f"{where}: {image!r} does not say which {DISTRIBUTIONS[name]} "
                          f"release it is; lab has a server image for {ours}: name its "
                          "release (debian:12)")
    base = BASES.get((name, release))
    what = f"{DISTRIBUTIONS[name]} {release}"
    if base is None:
        raise ConfigError(f"{where}: {image!r} is {what}, and lab has no server image for "
                          f"it yet (lab has {ours})")
    why = ("is not on this machine and lab pulls no image" if labels is None else
           "is not one of lab's server images (systemd and sshd)")
    return base, f"platform {platform}: {image} {why}: using {base} ({what}) instead"


def _role_names(platforms: list[str]) -> list[str]:
    """A lab role name (a-z 0-9 _, at most 20) for each platform, each its own."""
    names: list[str] = []
    for platform in platforms:
        base = re.sub(r"[^a-z0-9_]", "_", platform.lower()).strip("_") or "instance"
        if not base[0].isalpha():
            base = f"p_{base}"
        base = base[:20]
        name, number = base, 2
        while name in names:
            suffix = f"_{number}"
            name, number = base[: 20 - len(suffix)] + suffix, number + 1
        names.append(name)
    return names


def lab_name(scenario: Scenario) -> str:
    """The throwaway lab a scenario runs in: the role's and the scenario's names, ``-test``."""
    words = f"{scenario.role.short}-{scenario.name}".lower()
    slug = re.sub(r"[^a-z0-9]+", "-", words).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"m-{slug}".rstrip("-")
    return f"{slug[:27].rstrip('-')}-test"


def scenario_lab(scenario: Scenario, servers: list[Server]) -> LabConfig:
    """The lab that holds a scenario's servers: a role of one server per platform, no
    balancer, its state beside the role (``.lab/molecule-<scenario>/``)."""
    data: dict[str, Any] = {"name": lab_name(scenario), "image": servers[0].image,
                            "servers": {s.role: {"count": 1} for s in servers}}
    return LabConfig.model_validate(data).located(
        scenario.project, state_directory(scenario.project, scenario.name))
