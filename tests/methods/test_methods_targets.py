"""Targets, seeds, registry, parameter validation and the default layer."""

import numpy as np
import onnx
import pytest
from factory import resnet18_like, small_cnn
from methods_models import patch_image, patch_model

from inspector.errors import InvalidArgument
from inspector.methods import (
    METHODS,
    Target,
    default_layer,
    describe_targets,
    get_method,
    make_seed,
    target_scores,
)
from inspector.runtime.access import OrtModelAccess

LOGITS = np.array([[0.1, 3.0, -1.0], [2.0, 0.0, 5.0]], np.float32)
FEAT = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


def test_default_target_is_top1_per_image():
    seed = make_seed(Target(), LOGITS)
    np.testing.assert_array_equal(seed, [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(target_scores(Target(), LOGITS), [3.0, 5.0])
    assert describe_targets(Target(tensor="logits"), LOGITS) == ["logits[1]", "logits[2]"]


def test_index_classes_seed_and_mask():
    np.testing.assert_allclose(target_scores(Target(index=(0,)), LOGITS), [0.1, 2.0])
    np.testing.assert_allclose(target_scores(Target(classes=(0, 2)), LOGITS), [-0.9, 7.0])
    np.testing.assert_allclose(target_scores(Target(seed=np.array([1.0, -1.0, 0.0])), LOGITS), [-2.9, 2.0])
    per_image = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    np.testing.assert_allclose(target_scores(Target(seed=per_image), LOGITS), [0.1, 0.0])
    np.testing.assert_allclose(target_scores(Target(mask=np.array([0.5, 0.5, 0.0])), LOGITS), [1.55, 1.0])


def test_channel_box_on_feature_maps():
    scores = target_scores(Target(channel=1, box=(1, 2, 3, 4)), FEAT)
    np.testing.assert_allclose(scores, FEAT[:, 1, 1:3, 2:4].sum(axis=(1, 2)))
    np.testing.assert_allclose(target_scores(Target(channel=2), FEAT), FEAT[:, 2].sum(axis=(1, 2)))
    np.testing.assert_allclose(target_scores(Target(index=(0, 3, 4)), FEAT), FEAT[:, 0, 3, 4])
    assert describe_targets(Target(tensor="f", channel=1, box=(1, 2, 3, 4)), FEAT)[0] == "f[c=1, y=1:3, x=2:4]"


@pytest.mark.parametrize("target, field", [
    (Target(index=(3,)), "index"), (Target(classes=(7,)), "classes"), (Target(channel=0), "channel"),
    (Target(seed=np.ones(4)), "seed"), (Target(mask=np.ones(5)), "mask")])
def test_bad_targets_name_the_field(target, field):
    with pytest.raises(InvalidArgument) as err:
        make_seed(target, LOGITS)
    assert err.value.field == field


def test_feature_map_without_selection_is_refused():
    with pytest.raises(InvalidArgument, match="give a target index"):
        make_seed(Target(), FEAT)
    with pytest.raises(InvalidArgument, match="outside"):
        make_seed(Target(channel=1, box=(0, 0, 9, 9)), FEAT)


def test_registry_names_and_classes():
    assert len(METHODS) == 24  # 22 + the noise tunnel's smoothgrad_sq and vargrad
    for name, cls in METHODS.items():
        method = get_method(name)
        assert method.name == name and isinstance(cls.uses_gradients, bool) and cls.doc
    with pytest.raises(InvalidArgument, match="known methods: cam, gradcam"):
        get_method("gradcam+++")


def test_unknown_parameter_names_it_and_lists_the_known_ones():
    access = OrtModelAccess(patch_model())
    with pytest.raises(InvalidArgument) as err:
        get_method("integrated_gradients").explain(access, patch_image(), Target(), stepz=3)
    assert "stepz" in err.value.message and "steps" in err.value.message and err.value.field == "stepz"
    with pytest.raises(InvalidArgument, match="must be an integer >= 1"):
        get_method("integrated_gradients").explain(access, patch_image(), Target(), steps=0)


def test_bad_inputs_and_layers():
    access = OrtModelAccess(patch_model())
    with pytest.raises(InvalidArgument, match="image batch"):
        get_method("gradcam").explain(access, np.zeros((3, 16, 16), np.float32), Target())
    with pytest.raises(InvalidArgument, match="NaN"):
        get_method("gradcam").explain(access, np.full((1, 3, 16, 16), np.nan, np.float32), Target())
    with pytest.raises(InvalidArgument, match="unknown layer tensor"):
        get_method("gradcam").explain(access, patch_image(), Target(), layers=["nope"])
    with pytest.raises(InvalidArgument, match="N,C,h,w"):
        get_method("gradcam").explain(access, patch_image(), Target(), layers=["flatten_out"])


def test_default_layer_is_last_spatial_tensor_before_pooling():
    assert default_layer(small_cnn()) == "relu4_out"
    assert default_layer(patch_model()) == "feat_out"
    model = resnet18_like(size=64)
    gap = next(n for n in model.graph.node if n.op_type == "GlobalAveragePool")
    assert default_layer(model) == gap.input[0]


def test_default_layer_without_spatial_tensor_is_an_error():
    nodes = [onnx.helper.make_node("Relu", ["x"], ["y"])]
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", 1, [1, 4])],
                                   [onnx.helper.make_tensor_value_info("y", 1, [1, 4])])
    with pytest.raises(InvalidArgument, match="name the layer"):
        default_layer(onnx.helper.make_model(graph))


@pytest.mark.parametrize("name, params, field", [
    ("gradcam", {"aug_smooth": "false"}, "aug_smooth"), ("fem", {"k": "2"}, "k"),
    ("kpcacam", {"kernel": "cosine"}, "kernel"), ("integrated_gradients", {"method": "simpson"}, "method"),
    ("integrated_gradients", {"baseline": "noise"}, "baseline"), ("occlusion", {"window": 40}, "window"),
    ("rise", {"probability": 1.5}, "probability"), ("smoothgrad", {"samples": 2.5}, "samples"),
    ("attention_rollout", {"head_fusion": "sum"}, "layers")])
def test_bad_parameter_values_name_the_parameter(name, params, field):
    access = OrtModelAccess(patch_model())
    with pytest.raises(InvalidArgument) as err:
        get_method(name).explain(access, patch_image(), Target(), **params)
    assert err.value.field == field, err.value.message
