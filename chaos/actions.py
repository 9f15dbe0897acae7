"""What each chaos action does: one small function per name of chaos/vocabulary.py.

`apply(lab, request)` is the one place a request is checked against its `ActionSpec`: the
group exists and is of a kind the action applies to, the parameters it needs are there (and
no others), `count`/`instance`/`all` fit what it selects; then it picks the instances (by
name, at random with the lab's seeded RNG, or all) from the states the spec says, calls the
function, and returns an `Event`. Functions act only on processes the lab started, by pid,
and leave instances in the state their spec names. Adding one: its `ActionSpec` in the
vocabulary, its function here (in `IMPLEMENTATIONS`), a line in README's chaos table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from chaos.vocabulary import BY_NAME, NAMES, ActionSpec, kind_words
from harness.components.base import Group, Instance
from harness.errors import ChaosRefused
from harness.runtime import Event, LabRuntime


@dataclass(frozen=True, slots=True)
class ChaosRequest:
    action: str
    service: str
    instance: str | None = None
    count: int = 1
    all: bool = False  # every instance the action can act on, instead of `count` random ones
    params: Mapping[str, float | str] = field(default_factory=dict)  # the spec's parameters
    cause: str | None = None  # who asked and why (the autoscaler's decision); in the event


Outcome = tuple[list[str], str]
ActionFn = Callable[[LabRuntime, Group, list[Instance], ChaosRequest], Awaitable[Outcome]]


async def apply(lab: LabRuntime, request: ChaosRequest) -> Event:
    """Run one action; ChaosRefused (404/409) when it names nothing or cannot be done."""
    spec = BY_NAME.get(request.action)
    if spec is None:
        raise ChaosRefused(404, f"unknown action {request.action!r}", list(NAMES))
    _check(spec, request)
    group = lab.group(request.service)
    if spec.kinds is not None and group.kind not in spec.kinds:
        raise ChaosRefused(409, spec.refusal(group.name, group.what))
    _taken_by(spec, group, request)
    _within_bounds(spec, group, request)
    at = time.time()  # when the action began: a drain or a boot takes a while
    chosen = _chosen(lab, spec, group, request)
    names, detail = await IMPLEMENTATIONS[spec.name](lab, group, chosen, request)
    if request.cause:
        detail = f"{detail} [{request.cause}]"
    return Event(at, request.action, group.name, tuple(names), detail)


def _check(spec: ActionSpec, request: ChaosRequest) -> None:
    if request.count < 1:
        raise ChaosRefused(409, f"count must be at least 1 (got {request.count})")
    if request.all and (request.instance is not None or spec.selects != "instances" or spec.scales):
        raise ChaosRefused(409, f"all acts on every instance: not with instance, nor {spec.name}")
    if spec.selects == "new" and request.instance is not None:
        raise ChaosRefused(409, f"{spec.name} boots new instances: it takes no instance")
    wanted = {p.name for p in spec.params}
    extra = sorted(set(request.params) - wanted)
    if extra:
        raise ChaosRefused(409, f"{spec.name} takes no {', '.join(extra)}")
    for param in spec.params:
        value = request.params.get(param.name)
        if value is None and param.optional:
            continue
        wanted_value = param.problem(value)
        if wanted_value is not None:
            raise ChaosRefused(409, f"{spec.name} needs {wanted_value} (got {value!r})")


def _taken_by(spec: ActionSpec, group: Group, request: ChaosRequest) -> None:
    """A parameter only some kinds take (an edge's `region`) is refused for the others."""
    for param in spec.params:
        if param.name in request.params and param.kinds and group.kind not in param.kinds:
            raise ChaosRefused(
                409,
                f"{param.name} is for {kind_words(param.kinds)} only; {group.name} is {group.what}",
            )


def _within_bounds(spec: ActionSpec, group: Group, request: ChaosRequest) -> None:
    """An action that scales keeps the group within its replica bounds."""
    live = len(group.live())
    if spec.scales > 0 and live + request.count > group.max_replicas:
        raise ChaosRefused(
            409, f"{group.name} has {live} replicas; max_replicas is {group.max_replicas}"
        )
    if spec.scales < 0 and live - request.count < group.min_replicas:
        raise ChaosRefused(
            409,
            f"{group.name} has {live} replicas; removing {request.count} would go below"
            f" min_replicas {group.min_replicas}",
        )


def _chosen(
    lab: LabRuntime, spec: ActionSpec, group: Group, request: ChaosRequest
) -> list[Instance]:
    """The instances `request` names: one by name, `count` at random (seeded), or all."""
    if spec.selects == "new":
        return []
    if spec.selects == "faulted" and request.instance is None:
        return [i for i in group.instances.values() if i.state in spec.picks]
    return lab.pick(group, request.instance, request.count, spec.picks, every=request.all)


def _names(instances: list[Instance]) -> list[str]:
    return [i.name for i in instances]


def _leave(instances: list[Instance], spec: str) -> None:
    state = BY_NAME[spec].leaves
    assert state is not None  # the actions calling this change the state
    for instance in instances:
        instance.state = state


async def kill(lab: LabRuntime, group: Group, chosen: list[Instance], _: ChaosRequest) -> Outcome:
    for instance in chosen:
        instance.child.kill()
    _leave(chosen, "kill")
    pids = ", ".join(str(i.child.pid) for i in chosen)
    return _names(chosen), f"SIGKILL to pid {pids}"


async def stop(lab: LabRuntime, group: Group, chosen: list[Instance], _: ChaosRequest) -> Outcome:
    codes = await asyncio.gather(*(i.child.stop() for i in chosen))
    _leave(chosen, "stop")
    return _names(chosen), f"stopped gracefully (exit {', '.join(map(str, codes))})"


async def pause(lab: LabRuntime, group: Group, chosen: list[Instance], _: ChaosRequest) -> Outcome:
    for instance in chosen:
        instance.child.pause()
    _leave(chosen, "pause")
    return _names(chosen), "SIGSTOP: accepts connections, answers nothing"


async def resume(lab: LabRuntime, group: Group, chosen: list[Instance], _: ChaosRequest) -> Outcome:
    for instance in chosen:
        instance.child.resume()
    _leave(chosen, "resume")
    return _names(chosen), "SIGCONT"


async def restart(
    lab: LabRuntime, group: Group, chosen: list[Instance], _: ChaosRequest
) -> Outcome:
    before = {i.name: i.state for i in chosen}
    for instance in chosen:
        if instance.child.alive:
            await instance.child.stop()
        await group.boot_again(instance)
    was = ", ".join(f"{name} was {state}" for name, state in before.items())
    return _names(chosen), f"booted again ({was}; a live one is stopped first)"


async def resize(
    lab: LabRuntime, group: Group, chosen: list[Instance], request: ChaosRequest
) -> Outcome:
    """Like a machine resize: capacity changes only across a stop and a start."""
    slots = int(request.params["slots"])
    started = time.monotonic()
    for instance in chosen:
        await instance.child.stop()
        instance.state = "stopped"
        await group.boot_again(instance, slots)
    took = time.monotonic() - started
    return _names(chosen), (
        f"stopped and booted again with {slots} slots in {took:.1f} s (then health checks)"
    )


async def add(lab: LabRuntime, group: Group, _: list[Instance], request: ChaosRequest) -> Outcome:
    live = len(group.live())
    added = await asyncio.gather(*(group.launch(name) for name in group.next_names(request.count)))
    return _names(list(added)), f"{live} -> {live + request.count} replicas"


async def remove(
    lab: LabRuntime, group: Group, chosen: list[Instance], request: ChaosRequest
) -> Outcome:
    live = len(group.live())
    await asyncio.gather(*(i.child.stop() for i in chosen))
    _leave(chosen, "remove")
    return _names(chosen), f"{live} -> {live - len(chosen)} replicas (deregistered, drained)"


async def latency(
    lab: LabRuntime, group: Group, chosen: list[Instance], request: ChaosRequest
) -> Outcome:
    faults = dict(request.params)  # latency_ms, and an edge's region if given
    for instance in chosen:
        await group.require_faults("latency")(instance, faults)
    region = f" from {faults['region']}" if "region" in faults else ""
    return _names(chosen), f"+{faults['latency_ms']:g} ms per request{region}"


async def errors(
    lab: LabRuntime, group: Group, chosen: list[Instance], request: ChaosRequest
) -> Outcome:
    rate = request.params["error_rate"]
    for instance in chosen:
        await group.require_faults("errors")(instance, {"error_rate": rate})
    return _names(chosen), f"{rate:.0%} of requests fail"


async def clear(lab: LabRuntime, group: Group, chosen: list[Instance], _: ChaosRequest) -> Outcome:
    for instance in chosen:
        await group.require_faults("clear")(instance, {})
    return _names(chosen), "faults cleared"


async def own(
    lab: LabRuntime, group: Group, chosen: list[Instance], request: ChaosRequest
) -> Outcome:
    """An action only some kinds have (`invalidate`, `publish`): the group's own, per instance."""
    act = group.require_own(request.action)
    done = [await act(instance, request.params) for instance in chosen]
    return _names(chosen), "; ".join(dict.fromkeys(done))


IMPLEMENTATIONS: Mapping[str, ActionFn] = MappingProxyType(
    {
        "kill": kill,
        "stop": stop,
        "pause": pause,
        "resume": resume,
        "restart": restart,
        "resize": resize,
        "add": add,
        "remove": remove,
        "latency": latency,
        "errors": errors,
        "clear": clear,
        "invalidate": own,
        "publish": own,
    }
)
assert set(IMPLEMENTATIONS) == set(NAMES), "every ActionSpec has exactly one function"
