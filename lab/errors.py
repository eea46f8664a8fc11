"""Errors the library raises, each carrying the exit status the CLI maps it to.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; nothing below
ever calls ``sys.exit``. Messages should say what is wrong *and* what to do next.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # the lab failed a check: verify, drift, idempotence, a rolled-back release
    BAD_INPUT = 2  # bad lab.yml, bad arguments, a name that does not exist
    MISSING_PREREQUISITE = 3  # no Docker engine, no base image, no vagrant: `lab doctor` says how
    INTERNAL = 70  # a bug in lab: the traceback goes to a log file
    INTERRUPTED = 130  # Ctrl-C, after clean-up


class LabError(Exception):
    """Base of every error lab expects; its text is shown to the user as one line."""

    exit_code: ExitStatus = ExitStatus.CHECK_FAILED


class ConfigError(LabError):
    """lab.yml (or another input file) is malformed; the message names file and field."""

    exit_code = ExitStatus.BAD_INPUT


class UsageError(LabError):
    """A command was asked for something that cannot be: an unknown server name, say."""

    exit_code = ExitStatus.BAD_INPUT


class PrerequisiteError(LabError):
    """Something lab needs is missing from the machine (engine, image, vagrant)."""

    exit_code = ExitStatus.MISSING_PREREQUISITE


class TargetError(LabError):
    """The backend (Docker, Vagrant, AWS) refused or failed an operation."""

    exit_code = ExitStatus.CHECK_FAILED


class LeftBehind(TargetError):
    """A whole-lab destroy removed what it could, but the backend still holds ``held`` (a
    person-readable list): never a silent success, since it may still bill."""

    def __init__(self, message: str, removed: list[str], held: str) -> None:
        super().__init__(message)
        self.removed, self.held = removed, held


class CheckFailed(LabError):
    """The lab ran, and a check it makes (verify, drift, idempotence) found a problem."""

    exit_code = ExitStatus.CHECK_FAILED


class HostKeyRefused(LabError):
    """A server answered with a host key other than the one lab made or recorded for it:
    lab refuses to talk to it, as a man in the middle would be talked to."""

    exit_code = ExitStatus.CHECK_FAILED


class Terminated(KeyboardInterrupt):
    """A signal asked lab to stop (SIGTERM from `kill` or a supervisor, SIGHUP from a closed
    terminal): handled as Ctrl-C is, so a release rolls back and the command exits 130."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
