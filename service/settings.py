"""Service settings: one pydantic-settings class, read from TAILOR_* variables, a .env, or a settings file.

Every value is validated when the server starts, so a typo (a bad port, a missing model directory,
an unknown backend) stops startup with a message naming the setting instead of failing on a request.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from service.thresholds import QAThresholds, thresholds_from
from training.config import TrainConfig

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
    # fp16 keeps the torch backend within the 99.9% pixel parity with the ONNX graph; bf16 does not always.
    torch_precision: Literal["fp16", "bf16", "fp32"] = Field("fp16", description="arithmetic of the torch "
                                                             "backend on CUDA (autocast); CPU runs float32")
    onnx_graph: Literal["auto", "fp32", "int8"] = Field(
        "auto", description="ONNX Runtime graph: auto serves model.int8.onnx when the model directory has one "
                            "(tailor quantize writes it only when it scores like fp32 on val), else model.onnx")
    tta: Literal["none", "flip"] = Field("none", description="test-time augmentation: flip averages each photo's "
                                                             "logits with its mirror image's (twice the model work)")
    warmup: bool = Field(True, description="run one inference at startup before reporting ready")

    # Where it listens.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Browser pages on these origins may call the API (CORS); none by default. "*" allows any origin.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                         description="origins like https://tool.example.com")

    # Input limits: each is enforced before the expensive step it protects.
    max_upload_bytes: int = Field(20 * MiB, ge=1024, description="largest image file accepted (bytes)")
    max_pixels: int = Field(40_000_000, ge=1024, description="largest image accepted (width x height)")
    min_side: int = Field(16, ge=1, description="smallest image side accepted (px)")
    max_side: int = Field(4096, ge=64, description="longer photos are downscaled to this before inference")

    # Concurrency: refuse rather than queue beyond max_in_flight, so latency stays bounded.
    max_in_flight: int = Field(4, ge=1, le=1024, description="predict requests processed at once")
    # Memory grows with photo size (about 15 MB per megapixel at a prediction's peak): admitted requests
    # wait while the photos in work hold this many megapixels; a larger photo runs alone.
    max_megapixels_in_flight: float = Field(48.0, gt=0, le=100_000, description="megapixels in work at once")
    retry_after_s: int = Field(1, ge=0, le=3600, description="Retry-After sent with a 503 when saturated")
    batch_max_size: int = Field(8, ge=1, le=256, description="GPU micro-batch: most images per model call")
    batch_max_wait_ms: float = Field(5.0, ge=0, le=1000, description="GPU micro-batch: longest wait for company")
    # Slow clients: a request takes an inference slot only once its body is in, and receiving bodies is
    # bounded in time and in number, so a few clients sending a byte a second cannot hold the service.
    upload_timeout_s: float = Field(60.0, gt=0, le=3600, description="a request body must arrive within this "
                                                                     "(s, from its first byte awaited); else 408")
    max_uploads_in_flight: int = Field(16, ge=1, le=10_000, description="request bodies being received at once; "
                                                                        "beyond it 503 with Retry-After")

    # Fetching images by URL: off unless hosts are listed: "host" (the scheme's own port only) or "host:port",
    # exact names, no wildcards. Private, loopback and link-local addresses need naming (docs/security.md).
    allowed_url_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_url_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="networks (CIDR) a listed host name may resolve into though private, "
                                          "e.g. 10.20.0.0/16 for an internal image server")
    url_timeout_s: float = Field(10.0, gt=0, le=300, description="connect and each read of an image_url (s)")
    url_deadline_s: float = Field(30.0, gt=0, le=600, description="a whole image_url fetch, redirects included (s)")
    max_redirects: int = Field(3, ge=0, le=10)

    # Batch jobs (batch_predict on the job queue; their photos and drafts are under DATA_DIR/work).
    batch_root: Path | None = Field(None, description="server folder that JSON folder jobs may read under")
    max_batch_files: int = Field(10_000, ge=1)
    max_batch_upload_bytes: int = Field(1024 * MiB, ge=1024, description="largest multipart batch request")

    # The store: corrections, images and model versions (service/store).
    data_dir: Path = Field(REPO_ROOT / "runs" / "data", description="database file, images, masks (by hash)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///DATA_DIR/tailor.db",
                                     repr=False)
    model_store: Path | None = Field(None, description="model versions, one folder each (default DATA_DIR/models)")
    export_root: Path | None = Field(None, description="exports of approved corrections (default DATA_DIR/exports)")
    max_mask_upload_bytes: int = Field(64 * MiB, ge=1024, description="largest correction upload (image + mask)")

    # Background jobs in the database queue, run by `tailor worker` (service/store/queue.py, service/jobs/).
    start_worker: bool = Field(True, description="`tailor serve` also runs (and restarts) one worker subprocess")
    worker_poll_s: float = Field(2.0, gt=0, le=300, description="an idle worker looks for queued jobs this often")
    worker_heartbeat_s: float = Field(10.0, gt=0, le=600, description="a running job's heartbeat interval (s)")
    worker_stale_s: float = Field(120.0, gt=0, description="a running job silent this long has lost its worker")
    worker_nice: int = Field(10, ge=0, le=19, description="CPU niceness of the worker, so serving stays responsive")
    job_max_attempts: int = Field(2, ge=1, le=10, description="claims of a job before a lost worker fails it")
    model_poll_s: float = Field(5.0, ge=0, le=3600, description="how often the server checks which model is "
                                                                "current in the database (0: never)")

    # Retraining on approved corrections and the promotion gate (service/jobs/retrain.py, service/jobs/promotion.py).
    retrain_every: int = Field(100, ge=0, description="queue a retrain after this many new approvals (0: never)")
    retrain_config: dict[str, Any] = Field(
        default_factory=lambda: {"epochs": 10, "lr": 5e-4, "warmup_epochs": 0.5},
        description="TrainConfig fields overriding the current model's own training config when fine-tuning")
    retrain_base_data: Path | None = Field(None, description="dataset folder mixed into every retrain (e.g. CCP)")
    eval_percent: float = Field(20.0, gt=0, lt=100, description="share of approved photos (by a hash of their "
                                                                "sha256) kept aside as the evaluation set")
    promotion_guarded_classes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["shoes", "pants", "skirt", "legwear"],
        description="classes whose IoU may not drop by more than promotion_max_class_drop (comma list)")
    promotion_max_class_drop: float = Field(0.02, ge=0, le=1, description="largest IoU drop of a guarded class")
    promotion_min_eval_images: int = Field(10, ge=1, description="with fewer evaluation photos nothing is promoted")

    # Who may write: tokens in Authorization: Bearer, X-API-Token, or the password of HTTP Basic.
    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False,
                                                       description="tokens for write/admin routes (comma list)")
    read_open: bool = Field(True, description="reads (lists, fetches) need no token")
    loopback_open: bool = Field(True, description="with no api_tokens, writes are open only when host is loopback")

    # Label Studio ML backend under /v1/labelstudio (service/api/routes/labelstudio.py).
    labelstudio_url: str | None = Field(None, description="LS base URL for /data/... images; else the hostname "
                                                          "LS sends in /setup (which must be in allowed_url_hosts)")
    labelstudio_token: str | None = Field(None, repr=False, description="LS token (legacy or personal access "
                                                                        "token); else the one LS sends in /setup")
    labelstudio_label_map: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="class name -> LS label (JSON or 'top=Top,shoes=Footwear'); a class "
                                          "not listed matches the label of its own name, case-insensitively")
    labelstudio_basic_user: str | None = Field(None, description="HTTP Basic user LS must send (auth_method BASIC_AUTH)")
    labelstudio_basic_pass: str | None = Field(None, repr=False, description="HTTP Basic password for the LS routes")
    labelstudio_max_body_bytes: int = Field(64 * MiB, ge=1024, description="largest /predict or /webhook body")
    labelstudio_polygon_tolerance: float = Field(1.0, ge=0, le=50, description="px: polygon simplification")

    # QA checks, effort, agreement and worklists (service/thresholds.py documents every threshold).
    qa: dict[str, Any] = Field(default_factory=dict, description="QAThresholds fields to override, as JSON "
                                                                 "(e.g. {\"margin_max_width_px\": 6})")

    # -- Refining drafts: /v1/refine, `tailor refine`, Label Studio's interactive mode (docs/refine.md) --------
    # A draft's model scores are kept per (photo content hash, model version), so a refine never runs the
    # model again; bounded by count, memory and idle time (about 9 MB per CCP-sized photo).
    refine_cache_entries: int = Field(64, ge=0, le=100_000, description="drafts kept for refines (0: none)")
    refine_cache_mb: float = Field(256.0, ge=0, le=1_000_000, description="memory the kept drafts may take (MiB)")
    refine_cache_ttl_s: float = Field(900.0, gt=0, le=7 * 86_400, description="a kept draft is dropped this "
                                                                             "long after its last use (s)")
    region_min_area: int = Field(64, ge=1, description="smallest drafted region (px) listed with its runner-up "
                                                       "class in an answer's regions")

    # -- Label Studio as a team meets it (corrections approved on arrival, retrains refused with too little data,
    #    a fallback evaluation set): kept together so that this block merges as one piece. ---------------------
    approve_on_arrival: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="correction sources stored as approved on arrival (comma list; now: "
                                          "labelstudio): the tool's own review stands for Tailor's")
    retrain_min_approved: int = Field(5, ge=1, le=1_000_000, description="a retrain asked for with fewer approved "
                                      "photos outside the evaluation set is refused, saying how many there are")
    promotion_eval_data: Path | None = Field(
        None, description="dataset folder the promotion gate scores on while the evaluation set has fewer than "
                          "promotion_min_eval_images photos (default: the val split of retrain_base_data)")

    @field_validator("approve_on_arrival")
    @classmethod
    def _check_sources(cls, sources: list[str]) -> list[str]:
        unknown = sorted(set(sources) - {"labelstudio"})
        if unknown:
            raise ValueError(f"approve_on_arrival: {unknown} are not sources approved on arrival (known: labelstudio)")
        return sources

    @field_validator("promotion_eval_data")
    @classmethod
    def _eval_data_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not (path / "labels.txt").is_file():
            raise ValueError(f"promotion_eval_data {path} is not a dataset folder (no labels.txt)")
        return path
    # -- end of the Label Studio block ------------------------------------------------------------------------

    @field_validator("labelstudio_url")
    @classmethod
    def _check_ls_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"labelstudio_url must be an http(s) base URL like http://host:8080, got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("labelstudio_label_map", mode="before")
    @classmethod
    def _split_label_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            pairs = [p.partition("=") for p in text.split(",") if p.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ValueError("labelstudio_label_map: write class=Label pairs separated by commas, or JSON")
            return {k.strip(): v.strip() for k, _, v in pairs}
        return value

    @field_validator("labelstudio_label_map")
    @classmethod
    def _check_label_map(cls, mapping: dict[str, str]) -> dict[str, str]:
        if any(not k.strip() or not v.strip() for k, v in mapping.items()):
            raise ValueError("labelstudio_label_map: class names and labels must not be empty")
        targets = [v.strip().lower() for v in mapping.values()]
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            # Two classes on one label could not be told apart when an annotation comes back.
            raise ValueError(f"labelstudio_label_map: labels {dupes} are given to more than one class")
        return {k.strip(): v.strip() for k, v in mapping.items()}

    @field_validator("api_tokens", "allowed_url_hosts", "allowed_url_networks", "promotion_guarded_classes",
                     "cors_origins", "approve_on_arrival", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        # From the environment a list is a comma list ("a.com,b.org") or a JSON list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item for item in (part.strip() for part in text.split(",")) if item]
        return value

    @field_validator("api_tokens")
    @classmethod
    def _check_tokens(cls, tokens: list[str]) -> list[str]:
        for t in tokens:
            # A short token is guessable; the message never echoes the token itself.
            if len(t) < 16 or any(c.isspace() for c in t):
                raise ValueError("api_tokens: each token needs at least 16 characters and no spaces")
        return tokens

    @field_validator("allowed_url_hosts")
    @classmethod
    def _clean_hosts(cls, hosts: list[str]) -> list[str]:
        cleaned = []
        for h in hosts:
            h = h.strip().lower()
            if not re.fullmatch(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+|[0-9a-f:]+)(:[0-9]{1,5})?", h) or h.endswith(":"):
                raise ValueError(f"allowed_url_hosts: {h!r} is not a bare host name or host:port (no scheme, path "
                                 "or wildcard)")
            port = h.rsplit(":", 1)[1] if h.startswith("[") and "]:" in h or h.count(":") == 1 else None
            if port is not None and not 1 <= int(port) <= 65535:
                raise ValueError(f"allowed_url_hosts: {h!r} has no valid port (1-65535)")
            cleaned.append(h)
        return cleaned

    @field_validator("allowed_url_networks")
    @classmethod
    def _check_networks(cls, networks: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(n.strip(), strict=False)) for n in networks]
        except ValueError as exc:
            raise ValueError(f"allowed_url_networks: {exc} (write networks like 10.20.0.0/16)") from None

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for o in origins:
            # An origin is scheme://host[:port]; a path or trailing slash would never match a browser's Origin.
            if o != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", o):
                raise ValueError(f"cors_origins: {o!r} is not an origin like https://tool.example.com or *")
        return origins

    @field_validator("model_dir")
    @classmethod
    def _model_dir_exists(cls, path: Path) -> Path:
        if not (path / "card.json").is_file():
            raise ValueError(f"{path} is not a model directory (no card.json)")
        return path

    @field_validator("retrain_config")
    @classmethod
    def _check_retrain_config(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise ValueError(f"retrain_config: {unknown} are not TrainConfig fields")
        # Fine-tuning loads the current weights, so the network's shape must stay the model's own.
        fixed = sorted(set(overrides) & {"encoder", "decoder_channels", "taxonomy"})
        if fixed:
            raise ValueError(f"retrain_config: {fixed} are fixed by the model being fine-tuned")
        return overrides

    @field_validator("qa")
    @classmethod
    def _check_qa(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        thresholds_from(overrides)   # raises ValueError naming the bad field
        return overrides

    @property
    def qa_thresholds(self) -> QAThresholds:
        return thresholds_from(self.qa)

    @field_validator("retrain_base_data")
    @classmethod
    def _base_data_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not (path / "labels.txt").is_file():
            raise ValueError(f"retrain_base_data {path} is not a dataset folder (no labels.txt)")
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
        if self.worker_stale_s < 2 * self.worker_heartbeat_s:
            raise ValueError(f"worker_stale_s ({self.worker_stale_s}) must be at least twice worker_heartbeat_s "
                             f"({self.worker_heartbeat_s}), or a live worker could be taken for dead")
        if (self.labelstudio_basic_user is None) != (self.labelstudio_basic_pass is None):
            raise ValueError("set both labelstudio_basic_user and labelstudio_basic_pass, or neither")
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
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'tailor.db').resolve()}"

    @property
    def model_store_dir(self) -> Path:
        return self.model_store or self.data_dir / "models"

    @property
    def work_dir(self) -> Path:
        """Scratch space of worker jobs (exported datasets, training runs, batch outputs)."""
        return self.data_dir / "work"

    @property
    def export_dir(self) -> Path:
        return self.export_root or self.data_dir / "exports"

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
        known = set(self.settings_cls.model_fields)
        names = set(getattr(self.inner, "env_vars", None) or {})
        if isinstance(self.inner, EnvSettingsSource) and not isinstance(self.inner, DotEnvSettingsSource):
            names |= {k.lower() for k in os.environ}
        typos = sorted(n.upper() for n in names if n.lower().startswith("tailor_")
                       and n.lower().removeprefix("tailor_") not in known and n.upper() not in _NOT_SETTINGS)
        if typos:
            raise ValueError(f"unknown setting(s) {typos}; known: {sorted('TAILOR_' + f.upper() for f in known)}")
        return {k: v for k, v in self.inner().items() if k in known}

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ supplies everything
        return None, field_name, False


class _SettingsFileSource(PydanticBaseSettingsSource):
    """Values from the YAML or JSON file named by TAILOR_SETTINGS_FILE (the lowest-priority source)."""

    def __call__(self) -> dict[str, Any]:
        name = os.environ.get("TAILOR_SETTINGS_FILE")
        if not name:
            return {}
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"TAILOR_SETTINGS_FILE={name}: no such file")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: settings file must hold a mapping of setting names to values")
        return data

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ supplies everything
        return None, field_name, False
