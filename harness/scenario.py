"""A chaos scenario, as one typed object: the load shape, the chaos timeline and the SLOs.

A scenario file is YAML (see `chaos/scenarios/*.yaml`). `load_scenario(path)` reads it once, at
the edge, and checks it in two passes; every problem of either pass is a line
`file:line:col: field.path: message` in an `InputError`, and nothing starts:

1. shape (pydantic, `extra="forbid"`, frozen): types, ranges, the fields each chaos `action`
   and each SLO `kind` takes (discriminated unions: a field path names the tag, as in
   `chaos.2.latency.latency_ms`);
2. the run and the topology (`check_scenario`): every `at_s` and SLO window inside the run,
   services that exist, a timeline the topology can play (instances to act on, replica bounds),
   recovery SLOs that have an event to recover from and time to see it.

The load and the chaos share one clock: t = 0 is the start of the first load stage, and the run
lasts the total duration of the stages. `resolve_timeline` turns the chaos list into concrete
`ChaosStep`s, choosing the instances left open with `random.Random(seed)`, so a scenario always
acts on the same instances. It plays the rules of `chaos/vocabulary.py`: which states an action
may pick from, `add` naming new replicas `<service>-<n>` after the highest n, replica bounds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

from chaos.vocabulary import ACTIONS, ALIVE, BY_NAME, NAMES, ActionSpec
from harness.components.entry import nearest_edge, resolvable
from harness.errors import InputError
from harness.promql import SCRAPE_INTERVAL_S
from harness.topology import DEFAULT_TOPOLOGY, Topology, load_topology
from harness.yamlfile import position, read_yaml, validate

TOPOLOGIES = DEFAULT_TOPOLOGY.parent
LOCUSTFILES = Path(__file__).resolve().parents[1] / "locustfiles"
_TOPOLOGY_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")

if TYPE_CHECKING:
    Action: TypeAlias = str
else:
    Action = Literal[NAMES]  # the vocabulary's names: pydantic lists them on a typo
Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- load ------------------------------------------------------------------------------------


class Stage(_Strict):
    """Hold `users` users (reached at `spawn_rate` users per second) for `duration_s` seconds.

    The same fields as `locustfiles/stages.py`, which plays them inside Locust.
    """

    duration_s: float = Field(gt=0, le=86_400)
    users: int = Field(ge=0, le=1_000_000)
    spawn_rate: float = Field(gt=0, le=100_000)


class Load(_Strict):
    """The Locust side: stages back to back, worker processes, and the users' pace.

    `wait_s` (seconds a user waits between tasks, [min, max]) and `timeout_s` (per request)
    override the locustfile's defaults (RUSHLAB_WAIT_S, RUSHLAB_TIMEOUT_S) when given.
    `locustfile` names the users: `shop` (customers of the shop, the default), `compare`
    (the same reader against every service, users split evenly: designs side by side), `pay`
    (the same, paying: payment services side by side), `noisy` (the customers plus one
    client flooding the orders route), `cdn` (readers of the shop's hot catalogue page
    through each CDN edge and, as `origin`, straight at the gateway), `browse` (the same
    sides, shoppers reading pages, images and their own account page) or `regions`
    (catalogue readers in each of the topology's client regions, sending from the region's
    address to the nearest edge by the lab's DNS: needs `via_dns` and a record via edges).
    `poison_rate`: the share of payments whose receipt email the provider always refuses
    (poison messages, for the dead-letter queue).
    `via_dns`: users reach the services the topology's DNS records name by those names,
    resolved through the lab's DNS server and cached for their TTL.
    """

    stages: list[Stage] = Field(min_length=1)
    locustfile: Literal["shop", "compare", "pay", "noisy", "cdn", "browse", "regions"] = "shop"
    via_dns: bool = False
    poison_rate: float = Field(default=0.0, ge=0, le=1)
    workers: int = Field(default=0, ge=0, le=256)  # Locust worker processes; 0: one process
    wait_s: tuple[float, float] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=3600)

    @field_validator("wait_s")
    @classmethod
    def _wait_ordered(cls, wait_s: tuple[float, float] | None) -> tuple[float, float] | None:
        if wait_s is not None and not 0 <= wait_s[0] <= wait_s[1] <= 3600:
            raise ValueError("wait_s must be [min, max] with 0 <= min <= max <= 3600")
        return wait_s

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)

    @property
    def side_by_side(self) -> bool:
        """Users split between the services (one class each), not shop customers."""
        return self.locustfile in ("compare", "pay", "cdn", "browse")

    @property
    def by_region(self) -> bool:
        """Users in the topology's client regions, reaching the nearest CDN edge."""
        return self.locustfile == "regions"

    @property
    def locustfile_path(self) -> Path:
        return LOCUSTFILES / f"{self.locustfile}.py"


# -- chaos -----------------------------------------------------------------------------------


class _Step(_Strict):
    action: str  # each action's model narrows it to its own name: the union's tag
    at_s: float = Field(ge=0)
    service: str

    @property
    def spec(self) -> ActionSpec:
        return BY_NAME[self.action]

    @property
    def params(self) -> dict[str, float | str]:
        given = {p.name: getattr(self, p.name) for p in self.spec.params}
        return {name: value for name, value in given.items() if value is not None}


class _Targeted(_Step):
    """Acts on `instance`, or on `count` instances chosen at random (seeded); default 1."""

    instance: str | None = None
    count: int | None = Field(default=None, ge=1, le=64)

    @model_validator(mode="after")
    def _instance_or_count(self) -> _Targeted:
        if self.instance is not None and self.count is not None:
            raise ValueError("give instance or count, not both")
        return self

    @property
    def n(self) -> int:
        return 1 if self.count is None else self.count


class _New(_Step):
    """Boots `count` new instances."""

    count: int = Field(default=1, ge=1, le=64)


class _Faulted(_Step):
    """Acts on `instance`, or on every running instance of the service."""

    instance: str | None = None


_BASES: dict[str, type[_Step]] = {"instances": _Targeted, "new": _New, "faulted": _Faulted}


def _step_model(spec: ActionSpec) -> type[_Step]:
    """The scenario model of one action: its selection's fields, then its parameters."""
    fields: dict[str, Any] = {
        p.name: (p.type | None, Field(default=None, description=p.help, **p.bounds()))
        if p.optional
        else (p.type, Field(description=p.help, **p.bounds()))
        for p in spec.params
    }
    tag: Any = Literal[spec.name]
    model: type[_Step] = create_model(
        spec.name.capitalize(),
        __base__=_BASES[spec.selects],
        __doc__=spec.help,
        action=(tag, ...),
        **fields,
    )
    return model


STEPS: Mapping[str, type[_Step]] = MappingProxyType(
    {spec.name: _step_model(spec) for spec in ACTIONS}
)
if TYPE_CHECKING:
    ChaosEvent = _Step
else:
    ChaosEvent = Annotated[Union[tuple(STEPS.values())], Field(discriminator="action")]  # noqa: UP007


# -- SLOs ------------------------------------------------------------------------------------


class Window(_Strict):
    """Run time [from_s, to_s], in seconds since the start of the run."""

    from_s: float = Field(default=0, ge=0)
    to_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.to_s <= self.from_s:
            raise ValueError(f"to_s ({self.to_s}) must be after from_s ({self.from_s})")
        return self


class _Slo(_Strict):
    """An expression (PromQL, one series) and a bound: `max` (at most) or `min` (at least)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    expr: str = Field(min_length=1)
    max: float | None = None
    min: float | None = None
    absent_means: float | None = None
    """What a point without a value means, when the SLO says so (0 for a failure counter that
    appears only with the first failure); unset, such a point is "no data" (an invalid run)."""
    description: str = ""

    @model_validator(mode="after")
    def _one_bound(self) -> _Slo:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one bound: max (at most) or min (at least)")
        return self

    @property
    def limit(self) -> float:
        bound = self.max if self.max is not None else self.min
        assert bound is not None  # _one_bound
        return bound

    @property
    def op(self) -> Literal["<=", ">="]:
        return "<=" if self.max is not None else ">="

    def ok(self, value: float) -> bool:
        """Whether `value` is within the bound."""
        return value <= self.limit if self.max is not None else value >= self.limit


class ThresholdSlo(_Slo):
    """One number for the run (or `window`): `agg` of the series there, within the bound."""

    kind: Literal["threshold"]
    agg: Literal["max", "min", "avg", "last", "increase", "seconds_nonzero"] = "max"
    window: Window | None = None


class AlwaysSlo(_Slo):
    """Every point of the series (in `window`, default the run) within the bound."""

    kind: Literal["always"]
    window: Window | None = None


class RecoverySlo(_Slo):
    """After each chaos event (of the actions in `after`; default all), back within the bound
    within `within_s` seconds, and still there at the end of those seconds."""

    kind: Literal["recovery"]
    within_s: float = Field(gt=0, le=3600)
    after: list[Action] | None = Field(default=None, min_length=1)


Slo = Annotated[ThresholdSlo | AlwaysSlo | RecoverySlo, Field(discriminator="kind")]


# -- the scenario ----------------------------------------------------------------------------


class Scenario(_Strict):
    """A scenario file: load and chaos on one clock (t = 0: the first stage starts), and SLOs."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    description: str = Field(default="", max_length=500, pattern=r"^[^\n]*$")
    topology: str = "shop"  # harness/topologies/<name>.yaml, or a path from the scenario file
    seed: int = 0
    load: Load
    chaos: list[ChaosEvent] = []
    slos: list[Slo] = []

    _source: Path | None = PrivateAttr(default=None)
    _topology: Topology | None = PrivateAttr(default=None)

    @property
    def duration_s(self) -> float:
        return self.load.duration_s

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from (None when built in code)."""
        return self._source

    @property
    def system(self) -> Topology:
        """The topology the scenario runs against (loaded by `load_scenario`)."""
        if self._topology is None:
            self._topology = load_topology(topology_path(self.topology, self._source))
        return self._topology


def topology_path(topology: str, scenario_file: Path | None) -> Path:
    """Where `topology` points: a shipped name, or a path relative to the scenario file."""
    if _TOPOLOGY_NAME.fullmatch(topology):
        return TOPOLOGIES / f"{topology}.yaml"
    path = Path(topology)
    if not path.is_absolute() and scenario_file is not None:
        path = scenario_file.parent / path
    return path


def load_scenario(path: Path) -> Scenario:
    """Parse and check `path`; InputError lists every problem as file:line:col: field: message."""
    data = read_yaml(path)
    if data is None:
        raise InputError([f"{path}:1:1: the file is empty"])
    scenario = validate(data, Scenario, path)
    where = topology_path(scenario.topology, path)
    if not where.is_file():
        line, col = position(data, ("topology",))
        raise InputError(
            [f"{path}:{line}:{col}: topology: no topology file {where} (a name in {TOPOLOGIES}"
             " or a path relative to the scenario file)"]
        )  # fmt: skip
    topology = load_topology(where)
    problems = check_scenario(scenario, topology)
    if problems:
        raise InputError([_line(path, data, loc, message) for loc, message in problems])
    scenario._source = path
    scenario._topology = topology
    return scenario


def _line(path: Path, data: object, loc: Loc, message: str) -> str:
    line, col = position(data, loc)
    return f"{path}:{line}:{col}: {'.'.join(map(str, loc)) or '(document)'}: {message}"


def check_scenario(scenario: Scenario, topology: Topology) -> list[tuple[Loc, str]]:
    """What the shape cannot say: the run's clock, the topology, the timeline, recovery SLOs.

    Each problem is (field path in the document, message).
    """
    problems: list[tuple[Loc, str]] = []
    end = scenario.duration_s
    groups = topology.shapes()
    services = sorted(groups)
    if scenario.load.by_region and not (scenario.load.via_dns and nearest_edge(topology)):
        problems.append(
            (
                ("load", "locustfile"),
                "regions users need via_dns and a dns record via edges (the nearest edge)",
            )
        )
    if scenario.load.via_dns and not resolvable(topology):
        problems.append(
            (("load", "via_dns"), f"topology {topology.name!r} has no dns records to resolve")
        )
    playable = True
    for i, step in enumerate(scenario.chaos):
        if step.at_s > end:
            problems.append(
                (("chaos", i, "at_s"), f"{step.at_s:g} s is after the end of the run ({end:g} s)")
            )
        group = groups.get(step.service)
        if group is None:
            playable = False
            problems.append(
                (
                    ("chaos", i, "service"),
                    f"no service {step.service!r} in topology {topology.name!r}"
                    f" (services: {', '.join(services)})",
                )
            )
        elif step.spec.kinds is not None and group.kind not in step.spec.kinds:
            playable = False
            problems.append(
                (
                    ("chaos", i, "action"),
                    step.spec.refusal(repr(step.service), group.what),
                )
            )
    if playable:
        try:
            resolve_timeline(scenario, instance_names(topology), topology)
        except TimelineError as exc:
            problems.append((("chaos", exc.index), str(exc)))
    names: set[str] = set()
    actions = {step.action for step in scenario.chaos}
    for i, slo in enumerate(scenario.slos):
        if slo.name in names:
            problems.append((("slos", i, "name"), f"another SLO is already named {slo.name!r}"))
        names.add(slo.name)
        if isinstance(slo, ThresholdSlo | AlwaysSlo) and slo.window and slo.window.to_s > end:
            problems.append(
                (
                    ("slos", i, "window", "to_s"),
                    f"{slo.window.to_s:g} s is after the end of the run ({end:g} s)",
                )
            )
        if isinstance(slo, RecoverySlo):
            problems.extend(_check_recovery(scenario, i, slo, actions))
        problems.extend((("slos", i, "expr"), message) for message in short_ranges(slo.expr))
    return problems


# A range selector (`[3s]`, or a subquery's `[30s:1s]`) and its length.
_RANGE = re.compile(r"\[\s*(\d+(?:\.\d+)?)(ms|s|m|h)\s*(?::[^\]]*)?\]")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# The shortest range that still holds two samples when one scrape in a row is late.
MIN_RANGE_S = 3 * SCRAPE_INTERVAL_S


def short_ranges(expr: str) -> list[str]:
    """Why each range selector of `expr` is too short for the lab's scrape interval: `rate()`
    needs two samples in its range, and at a 1 s interval a `[2s]` range holds one whenever a
    scrape is late, which reads as "no data" and makes the run invalid."""
    return [
        f"range [{m.group(1)}{m.group(2)}] is shorter than {MIN_RANGE_S:g} s: at the lab's"
        f" {SCRAPE_INTERVAL_S:g} s scrape interval one late scrape leaves it with fewer than"
        " two samples (no data, an invalid run); use"
        f" [{MIN_RANGE_S:g}s] or more"
        for m in _RANGE.finditer(expr)
        if float(m.group(1)) * _SECONDS[m.group(2)] < MIN_RANGE_S
    ]


def _check_recovery(
    scenario: Scenario, i: int, slo: RecoverySlo, actions: set[Action]
) -> list[tuple[Loc, str]]:
    end = scenario.duration_s
    if slo.after is not None:
        missing = [a for a in slo.after if a not in actions]
        if missing:
            return [(("slos", i, "after"), f"no {'/'.join(missing)} event in the chaos timeline")]
    events = [s for s in scenario.chaos if slo.after is None or s.action in slo.after]
    if not events:
        return [(("slos", i, "kind"), "a recovery SLO needs a chaos event to recover from")]
    last = max(s.at_s for s in events)
    if last + slo.within_s > end:
        return [
            (
                ("slos", i, "within_s"),
                f"the run ends {end - last:g} s after the {last:g} s event; it cannot show"
                f" recovery within {slo.within_s:g} s (lengthen the last stage)",
            )
        ]
    return []


# -- the timeline ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChaosStep:
    """One chaos action with its instances decided: what the runner does at `at_s`."""

    at_s: float
    action: Action
    service: str
    instances: tuple[str, ...]  # acted on; for `add`, the names the new replicas get
    params: Mapping[str, float | str] = field(default_factory=dict)  # the action's parameters


class TimelineError(ValueError):
    """The timeline cannot be played (no instance left to act on, replica bounds)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index  # of the event in `scenario.chaos`


def instance_names(topology: Topology) -> dict[str, list[str]]:
    """The instances a lab starts for `topology`: `<service>-1` ... `<service>-<replicas>`."""
    return {
        name: [f"{name}-{i}" for i in range(1, group.replicas + 1)]
        for name, group in topology.shapes().items()
    }


def resolve_timeline(
    scenario: Scenario,
    instances_by_service: Mapping[str, Sequence[str]],
    topology: Topology | None = None,
) -> list[ChaosStep]:
    """The chaos list in time order (ties keep file order) with every instance decided.

    `instances_by_service` names the running instances at t = 0. An instance left open is
    chosen with `random.Random(scenario.seed)` among those the action may act on then (kill,
    stop and resize: running or paused; pause, remove, latency, errors: running; resume:
    paused; restart: any), following the states the earlier steps left; `clear` without an
    instance clears every running one. With `topology`, `add` and `remove` respect max_replicas and
    min_replicas. Raises TimelineError.
    """
    rng = random.Random(scenario.seed)
    groups = topology.shapes() if topology else {}
    states = {s: dict.fromkeys(names, "running") for s, names in instances_by_service.items()}
    steps: list[ChaosStep] = []
    order = sorted(range(len(scenario.chaos)), key=lambda i: scenario.chaos[i].at_s)
    for index in order:
        event = scenario.chaos[index]
        pool = states.get(event.service)
        if pool is None:
            raise TimelineError(index, f"no instances of service {event.service!r}")
        spec = groups.get(event.service)
        live = sum(state in ALIVE for state in pool.values())
        if isinstance(event, _New):
            if spec and live + event.count > spec.max_replicas:
                raise TimelineError(
                    index,
                    f"at {event.at_s:g} s {event.service} has {live} replicas; adding"
                    f" {event.count} goes past max_replicas {spec.max_replicas}",
                )
            chosen = _new_names(event.service, list(pool), event.count)
            pool.update(dict.fromkeys(chosen, "running"))
        else:
            chosen = _choose(index, event, pool, rng)
            if event.spec.scales < 0 and spec and live - len(chosen) < spec.min_replicas:
                raise TimelineError(
                    index,
                    f"at {event.at_s:g} s {event.service} has {live} replicas; removing"
                    f" {len(chosen)} goes below min_replicas {spec.min_replicas}",
                )
            if event.spec.leaves is not None:
                pool.update(dict.fromkeys(chosen, event.spec.leaves))
        steps.append(
            ChaosStep(
                event.at_s,
                event.action,
                event.service,
                tuple(chosen),
                event.params,
            )
        )
    return steps


def _choose(index: int, event: _Step, pool: dict[str, str], rng: random.Random) -> list[str]:
    allowed = event.spec.picks
    assert isinstance(event, _Targeted | _Faulted)  # `new` steps pick nothing
    if event.instance is not None:
        name = event.instance
        if name not in pool:
            raise TimelineError(
                index,
                f"no instance {name!r} of {event.service} at {event.at_s:g} s"
                f" (there are: {', '.join(_natural(pool))})",
            )
        if pool[name] not in allowed:
            raise TimelineError(
                index,
                f"{event.action}: at {event.at_s:g} s {name} is {pool[name]},"
                f" not {' or '.join(allowed)}",
            )
        return [name]
    candidates = _natural(n for n, state in pool.items() if state in allowed)
    if isinstance(event, _Faulted):
        return candidates
    if len(candidates) < event.n:
        raise TimelineError(
            index,
            f"{event.action}: at {event.at_s:g} s {event.service} has {len(candidates)}"
            f" instance(s) {' or '.join(allowed)}, {event.n} needed",
        )
    return _natural(rng.sample(candidates, event.n))


def _natural(names: Iterable[str]) -> list[str]:
    """Names in human order: orders-2 before orders-10."""

    def key(name: str) -> tuple[str, int]:
        stem, _, number = name.rpartition("-")
        return (stem, int(number)) if number.isdigit() else (name, -1)

    return sorted(names, key=key)


def _new_names(service: str, existing: list[str], count: int) -> list[str]:
    numbers = [
        int(number)
        for stem, _, number in (name.rpartition("-") for name in existing)
        if stem == service and number.isdigit()
    ]
    start = max(numbers, default=0) + 1
    return [f"{service}-{n}" for n in range(start, start + count)]
