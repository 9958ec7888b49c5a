from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Preprocess(_message.Message):
    __slots__ = ("resize", "crop", "scale", "mean", "std", "channel_order", "layout", "dtype")
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ORDER_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    resize: _containers.RepeatedScalarFieldContainer[int]
    crop: _containers.RepeatedScalarFieldContainer[int]
    scale: float
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    channel_order: str
    layout: str
    dtype: str
    def __init__(self, resize: _Optional[_Iterable[int]] = ..., crop: _Optional[_Iterable[int]] = ..., scale: _Optional[float] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ..., channel_order: _Optional[str] = ..., layout: _Optional[str] = ..., dtype: _Optional[str] = ...) -> None: ...

class ImageBatch(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Input(_message.Message):
    __slots__ = ("tensor", "images", "preprocess", "named")
    class NamedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Input
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Input, _Mapping]] = ...) -> None: ...
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    NAMED_FIELD_NUMBER: _ClassVar[int]
    tensor: Tensor
    images: ImageBatch
    preprocess: Preprocess
    named: _containers.MessageMap[str, Input]
    def __init__(self, tensor: _Optional[_Union[Tensor, _Mapping]] = ..., images: _Optional[_Union[ImageBatch, _Mapping]] = ..., preprocess: _Optional[_Union[Preprocess, _Mapping]] = ..., named: _Optional[_Mapping[str, Input]] = ...) -> None: ...

class Dim(_message.Message):
    __slots__ = ("size", "param")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    size: int
    param: str
    def __init__(self, size: _Optional[int] = ..., param: _Optional[str] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("name", "dtype", "shape", "rank_known")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    RANK_KNOWN_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedCompositeFieldContainer[Dim]
    rank_known: bool
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[_Union[Dim, _Mapping]]] = ..., rank_known: bool = ...) -> None: ...

class LayerInfo(_message.Message):
    __slots__ = ("name", "op_type", "inputs", "outputs", "parameter_count", "has_weights", "weight_names")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    HAS_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_NAMES_FIELD_NUMBER: _ClassVar[int]
    name: str
    op_type: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    parameter_count: int
    has_weights: bool
    weight_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., op_type: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., parameter_count: _Optional[int] = ..., has_weights: bool = ..., weight_names: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "name", "size_bytes", "inputs", "outputs", "opsets", "producer", "layers", "preprocess", "differentiable", "blocking_ops", "created", "providers", "names")
    class OpsetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    OPSETS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIABLE_FIELD_NUMBER: _ClassVar[int]
    BLOCKING_OPS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    size_bytes: int
    inputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    opsets: _containers.ScalarMap[str, int]
    producer: str
    layers: _containers.RepeatedCompositeFieldContainer[LayerInfo]
    preprocess: Preprocess
    differentiable: bool
    blocking_ops: _containers.RepeatedScalarFieldContainer[str]
    created: float
    providers: _containers.RepeatedScalarFieldContainer[str]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., opsets: _Optional[_Mapping[str, int]] = ..., producer: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[LayerInfo, _Mapping]]] = ..., preprocess: _Optional[_Union[Preprocess, _Mapping]] = ..., differentiable: bool = ..., blocking_ops: _Optional[_Iterable[str]] = ..., created: _Optional[float] = ..., providers: _Optional[_Iterable[str]] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("name", "preprocess", "providers", "size", "replace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    preprocess: Preprocess
    providers: _containers.RepeatedScalarFieldContainer[str]
    size: int
    replace: bool
    def __init__(self, name: _Optional[str] = ..., preprocess: _Optional[_Union[Preprocess, _Mapping]] = ..., providers: _Optional[_Iterable[str]] = ..., size: _Optional[int] = ..., replace: bool = ...) -> None: ...

class UploadModelRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("server_path", "name", "preprocess", "providers", "replace")
    SERVER_PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    server_path: str
    name: str
    preprocess: Preprocess
    providers: _containers.RepeatedScalarFieldContainer[str]
    replace: bool
    def __init__(self, server_path: _Optional[str] = ..., name: _Optional[str] = ..., preprocess: _Optional[_Union[Preprocess, _Mapping]] = ..., providers: _Optional[_Iterable[str]] = ..., replace: bool = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "quarantined")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    quarantined: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., quarantined: _Optional[_Iterable[str]] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("model", "input")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: Input
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ...) -> None: ...

class RenderOptions(_message.Message):
    __slots__ = ("cmap", "normalize", "channels", "top_k", "label")
    CMAP_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    cmap: str
    normalize: str
    channels: _containers.RepeatedScalarFieldContainer[int]
    top_k: int
    label: bool
    def __init__(self, cmap: _Optional[str] = ..., normalize: _Optional[str] = ..., channels: _Optional[_Iterable[int]] = ..., top_k: _Optional[int] = ..., label: bool = ...) -> None: ...

class FeatureMapsRequest(_message.Message):
    __slots__ = ("model", "input", "layers", "raw", "png", "stats", "float16", "render")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    FLOAT16_FIELD_NUMBER: _ClassVar[int]
    RENDER_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: Input
    layers: _containers.RepeatedScalarFieldContainer[str]
    raw: bool
    png: bool
    stats: bool
    float16: bool
    render: RenderOptions
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., layers: _Optional[_Iterable[str]] = ..., raw: bool = ..., png: bool = ..., stats: bool = ..., float16: bool = ..., render: _Optional[_Union[RenderOptions, _Mapping]] = ...) -> None: ...

class WeightsRequest(_message.Message):
    __slots__ = ("model", "layers", "raw", "png", "histogram", "stats", "mode", "cmap")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CMAP_FIELD_NUMBER: _ClassVar[int]
    model: str
    layers: _containers.RepeatedScalarFieldContainer[str]
    raw: bool
    png: bool
    histogram: bool
    stats: bool
    mode: str
    cmap: str
    def __init__(self, model: _Optional[str] = ..., layers: _Optional[_Iterable[str]] = ..., raw: bool = ..., png: bool = ..., histogram: bool = ..., stats: bool = ..., mode: _Optional[str] = ..., cmap: _Optional[str] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("tensor", "index", "classes", "channel", "box", "mask", "seed")
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    tensor: str
    index: _containers.RepeatedScalarFieldContainer[int]
    classes: _containers.RepeatedScalarFieldContainer[int]
    channel: int
    box: _containers.RepeatedScalarFieldContainer[int]
    mask: Tensor
    seed: Tensor
    def __init__(self, tensor: _Optional[str] = ..., index: _Optional[_Iterable[int]] = ..., classes: _Optional[_Iterable[int]] = ..., channel: _Optional[int] = ..., box: _Optional[_Iterable[int]] = ..., mask: _Optional[_Union[Tensor, _Mapping]] = ..., seed: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class GradientsRequest(_message.Message):
    __slots__ = ("model", "input", "wrt", "target", "policy")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    WRT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: Input
    wrt: _containers.RepeatedScalarFieldContainer[str]
    target: Target
    policy: str
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., wrt: _Optional[_Iterable[str]] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., policy: _Optional[str] = ...) -> None: ...

class OverlayOptions(_message.Message):
    __slots__ = ("cmap", "alpha", "skip")
    CMAP_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    cmap: str
    alpha: float
    skip: bool
    def __init__(self, cmap: _Optional[str] = ..., alpha: _Optional[float] = ..., skip: bool = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("model", "input", "method", "target", "layers", "params", "overlay")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    OVERLAY_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: Input
    method: str
    target: Target
    layers: _containers.RepeatedScalarFieldContainer[str]
    params: _struct_pb2.Struct
    overlay: OverlayOptions
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., method: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., layers: _Optional[_Iterable[str]] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., overlay: _Optional[_Union[OverlayOptions, _Mapping]] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "input", "heatmap", "target", "metrics", "params")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    HEATMAP_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: Input
    heatmap: Tensor
    target: Target
    metrics: _containers.RepeatedScalarFieldContainer[str]
    params: _struct_pb2.Struct
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., heatmap: _Optional[_Union[Tensor, _Mapping]] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., metrics: _Optional[_Iterable[str]] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListMethodsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MethodInfo(_message.Message):
    __slots__ = ("name", "doc", "uses_gradients", "defaults")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOC_FIELD_NUMBER: _ClassVar[int]
    USES_GRADIENTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    doc: str
    uses_gradients: bool
    defaults: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., doc: _Optional[str] = ..., uses_gradients: bool = ..., defaults: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListMethodsResponse(_message.Message):
    __slots__ = ("methods",)
    METHODS_FIELD_NUMBER: _ClassVar[int]
    methods: _containers.RepeatedCompositeFieldContainer[MethodInfo]
    def __init__(self, methods: _Optional[_Iterable[_Union[MethodInfo, _Mapping]]] = ...) -> None: ...

class MaximizeRequest(_message.Message):
    __slots__ = ("model", "layer", "channels", "steps", "objective", "params", "preview_every")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_EVERY_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    channels: _containers.RepeatedScalarFieldContainer[int]
    steps: int
    objective: str
    params: _struct_pb2.Struct
    preview_every: int
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., channels: _Optional[_Iterable[int]] = ..., steps: _Optional[int] = ..., objective: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., preview_every: _Optional[int] = ...) -> None: ...

class AuditHeader(_message.Message):
    __slots__ = ("model", "layers", "preprocess", "labels", "resume_state", "checkpoint_every", "columnar")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RESUME_STATE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    COLUMNAR_FIELD_NUMBER: _ClassVar[int]
    model: str
    layers: _containers.RepeatedScalarFieldContainer[str]
    preprocess: Preprocess
    labels: _containers.RepeatedScalarFieldContainer[int]
    resume_state: bytes
    checkpoint_every: int
    columnar: bool
    def __init__(self, model: _Optional[str] = ..., layers: _Optional[_Iterable[str]] = ..., preprocess: _Optional[_Union[Preprocess, _Mapping]] = ..., labels: _Optional[_Iterable[int]] = ..., resume_state: _Optional[bytes] = ..., checkpoint_every: _Optional[int] = ..., columnar: bool = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ("header", "batch")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    header: AuditHeader
    batch: Input
    def __init__(self, header: _Optional[_Union[AuditHeader, _Mapping]] = ..., batch: _Optional[_Union[Input, _Mapping]] = ...) -> None: ...

class ResultHeader(_message.Message):
    __slots__ = ("model_id", "providers", "warnings", "info")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    info: _struct_pb2.Struct
    def __init__(self, model_id: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TensorMeta(_message.Message):
    __slots__ = ("dtype", "shape")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class BlobMeta(_message.Message):
    __slots__ = ("media_type",)
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    def __init__(self, media_type: _Optional[str] = ...) -> None: ...

class SharedMemoryRef(_message.Message):
    __slots__ = ("path", "offset")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset: int
    def __init__(self, path: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ItemStart(_message.Message):
    __slots__ = ("group", "name", "nbytes", "tensor", "blob", "shm")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    SHM_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    nbytes: int
    tensor: TensorMeta
    blob: BlobMeta
    shm: SharedMemoryRef
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., nbytes: _Optional[int] = ..., tensor: _Optional[_Union[TensorMeta, _Mapping]] = ..., blob: _Optional[_Union[BlobMeta, _Mapping]] = ..., shm: _Optional[_Union[SharedMemoryRef, _Mapping]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("step", "total", "values", "message")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    step: int
    total: int
    values: _containers.RepeatedScalarFieldContainer[float]
    message: str
    def __init__(self, step: _Optional[int] = ..., total: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ..., message: _Optional[str] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("header", "item", "data", "progress", "shared_items")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SHARED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    header: ResultHeader
    item: ItemStart
    data: bytes
    progress: Progress
    shared_items: _containers.RepeatedCompositeFieldContainer[ItemStart]
    def __init__(self, header: _Optional[_Union[ResultHeader, _Mapping]] = ..., item: _Optional[_Union[ItemStart, _Mapping]] = ..., data: _Optional[bytes] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., shared_items: _Optional[_Iterable[_Union[ItemStart, _Mapping]]] = ...) -> None: ...
