"""The chaos actions, as data: one `ActionSpec` each, the one list everything derives from.

The scenario schema (harness/scenario.py: one model per action, keyed on `action`), the
control API's body and `GET /actions` (harness/control.py), the CLI's choices
(harness/cli.py), the Locust chaos page (which reads `/actions`) and the timeline's state
rules (`resolve_timeline`) all read this list; `chaos/actions.py` binds each name to the
function that does it. Plain data, no pydantic: `harness chaos` imports it and must answer
in a blink.

    kill      SIGKILL: the machine loses power
    stop      SIGTERM: the server deregisters, drains, exits
    pause     SIGSTOP: a gray failure (the port accepts, nothing answers)
    resume    SIGCONT
    restart   stop (if alive), then boot again under the same name
    resize    vertical scaling: stop, then boot again with `slots` (real downtime)
    add       boot N new replicas (at most max_replicas)
    remove    stop N replicas gracefully (at least min_replicas stay)
    latency   extra latency on a server, a provider or a CDN edge (latency_ms; an edge's from
              one `region`'s clients, the link between them, or from every client)
    errors    an error rate on a server or a provider (error_rate, 0..1)
    clear     remove injected faults
    invalidate  a CDN edge drops every cached object (`/*`)
    publish   a new version of the servers' content (version): new ETags and bodies

`resize` acts on servers only (their capacity); `latency` and `clear` on servers, providers
(both have `/admin/faults`) and CDN edges (`/_edge/faults`), `errors` on the first two;
`invalidate` on CDN edges; `publish` on servers
(`/admin/content`); the others on every kind. An action refused for a
kind says so the same way everywhere (`ActionSpec.refusal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

State = Literal["running", "paused", "stopped", "killed"]
RUNNING: tuple[State, ...] = ("running",)
ALIVE: tuple[State, ...] = ("running", "paused")
ANY: tuple[State, ...] = ("running", "paused", "stopped", "killed")

Selects = Literal["instances", "new", "faulted"]
"""What an action acts on: `instances` (one by name, `count` at random, or `all`), `new`
(`count` replicas it boots), `faulted` (one by name, else every running one)."""


@dataclass(frozen=True, slots=True)
class Param:
    """What an action needs: a number within (`low`, `high`], or [`low`, `high`] when
    `closed`; or a name (`type` str) of `low`..`high` characters. An `optional` one may be left
    out; one with `kinds` is taken only by instances of those kinds."""

    name: str
    type: type[int] | type[float] | type[str]
    low: float
    high: float
    help: str
    closed: bool = False
    optional: bool = False
    kinds: frozenset[str] | None = None

    def bounds(self) -> dict[str, Any]:
        """As pydantic's Field constraints."""
        if self.type is str:
            return {"min_length": int(self.low), "max_length": int(self.high)}
        return {"ge" if self.closed else "gt": self.low, "le": self.high}

    def problem(self, value: object) -> str | None:
        """What a value of this parameter is, when `value` is not one (None: it is)."""
        if self.type is str:
            fits = isinstance(value, str) and self.low <= len(value) <= self.high
            length = f"{self.low:g}..{self.high:g}"
            return None if fits else f"{self.name}, a name of {length} characters"
        if isinstance(value, int | float) and not isinstance(value, bool):
            above = value >= self.low if self.closed else value > self.low
            if above and value <= self.high:
                return None
        return f"{self.name} {'>=' if self.closed else '>'} {self.low:g} and <= {self.high:g}"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    help: str
    selects: Selects
    picks: tuple[State, ...]  # the states it picks instances from
    leaves: State | None = None  # the state it leaves them in (None: unchanged)
    kinds: frozenset[str] | None = None  # the component kinds it applies to (None: all)
    params: tuple[Param, ...] = ()
    scales: Literal[-1, 0, 1] = 0  # -1 removes replicas (min_replicas), 1 adds (max_replicas)

    @property
    def acts_on(self) -> str:
        """The kinds it applies to, as refusals say them: `servers and providers`."""
        return kind_words(self.kinds)

    def refusal(self, group: str, what: str) -> str:
        """Why it does not act on `group` (`what` it is): `latency acts on servers and
        providers; queue is the queue service`."""
        return f"{self.name} acts on {self.acts_on}; {group} is {what}"


SERVERS = frozenset({"service"})  # sizes exist only on servers (targets/server)
FAULTABLE = frozenset({"service", "provider"})  # /admin/faults: targets/server, the providers
EDGES = frozenset({"edge"})  # /_edge/invalidations, /_edge/faults: targets/cdn
KIND_WORDS: Mapping[str, str] = MappingProxyType(
    {"service": "servers", "provider": "providers", "edge": "CDN edges"}
)
"""What refusals call the instances of a kind (`ActionSpec.acts_on`), in the order named."""

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("kill", "SIGKILL: the machine loses power", "instances", ALIVE, "killed"),
    ActionSpec("stop", "SIGTERM: deregister, drain, exit", "instances", ALIVE, "stopped"),
    ActionSpec(
        "pause", "SIGSTOP: a gray failure (accepts, answers nothing)", "instances", RUNNING,
        "paused",
    ),
    ActionSpec("resume", "SIGCONT: a paused instance answers again", "instances", ("paused",),
               "running"),
    ActionSpec("restart", "stop (if alive), then boot again under the same name", "instances",
               ANY, "running"),
    ActionSpec(
        "resize", "vertical scaling: stop, then boot again with `slots` (real downtime)",
        "instances", ALIVE, "running", SERVERS,
        (Param("slots", int, 1, 100_000, "the new capacity (requests at once)", closed=True),),
    ),
    ActionSpec("add", "scale out: boot `count` new replicas (at most max_replicas)", "new", (),
               "running", scales=1),
    ActionSpec("remove", "scale in: stop replicas gracefully (min_replicas stay)", "instances",
               RUNNING, "stopped", scales=-1),
    ActionSpec(
        "latency", "extra latency on each request of an instance (a provider: each send; a "
        "CDN edge: each request from `region`'s clients, or from every client)",
        "instances", RUNNING, kinds=FAULTABLE | EDGES,
        params=(
            Param("latency_ms", float, 0, 600_000, "milliseconds added"),
            Param("region", str, 1, 64, "a CDN edge's: only requests from this region's "
                  "clients (default: every request)", closed=True, optional=True, kinds=EDGES),
        ),
    ),
    ActionSpec(
        "errors", "a share of an instance's requests fail (a server 500, a provider 503)",
        "instances", RUNNING, kinds=FAULTABLE,
        params=(Param("error_rate", float, 0, 1, "the share, 0..1"),),
    ),
    ActionSpec("clear", "remove injected faults (every running instance by default)", "faulted",
               RUNNING, kinds=FAULTABLE | EDGES),
    ActionSpec("invalidate", "a CDN edge drops every cached object (/*): the next requests miss",
               "instances", RUNNING, kinds=EDGES),
    ActionSpec(
        "publish", "a new version of the servers' content: new ETags and bodies (caches keep "
        "the old one until it expires or is invalidated)", "instances", RUNNING, kinds=SERVERS,
        params=(Param("version", int, 1, 1_000_000_000, "the content version", closed=True),),
    ),
)  # fmt: skip

BY_NAME: Mapping[str, ActionSpec] = MappingProxyType({spec.name: spec for spec in ACTIONS})
NAMES: tuple[str, ...] = tuple(BY_NAME)
PARAMS: Mapping[str, Param] = MappingProxyType(
    {param.name: param for spec in ACTIONS for param in spec.params}
)
"""Every parameter by name: a name means the same in every action that takes it."""
assert all(s.kinds is None or s.kinds <= KIND_WORDS.keys() for s in ACTIONS), "KIND_WORDS"
assert all(p.kinds is None or p.kinds <= KIND_WORDS.keys() for p in PARAMS.values()), "KIND_WORDS"


def kind_words(kinds: frozenset[str] | None) -> str:
    """Kinds as refusals say them: `servers and providers` (None: `every kind`)."""
    if kinds is None:
        return "every kind"
    return " and ".join(word for kind, word in KIND_WORDS.items() if kind in kinds)


def as_json() -> list[dict[str, Any]]:
    """The list as `GET /actions` serves it (the chaos page builds its buttons from it)."""
    return [
        {
            "name": spec.name,
            "help": spec.help,
            "selects": spec.selects,
            "picks": list(spec.picks),
            "leaves": spec.leaves,
            "kinds": None if spec.kinds is None else sorted(spec.kinds),
            "params": [
                {"name": p.name, "type": p.type.__name__, "low": p.low, "high": p.high,
                 "closed": p.closed, "optional": p.optional,
                 "kinds": None if p.kinds is None else sorted(p.kinds), "help": p.help}
                for p in spec.params
            ],
        }
        for spec in ACTIONS
    ]  # fmt: skip
