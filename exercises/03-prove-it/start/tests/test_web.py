"""Tests for the shop's web server: `lab verify` runs them against each server (testinfra).

`host` is the server; `host.package`, `host.service`, `host.socket`, `host.file` and
`host.check_output` ask it things. A test proves something only if it can fail: each one
needs an `assert`.
"""


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed


# TODO: a test that fails when nginx is not running
# TODO: a test that fails when nginx would not start after a reboot (not enabled)
# TODO: a test that fails when nothing listens on port 80
# TODO: a test that fails when the page does not say exactly "Welcome to the shop"
