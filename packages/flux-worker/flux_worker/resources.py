"""What this machine offers: CPU, memory, disk (psutil), GPUs (NVML), installed packages."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from flux.protocol.workers import GpuInfo, PackageInfo, WorkerResources, WorkerRuntime
from flux.protocol.workflows import ResourceRequest

__all__ = ["GpuSlots", "detect_gpus", "gpu_env", "installed_packages", "resources", "runtime"]


def detect_gpus() -> list[GpuInfo]:
    """NVIDIA GPUs through NVML. No library, no driver or no device means an empty list."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded...: a machine without GPUs
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name: Any = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total=int(memory.total),
                    memory_free=int(memory.free),
                )
            )
        return gpus
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def resources(disk_path: str | Path = ".", gpus: list[GpuInfo] | None = None) -> WorkerResources:
    memory = psutil.virtual_memory()
    try:
        disk = psutil.disk_usage(str(disk_path))
        disk_total, disk_free = int(disk.total), int(disk.free)
    except OSError:
        disk_total = disk_free = 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return WorkerResources(
        cpu_count=cpus or 1,
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        memory_total=int(memory.total),
        memory_available=int(memory.available),
        disk_total=disk_total,
        disk_free=disk_free,
        gpus=detect_gpus() if gpus is None else gpus,
    )


def runtime() -> WorkerRuntime:
    try:
        flux_version = metadata.version("flux-sdk")
    except metadata.PackageNotFoundError:
        flux_version = ""
    return WorkerRuntime(
        os=platform.system(),
        os_release=platform.release(),
        python_version=platform.python_version(),
        hostname=socket.gethostname(),
        flux_version=flux_version,
    )


def installed_packages() -> list[PackageInfo]:
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.name
        if name and name not in seen:
            seen[name] = dist.version
    return [PackageInfo(name=n, version=v) for n, v in sorted(seen.items())]


class GpuSlots:
    """Which of this machine's GPUs (NVML indices) each execution holds.

    The server counts the GPUs an execution asks for against the worker's; the worker picks
    which ones, so that two runs never share one. A child process (subprocess isolation)
    sees only its own through ``CUDA_VISIBLE_DEVICES`` (:func:`gpu_env`).
    """

    def __init__(self, gpus: list[GpuInfo]) -> None:
        self._gpus = gpus
        self._holders: dict[int, str] = {}

    def take(self, execution_id: str, request: ResourceRequest | None) -> list[int] | None:
        """The GPUs given to ``execution_id``: ``[]`` when it asks for none, ``None`` when
        not enough of them are free (or large enough for ``gpu_memory``)."""
        need = request.gpu_count() if request is not None else 0
        if not need:
            return []
        assert request is not None
        least = request.gpu_memory or 0
        free = [
            i
            for i, gpu in enumerate(self._gpus)
            if i not in self._holders and gpu.memory_total >= least
        ]
        if len(free) < need:
            return None
        chosen = free[:need]
        for index in chosen:
            self._holders[index] = execution_id
        return chosen

    def give_back(self, execution_id: str) -> bool:
        """Free the GPUs of ``execution_id``; whether it held any."""
        held = [i for i, holder in self._holders.items() if holder == execution_id]
        for index in held:
            del self._holders[index]
        return bool(held)

    def held(self) -> dict[int, str]:
        return dict(self._holders)


def gpu_env(indices: list[int]) -> dict[str, str]:
    """Environment variables that show a child process only the GPUs ``indices`` (NVML
    numbers them by PCI bus, so CUDA is told to do the same)."""
    return {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in indices),
    }
