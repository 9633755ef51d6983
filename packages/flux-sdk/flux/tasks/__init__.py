"""Built-in tasks and composition helpers."""

from flux.tasks.builtins import choice, now, pause, randint, randrange, sleep, uuid4
from flux.tasks.graph import Graph
from flux.tasks.parallel import parallel, pipeline
from flux.tasks.progress import progress
from flux.tasks.subworkflow import call

__all__ = [
    "Graph",
    "call",
    "choice",
    "now",
    "parallel",
    "pause",
    "pipeline",
    "progress",
    "randint",
    "randrange",
    "sleep",
    "uuid4",
]
