"""Chaos actions, one small function each, registered by name (as toxiproxy registers toxics).

Every action takes the running lab and a `ChaosRequest` and returns the instances it touched
and a line saying what it did; `apply` turns that into an `Event`. Actions act only on
processes the lab started, by pid. Adding one: write `async def name(lab, service, request)`,
decorate it with `@action("name", needs=...)`, document it in README's chaos table.

    kill      SIGKILL: the machine loses power
    stop      SIGTERM: the server deregisters, drains, exits
    pause     SIGSTOP: a gray failure (the port accepts, nothing answers)
    resume    SIGCONT
    restart   stop (if alive), then boot again under the same name
    resize    vertical scaling: stop, then boot again with `slots` (real downtime)
    add       boot N new replicas (at most max_replicas)
    remove    stop N replicas gracefully (at least min_replicas stay)
    latency   extra latency on an instance (latency_ms)
    errors    an error rate on an instance (error_rate, 0..1)
    clear     remove injected faults
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from harness.runtime import ChaosRefused, Event, Group, Instance, LabRuntime, Pool, Service

RUNNING = ("running",)
ALIVE = ("running", "paused")
ANY = ("running", "paused", "stopped", "killed")


@dataclass(frozen=True, slots=True)
class ChaosRequest:
    action: str
    service: str
    instance: str | None = None
    count: int = 1
    latency_ms: float | None = None
    error_rate: float | None = None
    slots: int | None = None
    cause: str | None = None  # who asked and why (the autoscaler's decision); in the event
    all: bool = False  # every instance the action can act on, instead of `count` random ones


Outcome = tuple[list[str], str]
ActionFn = Callable[[LabRuntime, Group, ChaosRequest], Awaitable[Outcome]]
ACTIONS: dict[str, ActionFn] = {}


def action(name: str) -> Callable[[ActionFn], ActionFn]:
    def register(fn: ActionFn) -> ActionFn:
        ACTIONS[name] = fn
        return fn

    return register


async def apply(lab: LabRuntime, request: ChaosRequest) -> Event:
    """Run one action; ChaosRefused (404/409) when it names nothing or cannot be done."""
    fn = ACTIONS.get(request.action)
    if fn is None:
        raise ChaosRefused(404, f"unknown action {request.action!r}", sorted(ACTIONS))
    if request.count < 1:
        raise ChaosRefused(409, f"count must be at least 1 (got {request.count})")
    if request.all and (request.instance is not None or request.action in ("add", "remove")):
        raise ChaosRefused(409, "all acts on every instance: not with instance, add or remove")
    service = lab.group(request.service)
    at = time.time()  # when the action began: a drain or a boot takes a while
    names, detail = await fn(lab, service, request)
    if request.cause:
        detail = f"{detail} [{request.cause}]"
    return Event(at, request.action, service.name, tuple(names), detail)


def _servers(group: Group, action: str) -> Service:
    """The service `action` needs: servers behind a load balancer (faults, resize)."""
    if isinstance(group, Pool):
        what = "a worker pool" if group.role == "worker" else "the queue service"
        raise ChaosRefused(409, f"{action} acts on servers; {group.name} is {what}")
    return group


def _chosen(
    lab: LabRuntime, group: Group, request: ChaosRequest, states: tuple[str, ...]
) -> list[Instance]:
    """The instances `request` names: one by name, `count` at random (seeded), or all."""
    return lab.pick(group, request.instance, request.count, states, every=request.all)


def _names(instances: list[Instance]) -> list[str]:
    return [i.name for i in instances]


@action("kill")
async def kill(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    chosen = _chosen(lab, service, request, ALIVE)
    for instance in chosen:
        instance.child.kill()
        instance.state = "killed"
    pids = ", ".join(str(i.child.pid) for i in chosen)
    return _names(chosen), f"SIGKILL to pid {pids}"


@action("stop")
async def stop(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    chosen = _chosen(lab, service, request, ALIVE)
    codes = await asyncio.gather(*(_stop(i) for i in chosen))
    return _names(chosen), f"stopped gracefully (exit {', '.join(map(str, codes))})"


async def _stop(instance: Instance) -> int:
    code = await instance.child.stop()
    instance.state = "stopped"
    return code


@action("pause")
async def pause(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    chosen = _chosen(lab, service, request, RUNNING)
    for instance in chosen:
        instance.child.pause()
        instance.state = "paused"
    return _names(chosen), "SIGSTOP: accepts connections, answers nothing"


@action("resume")
async def resume(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    chosen = _chosen(lab, service, request, ("paused",))
    for instance in chosen:
        instance.child.resume()
        instance.state = "running"
    return _names(chosen), "SIGCONT"


@action("restart")
async def restart(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    chosen = _chosen(lab, service, request, ANY)
    before = {i.name: i.state for i in chosen}
    for instance in chosen:
        if instance.child.alive:
            await instance.child.stop()
        await lab.boot_again(service, instance)
    was = ", ".join(f"{name} was {state}" for name, state in before.items())
    return _names(chosen), f"booted again ({was}; a live one is stopped first)"


@action("resize")
async def resize(lab: LabRuntime, group: Group, request: ChaosRequest) -> Outcome:
    """Like a machine resize: capacity changes only across a stop and a start."""
    service = _servers(group, request.action)
    if request.slots is None or request.slots < 1:
        raise ChaosRefused(409, "resize needs slots >= 1")
    chosen = _chosen(lab, service, request, ALIVE)
    bigger = replace(service.pool.default, slots=request.slots)
    started = time.monotonic()
    for instance in chosen:
        await instance.child.stop()
        instance.state = "stopped"
        instance.child = await service.pool.add_server(bigger, name=instance.name)
        instance.state = "running"
        instance.slots = request.slots
    took = time.monotonic() - started
    return _names(chosen), (
        f"stopped and booted again with {request.slots} slots in {took:.1f} s (then health checks)"
    )


@action("add")
async def add(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    live = len(service.live())
    limit = service.max_replicas
    if live + request.count > limit:
        raise ChaosRefused(409, f"{service.name} has {live} replicas; max_replicas is {limit}")
    added = await asyncio.gather(*(lab.add(service) for _ in range(request.count)))
    return _names(list(added)), f"{live} -> {live + request.count} replicas"


@action("remove")
async def remove(lab: LabRuntime, service: Group, request: ChaosRequest) -> Outcome:
    live = len(service.live())
    floor = service.min_replicas
    if live - request.count < floor:
        raise ChaosRefused(
            409,
            f"{service.name} has {live} replicas; removing {request.count} would go below"
            f" min_replicas {floor}",
        )
    chosen = _chosen(lab, service, request, RUNNING)
    await asyncio.gather(*(_stop(i) for i in chosen))
    return _names(chosen), f"{live} -> {live - request.count} replicas (deregistered, drained)"


@action("latency")
async def latency(lab: LabRuntime, group: Group, request: ChaosRequest) -> Outcome:
    service = _servers(group, request.action)
    if request.latency_ms is None or request.latency_ms < 0:
        raise ChaosRefused(409, "latency needs latency_ms >= 0")
    chosen = _chosen(lab, service, request, RUNNING)
    for instance in chosen:
        await lab.set_faults(instance, {"latency_ms": request.latency_ms})
    return _names(chosen), f"+{request.latency_ms:g} ms per request"


@action("errors")
async def errors(lab: LabRuntime, group: Group, request: ChaosRequest) -> Outcome:
    service = _servers(group, request.action)
    rate = request.error_rate
    if rate is None or not 0 <= rate <= 1:
        raise ChaosRefused(409, "errors needs error_rate between 0 and 1")
    chosen = _chosen(lab, service, request, RUNNING)
    for instance in chosen:
        await lab.set_faults(instance, {"error_rate": rate})
    return _names(chosen), f"{rate:.0%} of requests answer 500"


@action("clear")
async def clear(lab: LabRuntime, group: Group, request: ChaosRequest) -> Outcome:
    service = _servers(group, request.action)
    if request.instance is None:
        chosen = [i for i in service.instances.values() if i.state == "running"]
    else:
        chosen = lab.pick(service, request.instance, 1, RUNNING)
    for instance in chosen:
        await lab.set_faults(instance, {})
    return _names(chosen), "faults cleared"
