"""Good tests with one gap: nothing checks that nginx starts at boot."""


def test_nginx_is_running(host):
    assert host.service("nginx").is_running


def test_listens_on_port_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_page_welcomes_to_the_shop(host):
    assert host.check_output("curl -fsS http://127.0.0.1/") == "Welcome to the shop"
