"""lab: build a server, test it, put it in rotation slowly, throw the old one away.

The package is a library first: :mod:`lab.cli` is a thin layer over it. Library code never
prints or exits; it raises :class:`lab.errors.LabError` subclasses and reports progress through
:mod:`lab.events` listeners.
"""

__version__ = "0.1.0"
