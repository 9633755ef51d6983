"""Resumes across real processes: values keep their types and values through a resume in a
new process, with either serializer.

Each test writes a workflow module (``wfmod.py``) and small scripts to ``tmp_path`` and runs
them with this interpreter (helpers in ``sdk_support``); every process uses the test's
SQLite file. Side effects are counted in files next to the scripts.
"""

from __future__ import annotations

import json

import pytest
from sdk_support import side_effects, write_scripts

TYPED = """
    from dataclasses import dataclass
    from datetime import UTC, date, datetime, timedelta
    from decimal import Decimal
    from enum import IntEnum, StrEnum
    from uuid import UUID

    from pydantic import BaseModel

    from flux.tasks import pause


    @dataclass(frozen=True)
    class Point:
        x: int
        y: float


    class Person(BaseModel):
        name: str
        born: date
        tags: list[str]


    class Color(StrEnum):
        RED = "red"


    class Level(IntEnum):
        HIGH = 3


    class Boom(Exception):
        pass


    class CodedError(Exception):
        def __init__(self, code: int, message: str) -> None:
            super().__init__(message)
            self.code = code


    def samples() -> dict:
        return {
            "datetime": datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
            "naive_datetime": datetime(2024, 1, 2, 3, 4, 5),
            "date": date(2024, 2, 29),
            "timedelta": timedelta(minutes=90),
            "uuid": UUID("12345678-1234-5678-1234-567812345678"),
            "tuple": (1, "a", (2, 3)),
            "set": {1, 2, 3},
            "frozenset": frozenset({"a", "b"}),
            "decimal": Decimal("1.10"),
            "bytes": b"\\x00\\xff",
            "dataclass": Point(1, 2.5),
            "model": Person(name="Ada", born=date(1815, 12, 10), tags=["math"]),
            "str_enum": Color.RED,
            "int_enum": Level.HIGH,
            "odd_keys": {1: "int key", (1, 2): "tuple key"},
            "nested": {"when": [datetime(2020, 5, 6, tzinfo=UTC)], "ids": (UUID(int=1),)},
        }


    def same(value, expected) -> bool:
        if type(value) is not type(expected) or value != expected:
            return False
        return str(value) == str(expected) if isinstance(value, Decimal) else True


    @task
    async def produce(kind: str):
        bump("produce")
        return samples()[kind]


    @task
    async def explode() -> None:
        raise Boom("kaboom")


    @task
    async def explode_coded() -> None:
        raise CodedError(409, "conflict")


    @workflow
    async def typed(ctx: ExecutionContext):
        values = {kind: await produce(kind) for kind in sorted(samples())}
        try:
            await explode()
            error = None
        except Boom as exc:
            error = exc
        try:
            await explode_coded()
        except CodedError as exc:
            coded = [type(exc).__qualname__, exc.code, str(exc)]
        await pause("go")
        report = {k: [type(v).__qualname__, same(v, samples()[k])] for k, v in values.items()}
        report["input"] = [type(ctx.input).__qualname__, same(ctx.input, samples())]
        report["error"] = [type(error).__qualname__, str(error)]
        report["coded"] = coded
        return report
"""


@pytest.mark.parametrize("serializer", ["pkl", "json"])
def test_values_keep_their_types_through_a_resume_in_a_new_process(
    scripts, serializer, monkeypatch
):
    monkeypatch.setenv("FLUX_SERIALIZER", serializer)
    write_scripts(scripts, TYPED)
    scripts.write(
        "start.py",
        """
        import wfmod

        ctx = wfmod.typed.run(wfmod.samples())
        print(ctx.execution_id, ctx.state.value)
        """,
    )
    execution_id, state = scripts.run("start.py").split()
    assert state == "PAUSED"
    produced = side_effects(scripts, "produce")

    result = json.loads(scripts.run("resume.py", "typed", execution_id))

    assert result["state"] == "COMPLETED"
    report = result["output"]
    assert report.pop("error") == ["Boom", "kaboom"]
    assert report.pop("coded") == ["CodedError", 409, "conflict"]
    wrong = {kind: got for kind, got in report.items() if got[1] is not True}
    assert wrong == {}, f"values that lost their type or value with {serializer}: {wrong}"
    assert len(report) == 17
    assert side_effects(scripts, "produce") == produced == 16  # the resume replayed every value
