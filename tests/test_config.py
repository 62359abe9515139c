import pytest

from unnas import config
from unnas.errors import UserError


def test_defaults_are_the_dataclass_defaults():
    cfg = config.load()
    assert cfg.train == config.TrainConfig()
    assert cfg.data.name == "digits" and cfg.run.pretext == "rotation"


def test_yaml_then_overrides_merge_in_order(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("train:\n  epochs: 7\n  lr: 0.2\ndata:\n  name: fake\n")
    cfg = config.load(f, ["train.epochs=3"], base={"train": {"epochs": 5, "batch_size": 32}, "data": {"seed": 4}})
    assert cfg.train.epochs == 3  # override beats base (flags) beats YAML
    assert cfg.train.lr == 0.2  # YAML beats default
    assert cfg.train.batch_size == 32  # base beats default
    assert cfg.data.seed == 4
    assert cfg.data.name == "fake"


def test_flags_win_over_the_config_file(tmp_path):
    from unnas.rank import options_to_config, parser

    f = tmp_path / "x.yaml"
    f.write_text("run:\n  num_archs: 8\n  pretext: rotation\ntrain:\n  lr: 0.2\n")
    a = parser().parse_intermixed_args(["--config", str(f), "--num-archs", "2"])
    cfg = config.load(a.config, a.overrides, base=options_to_config(a))
    assert cfg.run.num_archs == 2  # the flag, not the file's 8
    assert cfg.train.lr == 0.2  # the file, not the default


def test_config_objects_are_frozen():
    cfg = config.load()
    with pytest.raises(Exception):
        cfg.train.epochs = 3


def test_unknown_key_names_path_and_allowed_keys():
    with pytest.raises(UserError) as e:
        config.load(overrides=["train.epoch=3"])
    msg = str(e.value)
    assert "train.epoch" in msg and "epochs" in msg and "batch_size" in msg


def test_unknown_section_rejected(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("trian:\n  epochs: 1\n")
    with pytest.raises(UserError) as e:
        config.load(f)
    assert "trian" in str(e.value) and "train" in str(e.value)


def test_wrong_type_rejected():
    with pytest.raises(UserError) as e:
        config.load(overrides=["train.epochs=many"])
    assert "train.epochs" in str(e.value)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load(bad)
    with pytest.raises(UserError, match="key=value"):
        config.load(overrides=["train.epochs"])


def test_yaml_roundtrip_and_objective_sections():
    cfg = config.load(overrides=["train.epochs=2", "model.params.nodes=6"])
    again = config.from_dict(config.to_dict(cfg))
    assert again == cfg
    assert again.model.params == {"nodes": 6}
    assert "epochs: 2" in config.to_yaml(cfg)


def test_replace_changes_one_field():
    cfg = config.replace(config.load(), train={"epochs": 9})
    assert cfg.train.epochs == 9 and cfg.train.lr == config.TrainConfig().lr
