"""The summary as JSON: `summary.json`'s content, with vLLM `bench serve`'s flat key names too."""

from __future__ import annotations

import json
from typing import Any

from replayer.analysis.summary import Summary, summary_entry

_VLLM_METRICS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2el": "e2e_ms"}


def with_vllm_keys(summary: Summary) -> dict[str, Any]:
    """The summary plus the flat keys of vLLM's `bench serve` result JSON (`mean_ttft_ms`, `median_tpot_ms`,
    `p99_e2el_ms`, `total_token_throughput`, …), so dashboards that ingest those read ours unchanged."""
    flat = dict(summary)
    flat["duration"] = summary["duration_s"]
    output, total = summary["output_throughput"], summary["input_throughput"]
    flat["total_token_throughput"] = None if output is None or total is None else output + total
    for vllm_name, ours in _VLLM_METRICS.items():
        dist = summary_entry(summary, ours) or {}
        flat[f"mean_{vllm_name}_ms"] = dist.get("mean")
        flat[f"median_{vllm_name}_ms"] = dist.get("p50")
        for name in ("p90", "p95", "p99"):
            flat[f"{name}_{vllm_name}_ms"] = dist.get(name)
    if (summary.get("slo") or {}).get("goodput") is not None:
        flat["request_goodput"] = summary["slo"]["goodput"]
    return flat



def summary_json(summary: Summary) -> str:
    """`summary.json`'s text: the summary with vLLM's keys, indented, ending in a newline."""
    return json.dumps(with_vllm_keys(summary), indent=2) + "\n"
