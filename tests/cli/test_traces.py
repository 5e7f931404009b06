"""The command line as a user meets it: real subprocesses, real files, the built-in simulator."""

import json
from pathlib import Path

from replayer.traces.formats import read_trace, resolve_path


def test_inspect_prints_statistics_and_json(replayer):
    text = replayer("inspect", "sample:burstgpt-3")
    assert text.returncode == 0, text.stderr
    for fragment in ("400 over 41,453.0 s", "135 sessions", "Gamma fit", "By model", "GPT-4"):
        assert fragment in text.stdout
    as_json = json.loads(replayer("inspect", "sample:azure-2023-conv", "--json").stdout)
    assert as_json["rate"]["peak_per_min"] == 507


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "traces"


def test_inspect_shows_each_agentic_format_with_its_sessions_types_and_prefix_reuse(replayer):
    for name, fragments in [("copilot_agent_format.jsonl", ("(copilot)", "5 sessions", "prefix reuse", "16-token",
                                                             "By request type", "agent", "By model")),
                            ("qwen_bailian_format.jsonl", ("(qwen-bailian)", "7 sessions", "trees up to",
                                                            "prefix reuse", "search")),
                            ("azure_lmm_2025_format.csv", ("(azure)", "By request type", "1 image", "4 images"))]:
        text = replayer("inspect", str(FIXTURES / name))
        assert text.returncode == 0, text.stderr
        assert all(fragment in text.stdout for fragment in fragments), (name, text.stdout)


def test_inspect_plot_writes_the_figure_and_refuses_other_formats(tmp_path, replayer):
    figure = tmp_path / "fig.svg"
    drawn = replayer("inspect", "sample:burstgpt-1", "--plot", str(figure))
    assert drawn.returncode == 0, drawn.stderr
    assert "<svg" in figure.read_text()
    refused = replayer("inspect", "sample:burstgpt-1", "--plot", str(tmp_path / "fig.pdf"))
    assert refused.returncode == 2 and "must end in .png or .svg" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_inspect_bad_file_is_one_line(write_file, replayer):
    path = write_file("bad.jsonl", '{"timestamp": 1, "input_length": 2, "output_length": 3}\n{"timestamp": -1, '
                                   '"input_length": 2, "output_length": 3}\n')
    result = replayer("inspect", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"replayer: {path}:2: timestamp: timestamp must be a finite number >= 0, got '-1'"


def test_synth_fits_a_trace_writes_a_file_and_run_replays_it(tmp_path, replayer, fast_engine):
    path = tmp_path / "azure-at-20.csv.gz"
    made = replayer("synth", "rate=20,duration=30,seed=1", "--fit", "sample:azure-2023-conv", "-o", str(path))
    assert made.returncode == 0, made.stderr
    assert "Gamma fit shape" in made.stderr and "Weibull fit shape" in made.stderr and "KS distance" in made.stderr
    spec_line = next(line for line in made.stderr.splitlines() if line.startswith("spec: "))
    assert "rate=20,duration=30," in spec_line and "input=empirical,output=conditional,seed=1" in spec_line
    trace = read_trace(str(path))
    assert trace.format == "csv" and 400 < len(trace) < 800
    out = tmp_path / "run"
    ran = replayer("run", "--trace", str(path), "--speedup", "10", "--out", str(out), "--quiet", *fast_engine)
    assert ran.returncode == 0, ran.stderr
    assert json.loads((out / "summary.json").read_text())["requests_sent"] == len(trace)


def test_a_dataset_by_name_is_fetched_once_then_used_offline(tmp_path, serving, replayer):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "AzureLLMInferenceTrace_conv.csv").write_bytes(resolve_path("sample:azure-2023-conv").read_bytes())
    env = {"REPLAYER_CACHE_DIR": str(tmp_path / "cache")}
    listed = replayer("datasets", env=env)
    assert "burstgpt:1-without-fails" in listed.stdout and "azure-2024:conv" in listed.stdout
    with serving(mirror) as url:
        fetched = replayer("datasets", "azure-2023:conv", env={**env, "REPLAYER_DATASET_MIRROR": url})
    assert fetched.returncode == 0, fetched.stderr
    offline = replayer("inspect", "azure-2023:conv", "--json", env={**env, "REPLAYER_DATASET_MIRROR": url})
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["rows"] == 19_366
    assert "yes" in replayer("datasets", env=env).stdout
