"""An int8 copy of a model directory for CPU serving, accepted only if it scores like the original.

Static QDQ quantization by ONNX Runtime (int8 per-channel weights, uint8 activations, MinMax ranges
from train-split photos), then both models scored on the val split at native size; refused (leaving
nothing behind) when the val mIoU drops by more than a bound. The torch backend keeps the fp32 weights.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from models.card import INT8_GRAPH, read_card, staged_model_dir, write_card
from models.images import decode_image
from models.preprocessing import input_size, logits_to_labels, to_input
from models.taxonomy import Taxonomy
from training.dataset import DatasetFolder, Sample, load_samples, scan_dataset
from training.metrics import confusion, scores

MAX_MIOU_DROP = 0.005   # largest val mIoU loss accepted for the int8 copy
MAX_CLASS_DROP = 0.02   # largest val IoU loss of any one class accepted for it
MIN_AGREEMENT = 0.99    # least share of val pixels labelled as the fp32 model labels them
CALIBRATION = 50        # train-split photos whose activations set the int8 ranges


class QuantizationRejected(RuntimeError):
    """The int8 model scored too far below the original; nothing was written."""


def ort_session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def model_input(image: np.ndarray, spec: dict) -> np.ndarray:
    """(1, 3, h, w) input of one photo under the card's size rule and normalisation."""
    size = input_size(*image.shape[:2], spec["long_side"], spec["size_multiple"])
    return to_input(image, size, spec["mean"], spec["std"])[None]


def quantize_onnx(fp32: Path, out: Path, calibration: list[Path], spec: dict) -> None:
    """Write the int8 QDQ model of `fp32` to `out`, ranges calibrated on `calibration` photos."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.paths = iter(calibration)

        def get_next(self):
            path = next(self.paths, None)
            if path is None:
                return None
            return {"image": model_input(decode_image(path), spec)}

    prepared = out.with_name(out.name + ".pre.onnx")
    try:
        # ONNX shape inference: the symbolic one cannot follow constant-scale Resizes on symbolic sides.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        prepared.unlink(missing_ok=True)


def compare_on_val(models: dict[str, Path], card: dict, folder: DatasetFolder, val: list[Sample],
                   progress: Callable[[int, int], None] | None = None) -> dict[str, dict]:
    """Scores of each ONNX file on the `val` samples of `folder` at native size, and its label agreement
    with the first; progress(done, total) after each photo."""
    taxonomy = Taxonomy.from_dict(card["taxonomy"], origin="card.json")
    names = taxonomy.names
    sessions = {name: ort_session(path) for name, path in models.items()}
    conf = {name: np.zeros((len(names), len(names)), dtype=np.int64) for name in models}
    agree = dict.fromkeys(models, 0)
    pixels, first = 0, next(iter(models))
    for done, (_, image, mask) in enumerate(load_samples(folder, val, taxonomy), 1):
        x = model_input(image, card["input"])
        labels = {name: logits_to_labels(s.run(None, {"image": x})[0][0], image.shape[:2])[0]
                  for name, s in sessions.items()}
        pixels += mask.size
        for name, lab in labels.items():
            conf[name] += confusion(mask, lab, len(names))
            agree[name] += int((lab == labels[first]).sum())
        if progress:
            progress(done, len(val))
    out = {}
    for name in models:
        s = scores(conf[name], names)
        out[name] = {"miou": s["miou"], "pixel_accuracy": s["pixel_accuracy"],
                     "changed_pixel_fraction": s["changed_pixel_fraction"], "per_class": s["per_class"],
                     "agreement_with_fp32": agree[name] / max(pixels, 1), "images": len(val)}
    return out


def quantize_model(model_dir: Path, out_dir: Path, data_dir: Path, calibration: int = CALIBRATION,
                   max_miou_drop: float = MAX_MIOU_DROP, overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None, max_class_drop: float = MAX_CLASS_DROP,
                   min_agreement: float = MIN_AGREEMENT) -> dict:
    """Write `out_dir`: the fp32 graph and weights of `model_dir` unchanged, the int8 graph beside them
    (model.int8.onnx, which ONNX Runtime serves by default when present), and a card saying what changed.

    `model_dir` may itself hold an int8 graph: its fp32 graph is quantized afresh."""
    model_dir, out_dir, data_dir = Path(model_dir), Path(out_dir), Path(data_dir)
    card = read_card(model_dir, verify=True)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite to replace it)")
    fp32_version = card["parent"] if card.get("precision", {}).get("onnx") == "int8" else card["version"]
    val_percent = float(card.get("training", {}).get("config", {}).get("val_percent", 10.0))
    folder = scan_dataset(data_dir)
    train, val = folder.split(val_percent)
    if not val or not train:
        raise ValueError(f"{data_dir}: needs photos in both the train and the val split ({len(train)} / {len(val)})")
    photos = [s.image for s in train[:: max(1, len(train) // calibration)][:calibration]]

    with staged_model_dir(out_dir) as tmp:
        quantize_onnx(model_dir / "model.onnx", tmp / INT8_GRAPH, photos, card["input"])
        for name in ("model.onnx", "weights.safetensors"):
            shutil.copy2(model_dir / name, tmp / name)
        result = compare_on_val({"fp32": tmp / "model.onnx", "int8": tmp / INT8_GRAPH}, card, folder, val, progress)
        drop = result["fp32"]["miou"] - result["int8"]["miou"]
        class_drops = {name: result["fp32"]["per_class"][name] - iou
                       for name, iou in result["int8"]["per_class"].items() if iou is not None}
        worst = max(class_drops, key=class_drops.get)
        agreement = result["int8"]["agreement_with_fp32"]
        if drop > max_miou_drop or class_drops[worst] > max_class_drop or agreement < min_agreement:
            raise QuantizationRejected(
                f"int8 val mIoU {result['int8']['miou']:.4f} vs fp32 {result['fp32']['miou']:.4f} (drop {drop:.4f}, "
                f"at most {max_miou_drop}); worst class {worst} drops {class_drops[worst]:.4f} (at most "
                f"{max_class_drop}); label agreement {agreement:.4f} (at least {min_agreement}): not written")
        created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        int8 = result["int8"]
        write_card(tmp, {
            **card, "name": out_dir.name, "version": f"{fp32_version}-int8", "created": created,
            "parent": fp32_version,
            "metrics": {"split": "val", **{k: int8[k] for k in ("miou", "pixel_accuracy", "changed_pixel_fraction",
                                                                 "per_class")}},
            "precision": {
                "onnx": "int8", "torch": "fp32",
                "method": "static QDQ (onnxruntime.quantization): int8 per-channel weights, uint8 activations, "
                          "MinMax ranges",
                "calibration_images": len(photos), "val_images": int8["images"],
                "graph": INT8_GRAPH, "fp32_val_miou": result["fp32"]["miou"],
                "fp32_per_class": result["fp32"]["per_class"], "miou_drop": drop,
                "worst_class_drop": {"class": worst, "drop": class_drops[worst]}, "agreement_with_fp32": agreement,
                "max_miou_drop": max_miou_drop, "max_class_drop": max_class_drop, "min_agreement": min_agreement},
            "parity": {**card.get("parity", {}), "note": "export parity of the fp32 graph; the int8 graph "
                                                          "agrees with it on precision.agreement_with_fp32"},
        })
    return read_card(out_dir, verify=True)
