import pytest

from replayer.errors import ConfigError
from replayer.prompts.synthesis import PromptSynthesizer
from replayer.prompts.tokenizer import Tokenizer, load_tokenizer


def test_default_is_cl100k_loaded_offline():
    assert load_tokenizer().encode("hello world") == [15339, 1917]


@pytest.mark.parametrize("style", ["byte_level", "metaspace"])
def test_tokenizer_json_counts_like_the_tokenizers_library(tokenizer_json, style):
    from tokenizers import Tokenizer as HF

    path = tokenizer_json(style)
    ours = load_tokenizer(str(path))
    text = "The harbor lights turn on. Boats return."
    assert ours.encode(text) == HF.from_file(str(path)).encode(text, add_special_tokens=False).ids
    assert load_tokenizer(str(path.parent / path.name)) is ours  # cached


def test_a_model_directory_with_tokenizer_json_is_accepted(tokenizer_json, tmp_path):
    (tmp_path / "tokenizer.json").write_bytes(tokenizer_json("byte_level").read_bytes())
    assert load_tokenizer(str(tmp_path)).count(" harbor") == 1


def test_unreadable_tokenizer_json_is_a_one_line_error(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"not a readable tokenizer.json") as caught:
        load_tokenizer(str(bad))
    assert "\n" not in str(caught.value)


def test_a_tokenizer_that_merges_across_words_is_refused():
    def merge_everything(text: str) -> list[int]:  # one token per 3 characters, word boundaries ignored
        return list(range(-(-len(text) // 3)))

    with pytest.raises(ConfigError, match="exact prompts cannot be built"):
        PromptSynthesizer(Tokenizer("chunky", merge_everything))
