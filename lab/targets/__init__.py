"""Targets: where servers run.

``base.py`` is the interface everything above this package talks to; ``docker.py`` and
``vagrant.py`` are the ones lab ships (both use :mod:`lab.docker.dockerengine` for the Docker
engine); ``registry.py`` finds them by name (lab.yml's ``target:``), built-in or from the
``lab.targets`` entry point group.

This file imports nothing, so importing one module of the package imports no other.
"""
