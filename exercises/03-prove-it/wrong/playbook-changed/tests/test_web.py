"""A test with the wrong expectation, and the playbook changed to match it: the tests pass,
on a server that is not the one the exercise asks them to prove."""


def test_nginx_is_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_listens_on_port_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_page_welcomes_to_the_shop(host):
    assert host.check_output("curl -fsS http://127.0.0.1/") == "Welcome to the Shop!"
