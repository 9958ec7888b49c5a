"""ListModels reads the store's metadata (the description and gradient verdict recorded when a model
was first opened), opening no model, and returns what opening each model returned before."""

import dataclasses

from listing_models import opened, upload_all

from inspector import Inspector, InspectorConfig
from inspector.models import DESCRIPTION_VERSION


def _core(store) -> Inspector:
    return Inspector(InspectorConfig(store_dir=store, vetting=False))


def _counting(core) -> list:
    """Every OpenModels.get (the one way a model is opened) of `core`, from now on."""
    calls, get = [], core.models.get
    core.models.get = lambda ref: (calls.append(ref), get(ref))[1]
    return calls


def test_a_listing_opens_nothing_and_equals_opening_each_model(tmp_path):
    first = _core(tmp_path / "store")
    ids = upload_all(first)
    fresh = _core(tmp_path / "store")  # another process over the same store: nothing open yet
    gets = _counting(fresh)
    listed = fresh.list_models()
    assert gets == [] and fresh.models._open == {}
    assert [m.id for m in listed] == ids
    for got, want in zip(listed, opened(fresh, ids), strict=True):  # field by field, types included
        for f in dataclasses.fields(want):
            assert getattr(got, f.name) == getattr(want, f.name), (want.name, f.name)
            assert type(getattr(got, f.name)) is type(getattr(want, f.name)), (want.name, f.name)
    assert listed == first.list_models()
    multi = listed[2]
    assert [t.name for t in multi.inputs] == ["image", "scale"] and multi.inputs[1].shape == (None,)
    assert multi.outputs[2].dtype == "int64" and len(multi.outputs[2].shape) == 2
    assert multi.opsets == {"ai.onnx": 17, "com.microsoft": 1} and multi.producer == "listing-tests 2.1"
    assert listed[1].providers == ("CPUExecutionProvider",) and listed[1].names == ("named", "alias")
    assert not listed[3].differentiable and any("LRN" in op for op in listed[3].blocking_ops)


def test_entries_without_a_current_description_are_opened_once_and_then_described(tmp_path):
    first = _core(tmp_path / "store")
    ids = upload_all(first)
    want = opened(first, ids)
    description = first.store.get(ids[0]).metadata["description"]
    assert description["version"] == DESCRIPTION_VERSION
    # an older store: no description; an older format; a verdict under other gradient rules
    first.store.update_metadata(ids[0], {"description": None})
    first.store.update_metadata(ids[1], {"description": {**description, "version": DESCRIPTION_VERSION - 1}})
    first.store.update_metadata(ids[3], {"differentiability": {"rules": "older", "blocking_ops": []}})
    first.store.update_metadata(ids[2], {"description": {"version": DESCRIPTION_VERSION, "inputs": 3}})  # damaged
    older = _core(tmp_path / "store")
    gets = _counting(older)
    assert older.list_models() == want
    assert sorted(gets) == sorted(ids)  # only those were opened (every one here)
    assert all(older.store.get(i).metadata["description"]["version"] == DESCRIPTION_VERSION for i in ids)
    later = _core(tmp_path / "store")
    gets = _counting(later)
    assert later.list_models() == want and gets == []


def test_a_model_described_when_opened_by_a_request(tmp_path):
    """A model opened (not uploaded) by this process records its description: a store entry whose
    description was lost is described again by the next request that opens it."""
    first = _core(tmp_path / "store")
    ids = upload_all(first)
    first.store.update_metadata(ids[2], {"description": None})
    other = _core(tmp_path / "store")
    other.open("multi")
    assert other.store.get(ids[2]).metadata["description"]["version"] == DESCRIPTION_VERSION
    later = _core(tmp_path / "store")
    gets = _counting(later)
    assert later.list_models() == opened(first, ids) and gets == []
