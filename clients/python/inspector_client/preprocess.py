"""The preprocessing spec between a dict and its protobuf message (duck-typed: no protobuf import,
so the server, whose generated module differs, uses the same two functions)."""

from __future__ import annotations

FIELDS = ("resize", "crop", "scale", "mean", "std", "channel_order", "layout", "dtype")


def preprocess_from_message(msg) -> dict:
    """Only the fields the sender set, as JSON has them (resize: int or [H, W])."""
    out: dict = {}
    if msg.resize:
        out["resize"] = int(msg.resize[0]) if len(msg.resize) == 1 else [int(v) for v in msg.resize]
    if msg.crop:
        out["crop"] = [int(v) for v in msg.crop]
    if msg.HasField("scale"):
        out["scale"] = float(msg.scale)
    if msg.mean:
        out["mean"] = [float(v) for v in msg.mean]
    if msg.std:
        out["std"] = [float(v) for v in msg.std]
    for key in ("channel_order", "layout", "dtype"):
        if getattr(msg, key):
            out[key] = str(getattr(msg, key))
    return out


def preprocess_into_message(spec: dict | None, msg):
    """Fill `msg` (a Preprocess message) from a spec dict; unknown field names are a ValueError."""
    if not spec:
        return msg
    unknown = set(spec) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown preprocess fields: {sorted(unknown)}; known: {', '.join(FIELDS)}")
    if spec.get("resize") is not None:
        r = spec["resize"]
        msg.resize.extend([int(r)] if isinstance(r, int) else [int(v) for v in r])
    if spec.get("crop") is not None:
        c = spec["crop"]
        msg.crop.extend([int(c), int(c)] if isinstance(c, int) else [int(v) for v in c])
    if spec.get("scale") is not None:
        msg.scale = float(spec["scale"])
    msg.mean.extend(float(v) for v in spec.get("mean") or ())
    msg.std.extend(float(v) for v in spec.get("std") or ())
    for key in ("channel_order", "layout", "dtype"):
        if spec.get(key):
            setattr(msg, key, str(spec[key]))
    return msg
