"""Torch side of the data: in-memory samples, augmented crops for training, and the seeded loader.

Photos are decoded once (EXIF applied, labels mapped) and kept in memory at native size: the CCP
set is about 1 GB that way, and it spares the two CPU cores from re-decoding JPEGs every epoch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from training.augment import train_transform
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


def seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
