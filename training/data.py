"""Torch side of the data: in-memory samples, augmented crops for training, and the seeded sampling.

Photos are decoded once (EXIF applied, labels mapped) and kept in memory at native size: the CCP
set is about 1 GB that way, and it spares the two CPU cores from re-decoding JPEGs every epoch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from training.augment import train_transform
from training.dataset import IGNORE
from training.config import TrainConfig


class AugmentedSegmentation(Dataset):
    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], cfg: TrainConfig):
        self.pairs = pairs
        self.transform = train_transform(cfg)
        self.mean = np.asarray(cfg.mean, dtype=np.float32)
        self.std = np.asarray(cfg.std, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pairs[i]
        out = self.transform(image=image, mask=mask)
        x = (out["image"].astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(out["mask"].astype(np.int64))


def repeat_factors(masks: list[np.ndarray], num_classes: int, threshold: float) -> np.ndarray:
    """Per photo, how much more often to draw it (LVIS repeat-factor sampling, Gupta et al. 2019).

    A class present in a share f of the photos has r = max(1, sqrt(threshold / f)); a photo takes the
    largest r of the classes it shows, so photos with skirts or socks come round more often.
    """
    present = np.stack([np.bincount(m[m != IGNORE].ravel(), minlength=num_classes)[:num_classes] > 0 for m in masks])
    share = present.mean(axis=0)
    per_class = np.where(share > 0, np.maximum(1.0, np.sqrt(threshold / np.maximum(share, 1e-12))), 1.0)
    return np.array([per_class[row].max(initial=1.0) for row in present])


class WeightedEpochSampler(Sampler[int]):
    """Draws `count` indices with replacement in proportion to `weights`, reseeded per epoch (set_epoch)
    so a resumed run draws the same photos as an uninterrupted one."""

    def __init__(self, weights: np.ndarray, count: int, seed: int):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.count, self.seed, self.epoch = count, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.multinomial(self.weights, self.count, replacement=True, generator=generator).tolist())


def epoch_sampler(real_weights: np.ndarray, pseudo_count: int, pseudo_ratio: float, seed: int) -> WeightedEpochSampler:
    """Draws one epoch over [real photos..., pseudo-labelled photos...]: real ones in proportion to
    `real_weights`, and `pseudo_ratio` times as many pseudo-labelled ones as there are real photos."""
    real = np.asarray(real_weights, dtype=np.float64)
    weights = real / real.sum()
    samples = len(real)
    if pseudo_count:
        share = pseudo_ratio / (1 + pseudo_ratio)
        weights = np.concatenate([weights * (1 - share), np.full(pseudo_count, share / pseudo_count)])
        samples = int(round(len(real) * (1 + pseudo_ratio)))
    return WeightedEpochSampler(weights, samples, seed)


def seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
