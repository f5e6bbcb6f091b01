import pytest
from pydantic import ValidationError

from gatedrag.config import PipelineConfig, load_config, parse_config
from gatedrag.errors import ConfigError


def test_defaults_are_valid_and_frozen():
    cfg = PipelineConfig()
    assert cfg.retrieval.top_k == 3 and cfg.decoding.max_answer_tokens == 128
    with pytest.raises(ValidationError):
        cfg.retrieval.top_k = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"retrieval": {"top_k": 0}}, "retrieval.top_k"),
        ({"gate": {"rules": [{"signal": "flare", "theta": 1.5}]}}, "theta"),
        ({"gate": {"rules": [{"signal": "nope"}]}}, "gate.rules"),
        ({"decoding": {"max_answer_tokens": -1}}, "decoding.max_answer_tokens"),
        ({"generation": {"max_answer_tokens": 64}}, "split: decoding"),
        ({"gate": {"rules": [{"signal": "token_rag", "theta": 0.2}]}}, "theta was renamed"),
        ({"gate": {"rules": [{"signal": "nope"}]}}, "unknown signal 'nope'"),
        ({"control": {"alpha": 0.9}}, "nothing reads it"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_out_of_range_values_name_the_field(data, field):
    with pytest.raises(ConfigError, match=field.split(".")[0]):
        parse_config(data)


def test_yaml_and_toml_files(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("gate:\n  rules:\n    - signal: token_rag\n      threshold: 0.2\nretrieval:\n  top_k: 2\n")
    assert load_config(y).gate.rules[0].threshold == 0.2
    t = tmp_path / "c.toml"
    t.write_text('[retrieval]\ntop_k = 4\n[[gate.rules]]\nsignal = "flare"\ntheta = 0.7\n')
    cfg = load_config(t)
    assert cfg.retrieval.top_k == 4 and cfg.gate.rules[0].signal == "flare"


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gate: [unclosed")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)
    other = tmp_path / "c.json"
    other.write_text("{}")
    with pytest.raises(ConfigError, match="must end in"):
        load_config(other)
    dup = tmp_path / "dup.yaml"
    dup.write_text("gate:\n  rules:\n    - signal: flare\n    - signal: flare\n")
    with pytest.raises(ConfigError, match="once"):
        load_config(dup)
