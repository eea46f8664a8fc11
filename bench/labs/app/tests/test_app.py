"""Tests for the application servers of bench/labs/app, run by `lab verify` with testinfra."""


def test_application_runs_and_starts_at_boot(host):
    app = host.service("app")
    assert app.is_running
    assert app.is_enabled


def test_nginx_listens_on_port_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_page_names_this_host(host):
    page = host.check_output("curl -fsS http://127.0.0.1/")
    assert page.split()[0] == host.check_output("hostname")


def test_health_endpoint_answers_ok(host):
    assert host.check_output("curl -fsS http://127.0.0.1/health") == "ok"
