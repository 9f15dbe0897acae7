"""What every component is, and the running instances chaos acts on.

A component is one kind of part of the lab (servers behind a load balancer, the gateway, DNS,
the queue service, worker pools, providers, autoscalers). Its class says, for its kind:

- `section`, `spec`, `default`: its key in the topology file and the pydantic type there;
- `check(topology)`: what the shape cannot say (references to other parts), as problems
  with the field path that is wrong;
- `shapes(topology)`: the groups chaos may name before anything runs (scenario checks);
- `plots(topology)`: what the run's report plots for it;

and an instance of it, made for one running lab, says:

- `start()`: its processes, through the lab's Supervisor (`after_control` for a part that
  acts through the control API, started once that serves);
- `groups()`: the `Group`s chaos acts on; `processes()`: every other child it owns;
- `scrape_targets()`, `status()`, `urls()`: what Prometheus scrapes, what `harness status`
  shows, where a user points a browser or client.

`harness/components/__init__.py` lists the kinds in start order; `LabRuntime`, the topology
model, the report and the dashboards loop over that list and never name a kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from chaos.vocabulary import BY_NAME, State
from harness.diagram import Diagram
from harness.errors import ChaosRefused
from harness.lab import number
from harness.prometheus import ScrapeTarget
from harness.supervisor import Child, free_port
from targets.http.client import fetch_json
from targets.http.upstream import UpstreamError

if TYPE_CHECKING:
    from harness.promql import PlotQuery
    from harness.runtime import LabRuntime
    from harness.topology import Topology

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
"""A field path in the topology document and what is wrong there."""


class ServiceTimeSpec(BaseModel):
    """A sampled duration: a server's service time, a provider's latency."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    distribution: Literal["constant", "exponential", "lognormal"] = "lognormal"
    mean_ms: float = Field(default=20.0, ge=0, le=600_000)
    sigma: float = Field(default=0.5, ge=0, le=3)


class Strict(BaseModel):
    """Every topology model: unknown fields refused, frozen once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Shape:
    """A group chaos can name, as the topology declares it (before anything runs)."""

    kind: str  # the component's `kind`: which actions apply (chaos/vocabulary.py)
    what: str  # how refusals name it: "a worker pool", "the queue service"
    replicas: int
    min_replicas: int
    max_replicas: int

    @classmethod
    def of(cls, kind: str, what: str, spec: Replicated) -> Shape:
        """The shape of a group whose spec has replica bounds."""
        return cls(kind, what, spec.replicas, spec.min_replicas, spec.max_replicas)


class Replicated(Protocol):
    @property
    def replicas(self) -> int: ...
    @property
    def min_replicas(self) -> int: ...
    @property
    def max_replicas(self) -> int: ...


@dataclass(slots=True)
class Instance:
    """A process of a group the lab started, and what chaos did to it."""

    name: str
    group: str
    child: Child
    slots: int = 0  # a server's capacity: changes only across a stop and a start (resize)
    state: State = "running"

    @property
    def alive(self) -> bool:
        return self.child.alive and self.state in ("running", "paused")

    @property
    def shown_state(self) -> str:
        """The state for status: `exited` when it died with nobody's chaos to blame."""
        return self.state if self.child.alive or self.state != "running" else "exited"


@dataclass(slots=True)
class Group:
    """Instances chaos acts on as one: a service's servers, a worker pool, the queue service.

    `boot(name)` starts instance `name` (a new one, or one chaos restarts under its old name);
    `set_faults`, when the kind has it, injects latency or errors into one instance.
    """

    name: str
    kind: str
    what: str
    min_replicas: int
    max_replicas: int
    boot: Callable[[str, int | None], Awaitable[Instance]]
    instances: dict[str, Instance] = field(default_factory=dict)
    set_faults: Callable[[Instance, dict[str, Any]], Awaitable[None]] | None = None
    # Actions only some kinds have (an edge's `invalidate`, servers' `publish`), by name: each
    # acts on one instance with the request's parameters and says what it did.
    own: Mapping[str, Callable[[Instance, Mapping[str, float | str]], Awaitable[str]]] = field(
        default_factory=dict
    )

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.alive]

    def next_names(self, count: int = 1) -> list[str]:
        """Names for `count` new instances, after the highest so far."""
        first = max(map(number, self.instances), default=0) + 1
        return [f"{self.name}-{n}" for n in range(first, first + count)]

    async def launch(self, name: str) -> Instance:
        """Start a new instance `name` and keep it."""
        instance = await self.boot(name, None)
        self.instances[name] = instance
        return instance

    async def add(self) -> Instance:
        """One more instance, named after the highest so far."""
        return await self.launch(self.next_names()[0])

    async def boot_again(self, instance: Instance, slots: int | None = None) -> None:
        """Start `instance` anew under its name (after a stop or a kill; `slots`: resized)."""
        fresh = await self.boot(instance.name, slots)
        instance.child, instance.slots, instance.state = fresh.child, fresh.slots, "running"

    def sorted(self) -> list[Instance]:
        return sorted(self.instances.values(), key=lambda i: number(i.name))

    def status_rows(self) -> list[dict[str, Any]]:
        return [{**described(i.child), "state": i.shown_state} for i in self.sorted()]

    def require_faults(self, action: str) -> Callable[[Instance, dict[str, Any]], Awaitable[None]]:
        if self.set_faults is None:
            raise ChaosRefused(409, BY_NAME[action].refusal(self.name, self.what))
        return self.set_faults

    def require_own(
        self, action: str
    ) -> Callable[[Instance, Mapping[str, float | str]], Awaitable[str]]:
        found = self.own.get(action)
        if found is None:
            raise ChaosRefused(409, BY_NAME[action].refusal(self.name, self.what))
        return found


@dataclass(frozen=True, slots=True)
class Process:
    """A child outside any group: `service` is its scrape label, `metrics` the key of its
    ready line that holds the address serving /metrics."""

    service: str
    child: Child
    metrics: str = "address"


class Component:
    """One kind of part of the lab; see the module docstring for what each member means."""

    kind: ClassVar[str]
    section: ClassVar[str | None] = None  # its key in the topology file (None: none)
    spec: ClassVar[Any] = None  # its type there, e.g. `dict[str, QueueSpec]`
    default: ClassVar[Any] = None  # its value when the file leaves it out
    reserved: ClassVar[tuple[str, ...]] = ()  # names it takes in every lab ("gateway")
    names_its: ClassVar[str | None] = None  # what a key of its section names ("service")
    metrics_path: ClassVar[str] = "/metrics"  # where its groups' instances serve metrics

    # -- what the topology says (no process needed) ------------------------------------------
    @classmethod
    def named(cls, topology: Topology) -> list[tuple[Loc, str, str]]:
        """The names the topology gives its parts of this kind: (where, name, what), e.g.
        (("services", "orders"), "orders", "service"): the keys of its section when
        `names_its` says what they name. Names are unique across the lab."""
        if cls.section is None or cls.names_its is None:
            return []
        return [((cls.section, name), name, cls.names_its) for name in topology.spec(cls)]

    def __init__(self, lab: LabRuntime) -> None:
        self.lab = lab

    @classmethod
    def check(cls, topology: Topology) -> list[Problem]:
        return []

    @classmethod
    def own_addresses(cls, topology: Topology) -> set[str]:
        """Groups whose instances this kind needs each on a loopback address of its own
        (DNS answering server by server)."""
        return set()

    @classmethod
    def shapes(cls, topology: Topology) -> dict[str, Shape]:
        return {}

    @classmethod
    def plots(cls, topology: Topology) -> list[PlotQuery]:
        return []

    # -- a running lab -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start its processes (every component before it in the registry has started)."""

    async def after_control(self, control: tuple[str, int]) -> None:
        """Start what acts through the harness control API, now serving at `control`."""

    async def wait_ready(self, deadline: float) -> None:
        """Until its processes serve (e.g. load balancers see their replicas healthy)."""

    def groups(self) -> list[Group]:
        return []

    def processes(self) -> list[Process]:
        """Its children outside any group (a load balancer, the gateway, an autoscaler)."""
        return []

    def scrape_targets(self) -> Iterable[ScrapeTarget]:
        yield from self.group_targets(self.groups())
        yield from self.process_targets()

    def group_targets(self, groups: Iterable[Group]) -> Iterable[ScrapeTarget]:
        """The /metrics of `groups`' live instances, on their main address."""
        for group in groups:
            for instance in group.live():
                address = str(instance.child.ready["address"])
                labels = {"service": group.name, "role": instance.child.role}
                labels["instance"] = instance.name
                yield ScrapeTarget(address, labels, self.metrics_path)

    def process_targets(self) -> Iterable[ScrapeTarget]:
        """Its processes' /metrics (those alive)."""
        for process in self.processes():
            child = process.child
            if child.alive:
                labels = {"service": process.service, "role": child.role, "instance": child.name}
                yield ScrapeTarget(str(child.ready[process.metrics]), labels)

    async def status(self) -> dict[str, Any]:
        """Its part of `GET /status`: sections of entries by name."""
        return {}

    def urls(self) -> dict[str, str]:
        """Where a user reaches it (shown by `harness up`), by description."""
        return {}

    def diagram(self) -> Diagram:
        """Its boxes and arrows on the live map (harness/diagram.py)."""
        return Diagram()


class Singleton(Component):
    """A kind with one process of its own, named after the name it reserves (the gateway,
    the DNS server): its /metrics on its control listener. For chaos it is a group of one
    (`WHAT`), on ports fixed for the lab's life, so a restarted process comes back where its
    clients look. `launch` starts it."""

    WHAT: ClassVar[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.child: Child | None = None
        self.group: Group | None = None

    async def launch(self, role: str, module: str, args: list[str]) -> None:
        """Start it: `module` with `args`, its listen and control addresses."""
        name = self.reserved[0]
        listen, control = free_port(), free_port()
        supervisor = self.lab.supervisor

        async def boot(instance: str, slots: int | None) -> Instance:
            fixed = [f"--listen=127.0.0.1:{listen}", f"--control-listen=127.0.0.1:{control}"]
            self.child = await supervisor.spawn(name, role, module, [*fixed, *args])
            return Instance(instance, name, self.child)

        self.group = Group(name, self.kind, self.WHAT, 1, 1, boot)
        await self.group.launch(name)

    def groups(self) -> list[Group]:
        return [] if self.group is None else [self.group]

    def processes(self) -> list[Process]:
        return [] if self.child is None else [Process(self.reserved[0], self.child, "control")]

    def scrape_targets(self) -> Iterable[ScrapeTarget]:
        """Its process, on its control listener (not its group's data-plane address)."""
        return self.process_targets()

    async def status(self) -> dict[str, Any]:
        return {} if self.group is None else {"pools": {self.group.name: pool_status(self.group)}}


class Service(Component):
    """A kind the lab runs as one durable process (the queue, the topics): group `GROUP` of
    one instance, on a port fixed for the lab's life, so a restarted process comes back on
    the same port and database, where its clients look. `launch` starts it."""

    GROUP: ClassVar[str]
    WHAT: ClassVar[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.group: Group | None = None
        self.port = 0
        self.address: tuple[str, int] | None = None  # where it serves (even while down)

    async def launch(self, role: str, module: str, args: list[str]) -> None:
        """Start `GROUP-1`: `module` with `args` and its name and listen address."""
        self.port = free_port()
        supervisor = self.lab.supervisor

        async def boot(name: str, slots: int | None) -> Instance:
            listen = [f"--name={name}", f"--listen=127.0.0.1:{self.port}", *args]
            return Instance(name, self.GROUP, await supervisor.spawn(name, role, module, listen))

        self.group = Group(self.GROUP, self.kind, self.WHAT, 1, 1, boot)
        first = await self.group.launch(f"{self.GROUP}-1")
        self.address = first.child.address()

    def groups(self) -> list[Group]:
        return [] if self.group is None else [self.group]

    async def status(self) -> dict[str, Any]:
        return {} if self.group is None else {"pools": {self.GROUP: pool_status(self.group)}}

    def url(self) -> str:
        assert self.address is not None
        return "http://{}:{}".format(*self.address)


async def set_admin_faults(
    token: str, instance: Instance, faults: dict[str, Any], *, path: str = "/admin/faults"
) -> None:
    """PUT `faults` (or, for none, DELETE) on the instance's faults endpoint (`path`: servers'
    and providers' `/admin/faults`, an edge's `/_edge/faults`) with the lab's token: a refusal
    is the chaos action's."""
    method = "PUT" if faults else "DELETE"
    await admin_call(token, instance, method, path, faults or None, what="the faults")


async def admin_call(
    token: str, instance: Instance, method: str, path: str, body: object, *, what: str
) -> Any:
    """One call of the instance's admin API with the lab's token; its JSON answer. No answer,
    or any status but 200 or 201, is a refusal of the chaos action (409) naming `what`."""
    host, port = instance.child.address()
    auth = [(b"authorization", f"Bearer {token}".encode())]
    try:
        reply = await fetch_json(host, port, method, path, body, headers=auth)
    except UpstreamError as exc:
        raise ChaosRefused(409, f"{instance.name} did not answer: {exc}") from None
    if reply.status not in (200, 201):
        raise ChaosRefused(409, f"{instance.name} refused {what}: {reply.body[:200]!r}")
    return reply.json()


def unknown(what: str, value: object, choices: Iterable[str]) -> str:
    """The problem of a reference to nothing: `no queue 'x' (queues: a, b)`."""
    listed = ", ".join(sorted(choices)) or "none defined"
    return f"no {what} {value!r} ({what}s: {listed})"


def described(child: Child) -> dict[str, Any]:
    """A process in status: name, role, pid, address, state."""
    return {
        "name": child.name,
        "role": child.role,
        "pid": child.pid,
        "address": child.ready.get("address"),
        "state": "running" if child.alive else "exited",
    }


def pool_status(group: Group) -> dict[str, Any]:
    """A group without a load balancer in status: its instances and replica bounds."""
    return {
        "role": next((i.child.role for i in group.instances.values()), group.kind),
        "instances": group.status_rows(),
        "replicas": {"min": group.min_replicas, "max": group.max_replicas},
    }
