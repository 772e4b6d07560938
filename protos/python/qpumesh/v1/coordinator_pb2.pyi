from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class Series(_message.Message):
    __slots__ = ("values", "length")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    length: int
    def __init__(self, values: _Optional[_Iterable[float]] = ..., length: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "task", "narma_order", "csv_path", "csv_column", "model", "qubits", "partitions", "layers", "ansatz", "epochs", "batch_size", "window", "lr", "optimizer", "seed", "shots", "train_fraction", "series_length", "extra", "ansatz_circuit", "series", "gradient_mode")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NARMA_ORDER_FIELD_NUMBER: _ClassVar[int]
    CSV_PATH_FIELD_NUMBER: _ClassVar[int]
    CSV_COLUMN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUBITS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ANSATZ_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SERIES_LENGTH_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    ANSATZ_CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: str
    narma_order: int
    csv_path: str
    csv_column: str
    model: str
    qubits: int
    partitions: int
    layers: int
    ansatz: str
    epochs: int
    batch_size: int
    window: int
    lr: float
    optimizer: str
    seed: int
    shots: int
    train_fraction: float
    series_length: int
    extra: _containers.ScalarMap[str, str]
    ansatz_circuit: str
    series: Series
    gradient_mode: str
    def __init__(self, name: _Optional[str] = ..., task: _Optional[str] = ..., narma_order: _Optional[int] = ..., csv_path: _Optional[str] = ..., csv_column: _Optional[str] = ..., model: _Optional[str] = ..., qubits: _Optional[int] = ..., partitions: _Optional[int] = ..., layers: _Optional[int] = ..., ansatz: _Optional[str] = ..., epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., window: _Optional[int] = ..., lr: _Optional[float] = ..., optimizer: _Optional[str] = ..., seed: _Optional[int] = ..., shots: _Optional[int] = ..., train_fraction: _Optional[float] = ..., series_length: _Optional[int] = ..., extra: _Optional[_Mapping[str, str]] = ..., ansatz_circuit: _Optional[str] = ..., series: _Optional[_Union[Series, _Mapping]] = ..., gradient_mode: _Optional[str] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "train_loss", "test_loss", "test_r2", "wall_seconds", "circuit_evaluations", "rounds", "hardware_seconds", "shots")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TEST_LOSS_FIELD_NUMBER: _ClassVar[int]
    TEST_R2_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    train_loss: float
    test_loss: float
    test_r2: float
    wall_seconds: float
    circuit_evaluations: int
    rounds: int
    hardware_seconds: float
    shots: int
    def __init__(self, epoch: _Optional[int] = ..., train_loss: _Optional[float] = ..., test_loss: _Optional[float] = ..., test_r2: _Optional[float] = ..., wall_seconds: _Optional[float] = ..., circuit_evaluations: _Optional[int] = ..., rounds: _Optional[int] = ..., hardware_seconds: _Optional[float] = ..., shots: _Optional[int] = ...) -> None: ...

class NodeStats(_message.Message):
    __slots__ = ("address", "node_id", "healthy", "max_qubits", "backend", "in_flight", "calls", "failures", "retries", "hedges", "mean_latency_ms", "p50_latency_ms", "p95_latency_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    MAX_QUBITS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    HEDGES_FIELD_NUMBER: _ClassVar[int]
    MEAN_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    P50_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    P95_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    node_id: str
    healthy: bool
    max_qubits: int
    backend: str
    in_flight: int
    calls: int
    failures: int
    retries: int
    hedges: int
    mean_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    def __init__(self, address: _Optional[str] = ..., node_id: _Optional[str] = ..., healthy: _Optional[bool] = ..., max_qubits: _Optional[int] = ..., backend: _Optional[str] = ..., in_flight: _Optional[int] = ..., calls: _Optional[int] = ..., failures: _Optional[int] = ..., retries: _Optional[int] = ..., hedges: _Optional[int] = ..., mean_latency_ms: _Optional[float] = ..., p50_latency_ms: _Optional[float] = ..., p95_latency_ms: _Optional[float] = ...) -> None: ...

class FaultEvent(_message.Message):
    __slots__ = ("time", "node", "kind", "detail")
    TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    time: float
    node: str
    kind: str
    detail: str
    def __init__(self, time: _Optional[float] = ..., node: _Optional[str] = ..., kind: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "spec", "state", "epochs_done", "created_at", "updated_at", "error", "final_test_r2", "convergence_epoch", "history", "nodes", "faults", "owner")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_DONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINAL_TEST_R2_FIELD_NUMBER: _ClassVar[int]
    CONVERGENCE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: JobSpec
    state: JobState
    epochs_done: int
    created_at: float
    updated_at: float
    error: str
    final_test_r2: float
    convergence_epoch: int
    history: _containers.RepeatedCompositeFieldContainer[EpochMetrics]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStats]
    faults: _containers.RepeatedCompositeFieldContainer[FaultEvent]
    owner: str
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., epochs_done: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., error: _Optional[str] = ..., final_test_r2: _Optional[float] = ..., convergence_epoch: _Optional[int] = ..., history: _Optional[_Iterable[_Union[EpochMetrics, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[NodeStats, _Mapping]]] = ..., faults: _Optional[_Iterable[_Union[FaultEvent, _Mapping]]] = ..., owner: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "seq", "time", "epoch", "state", "log", "fault", "nodes")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    time: float
    epoch: EpochMetrics
    state: JobState
    log: str
    fault: FaultEvent
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStats]
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[float] = ..., epoch: _Optional[_Union[EpochMetrics, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., log: _Optional[str] = ..., fault: _Optional[_Union[FaultEvent, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[NodeStats, _Mapping]]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_seq: int
    def __init__(self, job_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("job_id", "series")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    series: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, job_id: _Optional[str] = ..., series: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "epoch")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedScalarFieldContainer[float]
    epoch: int
    def __init__(self, predictions: _Optional[_Iterable[float]] = ..., epoch: _Optional[int] = ...) -> None: ...

class GetResultsRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetResultsResponse(_message.Message):
    __slots__ = ("job", "targets", "predictions", "train_size")
    JOB_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    job: Job
    targets: _containers.RepeatedScalarFieldContainer[float]
    predictions: _containers.RepeatedScalarFieldContainer[float]
    train_size: int
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., targets: _Optional[_Iterable[float]] = ..., predictions: _Optional[_Iterable[float]] = ..., train_size: _Optional[int] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStats]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStats, _Mapping]]] = ...) -> None: ...
