"""Balancers: what moves users' traffic between generations of a role.

``base.py`` is the interface the release cycle, ``lab provision`` and ``lab status`` talk to;
``haproxy.py`` is the one lab ships; ``registry.py`` finds them by name (lab.yml's
``balancer.kind``), built-in or from the ``lab.balancers`` entry point group.

This file imports nothing, so importing one module of the package imports no other.
"""
