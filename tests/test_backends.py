import pytest

from replayer.backends import BACKENDS, detect_backend


@pytest.mark.parametrize(("owned_by", "backend"), [("vllm", "vllm"), ("sglang", "sglang"), ("llamacpp", "llamacpp"),
                                                   ("tgi", "tgi"), ("replayer", "replayer"), ("openai", "openai"),
                                                   ("system", "openai"), ("", "openai")])
def test_backend_is_recognised_from_owned_by(owned_by, backend):
    assert detect_backend([{"id": "m", "owned_by": owned_by}]) == backend


def test_no_model_list_means_plain_openai():
    assert detect_backend([]) == "openai"


def test_only_engines_that_accept_ignore_eos_get_it():
    assert {name for name, backend in BACKENDS.items() if backend.forces_length} == {
        "vllm", "sglang", "llamacpp", "replayer"}
