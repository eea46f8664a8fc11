"""lab's Ansible callback: the servers lab made run systemd, so Ansible need not ask again.

In a play that gathers no facts, Ansible's ``service`` action first runs the ``setup`` module on
every host only to learn ``ansible_service_mgr``: once per service task and handler, on every
run, a whole module run each time. lab has seen systemd running on every server it hands to
Ansible (a server is ready once ``systemctl is-system-running`` answers), so at the start of
each play this puts that one fact among the facts of the hosts lab names in
``LAB_SYSTEMD_HOSTS``. A play that asks for facts still gathers them all: with
``gathering = smart`` Ansible goes by whether facts were gathered, not by whether any exist.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: lab_service_mgr
    type: aggregate
    short_description: tells Ansible that lab's servers run systemd
    description:
      - Sets the fact ansible_service_mgr=systemd, at the start of each play, on the hosts
        named in the environment variable LAB_SYSTEMD_HOSTS (comma-separated).
    requirements:
      - enabled in callbacks_enabled
"""

HOSTS_ENV = "LAB_SYSTEMD_HOSTS"


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_service_mgr"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_play_start(self, play: Any) -> None:
        manager = play.get_variable_manager()
        for host in filter(None, os.environ.get(HOSTS_ENV, "").split(",")):
            manager.set_host_facts(host, {"ansible_service_mgr": "systemd"})
