"""The fleet simulator: N simulated devices in one process, each with its own connection.

:func:`run_fleet` is the in-process API (the demo and benchmarks call it);
the CLI wraps it. One TaskGroup holds every device's two named tasks
(``<device>/link``, ``<device>/drive``), a starter that ramps connections
up at ``connect_rate`` per second, and the stopper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, start_http_server

from device_sim.compute import device_speeds
from device_sim.fleet_shared import Shared
from device_sim.metrics import FleetMetrics, FleetView
from device_sim.settings import FleetSettings
from device_sim.sim_device import SimDevice
from fedmq.tasks import get_task

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Raised by the stopper task to cancel the whole TaskGroup."""


async def run_fleet(
    settings: FleetSettings,
    *,
    registry: CollectorRegistry,
    stop: asyncio.Event | None = None,
    metrics: FleetMetrics | None = None,
) -> FleetView:
    """Run the fleet until ``stop`` is set, ``duration`` passes or ``max_updates`` are sent.

    Pass ``metrics`` (built on ``registry``) to watch ``metrics.view`` live.
    """
    stop = stop or asyncio.Event()
    metrics = metrics or FleetMetrics(registry, settings.task)
    task = await asyncio.to_thread(get_task, settings.task, settings.partitions, settings.alpha)
    executor = ThreadPoolExecutor(settings.train_workers, thread_name_prefix="fedmq-train")
    shared = Shared(
        settings, task, device_speeds(task.num_devices), metrics,
        asyncio.Semaphore(settings.concurrency), executor, stop, time.monotonic(),
    )
    devices: list[SimDevice] = []
    tasks: list[asyncio.Task[None]] = []
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(settings.metrics_port, registry=registry)
    watchdog = asyncio.create_task(_recancel(stop, tasks), name="fleet/recancel")
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_stopper(stop, settings.duration), name="fleet/stopper")
            tg.create_task(_starter(tg, shared, devices, tasks), name="fleet/starter")
    except* _Stopped:
        log.info("fleet of %d devices stopped", len(devices))
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        executor.shutdown(wait=True, cancel_futures=True)
        if server is not None:
            server.shutdown()
            server.server_close()
        for device in devices:
            device.forget()
    return metrics.view


async def _stopper(stop: asyncio.Event, duration: float | None) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration)
    except TimeoutError:
        stop.set()
    raise _Stopped


async def _recancel(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Cancel device tasks again while they linger after the stop.

    On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives as
    its inner operation completes; a device inside aiomqtt's disconnect then waits out
    the client's 30 s timeout and holds up the whole TaskGroup. A repeated cancel
    reaches it at its next await.
    """
    await stop.wait()
    await asyncio.sleep(1.0)
    while any(not t.done() for t in tasks):
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.sleep(0.5)


async def _starter(
    tg: asyncio.TaskGroup, shared: Shared, devices: list[SimDevice],
    tasks: list[asyncio.Task[None]],
) -> None:
    s = shared.settings
    began = time.monotonic()
    for k in range(s.count):
        # ramp up: a connect storm of 10,000 clients makes the broker drop some
        delay = began + k / s.connect_rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        device = SimDevice(k, shared)
        devices.append(device)
        tasks.append(tg.create_task(device.link(), name=f"{device.device}/link"))
        tasks.append(tg.create_task(device.drive(), name=f"{device.device}/drive"))
    log.info("fleet: %d devices started", s.count)
