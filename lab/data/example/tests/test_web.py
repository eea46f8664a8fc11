"""Tests for a web server, run by `lab verify` with testinfra against each server."""


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed


def test_nginx_is_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_listens_on_port_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_page_names_this_host(host):
    page = host.check_output("curl -fsS http://127.0.0.1/")
    assert host.check_output("hostname") in page


def test_health_endpoint_answers_ok(host):
    assert host.check_output("curl -fsS http://127.0.0.1/health") == "ok"
