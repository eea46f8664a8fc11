"""Every goal's feedback names ONE next action: the `next:` an attendee reads after FAIL.

Goals stop at the first that fails so that the attendee reads one thing to do at a time
(exercises/README.md); a `next:` offering two things, or a choice, undoes that. The test reads
every ``Feedback(...)`` made in exercises/*/checks.py, and in the judgement the course shares
(lab.course.grader.hidden_changes), from their source: the ``next=`` argument's string and
f-string parts, with names and calls followed to the texts they stand for (module constants,
a local variable's assignments, a dict of advice, a helper's returns); an f-string's runtime
values (a server's name, a test's) are left as ``X``. Each must name one action:

- it is there: never empty;
- at most one command to run: a backticked span starting with a program (`lab ...`,
  `cp ...`, `cat ...`; a pipeline is one), mentions included, since a command named is a
  command to run; backticked code that is not a command (`state: started`, `assert ...`) is
  what to write, not a second action;
- no choice: no " or " outside backticks;
- no second instruction: no "; " outside backticks;
- "then" only as "an edit, then `the command that applies it`" ("add the task, then
  `lab provision`"): "then" always followed by that one backticked command, once.

The grader's own workspace message (lab.yml that does not load, servers gone) is not a goal's:
exercises/README.md promises it names `lab exercise reset` as the way back beside the fix.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lab.course import grader
from lab.course.exercises import course

PROGRAMS = {"lab", "cp", "cat", "curl", "sed", "systemctl", "ssh", "rm", "mv", "echo", "diff",
            "aws", "pytest", "ansible-playbook", "git", "make"}
SHARED = {"hidden_changes"}  # lab.course.grader's functions whose feedback is a goal's
HOLE = "X"


def _module(path: Path) -> ModuleType:
    if path == Path(grader.__file__):
        return grader
    exercise = next(e for e in course() if e.folder / "checks.py" == path)
    first = next(iter(exercise.checks.values()))
    module = ModuleType(path.stem)
    module.__dict__.update(first.__globals__)
    return module


class _Texts:
    """The texts a ``next=`` expression of one source file can stand for."""

    def __init__(self, path: Path) -> None:
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.module = _module(path)
        self.functions = {n.name: n for n in self.tree.body if isinstance(n, ast.FunctionDef)}

    def of(self, node: ast.expr, scope: ast.FunctionDef | None) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            parts = [self._part(v, scope) for v in node.values]
            return ["".join(p) for p in itertools.product(*parts)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [a + b for a in self.of(node.left, scope) for b in self.of(node.right, scope)]
        if isinstance(node, ast.IfExp):
            return self.of(node.body, scope) + self.of(node.orelse, scope)
        if isinstance(node, ast.Name):
            return self._name(node.id, scope)
        if isinstance(node, ast.Attribute):
            value = self._evaluated(node)
            if isinstance(value, str):
                return [value]
        if isinstance(node, ast.Call):
            return self._call(node, scope)
        raise AssertionError(f"line {node.lineno}: cannot read `{ast.unparse(node)}` as "
                             "text: write `next=` so that its words are in the source")

    def _part(self, value: ast.expr, scope: ast.FunctionDef | None) -> list[str]:
        if isinstance(value, ast.FormattedValue):
            try:
                return self.of(value.value, scope)
            except AssertionError:
                return [HOLE]  # a runtime value: a server's name, a test's
        return self.of(value, scope)

    def _name(self, name: str, scope: ast.FunctionDef | None) -> list[str]:
        value = getattr(self.module, name, None)
        if isinstance(value, str):
            return [value]
        found: list[str] = []
        for node in ast.walk(scope) if scope is not None else ():
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    found += self.of(node.value, scope)
                elif isinstance(target, ast.Tuple):
                    names = [t.id if isinstance(t, ast.Name) else "" for t in target.elts]
                    if name in names:
                        found += self._element(node.value, names.index(name), scope)
        if not found:
            raise AssertionError(f"`{name}`: no text found for it")
        return found

    def _element(self, value: ast.expr, index: int, scope: ast.FunctionDef | None) -> list[str]:
        """Element ``index`` of the tuples ``value`` (a name, a call of a helper) stands for."""
        if isinstance(value, ast.Name):
            for node in ast.walk(scope) if scope is not None else ():
                if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == value.id for t in node.targets):
                    return self._element(node.value, index, scope)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
                value.func.id in self.functions:
            helper = self.functions[value.func.id]
            return [text for node in ast.walk(helper) if isinstance(node, ast.Return)
                    and isinstance(node.value, ast.Tuple)
                    for text in self.of(node.value.elts[index], helper)]
        raise AssertionError(f"line {value.lineno}: cannot follow `{ast.unparse(value)}`")

    def _call(self, node: ast.Call, scope: ast.FunctionDef | None) -> list[str]:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(
                func.value, ast.Dict):  # {...}.get(key, default): every value, and the default
            return [t for v in func.value.values if v is not None for t in self.of(v, scope)] \
                + [t for a in node.args[1:] for t in self.of(a, scope)]
        if isinstance(func, ast.Name) and func.id in self.functions:
            helper = self.functions[func.id]
            return [t for r in ast.walk(helper) if isinstance(r, ast.Return) and r.value
                    for t in self.of(r.value, helper)]
        raise AssertionError(f"line {node.lineno}: cannot follow `{ast.unparse(node)}`")

    def _evaluated(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            return getattr(self.module, node.id, None)
        if isinstance(node, ast.Attribute):
            return getattr(self._evaluated(node.value), node.attr, None)
        return None


def feedback_nexts() -> Iterator[tuple[str, str]]:
    """(where, text) for every text the `next=` of a goal's Feedback can be."""
    root = Path(__file__).resolve().parents[2]
    files = [e.folder / "checks.py" for e in course()] + [Path(grader.__file__)]
    for path in files:
        texts = _Texts(path)
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        for function in texts.functions.values():
            if path == Path(grader.__file__) and function.name not in SHARED:
                continue
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id == "Feedback"):
                    continue
                given = [k.value for k in node.keywords if k.arg == "next"] + node.args[2:3]
                where = f"{shown}:{node.lineno}"
                if not given:
                    yield where, ""
                    continue
                for text in texts.of(given[0], function):
                    yield where, text


def problems(text: str) -> list[str]:
    """What keeps ``text`` from naming one action (see the module's docstring)."""
    if not text.strip():
        return ["no next action"]
    spans = re.findall(r"`([^`]*)`", text)
    outside = re.sub(r"`[^`]*`", "`…`", text)
    commands = [s for s in spans if s.split() and s.split()[0] in PROGRAMS]
    found = []
    if len(commands) > 1:
        found.append(f"{len(commands)} commands: {', '.join(commands)}")
    if re.search(r"\bor\b", outside):
        found.append("a choice (' or ')")
    if "; " in outside:
        found.append("two instructions ('; ')")
    thens = [m.end() for m in re.finditer(r"\bthen\b", outside)]
    if len(thens) > 1 or any(not outside[at:].startswith(" `…`") for at in thens):
        found.append("'then' not followed by the one command that applies an edit")
    return found


NEXTS = sorted(set(feedback_nexts()))


def test_every_goal_feedback_is_read() -> None:
    assert len(NEXTS) > 80  # every exercise's; a reader that lost them would pass anything
    assert {where.split("/")[1] for where, _ in NEXTS if where.startswith("exercises/")} == {
        e.folder.name for e in course()}


@pytest.mark.parametrize(("where", "text"), NEXTS, ids=[w for w, _ in NEXTS])
def test_each_next_names_one_action(where: str, text: str) -> None:
    assert not problems(text), f"{where}: next: {text!r}: {'; '.join(problems(text))}"


@pytest.mark.parametrize(("text", "found"), [
    ("`lab provision`", []),
    ("add a task with ansible.builtin.apt, then `lab provision`", []),
    ("`state: started` on the service task, then `lab provision`", []),
    ("copy it back: `cp a b`", []),
    ("`lab ssh web-1 -- curl -s localhost | grep shop`", []),
    ("", ["no next action"]),
    ("`lab verify`, then `lab bake`", ["2 commands: lab verify, lab bake"]),
    ("`lab status`; or `lab exercise reset`",
     ["2 commands: lab status, lab exercise reset", "a choice (' or ')",
      "two instructions ('; ')"]),
    ("write `scratch` or `image`", ["a choice (' or ')"]),
    ("`lab exercise reset`, then release again",
     ["'then' not followed by the one command that applies an edit"]),
])
def test_the_rule_on_the_kinds_of_message_the_course_had(text: str, found: list[str]) -> None:
    assert problems(text) == found
