"""The summary as Markdown (for CI comments and pull requests) and the SLO verdict as JUnit XML."""

from __future__ import annotations

from xml.etree import ElementTree

from replayer.analysis.slo import parse_slo
from replayer.analysis.summary import PERCENTILES, Summary, summary_entry
from replayer.analysis.wording import (
    LATENCY_ROWS,
    client_behind_warning,
    fmt,
    recorded_e2e_line,
    slo_value,
    slo_verdict,
)


def markdown_report(summary: Summary, title: str) -> str:
    """The report as Markdown (for CI comments and pull requests): totals, latencies, SLOs, groups."""
    lines = [f"### {title}", "",
             f"**{summary['completed']:,}** of {summary['requests_sent']:,} requests completed, "
             f"{summary['failed']:,} failed" + (f" ({', '.join(f'{k} {v}' for k, v in summary['failures'].items())})"
                                                 if summary["failures"] else "") +
             f"; {fmt(summary['request_throughput'], 2)} req/s, {fmt(summary['output_throughput'])} output tok/s "
             f"over {fmt(summary['duration_s'], 1)} s.", ""]
    columns = ("mean", *(name for name, _ in PERCENTILES), "max")
    lines += ["| metric (ms) | " + " | ".join(c.replace("p999", "p99.9") for c in columns) + " |",
              "|---|" + "---:|" * len(columns)]
    for label, key in LATENCY_ROWS:
        dist = summary_entry(summary, key) or {}
        if dist.get("count"):
            lines.append(f"| {label} | " + " | ".join(fmt(dist.get(c), 2, grouping="") for c in columns) + " |")
    if (recorded := recorded_e2e_line(summary)) is not None:
        lines += ["", recorded + "."]
    slo = summary.get("slo")
    if slo:
        lines += ["", f"**{slo_verdict(slo)}**", "", "| SLO | measured | |", "|---|---:|---|"]
        lines += [f"| `{c['slo']}` | {slo_value(c)} | {'pass' if c['passed'] else '**FAIL**'} |" for c in slo["checks"]]
        if slo["per_request"]:
            lines.append(f"\nPer-request SLOs {', '.join(f'`{t}`' for t in slo['per_request'])}: "
                         f"attainment {fmt((slo['attainment'] or 0) * 100)}%, goodput {fmt(slo['goodput'], 2)} req/s.")
    if summary.get("client_limited"):
        lines += ["", f"> {client_behind_warning(summary)}"]
    return "\n".join(lines) + "\n"


def junit_xml(slo: dict, run: str) -> str:
    """The SLO verdict as JUnit XML, for CI systems' test reports: one test case per SLO. A per-request
    SLO's case says how many requests missed it; it fails when a goodput or attainment SLO over the
    per-request ones failed and this one was missed (alone, per-request SLOs never fail a run)."""
    gate_failed = any(not check["passed"] and parse_slo(check["slo"]).metric in ("goodput", "attainment")
                      for check in slo["checks"])
    cases: list[tuple[str, str | None, str]] = []
    for text in slo["per_request"]:
        missed = (slo.get("missed") or {}).get(text, 0)
        detail = f"missed by {missed:,} requests; attainment of all per-request SLOs {_percent(slo['attainment'])}"
        cases.append((f"{text} (per request)", detail if gate_failed and missed else None, detail))
    for check in slo["checks"]:
        detail = f"{check['slo']}: measured {slo_value(check)}"
        cases.append((check["slo"], None if check["passed"] else detail, detail))
    suite = ElementTree.Element("testsuite", name=f"replayer SLOs of {run}", tests=str(len(cases)),
                                failures=str(sum(failure is not None for _, failure, _ in cases)))
    for name, failure, detail in cases:
        case = ElementTree.SubElement(suite, "testcase", classname="replayer.analysis.slo", name=name)
        if failure is not None:
            ElementTree.SubElement(case, "failure", message=failure).text = failure
        else:
            ElementTree.SubElement(case, "system-out").text = detail
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.1f}%"
