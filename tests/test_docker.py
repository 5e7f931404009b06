"""Static checks of docker/: no Docker engine runs here, so the files are linted and cross-checked
against the repository (paths, the replayer command lines, scenarios, volumes, service names)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from replayer.cli import build_parser
from replayer.cli.run import with_scenario

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_FILES = sorted(DOCKER.glob("compose.*.yaml"))
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is a test dependency (pip install -e '.[test]')"
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([hadolint(), str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_non_root_with_the_replayer_entrypoint():
    steps = instructions(DOCKER / "Dockerfile")
    assert sum(1 for name, _ in steps if name == "FROM") == 2
    user = [args for name, args in steps if name == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    assert [args for name, args in steps if name == "ENTRYPOINT"] == ['["replayer"]']
    assert 'replayer = "replayer.cli:main"' in (ROOT / "pyproject.toml").read_text()
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for name, args in steps:
        if name == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists() and source not in ignored, source


def expand(text: str) -> str:
    """Compose's `${VAR:-default}` with every variable unset."""
    return _DEFAULTED.sub(lambda match: match.group(2), text)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[path.stem for path in COMPOSE_FILES])
def test_compose_files_reference_what_exists(path):
    compose = yaml.safe_load(path.read_text())
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    replayers = [service for service in services.values() if service.get("image") == "replayer:local"]
    assert any("build" in service for service in replayers), "the replayer image is built from this repository"
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (path.parent / build["context"] / build["dockerfile"]).is_file()
        for dependency in service.get("depends_on", {}):
            assert dependency in services and "healthcheck" in services[dependency], (name, dependency)
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source in volumes or source.startswith((".", "/")), (name, source)
    for service in replayers:
        command = [expand(part) for part in service["command"]]
        args = build_parser().parse_args(command)  # a valid replayer command line
        if args.handler.__name__ == "_cmd_run":
            args.argv = command
            args = with_scenario(args) if args.scenario else args  # and valid with its scenario
            assert urlsplit(args.base_url).hostname in services
            assert str(args.out).startswith("/results/") and "results:/results" in service["volumes"]
        else:
            assert args.host == "0.0.0.0"  # the simulator must be reachable from the other container


def test_the_kubernetes_indexed_job_runs_one_shard_per_pod():
    job = yaml.safe_load((DOCKER / "k8s-indexed-job.yaml").read_text())
    spec = job["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == int(env["SHARDS"])
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    script = container["args"][0]
    assert script.startswith("exec replayer ")
    for index in range(spec["completions"]):
        values = {**env, "JOB_COMPLETION_INDEX": str(index), "START_AT": "1767225600"}
        words = [re.sub(r"\$(\w+)", lambda match, values=values: values[match.group(1)], word.strip('"'))
                 for word in script.split()[2:]]
        args = build_parser().parse_args(words)
        args.argv = words
        args = with_scenario(args)
        assert args.shard == (index, spec["completions"]) and str(args.out) == f"/results/shard-{index}"
        assert args.start_at == 1_767_225_600 * 10**9
