"""Albumentations pipelines: geometric transforms move image and mask together, photometric ones
touch the image only. Filled border pixels get the ignore id, so the loss never learns from them.
"""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations would otherwise call the network

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from training.config import TrainConfig  # noqa: E402
from training.dataset import IGNORE  # noqa: E402


def train_transform(cfg: TrainConfig) -> A.Compose:
    h, w = cfg.crop
    lo, hi = cfg.scale_range
    sides = sorted({int(cfg.long_side * (lo + (hi - lo) * i / 6)) for i in range(7)})
    return A.Compose([
        A.LongestMaxSize(max_size=sides, interpolation=cv2.INTER_AREA),
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE),
        A.RandomCrop(height=h, width=w),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-cfg.rotate, cfg.rotate), shear=(-5, 5), translate_percent=(-0.05, 0.05),
                 border_mode=cv2.BORDER_CONSTANT,
                 fill=0, fill_mask=IGNORE, p=0.5),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.04, p=0.8),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.06)),
                 A.ImageCompression(quality_range=(40, 90))], p=0.3),
        A.ToGray(p=0.05),
    ], seed=cfg.seed)
