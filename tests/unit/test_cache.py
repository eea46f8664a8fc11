"""lab/docker/cache.py's pure parts: apt's failures read back, the transfer log, what a server gets.

The cache itself (container, volume, networks, offline mode) is proven for real by
tests/integration/test_cache_offline.py.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from lab.docker.cache import (
    APT_CONF,
    APT_SCRIPT,
    CacheStatus,
    Traffic,
    apt_proxy_archive,
    cache_name,
    missing_packages_hint,
    read_traffic,
)
from lab.errors import UsageError

# What Ansible's apt module said when the cache was offline and lacked sl (seen for real).
APT_OFFLINE = (
    "'/usr/bin/apt-get -y -o \"Dpkg::Options::=--force-confdef\" install 'sl=5.02-1+b1'' "
    "failed: E: Failed to fetch http://deb.debian.org/debian/pool/main/g/gpm/"
    "libgpm2_1.20.7-10%2bb1_amd64.deb  503  Unable to download in offline mode [IP: "
    "172.24.0.2 3142]\nE: Failed to fetch http://deb.debian.org/debian/pool/main/s/sl/"
    "sl_5.02-1%2bb1_amd64.deb  503  Unable to download in offline mode [IP: 172.24.0.2 3142]\n"
    "E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?"
)


def test_missing_packages_are_named_with_what_to_do() -> None:
    hint = missing_packages_hint(APT_OFFLINE)
    assert hint is not None
    assert hint.startswith("packages libgpm2, sl could not be fetched")
    assert "run `lab cache warm` while online" in hint


def test_one_missing_package_without_a_cache() -> None:
    text = ("E: Failed to fetch http://deb.debian.org/debian/pool/main/n/nginx/"
            "nginx-common_1.22.1-9_all.deb  Temporary failure resolving 'deb.debian.org'")
    assert (missing_packages_hint(text) or "").startswith("package nginx-common could not")


def test_other_failures_get_no_cache_hint() -> None:
    assert missing_packages_hint("No package matching 'nginxx' is available") is None
    # A 404 is a stale package index, not a missing network: the cache would not help.
    stale = ("E: Failed to fetch http://deb.debian.org/debian/pool/main/n/nginx/"
             "nginx_1.22.1-9_amd64.deb  404  Not Found [IP: 151.101.2.132 80]")
    assert missing_packages_hint(stale) is None


def test_traffic_counts_misses_once_even_when_fetched_in_parts() -> None:
    log = "\n".join([
        "1|I|151287|10.0.0.3|debrep/dists/bookworm/InRelease",
        "1|O|151293|10.0.0.3|debrep/dists/bookworm/InRelease",
        "2|I|270418|10.0.0.3|debrep/pool/main/h/haproxy/haproxy_2.6.12_amd64.deb",
        "2|I|2043144|10.0.0.3|debrep/pool/main/h/haproxy/haproxy_2.6.12_amd64.deb",
        "2|O|2043125|10.0.0.3|debrep/pool/main/h/haproxy/haproxy_2.6.12_amd64.deb",
        "3|O|2043125|10.0.0.4|debrep/pool/main/h/haproxy/haproxy_2.6.12_amd64.deb",
        "3|O|151293|10.0.0.4|debrep/dists/bookworm/InRelease",
        "4|E|640|10.0.0.4|debrep/pool/main/s/sl/sl_5.02-1+b1_amd64.deb [HTTP error, code: 503]",
        "not a log line",
    ])
    assert read_traffic(log) == Traffic(hits=2, misses=2, errors=1,
                                        served_bytes=151293 * 2 + 2043125 * 2,
                                        fetched_bytes=151287 + 270418 + 2043144)


def test_a_server_gets_apt_setting_and_an_executable_script() -> None:
    with tarfile.open(fileobj=io.BytesIO(apt_proxy_archive())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {APT_CONF, APT_SCRIPT}
        assert members[APT_SCRIPT].mode == 0o755
        conf = tar.extractfile(APT_CONF).read().decode()  # type: ignore[union-attr]
        script = tar.extractfile(APT_SCRIPT).read().decode()  # type: ignore[union-attr]
    assert f'Proxy-Auto-Detect "/{APT_SCRIPT}"' in conf
    # Never a bare proxy: a stopped cache must send apt to the mirror, not make it wait.
    assert "Acquire::http::Proxy " not in conf
    assert "echo DIRECT" in script and "timeout 1" in script


def test_cache_name_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_CACHE", raising=False)
    assert cache_name() == "lab-cache"
    monkeypatch.setenv("LAB_CACHE", "t-cache-1234")
    assert cache_name() == "t-cache-1234"
    monkeypatch.setenv("LAB_CACHE", "Bad Name")
    with pytest.raises(UsageError, match="LAB_CACHE"):
        cache_name()


def test_doctor_line() -> None:
    stopped = CacheStatus("lab-cache", running=False, exists=False, volume=True)
    assert stopped.describe() == ("lab-cache not running: servers fetch from Debian's mirror; "
                                  "its volume is kept")
    running = CacheStatus("lab-cache", True, True, True, offline=True, size_bytes=18_400_000,
                          traffic=Traffic(hits=5, misses=2))
    assert running.describe() == ("lab-cache running, offline (serves what it holds), 18 MB, "
                                  "5 hits, 2 misses")
