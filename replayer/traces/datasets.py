"""Public LLM traces by name (`burstgpt:1`, `azure-2023:conv`, …): fetched once, verified, reused offline.

A name resolves to the dataset's public download location. The first use downloads it into the
cache directory (`$REPLAYER_CACHE_DIR`, else `$XDG_CACHE_HOME/replayer`, else `~/.cache/replayer`)
with a progress bar, checks the size and sha256 where they are known, and only then moves it into
place, so a cached file is always a complete, verified one. Later uses never touch the network.
`$REPLAYER_DATASET_MIRROR` replaces every download location with `<mirror>/<file name>`, for an
internal mirror (and for the tests, which serve files from a local HTTP server).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from replayer.errors import InputError
from replayer.version import __version__

BURSTGPT = "https://github.com/HPMLL/BurstGPT/releases/download/v2.0/"
AZURE_2023 = "https://raw.githubusercontent.com/Azure/AzurePublicDataset/master/data/"
AZURE_2024 = "https://github.com/Azure/AzurePublicDataset/releases/download/dataset-llm-2024/"
MOONCAKE = "https://raw.githubusercontent.com/kvcache-ai/Mooncake/main/FAST25-release/traces/"
QWEN_BAILIAN = "https://media.githubusercontent.com/media/alibaba-edu/qwen-bailian-usagetraces-anon/main/"
"""Git LFS files: this is where GitHub serves their content (sizes and hashes are the LFS pointers')."""
CC_BY = "CC-BY-4.0"


@dataclass(frozen=True)
class Dataset:
    """One downloadable public trace; `size` and `sha256` are checked when known."""

    name: str
    url: str
    description: str
    license: str
    size: int | None = None
    sha256: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def family(self) -> str:
        return self.name.split(":", 1)[0]


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("burstgpt:1", BURSTGPT + "BurstGPT_1.csv", "BurstGPT months 1-2, with failures (1.43 M rows)", CC_BY,
            size=52_283_111),
    Dataset("burstgpt:1-without-fails", BURSTGPT + "BurstGPT_without_fails_1.csv",
            "BurstGPT months 1-2, failed requests removed", CC_BY, size=51_429_517,
            sha256="a4d068a7113ec0290e74063a1b3447dc6001a30e4298eb313581b71006dda1f4"),
    Dataset("burstgpt:2", BURSTGPT + "BurstGPT_2.csv", "BurstGPT months 3-4, with failures (3.86 M rows)", CC_BY),
    Dataset("burstgpt:2-without-fails", BURSTGPT + "BurstGPT_without_fails_2.csv",
            "BurstGPT months 3-4, failed requests removed", CC_BY, size=142_376_815),
    Dataset("burstgpt:3", BURSTGPT + "BurstGPT_3.csv", "BurstGPT v3 (sessions, elapsed time), 5.34 M rows", CC_BY,
            size=231_682_327, sha256="2299986a07388aa303ec2c41d1131e756db650a39ed6ef9dfe7cc3d7f9a43b8f"),
    Dataset("burstgpt:3-without-fails", BURSTGPT + "BurstGPT_without_fails_3.csv",
            "BurstGPT v3, failed requests removed", CC_BY, size=217_312_026),
    Dataset("azure-2023:conv", AZURE_2023 + "AzureLLMInferenceTrace_conv.csv",
            "Azure LLM inference 2023 (Splitwise), conversation, one hour", CC_BY, size=719_188,
            sha256="2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8"),
    Dataset("azure-2023:code", AZURE_2023 + "AzureLLMInferenceTrace_code.csv",
            "Azure LLM inference 2023 (Splitwise), coding, one hour", CC_BY),
    Dataset("azure-2024:conv", AZURE_2024 + "AzureLLMInferenceTrace_conv_1week.csv",
            "Azure LLM inference 2024, conversation, one week", CC_BY,
            sha256="a0cc9b969a9bbf0fd811802cbf4323edd3a209ace791e3799ad4f9207f213941"),
    Dataset("azure-2024:code", AZURE_2024 + "AzureLLMInferenceTrace_code_1week.csv",
            "Azure LLM inference 2024, coding, one week", CC_BY),
    Dataset("azure-2025:multimodal", AZURE_2023 + "AzureLMMInferenceTrace_multimodal.csv.gz",
            "Azure LMM inference 2025 (ModServe), multimodal, one week, image counts as request types", CC_BY),
    Dataset("mooncake:conversation", MOONCAKE + "conversation_trace.jsonl",
            "Mooncake FAST'25 conversation trace (Kimi), with prefix blocks", "Apache-2.0", size=3_029_533),
    Dataset("mooncake:toolagent", MOONCAKE + "toolagent_trace.jsonl",
            "Mooncake FAST'25 tool-agent trace (Kimi), with prefix blocks", "Apache-2.0", size=4_415_857),
    Dataset("mooncake:synthetic", MOONCAKE + "synthetic_trace.jsonl",
            "Mooncake FAST'25 synthetic trace (Poisson arrivals, real lengths)", "Apache-2.0", size=1_136_313,
            sha256="bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131"),
    Dataset("qwen-bailian:traceA", QWEN_BAILIAN + "qwen_traceA_blksz_16.jsonl",
            "Qwen-Bailian ATC'25, to-C chat service (chat trees, 16-token prefix blocks)", "Apache-2.0"),
    Dataset("qwen-bailian:traceB", QWEN_BAILIAN + "qwen_traceB_blksz_16.jsonl",
            "Qwen-Bailian ATC'25, to-B task automation with API calls", "Apache-2.0"),
    Dataset("qwen-bailian:coder", QWEN_BAILIAN + "qwen_coder_blksz_16.jsonl",
            "Qwen-Bailian ATC'25, coding model", "Apache-2.0", size=132_054_902,
            sha256="3d74974cebb7bccb69b1ca6ea210a44d9a3033443c0271ed015327284dea1aff"),
    Dataset("qwen-bailian:thinking", QWEN_BAILIAN + "qwen_thinking_blksz_16.jsonl",
            "Qwen-Bailian ATC'25, thinking model", "Apache-2.0", size=27_901_454,
            sha256="41ac36d9d1b54d084eeb6b05e9d142ba9d02f8bf79cfc9fff418d8ab7cdee906"),
)}
"""Every trace known by name. Sizes and hashes are pinned where a published copy was measured."""

FAMILIES = sorted({d.family for d in DATASETS.values()})
CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    """Where fetched traces live: $REPLAYER_CACHE_DIR, else the XDG cache directory."""
    if os.environ.get("REPLAYER_CACHE_DIR"):
        return Path(os.environ["REPLAYER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "replayer"


def cached_path(dataset: Dataset) -> Path:
    return cache_dir() / dataset.family / dataset.file_name


def download_url(dataset: Dataset) -> str:
    mirror = os.environ.get("REPLAYER_DATASET_MIRROR")
    return f"{mirror.rstrip('/')}/{dataset.file_name}" if mirror else dataset.url


def is_dataset_name(spec: str) -> bool:
    """True for `family:variant` names of known families (so a typo in the variant gets a clear error)."""
    return spec.split(":", 1)[0] in FAMILIES and ":" in spec


def lookup(name: str) -> Dataset:
    if name not in DATASETS:
        family = name.split(":", 1)[0]
        known = ", ".join(n for n in DATASETS if n.startswith(family + ":"))
        raise InputError(name, f"unknown dataset (known: {known})")
    return DATASETS[name]


def fetch(name: str, *, progress: bool = True) -> Path:
    """The local path of a named dataset, downloading and verifying it first if it is not cached."""
    dataset = lookup(name)
    target = cached_path(dataset)
    if target.is_file() and (dataset.size is None or target.stat().st_size == dataset.size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    url = download_url(dataset)
    try:
        digest = _download(url, partial, dataset.name, progress)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code}: {exc.reason}"
        else:
            reason = str(getattr(exc, "reason", None) or exc)
        raise InputError(name, f"cannot download {url} ({reason}); download it by hand and save it as {target}, "
                               "or pass the file with --trace FILE") from None
    _verify(dataset, partial, digest, url)
    partial.replace(target)
    return target


def _download(url: str, partial: Path, label: str, show_progress: bool) -> str:
    """Stream `url` into `partial`, returning the sha256 of what was written."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": f"replayer/{__version__}"})
    with urllib.request.urlopen(request, timeout=60) as response, open(partial, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        columns = (TextColumn(f"fetching {label}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), disable=not show_progress) as bar:
            task = bar.add_task(label, total=total)
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                bar.advance(task, len(chunk))
    return digest.hexdigest()


def _verify(dataset: Dataset, partial: Path, digest: str, url: str) -> None:
    """Refuse a download whose size or sha256 differs from the pinned one (and delete it)."""
    size = partial.stat().st_size
    problem = None
    if dataset.size is not None and size != dataset.size:
        problem = f"{size:,} bytes, expected {dataset.size:,}"
    elif dataset.sha256 is not None and digest != dataset.sha256:
        problem = f"sha256 {digest}, expected {dataset.sha256}"
    if problem:
        partial.unlink()
        raise InputError(dataset.name, f"download from {url} is corrupt or changed upstream ({problem}); "
                                       "nothing was cached")
