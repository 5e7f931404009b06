import hashlib
import shutil
from pathlib import Path

import pytest

from replayer.errors import InputError
from replayer.traces import datasets
from replayer.traces.formats import read_trace, resolve_path

BUNDLED_AZURE = resolve_path("sample:azure-2023-conv")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("REPLAYER_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def mirror_dir(tmp_path) -> Path:
    directory = tmp_path / "mirror"
    directory.mkdir()
    return directory


def test_first_use_downloads_and_verifies_then_the_cache_serves_offline(cache, mirror_dir, monkeypatch, serving):
    shutil.copy(BUNDLED_AZURE, mirror_dir / "AzureLLMInferenceTrace_conv.csv")
    with serving(mirror_dir) as url:
        monkeypatch.setenv("REPLAYER_DATASET_MIRROR", url)
        path = datasets.fetch("azure-2023:conv", progress=False)
    assert path == cache / "azure-2023" / "AzureLLMInferenceTrace_conv.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == datasets.DATASETS["azure-2023:conv"].sha256
    assert not list(path.parent.glob("*.part"))
    # the server is gone: the cached, verified copy is used without any network access
    trace = read_trace("azure-2023:conv")
    assert len(trace) == 19_366 and trace.format == "azure"


def test_a_corrupt_download_is_refused_and_not_cached(cache, mirror_dir, monkeypatch, serving):
    (mirror_dir / "AzureLLMInferenceTrace_conv.csv").write_bytes(BUNDLED_AZURE.read_bytes()[:-1] + b"9")
    with serving(mirror_dir) as url:
        monkeypatch.setenv("REPLAYER_DATASET_MIRROR", url)
        with pytest.raises(
            InputError, match=r"azure-2023:conv: download from .* \(sha256 [0-9a-f]{64}, expected 2f1e5b"
        ):
            datasets.fetch("azure-2023:conv", progress=False)
    assert not any((cache / "azure-2023").iterdir())


def test_a_wrong_size_is_refused(cache, mirror_dir, monkeypatch, serving):
    (mirror_dir / "synthetic_trace.jsonl").write_text('{"timestamp": 0, "input_length": 1, "output_length": 1}\n')
    with serving(mirror_dir) as url:
        monkeypatch.setenv("REPLAYER_DATASET_MIRROR", url)
        with pytest.raises(InputError, match=r"\(56 bytes, expected 1,136,313\)"):
            datasets.fetch("mooncake:synthetic", progress=False)


def test_no_network_says_what_to_download_by_hand(cache, mirror_dir, monkeypatch, serving):
    with serving(mirror_dir) as url:
        pass  # the port is closed again: nothing listens there
    monkeypatch.setenv("REPLAYER_DATASET_MIRROR", url)
    with pytest.raises(InputError) as caught:
        datasets.fetch("burstgpt:3", progress=False)
    message = str(caught.value)
    assert message.startswith(f"burstgpt:3: cannot download {url}/BurstGPT_3.csv")
    assert f"save it as {cache / 'burstgpt' / 'BurstGPT_3.csv'}" in message and "\n" not in message


def test_missing_upstream_file_is_a_clear_error(cache, mirror_dir, monkeypatch, serving):
    with serving(mirror_dir) as url:
        monkeypatch.setenv("REPLAYER_DATASET_MIRROR", url)
        with pytest.raises(InputError, match=r"cannot download .* \(HTTP 404: File not found\); download it by hand"):
            datasets.fetch("azure-2023:code", progress=False)


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(InputError, match=r"burstgpt:4: unknown dataset \(known: burstgpt:1, burstgpt:1-without"):
        resolve_path("burstgpt:4")


def test_every_dataset_has_a_distinct_file_name_for_mirrors():
    names = [d.file_name for d in datasets.DATASETS.values()]
    assert len(set(names)) == len(names)
    assert all(d.url.startswith("https://") for d in datasets.DATASETS.values())
