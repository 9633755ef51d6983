"""Read workflow names and options from uploaded source, statically.

The server never imports or executes uploaded code: it parses the file with :mod:`ast` and looks
at module-level ``async def`` functions decorated with ``@workflow``, ``@flux.workflow``,
``@workflow.with_options(...)`` or ``@flux.workflow.with_options(...)`` (import aliases of
``flux`` and ``workflow`` count too). Options must be literals for the server to read them;
``schedule=cron(...)``/``interval(...)``/``once(...)`` and ``requests=ResourceRequest(...)`` calls
with literal arguments are understood.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any

from flux.errors import FluxError, UsageError
from flux.protocol import WORKFLOW_NAME_PATTERN, ResourceRequest, WorkflowOptions
from pydantic import ValidationError

__all__ = ["WorkflowDefinition", "file_secret_names", "read_workflows", "source_hash"]

_SCHEDULE_FACTORIES = frozenset({"cron", "interval", "once"})
_NAME = re.compile(WORKFLOW_NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    name: str
    function: str
    line: int
    options: WorkflowOptions
    secret_names: tuple[str, ...] = ()
    """The secrets a worker may be given for its executions: its own ``secret_requests`` and
    those of every task in its file (see :func:`file_secret_names`)."""


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def read_workflows(source: str, filename: str = "<upload>") -> list[WorkflowDefinition]:
    """The workflows ``source`` defines, in file order.

    Raises:
        UsageError: a syntax error (naming the line), no workflow, a duplicate workflow name,
            or an option the server cannot read without running the code.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        if exc.lineno is None:
            raise UsageError(f"{filename} cannot be parsed as Python: {exc.msg}") from None
        raise UsageError(
            f"{filename} has a syntax error at line {exc.lineno}: {exc.msg}",
            line=exc.lineno,
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise UsageError(f"{filename} cannot be parsed as Python: {exc}") from None

    aliases = _Aliases.of(tree)
    found: list[WorkflowDefinition] = []
    for node in tree.body:
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            keywords = aliases.workflow_keywords(decorator)
            if keywords is not None:
                found.append(_definition(node, keywords, filename))
                break
    if not found:
        raise UsageError(
            f"{filename} defines no workflow: decorate a module-level 'async def' with "
            "@workflow (from flux import workflow)"
        )
    in_file = file_secret_names(tree, filename)
    found = [
        replace(d, secret_names=tuple(sorted({*d.options.secret_requests, *in_file})))
        for d in found
    ]
    seen: dict[str, int] = {}
    for item in found:
        if item.name in seen:
            raise UsageError(
                f"{filename} defines workflow {item.name!r} twice (lines {seen[item.name]} and "
                f"{item.line}); give one of them another name",
                line=item.line,
            )
        seen[item.name] = item.line
    return found


@dataclass(frozen=True, slots=True)
class _Aliases:
    modules: frozenset[str]
    """Names bound to the ``flux`` module."""
    workflows: frozenset[str]
    """Names bound to ``flux.workflow``."""

    @classmethod
    def of(cls, tree: ast.Module) -> _Aliases:
        modules, workflows = {"flux"}, {"workflow"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(a.asname for a in node.names if a.name == "flux" and a.asname)
            elif isinstance(node, ast.ImportFrom) and node.module == "flux":
                workflows.update(a.asname or a.name for a in node.names if a.name == "workflow")
        return cls(frozenset(modules), frozenset(workflows))

    def is_workflow(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.workflows
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "workflow"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.modules
        )

    def workflow_keywords(self, decorator: ast.expr) -> list[ast.keyword] | None:
        """The option keywords when ``decorator`` makes a workflow, else ``None``."""
        if self.is_workflow(decorator):
            return []
        if isinstance(decorator, ast.Call):
            func = decorator.func
            is_options = (
                isinstance(func, ast.Attribute)
                and func.attr == "with_options"
                and self.is_workflow(func.value)
            )
            if is_options or self.is_workflow(func):
                if decorator.args:
                    raise UsageError(
                        f"line {decorator.lineno}: pass workflow options by keyword "
                        "(with_options(name=..., schedule=...))",
                        line=decorator.lineno,
                    )
                return decorator.keywords
        return None


def _definition(
    node: ast.AsyncFunctionDef, keywords: list[ast.keyword], filename: str
) -> WorkflowDefinition:
    name = node.name
    schedule: dict[str, Any] | None = None
    secret_requests: list[str] = []
    requests: ResourceRequest | None = None
    settings: dict[str, Any] = {}
    for keyword in keywords:
        key, value = keyword.arg, keyword.value
        where = f"{filename} line {value.lineno}, workflow {node.name!r}"
        if key is None:
            raise UsageError(f"{where}: options cannot be passed with **", line=value.lineno)
        if key == "name":
            literal = _literal(value)
            if not isinstance(literal, str) or not _NAME.fullmatch(literal):
                raise UsageError(
                    f"{where}: name= must be a letter, digit or '_', then up to 254 letters, "
                    "digits, '_', '.' or '-' (no spaces: names travel in URLs and commands)",
                    line=value.lineno,
                )
            name = literal
        elif key == "schedule":
            schedule = _schedule(value, where)
        elif key == "secret_requests":
            literal = _literal(value)
            if not isinstance(literal, list | tuple) or not all(
                isinstance(s, str) for s in literal
            ):
                raise UsageError(
                    f"{where}: secret_requests= must be a literal list of names",
                    line=value.lineno,
                )
            secret_requests = list(literal)
        elif key == "requests":
            requests = _requests(value, where)
        else:
            settings[key] = _setting(value)
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{filename} line {node.lineno}: workflow {node.name!r} needs a name of ASCII "
            "letters, digits, '_', '.' and '-': give one with @workflow.with_options(name=...)",
            line=node.lineno,
        )
    options = WorkflowOptions(
        schedule=schedule, secret_requests=secret_requests, requests=requests, settings=settings
    )
    return WorkflowDefinition(name=name, function=node.name, line=node.lineno, options=options)


_NOT_LITERAL = object()


def file_secret_names(tree: ast.Module, filename: str = "<upload>") -> list[str]:
    """Every secret name the file asks for: each ``secret_requests=[...]`` keyword (of a
    task's or workflow's options, wherever it appears) and each ``..._secret="NAME"`` keyword
    (such as flux-agents' ``Agent(api_key_secret=...)``). A worker is given these secrets for
    the file's workflows, and no others.

    Raises:
        UsageError: a ``secret_requests=`` that is not a literal list of names (the server
            could not tell which secrets its tasks may have).
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "secret_requests":
                literal = _literal(keyword.value)
                if not isinstance(literal, list | tuple | set) or not all(
                    isinstance(s, str) for s in literal
                ):
                    raise UsageError(
                        f"{filename} line {keyword.value.lineno}: secret_requests= must be a "
                        "literal list of names, so the server knows which secrets the workers "
                        "running this file may be given",
                        line=keyword.value.lineno,
                    )
                names.update(literal)
            elif keyword.arg is not None and keyword.arg.endswith("_secret"):
                literal = _literal(keyword.value)
                if isinstance(literal, str) and literal:
                    names.add(literal)
    return sorted(names)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return node.func.id
        if isinstance(node.func, ast.Attribute):
            return node.func.attr
    return None


def _call_arguments(node: ast.Call, where: str) -> tuple[list[Any], dict[str, Any]]:
    args = [_literal(a) for a in node.args]
    kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg is not None}
    if (
        any(a is _NOT_LITERAL for a in args)
        or any(v is _NOT_LITERAL for v in kwargs.values())
        or any(k.arg is None for k in node.keywords)
    ):
        raise UsageError(
            f"{where}: the arguments of {_call_name(node)}(...) must be literals so the server "
            "can read them without running your code",
            line=node.lineno,
        )
    return args, kwargs


def _schedule(node: ast.expr, where: str) -> dict[str, Any] | None:
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    factory = _call_name(node)
    if factory not in _SCHEDULE_FACTORIES:
        raise UsageError(
            f"{where}: schedule= must be a literal cron(...), interval(...) or once(...) call "
            "so the server can read it without running your code",
            line=node.lineno,
        )
    assert isinstance(node, ast.Call) and factory is not None
    args, kwargs = _call_arguments(node, where)
    return schedule_config(factory, args, kwargs, where, node.lineno)


def schedule_config(
    factory: str, args: list[Any], kwargs: dict[str, Any], where: str, line: int
) -> dict[str, Any]:
    """Evaluate ``cron/interval/once(*args, **kwargs)`` with :mod:`flux.schedules` and return
    the schedule's config; without that module, the call itself is recorded."""
    try:
        from flux import schedules
    except ImportError:  # the scheduling package is not installed in this build
        return {"type": factory, "args": args, "kwargs": kwargs}
    try:
        schedule = getattr(schedules, factory)(*args, **kwargs)
        config = schedule.to_config()
    except (FluxError, TypeError, ValueError) as exc:
        raise UsageError(f"{where}: invalid schedule: {exc}", line=line) from None
    return dict(config)


def _requests(node: ast.expr, where: str) -> ResourceRequest | None:
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if _call_name(node) == "ResourceRequest":
        assert isinstance(node, ast.Call)
        args, values = _call_arguments(node, where)
        if args:
            raise UsageError(f"{where}: pass ResourceRequest fields by keyword", line=node.lineno)
    else:
        values = _literal(node)
        if not isinstance(values, dict):
            raise UsageError(
                f"{where}: requests= must be a literal dict or ResourceRequest(...) such as "
                '{"cpu": 2, "memory": "4Gi", "gpu": 1}',
                line=node.lineno,
            )
    unknown = sorted(set(values) - set(ResourceRequest.model_fields))
    if unknown:
        raise UsageError(
            f"{where}: unknown resource(s) {', '.join(map(repr, unknown))}; "
            f"use {', '.join(ResourceRequest.model_fields)}",
            line=node.lineno,
        )
    try:
        return ResourceRequest.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise UsageError(f"{where}: invalid requests: {problems}", line=node.lineno) from None


def _setting(node: ast.expr) -> Any:
    value = _literal(node)
    if value is _NOT_LITERAL:
        return ast.unparse(node)
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
