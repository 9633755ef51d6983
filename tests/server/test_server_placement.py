"""Placement: where a dispatch round sends queued executions (pure functions, no database)."""

from __future__ import annotations

from typing import Any

from flux_server.placement import OfferTarget, Placement, gpus_needed


def _anything(requests: Any) -> bool:
    return True


def _target(name: str, capacity: int = 4, gpus: int = 0, fits: Any = _anything) -> OfferTarget:
    return OfferTarget(name, capacity, fits, gpus)


def _no_gpu_users() -> list[tuple[str, Any]]:
    raise AssertionError("GPU use read for an execution that requests no GPU")


def test_each_execution_goes_to_the_least_loaded_worker_by_share_of_capacity() -> None:
    targets = [_target("big", capacity=8), _target("small", capacity=2)]
    placement = Placement(targets, {"big": 2, "small": 1}, _no_gpu_users)
    # big is 25 % full, small 50 %: big takes executions until it is fuller (a tie goes to
    # the first worker).
    assert [placement.place(None) for _ in range(4)] == ["big", "big", "big", "small"]
    assert placement.free == {"big": 3, "small": 0}


def test_a_tie_does_not_go_back_to_the_worker_that_let_the_offer_lapse() -> None:
    targets = [_target("a"), _target("b")]
    assert Placement(targets, {}, _no_gpu_users).place(None, lapsed="a") == "b"
    assert Placement(targets, {}, _no_gpu_users).place(None, lapsed="b") == "a"
    # Not on a tie: the lapsed worker is still the least loaded one.
    assert Placement(targets, {"b": 1}, _no_gpu_users).place(None, lapsed="a") == "a"


def test_capacity_bounds_the_round_and_a_worker_that_does_not_fit_is_skipped() -> None:
    cpu_only = _target("cpu", capacity=1, fits=lambda r: not r)
    placement = Placement([cpu_only], {}, _no_gpu_users)
    assert placement.has_room()
    assert placement.place({"memory": 2**40}) is None  # fits nowhere: skipped, slot kept
    assert placement.place(None) == "cpu"
    assert not placement.has_room()
    assert placement.place(None) is None
    assert not Placement([cpu_only], {"cpu": 1}, _no_gpu_users).has_room()


def test_gpus_held_or_offered_count_and_two_runs_never_share_one_gpu() -> None:
    reads = []

    def users() -> list[tuple[str, Any]]:
        reads.append(1)
        return [("two", {"gpu": 1}), ("gone", {"gpu": 4}), ("two", None)]

    targets = [_target("one", gpus=1), _target("two", gpus=2), _target("none")]
    placement = Placement(targets, {}, users)
    assert placement.place(None) == "one"  # no GPU requested: GPU use not read
    assert reads == []
    assert placement.place({"gpu": 1}) == "two"  # "one" is busier; "two" has a GPU left
    assert placement.place({"gpu": 1}) == "one"
    assert placement.place({"gpu": 1}) is None  # every GPU is taken now
    assert reads == [1]  # read once per round
    assert placement.gpus_free == {"one": 0, "two": 0, "none": 0}


def test_gpus_needed_reads_stored_requests() -> None:
    assert gpus_needed(None) == gpus_needed({}) == 0
    assert gpus_needed({"cpu": 2}) == 0
    assert gpus_needed({"gpu": 2}) == 2
    assert gpus_needed({"gpu_memory": 2**30}) == 1  # a GPU memory request asks for one GPU
