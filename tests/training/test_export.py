"""Export of a trained checkpoint: the model directory describes itself and ONNX matches torch.

Parity is checked on real photos at sizes unlike the training size, in the exporter itself and
again here from the written files, as a user loading the directory would.
"""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

from models.card import ModelDirError, read_card, sha256_file
from models.images import decode_image
from models.preprocessing import to_input
from training.export import export_model
from training.models import build_model


def test_card_describes_the_model(tiny_model, tiny_run):
    card = read_card(tiny_model, verify=True)
    assert card["arch"]["encoder_name"] == "tu-regnetx_002" and card["arch"]["classes"] == 13
    assert card["taxonomy"]["name"] == "fashion-13" and len(card["taxonomy"]["classes"]) == 13
    assert card["input"]["long_side"] == 128 and card["input"]["size_multiple"] == 32
    assert card["input"]["mean"] == [0.5, 0.5, 0.5]
    assert len(card["training"]["data_fingerprint"]) == 64 and card["training"]["train_images"] + card["training"]["val_images"] == 16
    assert 0 <= card["metrics"]["miou"] <= 1 and "shoes" in card["metrics"]["per_class"]
    for name in ("model.onnx", "weights.safetensors"):
        assert card["files"][name] == sha256_file(tiny_model / name)
    assert card["parity"]["agreement"] >= 0.999


def test_onnx_has_dynamic_batch_height_width(tiny_model):
    dims = onnx.load(str(tiny_model / "model.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


def test_parity_from_written_files(tiny_model, ccp):
    """Rebuild from card + safetensors (no training code state) and compare with ONNX Runtime."""
    card = read_card(tiny_model)
    model = build_model(card["arch"]).eval()
    stored = load_file(str(tiny_model / "weights.safetensors"))
    # Stored at half precision (half the bytes), cast back on loading; the graph uses the same values.
    assert card["weights_dtype"] == "float16"
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    model.load_state_dict(stored)
    sess = ort.InferenceSession(str(tiny_model / "model.onnx"), providers=["CPUExecutionProvider"])
    photos = [decode_image(ccp / "images" / f"{i}.jpg") for i in ("0005", "0006", "0007")]
    batch = np.stack([to_input(p, (352, 224), card["input"]["mean"], card["input"]["std"]) for p in photos])
    with torch.inference_mode():
        ref = model(torch.from_numpy(batch)).numpy()
    got = sess.run(None, {"image": batch})[0]
    agreement = (ref.argmax(1) == got.argmax(1)).mean()
    assert agreement >= 0.999, agreement
    assert np.abs(ref - got).max() < 1e-2


def test_altered_weights_detected(tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(tiny_model, copy)
    with open(copy / "weights.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(ModelDirError, match="sha256 does not match"):
        read_card(copy, verify=True)


def test_export_refuses_existing_dir_and_leaves_no_temp(tiny_run, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_model(tiny_run / "best", out)
    assert (out / "keep.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["exists"]


def test_failed_parity_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    import training.export as ex

    monkeypatch.setattr(ex, "PARITY_MIN", 1.01)  # impossible bar: the export must refuse and clean up
    with pytest.raises(RuntimeError, match="parity"):
        export_model(tiny_run / "best", tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_decoder_upsamples_by_a_constant_scale(tiny_model):
    """No Shape ops feed the Resizes (ONNX Runtime keeps a constant-scale decoder in its blocked layout)."""
    graph = onnx.load(str(tiny_model / "model.onnx")).graph
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    constants.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
                      for n in graph.node if n.op_type == "Constant"})
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert len(resizes) == 5
    for node in resizes:
        assert constants[node.input[2]].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert not [n for n in graph.node if n.op_type == "Shape"]


def test_constant_scale_graph_equals_size_driven_graph(tiny_run, tmp_path, ccp):
    """The same weights exported both ways give the same logits on CCP photos at a size unlike training's,
    and tracing leaves the torch module as it was."""
    from training import checkpoint as ckpt
    from training.export import export_onnx

    state = ckpt.load_state(tiny_run / "best")
    model = build_model(state["arch"]).eval()
    model.load_state_dict(ckpt.load_weights(tiny_run / "best"))
    export_onnx(model, tmp_path / "scale.onnx", (128, 96))
    export_onnx(model, tmp_path / "sizes.onnx", (128, 96), constant_upsampling=False)
    assert not any("forward" in vars(m) for m in model.modules())
    cfg = state["config"]
    photos = [decode_image(ccp / "images" / f"{i}.jpg") for i in ("0005", "0006")]
    batch = np.stack([to_input(p, (416, 288), cfg["mean"], cfg["std"]) for p in photos])
    outs = [ort.InferenceSession(str(tmp_path / f), providers=["CPUExecutionProvider"]).run(None, {"image": batch})[0]
            for f in ("scale.onnx", "sizes.onnx")]
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-5)
    with torch.inference_mode():
        ref = model(torch.from_numpy(batch)).numpy()
    assert (ref.argmax(1) == outs[0].argmax(1)).mean() >= 0.999
