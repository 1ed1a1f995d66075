"""The Dockerfile's structure, read from the file (no Docker engine runs here).

Multi-stage: a builder that builds the wheel into a venv, and a slim final stage
with only that venv, a non-root user, the gateway port, a HEALTHCHECK that runs
``zebra-gateway --check`` and ``zebra-gateway`` as the entry point. hadolint, when
``scripts/validate_deploy.sh install`` has put it in build/deploy-tools, lints it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from tests.support.requirements import skip_or_fail

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
TOOLS = REPO / "build" / "deploy-tools"

BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|python3?-dev|libc6?-dev|cargo|rustc)\b"
)


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_instructions(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining ``\\`` continuations."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def parse_stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Return the global ARG defaults and the build stages, in order."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            match = re.fullmatch(
                r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?",
                instruction.arguments,
                re.IGNORECASE,
            )
            assert match is not None, f"unreadable FROM on line {instruction.line}"
            base = re.sub(
                r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), match[1]
            )
            stages.append(Stage(base=base, name=match[2]))
        elif not stages:
            if instruction.keyword == "ARG":
                name, _, default = instruction.arguments.partition("=")
                args[name] = default
        else:
            stages[-1].instructions.append(instruction)
    return args, stages


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction (fails on the shell form)."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(item) for item in value]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    named = [stage for stage in stages if stage.name == "builder"]
    assert named, "no stage named builder"
    return named[0]


def test_parser_joins_continuations_and_skips_comments() -> None:
    """The test's own parser: continuations joined, comments dropped, stages split."""
    args, stages = parse_stages(
        "ARG BASE=python:3.11-slim\n# comment\nFROM ${BASE} AS builder\n"
        "RUN a \\\n  # inner comment\n  && b\nFROM $BASE\nUSER 1:1\n"
    )
    assert args == {"BASE": "python:3.11-slim"}
    assert [(s.base, s.name) for s in stages] == [
        ("python:3.11-slim", "builder"),
        ("python:3.11-slim", None),
    ]
    assert stages[0].instructions[0].arguments == "a  && b"
    assert stages[1].instructions[0].keyword == "USER"


def test_two_stages_on_the_same_slim_python(stages: list[Stage]) -> None:
    """A builder and a final stage, both on python:3.11-slim (the venv's python links to it)."""
    assert len(stages) == 2
    assert stages[0].name == "builder"
    assert stages[-1].name is None
    for stage in stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    assert stages[0].base == stages[-1].base


def test_builder_builds_a_wheel_into_a_venv(builder: Stage) -> None:
    """The builder builds the project's wheel and installs it into /opt/zebra."""
    runs = " ".join(i.arguments for i in builder.all("RUN"))
    assert "pip wheel" in runs
    assert "venv" in runs
    assert "/opt/zebra" in runs
    copied = " ".join(i.arguments for i in builder.all("COPY"))
    for needed in ("pyproject.toml", "README.md", "broker", "gateway"):
        assert needed in copied, f"the builder does not copy {needed}"


def test_final_stage_copies_only_the_venv(final: Stage) -> None:
    """The final stage takes /opt/zebra from the builder and nothing from the context."""
    copies = final.all("COPY")
    assert copies, "the final stage copies nothing"
    for copy in copies:
        assert copy.arguments.startswith("--from=builder "), copy.arguments
        assert copy.arguments.split()[1:] == ["/opt/zebra", "/opt/zebra"]
    assert not final.all("ADD")
    env = " ".join(i.arguments for i in final.all("ENV"))
    assert "PATH=/opt/zebra/bin:" in env


def test_no_build_tools_in_the_final_stage(final: Stage) -> None:
    """No compiler, headers or package installs in the image that runs."""
    for instruction in final.all("RUN"):
        assert not BUILD_TOOLS.search(instruction.arguments), instruction.arguments
        assert "apt-get install" not in instruction.arguments
        assert "pip install" not in instruction.arguments


def test_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    """USER is numeric (runAsNonRoot can check it) and not root."""
    user = final.last("USER")
    assert user is not None, "the final stage has no USER"
    uid, _, gid = user.arguments.partition(":")
    assert uid.isdigit(), f"USER {user.arguments}: use a numeric UID"
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    assert final.all("USER") == [user], "one USER, so nothing switches back to root"


def test_entrypoint_is_the_gateway(final: Stage) -> None:
    """ENTRYPOINT is exec form ["zebra-gateway"], so flags can follow as CMD/args."""
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None
    assert exec_form(entrypoint.arguments) == ["zebra-gateway"]
    assert final.last("CMD") is None, "CMD would add flags to every run"


def test_exposes_the_gateway_port(final: Stage) -> None:
    """EXPOSE names the gateway's default port (WebLink, health and metrics)."""
    exposed = {
        port.split("/")[0] for i in final.all("EXPOSE") for port in i.arguments.split()
    }
    default_port = GatewaySettings.model_fields["port"].default
    assert exposed == {str(default_port)}


def test_healthcheck_runs_gateway_check(final: Stage) -> None:
    """HEALTHCHECK runs `zebra-gateway --check` with a timeout above its own 5 s."""
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None
    options, _, command = healthcheck.arguments.partition("CMD")
    assert exec_form(command.strip()) == ["zebra-gateway", "--check"]
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout is not None
    assert int(timeout.group(1)) > 5


def dockerignore_regex(rule: str) -> re.Pattern[str]:
    """Translate one .dockerignore pattern (Go's filepath.Match plus ``**``)."""
    out = ""
    index = 0
    while index < len(rule):
        if rule.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif rule.startswith("**", index):
            out += ".*"
            index += 2
        elif rule[index] == "*":
            out += "[^/]*"
            index += 1
        elif rule[index] == "?":
            out += "[^/]"
            index += 1
        elif rule[index] == "[":
            close = rule.index("]", index)
            out += rule[index : close + 1]
            index = close + 1
        else:
            out += re.escape(rule[index])
            index += 1
    return re.compile(out)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether ``path`` is left out of the build context.

    A rule matches a path or any of its parent directories; the last matching rule
    wins, and ``!`` rules put things back.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[:count]) for count in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = dockerignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_the_context_to_the_sources() -> None:
    """The context holds the package sources and leaves out venvs, git, tests, secrets."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for kept in ("pyproject.toml", "README.md", "broker/topology.py", "gateway/cli.py"):
        assert not dockerignore_excludes(patterns, kept), kept
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "build/deploy-tools/bin/kubectl",
        "deploy/compose.yaml",
        ".env",
        "gateway/__pycache__/cli.cpython-311.pyc",
        "gateway/.env",
    ):
        assert dockerignore_excludes(patterns, left_out), left_out


def hadolint() -> str:
    """The hadolint binary, or skip (fail under CI) when it is not installed."""
    for candidate in (TOOLS / "bin" / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    message = "hadolint is not installed: run scripts/validate_deploy.sh install"
    skip_or_fail(message)


def test_hadolint_finds_nothing() -> None:
    """hadolint reports no warning or error on the Dockerfile."""
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
