"""One flag vocabulary for every `python -m targets.X` (targets/flags.py), old spellings included.

Parsing-level tests call each target's `parse_args`; one test starts a real server with the
old spellings the harness still passes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from targets.autoscaler.__main__ import main as autoscaler_main

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_ANY = ("127.0.0.1", 0)

# Each target, with the flags it needs before it parses at all.
REQUIRED: dict[str, list[str]] = {
    "targets.server": [],
    "targets.lb": [],
    "targets.gateway": ["--config", "gateway.json"],
    "targets.dns": ["--zone-file", "zone.json"],
    "targets.queue": ["--db", "queue.db"],
    "targets.workers": [
        *("--queue-url", "http://127.0.0.1:9324", "--queue", "emails"),
        *("--provider", "http://127.0.0.1:9400"),
    ],
    "targets.workers.provider": [],
    "targets.workers.push": ["--provider", "http://127.0.0.1:9400", "--consumer", "whatsapp"],
    "targets.pubsub": ["--db", "topics.db"],
    "targets.cdn": ["--origin", "127.0.0.1:8080"],
    "targets.autoscaler": [
        *("--service", "web", "--policy", '{"target": 1}'),
        *("--lb-control", "127.0.0.1:4101", "--lab-control", "127.0.0.1:4000"),
    ],
}
TOKENS = {"targets.autoscaler": ["--lb-token-file", "t", "--lab-token-file", "t"]}
TARGETS = sorted(REQUIRED)
WITH_CONTROL = ["targets.dns", "targets.gateway", "targets.lb"]


def parser_of(target: str) -> Callable[[list[str]], argparse.Namespace]:
    module = importlib.import_module(
        target if target.endswith(("provider", "push")) else f"{target}.__main__"
    )
    parse: Callable[[list[str]], argparse.Namespace] = module.parse_args
    return parse


def parse(target: str, *argv: str) -> argparse.Namespace:
    """`argv` after the target's required flags (and its tokens, unless `argv` gives some)."""
    tokens = [] if any("token-file" in a for a in argv) else TOKENS.get(target, [])
    return parser_of(target)([*REQUIRED[target], *tokens, *argv])


def refused(target: str, *argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The error line for `argv` (exit 2)."""
    with pytest.raises(SystemExit) as info:
        parse(target, *argv)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# -- the vocabulary ------------------------------------------------------------------------


@pytest.mark.core
@pytest.mark.parametrize("target", TARGETS)
def test_every_target_takes_name_listen_and_log_level(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--name, --listen HOST:PORT and --log-level mean the same in every target, silently."""
    args = parse(target, "--name", "x-1", "--listen", "127.0.0.2:8001", "--log-level", "DEBUG")
    assert (args.name, args.listen, args.log_level) == ("x-1", ("127.0.0.2", 8001), "debug")
    assert capsys.readouterr().err == ""


@pytest.mark.core
@pytest.mark.parametrize("target", TARGETS)
def test_every_target_listens_on_loopback_any_port_by_default(target: str) -> None:
    """Without --listen (or --control-listen), a target binds 127.0.0.1 on a free port."""
    args = parse(target)
    assert args.listen == LOOPBACK_ANY
    if target in WITH_CONTROL:
        assert args.control_listen == LOOPBACK_ANY


@pytest.mark.core
@pytest.mark.parametrize("target", WITH_CONTROL)
def test_control_apis_take_control_listen_and_token_file(target: str) -> None:
    """A target with a control API of its own: --control-listen and the --token-file it needs."""
    args = parse(target, "--control-listen", "127.0.0.3:9001", "--token-file", "/run/token")
    assert (args.control_listen, args.token_file) == (("127.0.0.3", 9001), "/run/token")


@pytest.mark.core
def test_peers_are_named_the_same_wherever_they_are_called() -> None:
    """--lb-control and --lb-token-file: the load balancer's control API, for the server that
    registers with it and for the autoscaler that reads it; --lab-* the harness's."""
    server = parse("targets.server", "--lb-control", "127.0.0.1:9001", "--lb-token-file", "lb")
    assert (server.lb_control, server.lb_token_file) == (("127.0.0.1", 9001), "lb")
    scaler = parse("targets.autoscaler", "--lb-token-file", "lb", "--lab-token-file", "lab")
    assert (scaler.lb_control, scaler.lab_control) == (("127.0.0.1", 4101), ("127.0.0.1", 4000))
    assert (scaler.lb_token_file, scaler.lab_token_file) == ("lb", "lab")
    assert scaler.name == "autoscaler-web"  # the default names the service


@pytest.mark.core
def test_the_server_token_file_guards_its_admin_api() -> None:
    """The server's --token-file is the token /admin/faults requires."""
    assert parse("targets.server", "--token-file", "admin").token_file == "admin"


# -- the old spellings, for one release ------------------------------------------------------

# (target, old spelling, the same in the new vocabulary)
OLD_SPELLINGS = [
    ("targets.server", ["--instance-id", "a-1"], ["--name", "a-1"]),
    ("targets.server", ["--instance-id=a-1"], ["--name=a-1"]),
    ("targets.server", ["--host", "127.0.0.2", "--port", "8001"], ["--listen", "127.0.0.2:8001"]),
    ("targets.server", ["--port", "8001"], ["--listen", "127.0.0.1:8001"]),
    ("targets.server", ["--admin-token-file", "f"], ["--token-file", "f"]),
    ("targets.server", ["--register-with", "127.0.0.1:9"], ["--lb-control", "127.0.0.1:9"]),
    ("targets.lb", ["--host=0.0.0.0", "--port=8080"], ["--listen=0.0.0.0:8080"]),
    (
        "targets.lb",
        ["--control-host", "0.0.0.0", "--control-port", "9001"],
        ["--control-listen", "0.0.0.0:9001"],
    ),
    ("targets.lb", ["--control-port", "9001"], ["--control-listen", "127.0.0.1:9001"]),
    ("targets.lb", ["--control-token-file", "f"], ["--token-file", "f"]),
    ("targets.gateway", ["--host", "127.0.0.2", "--port", "8080"], ["--listen", "127.0.0.2:8080"]),
    ("targets.gateway", ["--control-port", "9000"], ["--control-listen", "127.0.0.1:9000"]),
    ("targets.gateway", ["--control-token-file=f"], ["--token-file=f"]),
    ("targets.dns", ["--control", "127.0.0.1:9053"], ["--control-listen", "127.0.0.1:9053"]),
    ("targets.dns", ["--control-token-file", "f"], ["--token-file", "f"]),
    ("targets.queue", ["--host", "0.0.0.0", "--port", "9324"], ["--listen", "0.0.0.0:9324"]),
    ("targets.workers", ["--host", "0.0.0.0", "--port", "9500"], ["--listen", "0.0.0.0:9500"]),
    ("targets.workers.provider", ["--host", "127.0.0.2"], ["--listen", "127.0.0.2:0"]),
    ("targets.workers.provider", ["--port=9400"], ["--listen=127.0.0.1:9400"]),
    (
        "targets.autoscaler",
        ["--token-file", "f"],
        ["--lb-token-file", "f", "--lab-token-file", "f"],
    ),
]


@pytest.mark.core
@pytest.mark.parametrize(("target", "old", "new"), OLD_SPELLINGS)
def test_old_spellings_still_work_and_say_what_replaces_them(
    target: str, old: list[str], new: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An old flag does what the new one does, and warns on stderr naming both."""
    assert vars(parse(target, *new)) == vars(parse(target, *old))
    warnings = capsys.readouterr().err.splitlines()
    old_flags = [word.partition("=")[0] for word in old if word.startswith("--")]
    new_flag = new[0].partition("=")[0]
    assert len(warnings) == len(old_flags)
    for flag, line in zip(old_flags, warnings, strict=True):
        assert f"warning: {flag} is deprecated; use {new_flag}" in line


@pytest.mark.core
@pytest.mark.parametrize("target", TARGETS)
def test_help_lists_every_old_spelling(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--help shows the shared flags and, in its epilog, each old spelling and its new flag."""
    with pytest.raises(SystemExit) as info:
        parser_of(target)(["--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog anywhere
    assert "--listen HOST:PORT" in out
    for old in {w.partition("=")[0] for t, o, _ in OLD_SPELLINGS if t == target for w in o}:
        if old.startswith("--"):
            assert old in out.partition("Old spellings")[2], old


@pytest.mark.core
def test_docker_compose_speaks_only_the_new_vocabulary(capsys: pytest.CaptureFixture[str]) -> None:
    """Every target command of docker-compose.yml parses with its target's own parser, with no
    old spelling (no warning)."""
    services = YAML(typ="safe", pure=True).load(ROOT / "docker-compose.yml")["services"]
    commands = [
        [str(word) for word in s["command"]]
        for s in services.values()
        if [str(w) for w in s.get("command", [])][:2] == ["python", "-m"]
    ]
    started = {command[2] for command in commands if command[2].startswith("targets.")}
    assert started == {"targets.lb", "targets.server", "targets.queue", "targets.workers",
                       "targets.workers.provider", "targets.pubsub"}  # fmt: skip
    for command in commands:
        if command[2].startswith("targets."):
            parser_of(command[2])(command[3:])
            assert capsys.readouterr().err == "", command


# -- bad values name the flag ----------------------------------------------------------------


@pytest.mark.core
@pytest.mark.parametrize("target", TARGETS)
def test_a_bad_listen_address_names_the_flag(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--listen without a port exits 2, naming --listen and the value."""
    line = refused(target, "--listen", "127.0.0.1", capsys=capsys)
    assert "argument --listen: expected HOST:PORT, got '127.0.0.1'" in line


@pytest.mark.core
@pytest.mark.parametrize(
    ("target", "argv", "message"),
    [
        *(
            (target, ["--control-listen", "nowhere"], "argument --control-listen: expected")
            for target in WITH_CONTROL
        ),
        ("targets.server", ["--lb-control", ":9001"], "argument --lb-control: expected"),
        ("targets.server", ["--register-with", "x"], "argument --register-with: expected"),
        ("targets.server", ["--advertise", "a:b"], "argument --advertise: expected HOST:PORT"),
        ("targets.autoscaler", ["--lab-control", "x:99999"], "argument --lab-control: expected"),
        ("targets.lb", ["--port", "http"], "argument --port: expected a port 0..65535"),
        ("targets.lb", ["--control-port", "70000"], "argument --control-port: expected a port"),
        ("targets.gateway", ["--log-level", "loud"], "argument --log-level: invalid choice"),
        ("targets.queue", ["--listen", "127.0.0.1:1", "--port", "2"], "--listen: give it alone"),
    ],
)
def test_bad_values_name_the_flag(
    target: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed address, port or level exits 2 with one line naming the flag given."""
    assert message in refused(target, *argv, capsys=capsys)


@pytest.mark.core
@pytest.mark.parametrize("missing", ["--lb-token-file", "--lab-token-file"])
def test_the_autoscaler_needs_both_peer_tokens(
    missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The autoscaler presents a token to both APIs it calls: each flag is required."""
    other = {"--lb-token-file", "--lab-token-file"} - {missing}
    line = refused("targets.autoscaler", other.pop(), "t", capsys=capsys)
    assert f"the following arguments are required: {missing}" in line


@pytest.mark.inprocess
def test_the_autoscaler_refuses_two_different_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Until its adapter carries a token per API, the two token files must agree (exit 2)."""
    (tmp_path / "lb").write_text("one")
    (tmp_path / "lab").write_text("two")
    argv = [*REQUIRED["targets.autoscaler"], "--lb-token-file", str(tmp_path / "lb")]
    assert autoscaler_main([*argv, "--lab-token-file", str(tmp_path / "lab")]) == 2
    assert "--lb-token-file, --lab-token-file: must hold the same token" in capsys.readouterr().err


# -- one real process with the old spellings -------------------------------------------------


@pytest.mark.e2e
async def test_a_server_started_with_old_spellings_serves_as_with_new_ones(
    tmp_path: Path,
) -> None:
    """`python -m targets.server` with the spellings the harness passes today starts, names
    itself by --instance-id, binds --host/--port, and says what to use instead on stderr."""
    token = tmp_path / "admin.token"
    token.write_text("secret")
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "targets.server", "--service-ms", "0"),
            *("--instance-id", "old-1", "--host", "127.0.0.1", "--port", "0"),
            f"--admin-token-file={token}",
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert (ready["event"], ready["instance"]) == ("ready", "old-1")
        assert ready["address"].startswith("127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    text = log.read_text()
    for old, new in [
        ("--instance-id", "--name"),
        ("--host", "--listen HOST:PORT"),
        ("--port", "--listen HOST:PORT"),
        ("--admin-token-file", "--token-file"),
    ]:
        assert f"python -m targets.server: warning: {old} is deprecated; use {new}" in text
