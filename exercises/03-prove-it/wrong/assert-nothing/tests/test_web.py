"""Tests that look busy and prove nothing: no assert, so they pass whatever the server does."""
# ruff: noqa: B018  (this wrong answer is useless expressions on purpose)


def test_nginx_is_installed(host):
    host.package("nginx").is_installed


def test_nginx_is_running_and_enabled(host):
    nginx = host.service("nginx")
    nginx.is_running
    nginx.is_enabled


def test_listens_on_port_80(host):
    host.socket("tcp://0.0.0.0:80").is_listening


def test_page(host):
    host.run("curl -s http://127.0.0.1/")
