"""Settings: TAILOR_* environment variables, a settings file, and failing fast on bad values.

Each bad value must be refused when Settings is built (server startup), naming the setting.
"""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from service.settings import DEFAULT_MODEL_DIR, Settings


def test_defaults_need_no_setup(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("TAILOR_"):
            monkeypatch.delenv(key)
    s = Settings(_env_file=None)
    assert s.model_dir == DEFAULT_MODEL_DIR and s.backend == "auto"
    assert s.allowed_url_hosts == [] and s.batch_root is None
    assert s.max_in_flight >= 1 and s.max_upload_bytes > 1_000_000
    assert s.torch_precision == "fp16"  # the GPU arithmetic that keeps parity with the ONNX graph


def test_environment_and_settings_file(monkeypatch, tmp_path):
    f = tmp_path / "tailor.json"
    f.write_text(json.dumps({"port": 9100, "max_in_flight": 7, "host": "0.0.0.0"}))
    monkeypatch.setenv("TAILOR_SETTINGS_FILE", str(f))
    monkeypatch.setenv("TAILOR_PORT", "9200")  # env beats the file
    monkeypatch.setenv("TAILOR_ALLOWED_URL_HOSTS", "images.example.com, CDN.example.org")
    monkeypatch.setenv("TAILOR_BATCH_ROOT", str(tmp_path))
    s = Settings(_env_file=None)
    assert (s.port, s.max_in_flight, s.host) == (9200, 7, "0.0.0.0")
    assert s.allowed_url_hosts == ["images.example.com", "cdn.example.org"]
    assert s.batch_root == tmp_path.resolve()
    monkeypatch.setenv("TAILOR_ALLOWED_URL_HOSTS", '["a.example.com"]')
    assert Settings(_env_file=None).allowed_url_hosts == ["a.example.com"]


@pytest.mark.parametrize("field, value, words", [
    ("port", 0, "port"),
    ("backend", "tpu", "backend"),
    ("torch_precision", "int8", "torch_precision"),
    ("max_in_flight", 0, "max_in_flight"),
    ("max_upload_bytes", -5, "max_upload_bytes"),
    ("model_dir", "/nonexistent", "not a model directory"),
    ("batch_root", "/nonexistent/folder", "not a directory"),
    ("allowed_url_hosts", ["https://example.com/x"], "bare host"),
    ("allowed_url_hosts", ["*.example.com"], "bare host"),
    ("max_side", 64, "min_side"),
    ("no_such_setting", 1, "no_such_setting"),
])
def test_bad_values_fail_fast(field, value, words):
    overrides = {field: value}
    if field == "max_side":
        overrides["min_side"] = 100
    with pytest.raises(ValidationError, match=words):
        Settings(_env_file=None, **overrides)


def test_misspelt_tailor_variables_fail_but_foreign_ones_are_ignored(monkeypatch, tmp_path):
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgres://x\nTAILOR_MAX_IN_FLIGHT=9\n")
    assert Settings(_env_file=env).max_in_flight == 9
    monkeypatch.setenv("TAILOR_MAX_INFLIGHT", "3")
    with pytest.raises(ValueError, match="TAILOR_MAX_INFLIGHT"):
        Settings(_env_file=None)
    monkeypatch.delenv("TAILOR_MAX_INFLIGHT")
    env.write_text("TAILOR_PROT=1\n")
    with pytest.raises(ValueError, match="TAILOR_PROT"):
        Settings(_env_file=env)


@pytest.mark.parametrize("sources", [[], ["labelstudio"]])
def test_a_child_process_environment_gives_back_the_same_settings(tmp_path, monkeypatch, sources):
    """The worker is started with the server's settings as TAILOR_* variables: every field, lists and
    empty lists included, must read back as it was (an empty list once stopped every worker at startup)."""
    from service.jobs.supervisor import settings_env
    from service.settings import Settings

    original = Settings(_env_file=None, data_dir=tmp_path, approve_on_arrival=sources,
                        allowed_url_hosts=["files.example:8081"], api_tokens=["t0ken-abcdefgh-0123456789"])
    for name in [k for k in __import__("os").environ if k.startswith("TAILOR_")]:
        monkeypatch.delenv(name)
    for name, value in settings_env(original, base={}).items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).model_dump() == original.model_dump()
