"""Service settings: one pydantic-settings class, read from TAILOR_* variables, a .env, or a settings file.

Every value is validated when the server starts, so a typo (a bad port, a missing model directory,
an unknown backend) stops startup with a message naming the setting instead of failing on a request.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
MiB = 1024 * 1024


class Settings(BaseSettings):
    """All knobs of the prediction service; environment variables are TAILOR_<FIELD> (e.g. TAILOR_PORT)."""

    # extra="forbid" catches misspelt arguments; misspelt TAILOR_* variables are caught by _Checked.
    model_config = SettingsConfigDict(env_prefix="TAILOR_", env_file=".env", env_file_encoding="utf-8",
                                      extra="forbid", validate_default=True)

    # The model and how it runs.
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="model directory: card.json, model.onnx, weights")
    backend: Literal["auto", "onnx", "torch"] = Field("auto", description="auto: torch on CUDA if present, else ONNX")
    threads: int | None = Field(None, ge=1, le=512, description="inference threads (None: runtime default)")
    warmup: bool = Field(True, description="run one inference at startup before reporting ready")

    # Where it listens.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # Input limits: each is enforced before the expensive step it protects.
    max_upload_bytes: int = Field(20 * MiB, ge=1024, description="largest image file accepted (bytes)")
    max_pixels: int = Field(40_000_000, ge=1024, description="largest image accepted (width x height)")
    min_side: int = Field(16, ge=1, description="smallest image side accepted (px)")
    max_side: int = Field(4096, ge=64, description="longer photos are downscaled to this before inference")

    # Concurrency: refuse rather than queue beyond max_in_flight, so latency stays bounded.
    max_in_flight: int = Field(4, ge=1, le=1024, description="predict requests processed at once")
    retry_after_s: int = Field(1, ge=0, le=3600, description="Retry-After sent with a 503 when saturated")
    batch_max_size: int = Field(8, ge=1, le=256, description="GPU micro-batch: most images per model call")
    batch_max_wait_ms: float = Field(5.0, ge=0, le=1000, description="GPU micro-batch: longest wait for company")

    # Fetching images by URL: off unless hosts are listed (exact host names, no wildcards).
    allowed_url_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    url_timeout_s: float = Field(10.0, gt=0, le=300)
    max_redirects: int = Field(3, ge=0, le=10)

    # Batch jobs.
    batch_root: Path | None = Field(None, description="server folder that JSON folder jobs may read under")
    jobs_dir: Path = Field(REPO_ROOT / "runs" / "jobs", description="job state and results (survive restarts)")
    max_batch_files: int = Field(10_000, ge=1)
    max_batch_upload_bytes: int = Field(1024 * MiB, ge=1024, description="largest multipart batch request")

    @field_validator("allowed_url_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        # From the environment this is a comma list ("a.com,b.org") or a JSON list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [h for h in (p.strip() for p in text.split(",")) if h]
        return value

    @field_validator("allowed_url_hosts")
    @classmethod
    def _clean_hosts(cls, hosts: list[str]) -> list[str]:
        cleaned = []
        for h in hosts:
            h = h.strip().lower()
            if not h or "/" in h or "*" in h or " " in h:
                raise ValueError(f"allowed_url_hosts: {h!r} is not a bare host name (no scheme, path or wildcard)")
            cleaned.append(h)
        return cleaned

    @field_validator("model_dir")
    @classmethod
    def _model_dir_exists(cls, path: Path) -> Path:
        if not (path / "card.json").is_file():
            raise ValueError(f"{path} is not a model directory (no card.json)")
        return path

    @field_validator("batch_root")
    @classmethod
    def _batch_root_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError(f"batch_root {path} is not a directory")
        return path.resolve() if path is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.max_side < self.min_side:
            raise ValueError(f"max_side ({self.max_side}) is below min_side ({self.min_side})")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        # Priority: explicit arguments > environment > .env > settings file (TAILOR_SETTINGS_FILE).
        return (init_settings, _Checked(settings_cls, env_settings), _Checked(settings_cls, dotenv_settings),
                _SettingsFileSource(settings_cls))

    @property
    def predict_body_limit(self) -> int:
        # A base64 JSON body is 4/3 of the file; allow that plus room for the envelope.
        return self.max_upload_bytes * 4 // 3 + 64 * 1024


_NOT_SETTINGS = {"TAILOR_SETTINGS_FILE"}


class _Checked(PydanticBaseSettingsSource):
    """An env or .env source that refuses misspelt TAILOR_* names and ignores everyone else's variables.

    A .env is often shared with other tools, so foreign names are fine; but TAILOR_MAX_INFLIGHT=8
    silently ignored would leave the default in force, so our own prefix must name a real setting.
    """

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def __call__(self) -> dict[str, Any]:
        import os

        fields = set(self.settings_cls.model_fields)
        names = set(getattr(self.inner, "env_vars", None) or {})
        if isinstance(self.inner, EnvSettingsSource) and not isinstance(self.inner, DotEnvSettingsSource):
            names |= {k.lower() for k in os.environ}
        typos = sorted(n.upper() for n in names if n.lower().startswith("tailor_")
                       and n.lower().removeprefix("tailor_") not in fields and n.upper() not in _NOT_SETTINGS)
        if typos:
            raise ValueError(f"unknown setting(s) {typos}; known: {sorted('TAILOR_' + f.upper() for f in fields)}")
        return {k: v for k, v in self.inner().items() if k in fields}

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ supplies everything
        return None, field_name, False


class _SettingsFileSource(PydanticBaseSettingsSource):
    """Values from the YAML or JSON file named by TAILOR_SETTINGS_FILE (the lowest-priority source)."""

    def __call__(self) -> dict[str, Any]:
        import os

        name = os.environ.get("TAILOR_SETTINGS_FILE")
        if not name:
            return {}
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"TAILOR_SETTINGS_FILE={name}: no such file")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: settings file must hold a mapping of setting names to values")
        return data

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ supplies everything
        return None, field_name, False
