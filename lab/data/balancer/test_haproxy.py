"""Tests lab runs against its own balancer (the `lb` role)."""


def test_haproxy_is_running(host):
    assert host.service("haproxy").is_running


def test_listens_on_port_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_configuration_is_valid(host):
    host.check_output("haproxy -c -q -f /etc/haproxy/haproxy.cfg")


def test_runtime_api_answers_root_only(host):
    assert "app" in host.check_output("echo 'show backend' | socat stdio /run/haproxy/admin.sock")
    assert host.file("/run/haproxy/admin.sock").mode & 0o007 == 0  # no access for others
