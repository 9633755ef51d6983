"""Reading workflows from uploaded source without running it."""

from __future__ import annotations

import re

import pytest
from flux.errors import UsageError
from flux_server.source import read_workflows

FLOWS = """
import flux
import flux as fx
from flux import workflow, ResourceRequest
from flux import workflow as wf
from flux.schedules import cron, interval, once

SHOULD_NOT_RUN = open("/nonexistent/file")  # never executed by the server

@workflow
async def plain(ctx):
    return 1

@flux.workflow
async def dotted(ctx):
    return 2

@wf.with_options(name="renamed", secret_requests=["API_KEY", "DB_URL"])
async def aliased(ctx):
    return 3

@fx.workflow.with_options(
    schedule=cron("0 9 * * MON-FRI", timezone="UTC"),
    requests={"cpu": 2, "memory": "4Gi", "gpu": 1, "gpu_memory": "40Gi", "packages": ["numpy>=2"]},
    retry_max_attempts=3,
    output_storage=make_storage(),
)
async def nightly(ctx):
    return 4

@workflow.with_options(schedule=interval(hours=6), requests=ResourceRequest(cpu=1, memory="512Mi"))
async def sync_data(ctx):
    return 5

@workflow.with_options(schedule=once("2030-01-01T00:00:00+00:00"))
async def one_shot(ctx):
    return 6

@workflow
def not_async(ctx):  # workflows are async functions; this one is not found
    return 7

async def undecorated(ctx):
    return 8

class Holder:
    @workflow
    async def inside_class(self, ctx):  # only module-level workflows are registered
        return 9
"""


def test_finds_every_decorator_form_and_reads_options() -> None:
    found = {w.name: w for w in read_workflows(FLOWS, "flows.py")}
    assert list(found) == ["plain", "dotted", "renamed", "nightly", "sync_data", "one_shot"]
    assert found["renamed"].function == "aliased"
    assert found["renamed"].options.secret_requests == ["API_KEY", "DB_URL"]

    nightly = found["nightly"].options
    assert nightly.schedule == {
        "type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "UTC",
    }
    assert nightly.requests is not None
    assert (nightly.requests.cpu, nightly.requests.memory, nightly.requests.gpu) == (
        2,
        4 * 2**30,
        1,
    )
    assert (nightly.requests.gpu_memory, nightly.requests.packages) == (40 * 2**30, ["numpy>=2"])
    assert nightly.settings == {"retry_max_attempts": 3, "output_storage": "make_storage()"}

    sync_data = found["sync_data"].options
    assert sync_data.schedule is not None and sync_data.schedule["type"] == "interval"
    assert sync_data.requests is not None and sync_data.requests.memory == 512 * 2**20
    assert found["one_shot"].options.schedule is not None
    assert found["one_shot"].options.schedule["type"] == "once"
    assert found["plain"].line == 11  # the line of its "async def"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n    pass\n", "line 1"),
        ("x = 1\n\n\nasync def f(:\n", "line 4"),
        ("async def f(ctx):\n    return 1\n", "no workflow"),
        (
            "@workflow\nasync def a(ctx): ...\n"
            "@workflow.with_options(name='a')\nasync def b(ctx): ...",
            "twice",
        ),
        ("@workflow.with_options(schedule=my_schedule)\nasync def f(ctx): ...", "literal"),
        ("@workflow.with_options(schedule=cron(EXPR))\nasync def f(ctx): ...", "literal"),
        ("@workflow.with_options(schedule=cron('not a cron'))\nasync def f(ctx): ...", "schedule"),
        ("@workflow.with_options(requests={'cpu': 'many'})\nasync def f(ctx): ...", "requests"),
        ("@workflow.with_options(requests={'tpu': 1})\nasync def f(ctx): ...", "tpu"),
        (
            "@workflow.with_options(requests={'packages': ['numpy >> 2']})\nasync def f(ctx): ...",
            "'numpy >> 2' is not a requirement",
        ),
        ("@workflow.with_options(requests={'gpu_memory': 'lots'})\nasync def f(ctx): ...", "lots"),
        ("@workflow.with_options(requests=REQS)\nasync def f(ctx): ...", "requests"),
        ("@workflow.with_options(name=NAME)\nasync def f(ctx): ...", "name"),
        ("@workflow.with_options(secret_requests='A')\nasync def f(ctx): ...", "secret_requests"),
        ("@workflow.with_options('x')\nasync def f(ctx): ...", "keyword"),
        ("@workflow.with_options(**opts)\nasync def f(ctx): ...", "**"),
        ("x = '\x00'\n", "parsed"),
    ],
)
def test_rejects_what_it_cannot_read(source: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        read_workflows(source, "flows.py")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(UsageError) as info:
        read_workflows("from flux import workflow\n\n@workflow\nasync def f(ctx)\n    pass\n")
    assert info.value.details["line"] == 4


def test_the_secrets_a_file_asks_for_are_gathered_for_each_workflow() -> None:
    source = """
from flux import task, workflow

@task.with_options(secret_requests=["A", "B"])
async def one(secrets={}): ...

two = task(lambda: None, secret_requests=("C",))
agent = Agent("m", api_key_secret="D", other="not a secret")

@workflow.with_options(secret_requests=["E"])
async def first(ctx): ...

@workflow
async def second(ctx): ...
"""
    found = {d.name: d.secret_names for d in read_workflows(source)}
    # By file: what a task of the file may ask for, any of its workflows may run.
    assert found == {"first": ("A", "B", "C", "D", "E"), "second": ("A", "B", "C", "D", "E")}


def test_secret_requests_the_server_cannot_read_are_refused() -> None:
    source = "from flux import task, workflow\nNAMES = ['A']\n"
    source += "@task.with_options(secret_requests=NAMES)\nasync def t(secrets={}): ...\n"
    source += "@workflow\nasync def w(ctx): ...\n"
    with pytest.raises(UsageError, match="line 3: secret_requests= must be a literal list"):
        read_workflows(source)
