"""Shared fixtures: the simulator on a free loopback port, and small trace files written on the fly."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import re
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from replayer.prompts.synthesis import PromptSynthesizer
from replayer.prompts.tokenizer import Tokenizer, load_tokenizer
from replayer.sim.engine import EngineModel
from replayer.sim.faults import Faults
from replayer.sim.hosting import SimulatorThread
from replayer.sim.server import SimulatorConfig


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    """cl100k_base, the default tokenizer."""
    return load_tokenizer()


@pytest.fixture(scope="session")
def synthesizer(tokenizer: Tokenizer) -> PromptSynthesizer:
    """A cl100k prompt synthesizer with a fixed seed."""
    return PromptSynthesizer(tokenizer, seed=7)


@pytest.fixture
def simulator() -> Callable[..., contextlib.AbstractContextManager[SimulatorThread]]:
    """Factory: `with simulator(engine=..., faults=..., template=...) as sim:` serves on 127.0.0.1:<free port>."""

    @contextlib.contextmanager
    def start(engine: EngineModel | None = None, faults: Faults | None = None, **options) -> Iterator[SimulatorThread]:
        config = SimulatorConfig(engine=engine or EngineModel(), faults=faults or Faults(), **options)
        with SimulatorThread(config) as sim:
            yield sim

    return start


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Factory: write text or bytes to a file in the test's temporary directory and return its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def serving() -> Callable[[Path], contextlib.AbstractContextManager[str]]:
    """Factory: `with serving(directory) as base_url:` serves the directory's files over local HTTP."""

    @contextlib.contextmanager
    def serve(directory: Path) -> Iterator[str]:
        handler = functools.partial(_QuietFileHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    return serve


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def tokenizer_json(tmp_path_factory) -> Callable[[str], Path]:
    """Factory: a Hugging Face tokenizer.json trained here on the bundled corpus (no model hub):
    `byte_level` (GPT-2 / Llama-3 style) or `metaspace` (SentencePiece / Llama-2 style)."""
    from importlib import resources

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    lines = (resources.files("replayer") / "data" / "corpus.txt").read_text(encoding="utf-8").splitlines()
    directory = tmp_path_factory.mktemp("tokenizers")

    def make(style: str) -> Path:
        path = directory / f"{style}.json"
        if not path.exists():
            tokenizer = Tokenizer(models.BPE())
            if style == "byte_level":
                tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
                tokenizer.decoder = decoders.ByteLevel()
                trainer = trainers.BpeTrainer(vocab_size=3000, show_progress=False,
                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            else:
                tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
                tokenizer.decoder = decoders.Metaspace()
                trainer = trainers.BpeTrainer(vocab_size=3000, show_progress=False)
            tokenizer.train_from_iterator(lines, trainer)
            tokenizer.save(str(path))
        return path

    return make


@pytest.fixture
def report_without_summary() -> Callable[[Path], dict]:
    """Factory: delete RUN's summary.json, then return what `replayer report RUN --format json`
    computes from the records file alone (with vLLM's flat keys, as summary.json holds them)."""

    def report(run: Path) -> dict:
        (run / "summary.json").unlink()
        result = subprocess.run([sys.executable, "-m", "replayer", "report", str(run), "--format", "json"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return report


def png_pixels(path: Path) -> bytes:
    """The decompressed image data of a PNG (filter bytes included): enough to tell a blank page."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind == b"IDAT":
            chunks.append(data[position + 8:position + 8 + length])
        position += 12 + length
    return zlib.decompress(b"".join(chunks))


def render_in_chromium(page: Path, shot: Path) -> bytes:
    """Render `page` in headless Chromium into the PNG `shot` (skipping the test without Chromium),
    failing on a script or console error; returns the image's pixel data."""
    if shutil.which("chromium") is None:
        pytest.skip("needs Debian's chromium package (apt install chromium)")
    result = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", f"--screenshot={shot}", "--window-size=900,2400", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert shot.exists(), result.stderr[-2000:]
    assert not re.search(r"CONSOLE|Uncaught", result.stderr), result.stderr[-2000:]
    return png_pixels(shot)


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def dom_in_chromium(page: Path) -> str:
    """The DOM of `page` after headless Chromium loaded and laid it out (skipping without Chromium)."""
    if shutil.which("chromium") is None:
        pytest.skip("needs Debian's chromium package (apt install chromium)")
    result = subprocess.run(["chromium", *CHROMIUM_FLAGS, "--dump-dom", page.as_uri()], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def chromium_dom() -> Callable[[Path], str]:
    """`chromium_dom(page)`: the page's DOM as Chromium built it (see `dom_in_chromium`)."""
    return dom_in_chromium


@pytest.fixture
def chromium() -> Callable[[Path, Path], bytes]:
    """`chromium(page, shot)`: render an HTML page into a PNG and return its pixel data (see `render_in_chromium`)."""
    return render_in_chromium


# Report pages read back as their structure: what tests check of the run, compare and experiment
# pages, from the DOM (the file itself, or Chromium's DOM after rendering).


@dataclass
class Chart:
    title: str = ""
    lines: int = 0
    hover: int = 0
    x_ticks: list[float] = field(default_factory=list)
    y_ticks: list[float] = field(default_factory=list)
    empty: bool = False


@dataclass
class Page:
    h1: str = ""
    header: dict[str, str] = field(default_factory=dict)
    verdict: list[tuple[str, str]] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    scripts: int = 0


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self.stack: list[tuple[str, dict, int]] = []
        self.text: list[str] = []
        self.term = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag not in ("polyline", "circle", "rect", "line", "meta", "br"):  # (void or self-closed in the pages)
            self.stack.append((tag, attributes, len(self.text)))
        if tag == "script":
            self.page.scripts += 1
        elif tag == "figure":
            self.page.charts.append(Chart(empty="empty" in (attributes.get("class") or "")))
        elif tag == "table":
            self.page.tables.append([])
        elif tag == "tr" and self.page.tables:
            self.page.tables[-1].append([])
        elif tag == "polyline" and self.page.charts:
            self.page.charts[-1].lines += 1
        elif tag == "title" and self._inside("svg"):
            self.page.charts[-1].hover += 1

    def handle_endtag(self, tag: str) -> None:
        if not any(name == tag for name, _, _ in self.stack):
            return  # (the end of a void element)
        while self.stack[-1][0] != tag:
            self.stack.pop()
        _, opened, start = self.stack.pop()
        text = "".join(self.text[start:]).strip()
        classes = opened.get("class") or ""
        if tag == "h1":
            self.page.h1 = text
        elif tag == "dt":
            self.term = text
        elif tag == "dd":
            self.page.header[self.term] = text
        elif tag == "li" and self._inside("section"):
            self.page.verdict.append((classes, text))
        elif tag in ("td", "th") and self.page.tables and self.page.tables[-1]:
            self.page.tables[-1][-1].append(text)
        elif tag == "h3" and self._inside("figure"):
            self.page.charts[-1].title = text
        elif tag == "text" and classes in ("xtick", "ytick"):
            ticks = self.page.charts[-1].x_ticks if classes == "xtick" else self.page.charts[-1].y_ticks
            ticks.append(float(text.replace(",", "")))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def _inside(self, tag: str) -> bool:
        return any(name == tag for name, _, _ in self.stack)


def read_page(text: str) -> Page:
    reader = _Reader()
    reader.feed(text)
    return reader.page


def is_round(ticks: list[float]) -> bool:
    """Evenly spaced by 1, 2 or 5 times a power of ten, each a multiple of that step."""
    if len(ticks) < 2:
        return False
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    return (any(math.isclose(mantissa, m) for m in (1, 2, 5))
            and all(math.isclose(b - a, step, rel_tol=1e-6) for a, b in zip(ticks, ticks[1:]))
            and all(math.isclose(t / step, round(t / step), abs_tol=1e-6) for t in ticks))


@pytest.fixture
def page_of() -> Callable[[str], Page]:
    """`page_of(html)`: the page's header, verdict, tables and charts (see `Page`)."""
    return read_page


@pytest.fixture
def round_ticks() -> Callable[[list[float]], bool]:
    """`round_ticks(values)`: whether axis ticks are 1-2-5 steps (see `is_round`)."""
    return is_round
