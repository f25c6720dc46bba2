"""The training config of a retrain: the current model's own config with retrain_config and the job's
params over it. Resolved when a retrain is queued and when the service starts, so a config that cannot
train (epochs below average_epochs, say) is refused with its reason, not found failing in the worker.
"""
from __future__ import annotations

from pathlib import Path

from models.card import read_card
from service.store.models_registry import current_version, get_model
from training.config import TrainConfig


class RetrainConfigError(ValueError):
    """retrain_config (with a job's params) does not make a valid training config for the current model."""


def train_config(card: dict, overrides: dict, taxonomy_file: Path | str) -> TrainConfig:
    base = {k: v for k, v in card["training"]["config"].items() if k not in ("max_images", "max_steps")}
    # The taxonomy travels with the model card, so the run does not depend on where the original lived.
    return TrainConfig.from_dict({**base, **overrides, "taxonomy": str(taxonomy_file)}, origin="retrain config")


def retrain_overrides(settings, params: dict) -> dict:
    return {**settings.retrain_config, **{k: params[k] for k in ("epochs", "lr") if k in params}}


def check_retrain_config(session, settings, params: dict | None = None) -> TrainConfig | None:
    """The config a retrain of the current model would train with; RetrainConfigError naming the fault.
    None when no model is current yet (nothing to fine-tune) or its card records no training config."""
    version = current_version(session)
    row = get_model(session, version) if version else None
    if row is None:
        return None
    card = read_card(Path(row.path))
    if not isinstance(card.get("training"), dict) or "config" not in card["training"]:
        return None
    overrides = retrain_overrides(settings, params or {})
    try:
        return train_config(card, overrides, "taxonomy.json")
    except (ValueError, TypeError) as exc:
        raise RetrainConfigError(f"retraining model {version} with {overrides}: {exc}") from None
