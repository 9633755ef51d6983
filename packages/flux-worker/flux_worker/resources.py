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

__all__ = ["detect_gpus", "installed_packages", "resources", "runtime"]


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
