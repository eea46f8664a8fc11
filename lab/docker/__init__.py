"""lab's side of the Docker engine: what the docker target and Vagrant's docker provider use.

``engine.py`` is the connection and the engine's facts; ``runmode.py`` how a container is run
so that systemd boots in it, chosen from those facts; ``dockerengine.py`` one lab's
containers, network and images; ``image.py`` the base image; ``cache.py`` the package cache
every lab on the engine shares, and ``warm.py`` fills it. The docker target itself is
:mod:`lab.targets.docker`.

Every module here imports the Docker SDK as ``import docker``: imports are absolute, so that
is the SDK, never this package (whose name is ``lab.docker``).

This file imports nothing, so importing one module of the package imports no other.
"""
