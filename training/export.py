"""Turn a training checkpoint into a self-describing model directory, and prove the ONNX copy faithful.

Writes weights.safetensors, model.onnx (dynamic batch, height and width) and card.json into a temp
folder, checks ONNX Runtime against torch at sizes unlike the training size, then renames into place.
"""
from __future__ import annotations

import types
import warnings
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from models.card import read_card, sha256_file, staged_model_dir, version_of, write_card
from training import checkpoint as ckpt
from training.models import build_model

PARITY_MIN = 0.999  # share of argmax pixels on which ONNX Runtime and torch must agree
OPSET = 17


def export_model(checkpoint_dir: Path, out_dir: Path, parity_images: list[np.ndarray] | None = None,
                 parity_sizes: tuple[tuple[int, int], ...] = ((448, 320), (320, 224)), overwrite: bool = False,
                 notes: str = "") -> dict:
    """Export `checkpoint_dir` to `out_dir`; raises (leaving `out_dir` untouched) if parity fails."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    state = ckpt.load_state(checkpoint_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite to replace it)")
    model = build_model(state["arch"])
    model.load_state_dict(ckpt.load_weights(checkpoint_dir))
    model.eval()
    cfg = state["config"]
    weights = half_precision_weights(model)

    with staged_model_dir(out_dir) as tmp:
        save_file(weights, str(tmp / "weights.safetensors"))
        export_onnx(model, tmp / "model.onnx", example_hw=tuple(cfg["crop"]))
        parity = check_parity(model, tmp / "model.onnx", cfg, parity_images, parity_sizes)
        if parity["agreement"] < PARITY_MIN:
            raise RuntimeError(f"ONNX/torch parity {parity['agreement']:.5f} is below {PARITY_MIN} at {parity['sizes']}")
        created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        best = state.get("best") or {}
        card = {
            "name": out_dir.name,
            "version": version_of(sha256_file(tmp / "weights.safetensors"), created),
            "created": created,
            "arch": state["arch"],
            "parameters": state.get("parameters"),
            "weights_dtype": "float16",
            "taxonomy": state["taxonomy"],
            "input": {"color": "RGB", "layout": "NCHW", "dtype": "float32", "scale": 1 / 255,
                      "mean": cfg["mean"], "std": cfg["std"], "long_side": cfg["long_side"],
                      "size_multiple": cfg["size_multiple"],
                      "size_rule": f"scale the long side to {cfg['long_side']}, round both sides to a multiple of "
                                   f"{cfg['size_multiple']}; logits are upsampled back to the image's size"},
            "output": {"name": "logits", "shape": "N x classes x H x W", "postprocess": "bilinear upsample, argmax"},
            "training": {"data": state["data"]["path"], "data_fingerprint": state["data"]["fingerprint"],
                         "train_images": state["data"]["train_images"], "val_images": state["data"]["val_images"],
                         "epochs": state["epoch"], "best_epoch": best.get("epoch"),
                         **({"averaged_epochs": best["averaged_epochs"]} if best.get("averaged_epochs") else {}),
                         "train_minutes": round(state.get("train_seconds", 0) / 60, 1),
                         "device": state.get("device", "cpu"), "config": cfg,
                         "encoder_init": state.get("encoder_init"), "pseudo_labels": state.get("pseudo_labels")},
            "metrics": {"split": "val", **{k: best.get(k) for k in ("miou", "pixel_accuracy", "changed_pixel_fraction",
                                                                    "per_class")}},
            "parent": state.get("parent"),
            "parity": parity,
            "notes": notes,
        }
        write_card(tmp, card)
    return read_card(out_dir, verify=True)


def half_precision_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with its float tensors stored as fp16, which halves the model directory. The model's
    own tensors are rounded to those values first, so the ONNX graph, the parity check and every later
    load compute with exactly the weights on disk (loading casts them back to fp32)."""
    out = {}
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.abs().max() < 60000:  # fp16 tops out at 65504
                tensor.copy_(tensor.half().float())
                out[name] = tensor.half().contiguous()
            else:
                out[name] = tensor.contiguous()
    return out


def export_onnx(model: torch.nn.Module, path: Path, example_hw: tuple[int, int],
                constant_upsampling: bool = True) -> None:
    example = torch.zeros(1, 3, *example_hw)
    with warnings.catch_warnings(), (fixed_scale_upsampling(model) if constant_upsampling else nullcontext()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                          opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
    import onnx
    onnx.checker.check_model(str(path))


@contextmanager
def fixed_scale_upsampling(model: torch.nn.Module):
    """While tracing, U-Net decoder blocks upsample by a constant 2x instead of to the skip's size.

    Sizes read off the skip tensors become Shape/Gather/Concat ops feeding each Resize, and ONNX
    Runtime then runs the Resize outside its blocked NCHWc layout, reordering memory around it; a
    constant scale keeps the decoder blocked (3-6% faster on CPU, identical logits, bench/bench_ort.py).
    Exact under the size rule (sides a multiple of the encoder's stride: each skip is twice the map
    below it); the parity check compares the graph with the unpatched model at two sizes.
    """
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoderBlock

    blocks = [m for m in model.modules() if isinstance(m, UnetDecoderBlock)]
    for block in blocks:
        block.forward = types.MethodType(_upsample_x2_forward, block)
    try:
        yield
    finally:
        for block in blocks:
            del block.forward  # back to the class's method


def _upsample_x2_forward(self, feature_map, target_height, target_width, skip_connection=None):
    """smp's UnetDecoderBlock.forward with scale_factor=2 in place of size=(target_height, target_width)."""
    feature_map = torch.nn.functional.interpolate(feature_map, scale_factor=2.0, mode=self.interpolation_mode)
    if skip_connection is not None:
        feature_map = torch.cat([feature_map, skip_connection], dim=1)
        feature_map = self.attention1(feature_map)
    feature_map = self.conv2(self.conv1(feature_map))
    return self.attention2(feature_map)


def check_parity(model: torch.nn.Module, onnx_path: Path, cfg: dict, images: list[np.ndarray] | None,
                 sizes: tuple[tuple[int, int], ...]) -> dict:
    """Argmax agreement between ONNX Runtime and torch on the same inputs, at the given (h, w) sizes.

    Real photos are used when given (resized through the shared preprocessing); otherwise a fixed
    random image, which exercises every weight but not realistic decision margins.
    """
    import onnxruntime as ort
    from models.preprocessing import to_input

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    if not images:
        images = [np.random.default_rng(0).integers(0, 256, (600, 400, 3), dtype=np.uint8)]
    agree = total = 0
    for size in sizes:
        batch = np.stack([to_input(img, size, cfg["mean"], cfg["std"]) for img in images])
        with torch.inference_mode():
            ref = model(torch.from_numpy(batch)).numpy()
        got = sess.run(["logits"], {"image": batch})[0]
        agree += int((ref.argmax(1) == got.argmax(1)).sum())
        total += ref.shape[0] * ref.shape[2] * ref.shape[3]
    return {"agreement": agree / total, "sizes": [list(s) for s in sizes], "images": len(images),
            "min_required": PARITY_MIN}


