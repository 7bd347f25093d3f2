"""ROS-free helpers of the node's teleop outputs: the parameter parsing and the /diagnostics hook."""

from __future__ import annotations

import pytest

from hand_recon_ros.pipeline.one_euro_filter import OneEuroSettings
from hand_recon_ros.ros.diagnostics import NodeStats
from hand_recon_ros.ros.parameters import PARAMETERS_BY_NAME
from hand_recon_ros.ros.teleop_outputs import one_euro_settings, parse_config_list


def test_config_list_parsing() -> None:
    assert parse_config_list("") == []
    assert parse_config_list(" allegro_hand_right , ,/x/my_left.yml ") == ["allegro_hand_right", "/x/my_left.yml"]


def test_one_euro_parameters_make_settings_and_default_off() -> None:
    defaults = {name: spec.default for name, spec in PARAMETERS_BY_NAME.items()}
    assert not one_euro_settings(defaults).enabled  # off unless asked for: the default path is unchanged
    on = one_euro_settings({**defaults, "one_euro_min_cutoff_hz": 1.5, "one_euro_beta": 7.0})
    assert on == OneEuroSettings(1.5, 7.0, defaults["one_euro_d_cutoff_hz"]) and on.enabled


def test_extra_values_reach_the_diagnostics_snapshot() -> None:
    stats = NodeStats()
    assert "hands retargeted" not in stats.snapshot().values
    stats.extra_values = lambda: {"hands retargeted": "3", "one-euro filter": "off"}
    snapshot = stats.snapshot()
    assert snapshot.values["hands retargeted"] == "3" and snapshot.values["one-euro filter"] == "off"


@pytest.mark.parametrize("name", ["one_euro_min_cutoff_hz", "one_euro_beta", "one_euro_d_cutoff_hz"])
def test_filter_parameters_are_live(name: str) -> None:
    assert PARAMETERS_BY_NAME[name].live
