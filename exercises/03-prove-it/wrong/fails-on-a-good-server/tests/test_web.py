"""A test with the wrong expectation: it fails on a server that is right."""


def test_nginx_is_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_page_welcomes_to_the_shop(host):
    assert host.check_output("curl -fsS http://127.0.0.1/") == "Welcome to the Shop!"
