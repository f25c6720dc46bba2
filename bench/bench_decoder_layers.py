"""The U-Net decoder's upsample-then-convolve, written two exact ways and timed in ONNX Runtime.

Each decoder block upsamples its input 2x (nearest) and convolves it 3x3. The same function is a
transposed convolution (kernel 4, stride 2, padding 1) whose weights sum the 3x3 taps that read the
same source pixel: 4 instead of 9 taps per output, 2.25x fewer multiply-adds. This times both, at the
default model's channel counts and input size, each followed by the block's second 3x3 convolution as
in the model (random weights; the two outputs must agree). Where the block concatenates a skip
connection, the transposed form convolves the skip separately and adds the two. Then the whole
default model exported with its skip blocks written that way, timed against the shipped graph on CCP
photos. Run: python bench/bench_decoder_layers.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_ort import session  # noqa: E402
from bench.timing import timed_ms  # noqa: E402

# 1-D: which of the 3 taps of the upsampled input each of the 4 transposed-convolution taps reads
TAPS = np.zeros((4, 3), np.float32)
TAPS[0, 2] = TAPS[1, 1] = TAPS[1, 2] = TAPS[2, 0] = TAPS[2, 1] = TAPS[3, 0] = 1


def block_models(cin: int, cskip: int, cout: int, h: int, w: int, rng) -> tuple[bytes, bytes]:
    """A decoder block's convolutions written two ways, as serialized ONNX models with inputs x (1, cin, h, w)
    and, when cskip, the skip s (1, cskip, 2h, 2w): conv(concat(upsample(x), s)) as the model does it, and
    convtranspose(x) + conv(s); each then + ReLU + the block's second 3x3 convolution."""
    from onnx import TensorProto, helper, numpy_helper

    conv = rng.standard_normal((cout, cin + cskip, 3, 3), dtype=np.float32) * 0.1
    bias = rng.standard_normal(cout, dtype=np.float32) * 0.1  # BatchNorm, folded into the convolution
    arrays = {"W": conv, "b": bias, "W2": rng.standard_normal((cout, cout, 3, 3), dtype=np.float32) * 0.1,
              "WT": np.einsum("oikl,pk,ql->iopq", conv[:, :cin], TAPS, TAPS).astype(np.float32),
              "WS": np.ascontiguousarray(conv[:, cin:]), "scales": np.array([1, 1, 2, 2], np.float32)}
    node = helper.make_node
    upsampled = [node("Resize", ["x", "", "scales"], ["u"], mode="nearest")]
    if cskip:
        upsampled += [node("Concat", ["u", "s"], ["u_s"], axis=1), node("Conv", ["u_s", "W", "b"], ["c"], pads=[1] * 4)]
        transposed = [node("ConvTranspose", ["x", "WT"], ["t"], kernel_shape=[4, 4], strides=[2, 2], pads=[1] * 4),
                      node("Conv", ["s", "WS", "b"], ["cs"], pads=[1] * 4), node("Add", ["t", "cs"], ["c"])]
    else:
        upsampled += [node("Conv", ["u", "W", "b"], ["c"], pads=[1] * 4)]
        transposed = [node("ConvTranspose", ["x", "WT", "b"], ["c"], kernel_shape=[4, 4], strides=[2, 2],
                           pads=[1] * 4)]
    tail = [node("Relu", ["c"], ["r"]), node("Conv", ["r", "W2"], ["y"], pads=[1] * 4)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])]
    if cskip:
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, cskip, 2 * h, 2 * w]))
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 2 * h, 2 * w])
    models = []
    for nodes in (upsampled + tail, transposed + tail):
        used = {i for n in nodes for i in n.input}
        graph = helper.make_graph(nodes, "block", inputs, [output],
                                  [numpy_helper.from_array(a, k) for k, a in arrays.items() if k in used])
        models.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return models[0], models[1]


def export_transposed(model_dir: Path, path: Path) -> None:
    """The model directory's weights exported with every decoder block that has a skip connection computing
    conv1 as convtranspose(x) + conv(skip), BatchNorm folded in (weights precomputed: constants in the graph)."""
    import types

    import torch
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoderBlock

    from models.card import read_card
    from service.drafting.backends import TorchBackend
    from training.export import _upsample_x2_forward, export_onnx

    card = read_card(model_dir)
    model = TorchBackend(model_dir, device="cpu").model  # the directory's weights, in eval mode
    taps = torch.from_numpy(TAPS)
    features = model.encoder.out_channels
    blocks = [m for m in model.modules() if isinstance(m, UnetDecoderBlock)]
    for block, cin in zip(blocks, [features[-1], *card["arch"]["decoder_channels"][:-1]]):
        conv, bn = block.conv1[0], block.conv1[1]
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = conv.weight * scale[:, None, None, None]
            block.folded = (torch.einsum("oikl,pk,ql->iopq", weight[:, :cin], taps, taps).contiguous(),
                            weight[:, cin:].contiguous(), bn.bias - bn.running_mean * scale)

        def forward(self, x, target_height, target_width, skip_connection=None):
            if skip_connection is None:
                return _upsample_x2_forward(self, x, target_height, target_width)
            transposed, skip_weight, bias = self.folded
            y = (torch.nn.functional.conv_transpose2d(x, transposed, stride=2, padding=1)
                 + torch.nn.functional.conv2d(skip_connection, skip_weight, bias, padding=1))
            return self.attention2(self.conv2(torch.relu(y)))

        block.forward = types.MethodType(forward, block)
    export_onnx(model, path, tuple(card["training"]["config"]["crop"]), constant_upsampling=False)


def whole_model(model_dir: Path, data: Path, images: int, rounds: int, threads: int) -> None:
    import tempfile

    from bench.bench_ort import interleaved_ms
    from models.images import decode_image
    from service.drafting.predictor import Predictor

    predictor = Predictor(model_dir, backend="onnx")
    inputs = [predictor.preprocess(decode_image(p.read_bytes()))[None] for p in sorted(data.glob("*.jpg"))[:images]]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "transposed.onnx"
        export_transposed(model_dir, path)
        sessions = {"shipped graph": session(model_dir / "model.onnx", threads),
                    "skip blocks transposed": session(path, threads)}
        agree = statistics.mean(float((sessions["shipped graph"].run(None, {"image": x})[0].argmax(1)
                                       == sessions["skip blocks transposed"].run(None, {"image": x})[0].argmax(1))
                                      .mean()) for x in inputs)
        times = interleaved_ms(sessions, inputs, rounds)
    print(f"\nWhole model, {len(inputs)} CCP photos x {rounds} interleaved rounds: "
          + ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in times.items())
          + f"; label agreement {agree:.5f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images")
    ap.add_argument("--images", type=int, default=20, help="photos for the whole-model comparison (0: skip it)")
    args = ap.parse_args(argv)

    from models.card import read_card
    from service.drafting.backends import default_threads

    card = read_card(args.model)
    decoder = card["arch"]["decoder_channels"]
    height, width = card["training"]["config"]["crop"]  # the input size photos mostly get (448 x 288)
    threads, rng = default_threads(), np.random.default_rng(0)
    print(f"\n### Decoder upsample + 3x3 convolution, two exact ways: {args.model.name}, input {height}x{width}, "
          f"{threads} thread(s), median of {args.rounds} interleaved rounds x {args.repeats} calls\n")
    print("| block | channels in (+ skip) -> out | output size | upsample, concat, conv ms | transposed conv "
          "(+ skip conv) ms | speed-up | max difference |\n|---|---|---|---:|---:|---:|---:|")
    from training.models import build_model

    # Block i upsamples block i-1's output (block 0: the last encoder stage's, at 1/32) and concatenates
    # the encoder's feature map of the next finer scale; the last block, at full size, has none.
    features = build_model(card["arch"]).encoder.out_channels
    skips = [*features[-2:0:-1], 0][: len(decoder)]
    saved = 0.0
    for i, (cin, cskip, cout) in enumerate(zip([features[-1], *decoder[:-1]], skips, decoder)):
        h, w = height >> (5 - i), width >> (5 - i)
        upsampled, transposed = (session(m, threads) for m in block_models(cin, cskip, cout, h, w, rng))
        feed = {"x": rng.standard_normal((1, cin, h, w), dtype=np.float32)}
        if cskip:
            feed["s"] = rng.standard_normal((1, cskip, 2 * h, 2 * w), dtype=np.float32)
        a, b = upsampled.run(None, feed)[0], transposed.run(None, feed)[0]
        times: dict[str, list[float]] = {"upsampled": [], "transposed": []}
        for _ in range(args.rounds):
            for name, s in (("upsampled", upsampled), ("transposed", transposed)):
                call = lambda s=s, feed=feed: s.run(None, feed)  # noqa: E731
                times[name].append(statistics.median(timed_ms(call, args.repeats, True)))
        u, t = min(times["upsampled"]), min(times["transposed"])
        saved += max(0.0, u - t)
        print(f"| {i} | {cin}{f' + {cskip}' if cskip else ''} -> {cout} | {2 * h}x{2 * w} | {u:.2f} | {t:.2f} | "
              f"{u / t:.2f}x | {float(np.abs(a - b).max() / np.abs(a).max()):.1e} |")
    print(f"\nTransposed wherever it is faster: {saved:.2f} ms less per model call, by the sum of the blocks.")
    if args.images:
        whole_model(args.model, args.data, args.images, args.rounds + 2, threads)


if __name__ == "__main__":
    main()
