"""Every training hyperparameter, declared once with its meaning; a YAML/JSON file or flags override.

The whole config is stored in each checkpoint, and the architecture part in each model card, so a
model can always be rebuilt and a run reproduced from what it wrote.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from training.pretrained import check_encoder


@dataclass
class TrainConfig:
    # model
    encoder: str = "tu-efficientnet_lite0"  # smp encoder name; timm ones are prefixed "tu-"
    encoder_weights: str | None = "imagenet"  # "imagenet" = the weights an installed package ships
                                          # (training/pretrained.py); None = learn from scratch
    decoder_channels: list[int] = field(default_factory=lambda: [64, 48, 32, 16, 16])  # U-Net decoder widths, deep to shallow
    taxonomy: str = "fashion-13"          # built-in name or path of a taxonomy JSON
    # input
    long_side: int = 384                  # the image's long side is scaled to this for training and inference
    size_multiple: int = 32               # both input sides are rounded to a multiple of this (encoder stride)
    crop: list[int] = field(default_factory=lambda: [384, 256])  # training crop (h, w) after scaling
    scale_range: list[float] = field(default_factory=lambda: [0.8, 1.25])  # random zoom around long_side
    rotate: float = 10.0                  # random rotation up to this many degrees (half the crops), mask-safe
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])  # per-channel normalisation, 0-1 scale:
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])   # EfficientNet-Lite saw [-1, 1] inputs
    # optimisation
    epochs: int = 40                      # passes over the training split
    batch_size: int = 8                   # images per step (per process under torchrun)
    lr: float = 2e-3                      # peak AdamW learning rate of the decoder and head, reached after warmup
    encoder_lr_ratio: float = 1.0         # the encoder's learning rate is lr * this: below 1 keeps pretrained
                                          # features from being washed out by the random decoder's first steps
    weight_decay: float = 1e-4            # AdamW decoupled weight decay
    warmup_epochs: float = 1.0            # linear warmup, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.02
    dice_weight: float = 1.0              # loss = cross-entropy + dice_weight * Dice (Dice lifts rare classes)
    lovasz_weight: float = 0.0            # + lovasz_weight * Lovasz-softmax, a direct surrogate of per-class IoU
    class_weight_power: float = 0.0       # cross-entropy class weights = (training pixel share) ** -power, mean 1:
                                          # 0 unweighted, 0.5 inverse square root, 1 inverse frequency (rare garments)
    average_epochs: int = 0               # stochastic weight averaging: average the weights at the end of the last N
                                          # epochs, re-estimate BatchNorm on training crops, keep it if it validates best
    repeat_threshold: float = 0.0         # class-aware sampling (LVIS repeat factors): a class found in a share f of
                                          # the photos makes them drawn max(1, sqrt(threshold / f)) times as often;
                                          # 0 = every photo equally often
    # data
    val_percent: float = 10.0             # share of image ids (by stable hash) held out for validation
    pseudo_labels: str | None = None      # folder written by `tailor pseudo-label` (teacher masks of unlabeled
                                          # photos, unsure pixels ignored) to train on beside the real masks
    pseudo_ratio: float = 1.0             # pseudo-labelled photos drawn per epoch, as a share of the real ones
    max_images: int | None = None         # cap the dataset (smoke tests); None = all
    # runtime
    seed: int = 0                         # seeds python, numpy and torch; the split does not depend on it
    threads: int | None = None            # torch CPU threads; None = torch's default
    amp: bool = True                      # bf16 autocast and channels-last when on CUDA; ignored on CPU
    checkpoint_every: int = 1             # epochs between resumable checkpoints
    max_steps: int | None = None          # stop after this many optimiser steps (smoke tests)

    @classmethod
    def from_file(cls, path: Path | str | None, **overrides) -> "TrainConfig":
        data: dict = {}
        if path is not None:
            path = Path(path)
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"{path}: cannot read config ({exc})") from None
            if not isinstance(data, dict):
                raise ValueError(f"{path}: config must be a mapping of field: value")
        data.update({k: v for k, v in overrides.items() if v is not None})  # None: not given on the command line
        return cls.from_dict(data, origin=str(path or "config"))

    @classmethod
    def from_dict(cls, values: dict, origin: str = "config") -> "TrainConfig":
        """A validated config from field values, where None is a value (encoder_weights: null), as a model
        card's training config records them."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{origin}: unknown fields {unknown}")
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if any(c % self.size_multiple for c in self.crop):
            raise ValueError(f"crop {self.crop} must be a multiple of size_multiple {self.size_multiple}")
        if not 0 < self.val_percent < 100:
            raise ValueError("val_percent must be between 0 and 100")
        if not 0 <= self.average_epochs <= self.epochs:
            raise ValueError(f"average_epochs must be between 0 and epochs ({self.epochs}), not {self.average_epochs}")
        if not 0 <= self.class_weight_power <= 1:
            raise ValueError(f"class_weight_power must be between 0 and 1, not {self.class_weight_power}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values, std positive")
        if not 0 < self.encoder_lr_ratio <= 1:
            raise ValueError(f"encoder_lr_ratio must be in (0, 1], not {self.encoder_lr_ratio}")
        if self.dice_weight < 0 or self.lovasz_weight < 0 or self.repeat_threshold < 0 or self.rotate < 0:
            raise ValueError("dice_weight, lovasz_weight, repeat_threshold and rotate must not be negative")
        if not 0 < self.pseudo_ratio <= 10:
            raise ValueError(f"pseudo_ratio must be in (0, 10], not {self.pseudo_ratio}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be [low, high] with 0 < low <= high, not {self.scale_range}")
        if self.encoder_weights not in (None, "imagenet"):
            raise ValueError(f"encoder_weights must be null or 'imagenet', not {self.encoder_weights!r}")
        if self.encoder_weights == "imagenet":
            check_encoder(self.encoder)

    def to_dict(self) -> dict:
        return asdict(self)

    def arch(self, num_classes: int) -> dict:
        """The smp.create_model arguments: everything needed to rebuild the network."""
        return {"arch": "unet", "encoder_name": self.encoder, "decoder_channels": list(self.decoder_channels),
                "in_channels": 3, "classes": num_classes}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
