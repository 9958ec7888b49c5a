"""VJP rules, one small module per op family; importing this package registers them all."""

from . import (  # noqa: F401
    activations,
    conv,
    elementwise,
    indexing,
    matmul,
    normalization,
    pooling,
    quantized,
    recurrent,
    reduce,
    resize,
    roialign,
    scatter,
    shape_ops,
)
