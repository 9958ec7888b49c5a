"""Results of core calls: scalars (`info`) plus named items (tensors or encoded blobs).

The service streams the items in chunks; in-process callers read them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inspector.domain import RunMetadata


@dataclass(frozen=True)
class Item:
    group: str  # "output", "feature", "png", "stats", "weight", "gradient", "heatmap", ...
    name: str
    value: np.ndarray | bytes
    media_type: str = ""  # for bytes: "image/png", "application/json"


@dataclass
class Result:
    metadata: RunMetadata
    info: dict[str, object] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)

    def add(self, group: str, name: str, value: np.ndarray | bytes, media_type: str = "") -> None:
        if isinstance(value, bytes) and not media_type:
            media_type = "image/png"
        self.items.append(Item(group, name, value, media_type))

    def group(self, group: str) -> dict[str, np.ndarray | bytes]:
        """All items of one group, by name."""
        return {i.name: i.value for i in self.items if i.group == group}


@dataclass(frozen=True)
class Progress:
    """A progress event of a long call (maximization, audit)."""

    step: int
    total: int
    values: tuple[float, ...] = ()
    message: str = ""
    previews: tuple[Item, ...] = ()
