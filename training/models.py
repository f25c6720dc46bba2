"""One factory for the networks Tailor trains: smp's create_model with weights never downloaded here.

`arch` is the dict stored in checkpoints and model cards (see TrainConfig.arch), so training,
export and the torch serving backend build the identical module from it.
"""
from __future__ import annotations

import segmentation_models_pytorch as smp
import torch


def build_model(arch: dict, encoder_weights: str | None = None) -> torch.nn.Module:
    kwargs = dict(arch)
    name = kwargs.pop("arch")
    if "decoder_channels" in kwargs:
        kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
    return smp.create_model(name, encoder_weights=encoder_weights, **kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
