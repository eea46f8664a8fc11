"""The ``lab`` command line: turns arguments into library calls and results into output.

Nothing here decides anything about servers; it parses, calls :mod:`lab` and renders. One
module per command group (:mod:`lab.cli.lab`, :mod:`lab.cli.release`, :mod:`lab.cli.image`);
:mod:`lab.cli.main` puts them together. Every :class:`~lab.errors.LabError` becomes one line
on stderr and its exit status (:func:`lab.cli.base.handled`).
"""

from lab.cli.main import app, main

__all__ = ["app", "main"]
