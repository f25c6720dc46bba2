"""The training loop, readable top to bottom: data, model, optimiser, epochs, validation, checkpoints.

Runs on one CPU or GPU, or under torchrun (DistributedDataParallel; gloo on CPU, nccl on GPU).
Rank 0 validates at full image resolution, writes checkpoints, curves and the confusion matrix.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from segmentation_models_pytorch.losses import DiceLoss, LovaszLoss
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, update_bn
from torch.utils.data import DataLoader, DistributedSampler

from models.card import read_card
from models.preprocessing import input_size, logits_to_labels, single_threaded_cv2, to_input
from models.taxonomy import load_taxonomy
from training import checkpoint as ckpt
from training.config import TrainConfig
from training.data import AugmentedSegmentation, epoch_sampler, repeat_factors, seed_worker
from training.dataset import IGNORE, load_samples, scan_dataset
from training.metrics import confusion, scores
from training.models import build_initialised, build_model, count_parameters
from training.plots import plot_confusion, plot_history
from training.pseudo_label import load_pseudo_pairs


def train(data_dir: Path, out_dir: Path, cfg: TrainConfig, init_model: Path | None = None,
          resume: bool = True, log=print, on_epoch=None) -> dict:
    """Train into `out_dir`; resumes from `out_dir/last` when present. Returns the final state.

    `on_epoch(record)` (rank 0) gets each epoch's history record once its checkpoints are written, so a
    caller can report progress or stop a single-process run by raising; it resumes from `out_dir/last`.
    """
    single_threaded_cv2()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    use_amp = cfg.amp and device.type == "cuda"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- data: decoded once, kept in memory
    taxonomy = load_taxonomy(cfg.taxonomy)
    folder = scan_dataset(data_dir)
    if cfg.max_images:
        folder.samples = folder.samples[: cfg.max_images]
    train_samples, val_samples = folder.split(cfg.val_percent)
    if not train_samples or not val_samples:
        raise ValueError(f"{data_dir}: split gave {len(train_samples)} train / {len(val_samples)} val images; need both")
    log(f"data: {len(train_samples)} train, {len(val_samples)} val images from {data_dir}")
    train_pairs = [(img, m) for _, img, m in load_samples(folder, train_samples, taxonomy)]
    val_pairs = [(s.id, img, m) for s, img, m in load_samples(folder, val_samples, taxonomy)] if main else []
    pseudo_pairs, pseudo_manifest = [], None
    if cfg.pseudo_labels:
        pseudo_pairs, pseudo_manifest = load_pseudo_pairs(Path(cfg.pseudo_labels), taxonomy.name, taxonomy.num_classes)
        log(f"pseudo labels: {len(pseudo_pairs)} photos drafted by {pseudo_manifest['teacher']['version']} "
            f"({pseudo_manifest['kept_pixel_share']:.0%} of their pixels kept), {cfg.pseudo_ratio:g}x the real "
            "photos per epoch")
    dataset = AugmentedSegmentation(train_pairs + pseudo_pairs, cfg)
    weighted = cfg.repeat_threshold > 0 or bool(pseudo_pairs)
    if weighted and distributed:
        raise ValueError("repeat_threshold and pseudo_labels draw photos in one process; run without torchrun")
    if weighted:
        real = (repeat_factors([m for _, m in train_pairs], taxonomy.num_classes, cfg.repeat_threshold)
                if cfg.repeat_threshold > 0 else np.ones(len(train_pairs)))
        sampler = epoch_sampler(real, len(pseudo_pairs), cfg.pseudo_ratio, cfg.seed)
        log(f"class-aware sampling: photos drawn up to {real.max():.2f}x as often (mean {real.mean():.2f}x)")
    else:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=cfg.seed, drop_last=True) if distributed else None
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(dataset) >= cfg.batch_size * world, num_workers=0,
                        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(cfg.seed))

    # ---- model: fresh, fine-tuned from a model directory, or resumed
    arch = cfg.arch(taxonomy.num_classes)
    parent = None
    if init_model is None:
        model, encoder_init = build_initialised(arch, cfg.encoder_weights)
        if encoder_init:
            log(f"init: encoder {cfg.encoder} from {encoder_init['package']} {encoder_init['version']} "
                f"({encoder_init['entries']} entries, sha256 {encoder_init['sha256'][:12]})")
    else:
        card = read_card(init_model)
        if card["taxonomy"]["name"] != taxonomy.name or card["arch"] != arch:
            raise ValueError(f"{init_model}: its arch/taxonomy differ from this config; set encoder, "
                             f"decoder_channels and taxonomy to match {card['arch']}")
        model = build_model(arch)
        model.load_state_dict(load_file(str(Path(init_model) / "weights.safetensors")))
        parent = {"version": card["version"], "sha256": card["files"].get("weights.safetensors")}
        encoder_init = card.get("training", {}).get("encoder_init")  # lineage goes back to the first weights
        log(f"init: fine-tuning from {init_model} (version {card['version']})")
    model.to(device)
    if use_amp:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = max(1, len(loader))
    total_steps = cfg.epochs * steps_per_epoch
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    state = {"epoch": 0, "step": 0, "history": [], "best": None, "config": cfg.to_dict(), "arch": arch,
             "taxonomy": taxonomy.to_dict(), "parent": parent, "data": {"path": str(data_dir),
             "fingerprint": folder.fingerprint() if main else None, "train_images": len(train_samples),
             "val_images": len(val_samples), "val_ids": [s.id for s in val_samples]},
             "pseudo_labels": pseudo_manifest and {k: pseudo_manifest[k] for k in ("teacher", "images", "scales",
                                                   "flip", "min_confidence", "kept_pixel_share")},
             "encoder_init": encoder_init, "parameters": count_parameters(model), "train_seconds": 0.0,
             "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    # Rank 0 keeps the running weight average of the last average_epochs epochs (all ranks hold the same weights).
    averaged = AveragedModel(model) if main and cfg.average_epochs else None
    last = out_dir / "last"
    if resume and (last / "state.json").is_file():
        prev = ckpt.load_state(last)
        if prev["arch"] != arch:
            raise ValueError(f"{last}: checkpoint arch {prev['arch']} differs from the config's {arch}")
        model.load_state_dict(ckpt.load_weights(last))
        ckpt.load_optimizer(last, optimizer, prev["optimizer_meta"])
        state.update({k: prev[k] for k in ("epoch", "step", "history", "best", "train_seconds", "parent", "averaged")
                      if k in prev})
        saved_average = ckpt.load_averaged(last)
        if averaged is not None and saved_average is not None:
            averaged.load_state_dict(saved_average)
        log(f"resume: from {last} at epoch {state['epoch']}")
    if main:
        (out_dir / "config.json").write_text(cfg.dumps())
        log(f"model: {cfg.encoder} U-Net, {state['parameters'] / 1e6:.2f}M parameters, device {device}, world {world}")

    net = DistributedDataParallel(model) if distributed else model
    dice = DiceLoss(mode="multiclass", ignore_index=IGNORE)
    lovasz = LovaszLoss(mode="multiclass", ignore_index=IGNORE)
    ce_weight = class_weights([m for _, m in train_pairs], taxonomy.num_classes, cfg.class_weight_power)
    if ce_weight is not None:
        ce_weight = ce_weight.to(device)
        if main:
            log("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(taxonomy.names, ce_weight.tolist())))

    # ---- epochs
    progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), transient=True,
                        disable=not main)
    progress.start()
    for epoch in range(state["epoch"], cfg.epochs):
        bar = progress.add_task("", total=steps_per_epoch, epoch=epoch + 1, loss=float("nan"))
        if sampler is not None:
            sampler.set_epoch(epoch)
        dataset.transform.set_random_seed(cfg.seed * 1000 + epoch * world + rank)
        net.train()
        started, loss_sum, seen = time.perf_counter(), 0.0, 0
        for x, y in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state["step"]) * group["lr_scale"]
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if use_amp:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = net(x)
            logits = logits.float()
            loss = F.cross_entropy(logits, y, weight=ce_weight, ignore_index=IGNORE) + cfg.dice_weight * dice(logits, y)
            if cfg.lovasz_weight:
                loss = loss + cfg.lovasz_weight * lovasz(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * x.shape[0]
            seen += x.shape[0]
            state["step"] += 1
            progress.update(bar, advance=1, loss=loss_sum / seen)
            if cfg.max_steps and state["step"] >= cfg.max_steps:
                break
        state["train_seconds"] += time.perf_counter() - started
        progress.remove_task(bar)
        state["epoch"] = epoch + 1
        if averaged is not None and epoch >= cfg.epochs - cfg.average_epochs:
            averaged.update_parameters(model)
        if main:
            metrics, conf = validate(model, val_pairs, cfg, taxonomy.names, device)
            record = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen), "lr": lr_at(state["step"]),
                      "seconds": round(state["train_seconds"], 1), **{k: metrics[k] for k in ("miou", "pixel_accuracy")},
                      "per_class": metrics["per_class"]}
            state["history"].append(record)
            improved = state["best"] is None or metrics["miou"] > state["best"]["miou"]
            if improved:
                state["best"] = {"epoch": epoch + 1, **metrics}
                ckpt.save_checkpoint(out_dir / "best", model, None, state)
                np.save(out_dir / "best_confusion.npy", conf)
                plot_confusion(conf, taxonomy.names, out_dir / "confusion.png", title=f"epoch {epoch + 1}")
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                ckpt.save_checkpoint(last, model, optimizer, state, averaged)
            plot_history(state["history"], out_dir / "curves.png")
            (out_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
            log(f"epoch {epoch + 1}/{cfg.epochs} loss {record['train_loss']:.4f} val mIoU {metrics['miou']:.4f} "
                f"acc {metrics['pixel_accuracy']:.4f} ({state['train_seconds'] / 60:.1f} min){' *' if improved else ''}")
            if on_epoch is not None:
                try:
                    on_epoch({**record, "epochs": cfg.epochs, "best_miou": state["best"]["miou"]})
                except BaseException:
                    progress.stop()  # the caller stopped the run: leave no live progress display behind
                    raise
        if distributed:
            dist.barrier()
        if cfg.max_steps and state["step"] >= cfg.max_steps:
            break
    if averaged is not None and state["epoch"] == cfg.epochs and "averaged" not in state:
        finish_average(averaged, loader, val_pairs, cfg, taxonomy.names, device, state, out_dir, log)
        ckpt.save_checkpoint(last, model, optimizer, state, averaged)  # a rerun finds it done
    if distributed:
        dist.barrier()
    progress.stop()
    if distributed:
        dist.destroy_process_group()
    return state


def finish_average(averaged: AveragedModel, loader, val_pairs, cfg: TrainConfig, names: list[str], device,
                   state: dict, out_dir: Path, log) -> None:
    """Give the averaged weights BatchNorm statistics of their own (one pass over training crops), score them,
    and make them the best checkpoint when they validate better than every single epoch."""
    update_bn(loader, averaged, device)
    metrics, conf = validate(averaged.module, val_pairs, cfg, names, device)
    state["averaged"] = {"epochs": cfg.average_epochs, **{k: metrics[k] for k in ("miou", "pixel_accuracy", "per_class")}}
    better = metrics["miou"] > state["best"]["miou"]
    log(f"average of the last {cfg.average_epochs} epochs: val mIoU {metrics['miou']:.4f} acc "
        f"{metrics['pixel_accuracy']:.4f}{' * (best)' if better else ' (the best single epoch stays)'}")
    if better:
        state["best"] = {"epoch": cfg.epochs, "averaged_epochs": cfg.average_epochs, **metrics}
        ckpt.save_checkpoint(out_dir / "best", averaged.module, None, state)
        np.save(out_dir / "best_confusion.npy", conf)
        plot_confusion(conf, names, out_dir / "confusion.png", title=f"average of the last {cfg.average_epochs} epochs")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: the encoder at lr_scale encoder_lr_ratio, the decoder and head at 1."""
    encoder_params = list(model.encoder.parameters())
    encoder_ids = {id(p) for p in encoder_params}
    return torch.optim.AdamW([
        {"params": encoder_params, "lr_scale": cfg.encoder_lr_ratio},
        {"params": [p for p in model.parameters() if id(p) not in encoder_ids], "lr_scale": 1.0},
    ], lr=cfg.lr, weight_decay=cfg.weight_decay)


def class_weights(masks: list[np.ndarray], num_classes: int, power: float) -> torch.Tensor | None:
    """Cross-entropy weights share ** -power from the training masks' pixel shares, mean 1; None at power 0.

    A power below 1 keeps a class of a few socks from outweighing the whole background, which would
    trade too much pixel accuracy for rare-class recall. Classes absent from the masks get weight 0.
    """
    if power == 0:
        return None
    counts = np.zeros(num_classes, dtype=np.float64)
    for mask in masks:
        counts += np.bincount(mask[mask != IGNORE].ravel(), minlength=num_classes)[:num_classes]
    share = counts / counts.sum()
    weights = np.where(share > 0, np.maximum(share, 1e-12) ** -power, 0.0)
    return torch.tensor(weights / weights[share > 0].mean(), dtype=torch.float32)


@torch.inference_mode()
def validate(model: torch.nn.Module, pairs, cfg: TrainConfig, names: list[str], device) -> tuple[dict, np.ndarray]:
    """Score at each image's native size through the same pre/post path the server uses."""
    model.eval()
    conf = np.zeros((len(names), len(names)), dtype=np.int64)
    for _, image, mask in pairs:
        size = input_size(*image.shape[:2], cfg.long_side, cfg.size_multiple)
        x = torch.from_numpy(to_input(image, size, cfg.mean, cfg.std))[None].to(device)
        logits = model(x)[0].float().cpu().numpy()
        labels, _ = logits_to_labels(logits, image.shape[:2])
        conf += confusion(mask, labels, len(names))
    model.train()
    return scores(conf, names), conf
