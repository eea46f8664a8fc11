"""Tests that forgot to ask: `assert host.service("nginx")` is true whatever nginx does."""


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed


def test_nginx_is_running(host):
    assert host.service("nginx")


def test_nginx_starts_at_boot(host):
    assert host.service("nginx")


def test_listens_on_port_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_page_welcomes_to_the_shop(host):
    assert host.check_output("curl -fsS http://127.0.0.1/") == "Welcome to the shop"
