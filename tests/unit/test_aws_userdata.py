"""The cloud-init user data: a deadline for every instance, and the host key lab made for it."""

from __future__ import annotations

from datetime import timedelta

import yaml

from lab.aws.userdata import user_data


def test_the_instance_powers_off_at_its_lifetime_set_again_at_every_boot() -> None:
    text = user_data(timedelta(hours=4), now=1_000_000.4)
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    assert "runcmd" not in config  # runcmd runs once: a reboot would forget the deadline
    [[shell, flag, script]] = config["bootcmd"]  # bootcmd: every boot
    assert (shell, flag) == ("sh", "-c")
    assert script.startswith("deadline=1014401;")  # 4 h on, rounded up
    assert "ssh_keys" not in config


def test_host_keys_are_handed_over_at_creation() -> None:
    keys = {"ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
            "ed25519_public": "ssh-ed25519 AAAA host"}
    config = yaml.safe_load(user_data(timedelta(hours=1), keys))
    assert config["ssh_keys"] == keys and config["ssh_deletekeys"] is True
    assert config["ssh_genkeytypes"] == []  # the image's keys go, and none are made
