import json
from pathlib import Path

import pytest

from replayer.cli import build_parser, main
from replayer.cli.run import with_scenario
from replayer.errors import InputError
from replayer.run.scenarios import find_scenario, list_scenarios, load_scenario, scenario_defaults
from replayer.traces import datasets

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.toml"))
OFFLINE_STAND_INS = {"burstgpt:1": "sample:burstgpt-1", "burstgpt:2": "sample:burstgpt-1",
                     "burstgpt:3": "sample:burstgpt-3", "azure-2023": "sample:azure-2023-conv",
                     "azure-2024": "sample:azure-2023-conv", "mooncake": "sample:mooncake-synthetic"}
"""Bundled samples of the same format, standing in for full datasets that cannot be fetched offline."""


def stand_in(name: str) -> str | None:
    """The bundled sample to use for a dataset name (None for what is already local)."""
    if not datasets.is_dataset_name(name):
        return None
    assert name in datasets.DATASETS, f"unknown dataset {name}"
    return next(sample for prefix, sample in OFFLINE_STAND_INS.items() if name.startswith(prefix))


def parse_run(*argv: str):
    argv = ["run", *argv]
    args = build_parser().parse_args(argv)
    args.argv = argv
    return with_scenario(args)


def test_the_shipped_set_is_there_and_listed():
    names = {path.stem for path in SHIPPED}
    assert {"burstgpt-conversation-peak", "burstgpt-api", "burstgpt-gpt4", "burstgpt-sessions", "azure-code",
            "azure-conv", "mooncake-long-context", "burstgpt-scaling-ramp", "poisson-baseline", "ci-smoke"} <= names
    listed = {scenario.name: scenario for scenario in list_scenarios()}
    assert names <= set(listed) and all(listed[name].description for name in names)


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_every_shipped_scenario_parses_and_dry_runs(path, tmp_path):
    scenario = load_scenario(path)
    command = path.stem.split("-")[0] if path.stem.startswith(("capacity-", "sweep-")) else "run"
    values = scenario_defaults(scenario, build_parser()._subparsers._group_actions[0].choices[command])  # all valid
    if command != "run":  # an experiment: its search or loads are set, and it has no dry run
        assert values.get("speedups") or values.get("slo")
        return
    overrides = []
    for option in ("trace", "fit"):
        sample = stand_in(scenario.options.get(option, ""))
        if sample:
            overrides += [f"--{option}", sample]
    saved = tmp_path / "requests.jsonl"
    assert main(["run", str(path), *overrides, "--dry-run", "--quiet", "--save-requests", str(saved)]) == 0
    assert saved.read_text().count("\n") > 0


def test_the_ci_smoke_scenario_passes_its_slos_against_the_simulator(tmp_path):
    out = tmp_path / "ci"
    assert main(["run", "ci-smoke", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slo"]["passed"] and len(summary["slo"]["checks"]) == 4
    assert summary["completed"] == summary["requests_sent"] > 0
    assert main(["run", "ci-smoke", "--out", str(tmp_path / "gated"), "--quiet", "--duration", "3",
                 "--slo", "ttft_p99<=1us"]) == 1  # the gate does fail a run that misses an SLO


def test_command_line_options_override_the_scenario():
    args = parse_run("ci-smoke", "--duration", "5", "--slo", "error_rate<=0", "--synthetic", "rate=1,duration=5")
    assert args.duration == 5 and args.slo == ["error_rate<=0"]  # a repeatable option replaces the list
    assert args.trace is None and args.synthetic == "rate=1,duration=5"  # --synthetic displaces the trace
    assert args.overwrite is True and args.api == "chat"  # the rest stays the scenario's
    kept = parse_run("ci-smoke")
    assert kept.trace == "sample:azure-2023-conv" and kept.duration == 20 and len(kept.slo) == 5


@pytest.mark.parametrize(("text", "message"), [
    ("[shaping]\nbusiest = 'soon'\n", "busiest: "),
    ("[shaping]\nbogus = 1\n", "bogus: not a `replayer run` option"),
    ("[target]\napi-key = 'sk-x'\n", "api-key: a key in a file"),
    ("[target]\napi = 'rerank'\n", "api: 'rerank' is not one of chat, completions"),
    ("[output]\nquiet = 'yes'\n", "quiet: expected true or false"),
    ("[extras]\nx = 1\n", "unknown entry 'extras'"),
    ("[shaping\n", "not valid TOML"),
])
def test_a_bad_scenario_is_a_one_line_error_naming_the_file(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", str(path), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"replayer: {path}") and message in error and "\n" not in error
    assert "sk-x" not in error


def test_files_in_a_scenario_are_found_beside_it(tmp_path):
    (tmp_path / "mine.csv").write_text("ts,in,out\n0,10,2\n1,12,3\n")
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\n[workload]\ntrace = "mine.csv"\nformat = "csv"\n'
                    'columns = "time=ts,input=in,output=out"\n')
    assert parse_run(str(path)).trace == str(tmp_path / "mine.csv")
    with pytest.raises(InputError, match="no such scenario"):
        find_scenario("no-such-scenario")
