"""The cloud-init user data: a deadline for every instance, and the hook for host keys made
by lab (issue 12 point 6 fills it in)."""

from __future__ import annotations

from datetime import timedelta

import yaml

from lab.aws.userdata import user_data


def test_the_instance_powers_off_at_its_lifetime() -> None:
    text = user_data(timedelta(hours=4))
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    assert config["runcmd"] == [["shutdown", "-P", "+240", "lab lifetime over"]]
    assert "ssh_keys" not in config
    assert yaml.safe_load(user_data(timedelta(seconds=20)))["runcmd"][0][2] == "+1"


def test_host_keys_are_handed_over_at_creation() -> None:
    keys = {"ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
            "ed25519_public": "ssh-ed25519 AAAA host"}
    config = yaml.safe_load(user_data(timedelta(hours=1), keys))
    assert config["ssh_keys"] == keys and config["ssh_deletekeys"] is True
