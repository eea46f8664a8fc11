"""How lab reaches its servers: keys, pinned host keys, SSH, and Ansible's view of them.

``keys.py`` makes the lab's login key and reads servers' host keys; ``knownhosts.py`` keeps
``.lab/known_hosts``, checked strictly; ``ssh.py`` is the one way lab, Ansible and users
reach a server; ``inventory.py`` writes ``.lab/inventory.yml`` and ``.lab/ssh_config``;
``ansiblecfg.py`` reads the user's own Ansible configuration; ``ports.py`` finds a free
port on 127.0.0.1.

This file imports nothing, so importing one module of the package imports no other.
"""
