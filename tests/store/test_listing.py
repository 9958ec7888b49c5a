"""ListModels over an S3 store (the real SeaweedFS server of conftest.py): a replica lists the models
another uploaded from the bucket's small metadata documents, fetching no model file into its cache
and opening nothing, and lists what opening each model gives."""

from __future__ import annotations

import uuid

from listing_models import opened, upload_all
from s3_server import BUCKET

from inspector import Inspector, InspectorConfig


def _replica(prefix: str, cache, **kw) -> Inspector:
    return Inspector(InspectorConfig(store_dir=f"s3://{BUCKET}/{prefix}", store_cache_dir=cache,
                                     vetting=False, **kw))


def _cached_models(cache) -> list:
    return sorted(p.parent.name for p in cache.rglob("model.onnx"))


def test_a_second_replica_lists_the_bucket_without_fetching_a_model(aws_env, tmp_path):
    prefix = f"listing-{uuid.uuid4().hex[:8]}"
    first = _replica(prefix, tmp_path / "cache-a")
    ids = upload_all(first)
    want = opened(first, ids)
    for cache_max in (None, 1):  # unbounded, and a cache bound that holds no model at all
        cache = tmp_path / f"cache-b-{cache_max}"
        fresh = _replica(prefix, cache, store_cache_max_bytes=cache_max)
        assert fresh.list_models() == want
        assert _cached_models(cache) == [] and fresh.models._open == {}
        assert fresh.list_models() == want  # again: still from the documents
        assert _cached_models(cache) == []
    b = _replica(prefix, tmp_path / "cache-b-opened")
    assert opened(b, ids) == want  # opening fetches them, and equals the listing
    assert _cached_models(tmp_path / "cache-b-opened") == sorted(ids)


def test_an_older_bucket_entry_is_opened_once_by_the_listing(aws_env, tmp_path):
    prefix = f"listing-old-{uuid.uuid4().hex[:8]}"
    first = _replica(prefix, tmp_path / "cache-a")
    ids = upload_all(first)
    want = opened(first, ids)
    first.store.update_metadata(ids[1], {"description": None})  # as a store written before descriptions
    b = _replica(prefix, tmp_path / "cache-b")
    assert b.list_models() == want
    assert _cached_models(tmp_path / "cache-b") == [ids[1]]  # that one only, and it is described now
    c = _replica(prefix, tmp_path / "cache-c")
    assert c.list_models() == want and _cached_models(tmp_path / "cache-c") == []
