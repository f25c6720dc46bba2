"""Resumable training checkpoints with no pickles: tensors in safetensors, everything else in JSON.

A checkpoint is a folder: model.safetensors, optimizer.safetensors (flattened AdamW state) and
state.json (config, arch, taxonomy, epoch, history, best score). Written to a temp dir, then renamed.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, state: dict,
                    averaged: torch.nn.Module | None = None) -> None:
    """`averaged` (a running weight average, see TrainConfig.average_epochs) goes to averaged.safetensors."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_tensors(model), tmp / "model.safetensors")
    if averaged is not None:
        save_file(_tensors(averaged), tmp / "averaged.safetensors")
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, tmp / "optimizer.safetensors")
        state = {**state, "optimizer_meta": meta}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def load_averaged(path: Path) -> dict[str, torch.Tensor] | None:
    """The running weight average saved beside the model, or None when the checkpoint has none."""
    file = Path(path) / "averaged.safetensors"
    return load_file(str(file)) if file.is_file() else None


def load_state(path: Path) -> dict:
    path = Path(path)
    state_file = path / "state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint folder (no state.json)")
    return json.loads(state_file.read_text())


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / "model.safetensors"))


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    tensors = load_file(str(Path(path) / "optimizer.safetensors"))
    state: dict = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, scalars in meta["scalars"].items():
        state.setdefault(int(idx), {}).update({k: torch.tensor(float(v)) for k, v in scalars.items()})
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:  # AdamW's step counter is a 0-d tensor; keep it as a number
                scalars.setdefault(str(idx), {})[name] = torch.as_tensor(value).item()
    groups = json.loads(json.dumps(sd["param_groups"], default=float))
    return tensors, {"scalars": scalars, "param_groups": groups}
