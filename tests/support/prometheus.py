"""Reading a Prometheus exposition as a scraper does
(``prometheus_client.parser.text_string_to_metric_families``), for the metrics tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One exposition: every sample by name and labels, and each family's type and help."""

    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]
    families: Mapping[str, tuple[str, str]]
    """Family name (a counter's without ``_total``) -> (type, help)."""

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels`` (0 when absent: a series not yet seen)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.samples.items() if n == name and wanted <= have)


def parse(text: str) -> Scrape:
    """Parse ``text`` (the Prometheus text format).

    Raises:
        ValueError: it is not a valid exposition.
    """
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    families: dict[str, tuple[str, str]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = (family.type, family.documentation)
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"sample {key} twice"
            samples[key] = sample.value
    return Scrape(samples, families)


def delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    """How much the sample ``name`` with ``labels`` moved between two scrapes."""
    return after.value(name, **labels) - before.value(name, **labels)
