"""Training configs: strict parsing (unknown keys, wrong types named), shipped configs, CLI exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hand_recon_ros.cli import main
from hand_recon_ros.config_schema import ConfigError
from hand_recon_ros.training.config import TrainConfig, load_config, shipped_configs


def test_shipped_configs_parse() -> None:
    assert shipped_configs() == ["interhand-full", "pseudo-label", "tiny-synthetic", "weak-2d"]
    modes = {name: load_config(name).mode for name in shipped_configs()}
    assert modes == {"interhand-full": "full", "pseudo-label": "weak", "tiny-synthetic": "full", "weak-2d": "weak"}
    from hand_recon_ros.network.config import NetworkConfig

    for name in shipped_configs():
        NetworkConfig.from_dict(load_config(name).network)


@pytest.mark.parametrize(("data", "message"), [
    ({"batch_sise": 4}, "unknown key(s) ['batch_sise']"),
    ({"data": {"kind": "toy", "flip": 0.5}}, "config.data: unknown key(s) ['flip']"),
    ({"batch_size": "8"}, "config.batch_size: expected an integer, got str '8'"),
    ({"learning_rate": True}, "config.learning_rate: expected a number, got bool"),
    ({"data": {"kind": "imagenet"}}, "config.data.kind: 'imagenet' is not one of"),
    ({"data": {"scale_range": [1.0, "x"]}}, "config.data.scale_range[1]: expected a number"),
    ({"batch_size": 0}, "config.batch_size: value 0 is out of range"),
    ({"data": {"kind": "interhand"}}, "config.data.path: required"),
    ({"mode": "weak"}, "config.loss.joints_3d: must be 0 in mode 'weak'"),
])
def test_bad_configs_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(data)
    assert message in str(info.value)


def test_cli_bad_config_exits_2_naming_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: 4\nlerning_rate: 0.1\n")
    assert main(["train", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "lerning_rate" in err
    assert not (tmp_path / "run").exists()
    assert main(["train", "no-such-config", "--out", str(tmp_path / "run")]) == 2
    assert "tiny-synthetic" in capsys.readouterr().err


def test_cli_bad_network_key_and_device(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "net.yaml"
    cfg.write_text("network:\n  backbone: resnet19\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "backbone" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main(["train", "tiny-synthetic", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert main(["train", "tiny-synthetic", "--max-steps", "0", "--out", str(tmp_path / "run")]) == 2
