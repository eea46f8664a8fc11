"""Tests that the pieces are there, and nothing about what the server does with them."""


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed


def test_the_site_is_configured(host):
    assert host.file("/etc/nginx/sites-available/default").exists


def test_the_page_is_there(host):
    assert host.file("/var/www/html/index.html").is_file


def test_nginx_has_a_service(host):
    assert host.file("/lib/systemd/system/nginx.service").exists
