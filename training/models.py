"""One factory for the networks Tailor trains: smp's create_model with weights never downloaded here.

`arch` is the dict stored in checkpoints and model cards (see TrainConfig.arch), so training,
export and the torch serving backend build the identical module from it. ImageNet encoder weights
come from installed packages (training/pretrained.py), never from a hub.
"""
from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

from training.pretrained import PretrainedWeightsError, load_encoder_weights

ENCODER_WEIGHTS = (None, "imagenet")  # what TrainConfig.encoder_weights may say


def build_model(arch: dict) -> torch.nn.Module:
    """The network `arch` describes, randomly initialised; see `build_initialised` for pretrained encoders."""
    kwargs = dict(arch)
    name = kwargs.pop("arch")
    if "decoder_channels" in kwargs:
        kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
    return smp.create_model(name, encoder_weights=None, **kwargs)


def build_initialised(arch: dict, encoder_weights: str | None) -> tuple[torch.nn.Module, dict | None]:
    """The network with its encoder initialised as `encoder_weights` says, and where those weights came from."""
    if encoder_weights not in ENCODER_WEIGHTS:
        raise PretrainedWeightsError(f"encoder_weights must be null or 'imagenet', not {encoder_weights!r}")
    model = build_model(arch)
    if encoder_weights is None:
        return model, None
    return model, load_encoder_weights(model, arch["encoder_name"])


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
