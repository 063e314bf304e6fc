"""The BSDS500 task's decoder settings reach the shared UCM decoder, and bad ones are refused."""

from __future__ import annotations

import pytest
import torch

from matbackprop.errors import ConfigError
from matbackprop.tasks.ncuts import Config


def test_decoder_settings_reach_the_ucm_decoder():
    config = Config(calibration="exp", height_scale=0.25, merge_alpha=0.5, levels=8, k=4)
    decoder = config.decoder
    assert (decoder.calibration, decoder.scale, decoder.alpha, decoder.levels, decoder.k) == (
        "exp",
        0.25,
        0.5,
        8,
        4,
    )
    # the calibration changes the ucm2 values (not the hierarchy): two regions, one merge
    node_index = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    Z = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    as_max = Config(levels=8, k=2).decoder.ucm2(Z, node_index)
    as_exp = Config(levels=8, k=2, calibration="exp", height_scale=100.0).decoder.ucm2(
        Z, node_index
    )
    assert float(as_max.max()) > float(as_exp.max()) > 0  # h/h_max = 1; 1 - exp(-h/100) < 1


@pytest.mark.parametrize(
    ("field", "value"), [("calibration", "log"), ("height_scale", 0.0), ("height_scale", -1.0)]
)
def test_bad_decoder_settings_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        Config(**{field: value})
