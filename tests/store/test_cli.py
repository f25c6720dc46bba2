"""`tailor db upgrade`, `tailor models list|register|activate` and `tailor corrections export` on a
temporary data folder (TAILOR_DATA_DIR), through the real command line app.

Errors must be one line and exit code 2; success must change the store as the command says.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.card import read_card
from service.cli import app

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_db_models_and_export_commands(env, tmp_path, tax, ccp_pair):
    r = run("db", "upgrade")
    assert r.exit_code == 0 and "revision 0003" in r.output
    version = read_card(DEFAULT_MODEL)["version"]
    r = run("models", "register", str(DEFAULT_MODEL))
    assert r.exit_code == 0, r.output
    assert (env / "models" / version / "model.onnx").is_file()
    r = run("models", "activate", "no-such-version")
    assert r.exit_code == 2 and "no model version" in r.output
    r = run("models", "activate", version, "--reason", "first")
    assert r.exit_code == 0 and f"current model: {version}" in r.output
    r = run("models", "list")
    assert r.exit_code == 0 and "*" in r.output and version in r.output

    r = run("corrections", "export", "--dest", str(tmp_path / "none"))
    assert r.exit_code == 2 and "no approved corrections" in r.output
    from service.store import open_store
    from service.store.corrections import review, save_correction

    store = open_store(env)
    img, labels = ccp_pair("0001")
    with store.session() as s:
        c = save_correction(s, store.files, image_bytes=img, label_map=labels, taxonomy=tax, source="import")
        review(s, c.id, "approved", "lead")
    store.close()
    r = run("corrections", "export", "--dest", str(tmp_path / "ds"))
    assert r.exit_code == 0 and "exported 1 image" in r.output, r.output
    from training.dataset import scan_dataset

    assert len(scan_dataset(tmp_path / "ds").samples) == 1


def test_corrections_list_filters_as_the_rest_route(env, tax, ccp_pair):
    from service.store import open_store
    from service.store.corrections import review, save_correction

    assert run("corrections", "list").exit_code == 0
    store = open_store(env)
    with store.session() as s:
        for image_id, source, who in (("0001", "import", "bob"), ("0002", "labelstudio", "anna")):
            img, labels = ccp_pair(image_id)
            row = save_correction(s, store.files, image_bytes=img, label_map=labels, taxonomy=tax, source=source,
                                  annotator=who)
        review(s, row.id, "approved", "lead")
    store.close()
    r = run("corrections", "list")
    assert r.exit_code == 0 and "2 correction(s)" in r.output and "bob" in r.output, r.output
    r = run("corrections", "list", "--source", "labelstudio", "--status", "approved")
    assert "1 correction(s)" in r.output and "anna" in r.output and "bob" not in r.output
    assert "0 correction(s)" in run("corrections", "list", "--since", "2999-01-01T00:00:00").output
    assert run("corrections", "list", "--limit", "0").exit_code == 2


def test_the_data_dir_holds_everything_tailor_writes(env):
    from service.settings import Settings

    s = Settings(_env_file=None)  # TAILOR_DATA_DIR from the environment, as the server and worker read it
    assert s.data_dir == env
    for place in (Path(s.db_url.removeprefix("sqlite:///")), s.model_store_dir, s.work_dir, s.export_dir):
        assert place.resolve().is_relative_to(env.resolve()), place
