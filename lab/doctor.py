"""``lab doctor``: each prerequisite, whether it is there, and what to do when it is not."""

from __future__ import annotations

import shutil
import sys

from lab.docker.limits import limit_checks
from lab.errors import LabError
from lab.prerequisites import Check
from lab.targets import registry as targets
from lab.targets.base import get_target


def run_checks() -> list[Check]:
    """What every lab needs (Python, ssh, Ansible), then what each registered target needs,
    as the target itself says (:meth:`lab.targets.base.Target.prerequisites`), then the
    limits of this machine that every server on it shares (:mod:`lab.docker.limits`)."""
    common = [_python(), _binary("ssh", "OpenSSH client", "apt-get install -y openssh-client"),
              _ansible()]
    return (common + [check for name in targets.known() for check in _target_checks(name)]
            + limit_checks())


def _target_checks(name: str) -> list[Check]:
    """A target's own checks; one that cannot even be imported (a broken plugin) says so."""
    try:
        cls = get_target(name)
    except (ImportError, AttributeError, LabError) as exc:
        return [Check(f"target {name}", False, f"cannot be loaded: {exc}",
                      f"reinstall the package that provides target {name!r}", required=False)]
    return cls.prerequisites() + cls.standing()


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", sys.version_info >= (3, 11), version, "install Python 3.11 or newer")


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
