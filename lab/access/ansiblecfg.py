"""The user's own Ansible configuration, as `ansible-playbook` run in the lab's directory reads it.

ansible-runner starts Ansible in the run's own directory (``.lab/runs/<id>/``), where Ansible
finds no ``ansible.cfg``: a lab directory's ``ansible.cfg`` (roles_path, collections_path, a
callback the user likes) would be ignored. So lab names it with ``ANSIBLE_CONFIG``, in Ansible's
own order with the lab's directory in place of the current one.

lab sets a few settings through the environment (pipelining, its callbacks...), and the
environment wins over any ``ansible.cfg``. For the two lists lab only adds to (the callbacks
enabled and where callback plugins are found) it puts the user's own first, from the
environment or else from that file, so that theirs still run beside lab's.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

# Lists lab adds to: the variable, its key under [defaults], how its items are joined.
LISTS = {
    "ANSIBLE_CALLBACKS_ENABLED": ("callbacks_enabled", ","),
    "ANSIBLE_CALLBACK_PLUGINS": ("callback_plugins", os.pathsep),
}


def config_file(project: Path) -> Path | None:
    """The file Ansible would read: ``ANSIBLE_CONFIG``, the lab's ``ansible.cfg``, the user's
    ``~/.ansible.cfg``, ``/etc/ansible/ansible.cfg``: the first there is."""
    named = os.environ.get("ANSIBLE_CONFIG")
    candidates = [Path(named).expanduser()] if named else [
        project / "ansible.cfg", Path.home() / ".ansible.cfg", Path("/etc/ansible/ansible.cfg")]
    return next((path.resolve() for path in candidates if path.is_file()), None)


def users_lists(config: Path | None) -> dict[str, str]:
    """Each of :data:`LISTS` as the user set it: in the environment, else in ``config``."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    if config is not None:
        try:
            parser.read(config, encoding="utf-8")
        except configparser.Error:  # nothing from it: Ansible will say what is wrong
            parser = configparser.ConfigParser()
    return {variable: os.environ.get(variable) or
            parser.get("defaults", key, fallback="").strip()
            for variable, (key, _) in LISTS.items()}


def ansible_env(project: Path, ours: dict[str, str]) -> dict[str, str]:
    """``ours`` with the user's config file named and the user's lists ahead of lab's."""
    config = config_file(project)
    env = dict(ours)
    if config is not None:
        env["ANSIBLE_CONFIG"] = str(config)
    theirs = users_lists(config)
    for variable, (_, separator) in LISTS.items():
        if variable in env:
            env[variable] = separator.join(filter(None, [theirs[variable], env[variable]]))
    return env
