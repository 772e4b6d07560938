from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultConfig(_message.Message):
    __slots__ = ("latency_ms", "jitter_ms", "jitter_dist", "bandwidth_bytes_per_second", "error_rate", "hang", "crash_after_calls", "seed")
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_DIST_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    HANG_FIELD_NUMBER: _ClassVar[int]
    CRASH_AFTER_CALLS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    latency_ms: float
    jitter_ms: float
    jitter_dist: str
    bandwidth_bytes_per_second: float
    error_rate: float
    hang: bool
    crash_after_calls: int
    seed: int
    def __init__(self, latency_ms: _Optional[float] = ..., jitter_ms: _Optional[float] = ..., jitter_dist: _Optional[str] = ..., bandwidth_bytes_per_second: _Optional[float] = ..., error_rate: _Optional[float] = ..., hang: _Optional[bool] = ..., crash_after_calls: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class FaultCounters(_message.Message):
    __slots__ = ("calls", "work_calls", "delayed", "injected_errors", "hung")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    WORK_CALLS_FIELD_NUMBER: _ClassVar[int]
    DELAYED_FIELD_NUMBER: _ClassVar[int]
    INJECTED_ERRORS_FIELD_NUMBER: _ClassVar[int]
    HUNG_FIELD_NUMBER: _ClassVar[int]
    calls: int
    work_calls: int
    delayed: int
    injected_errors: int
    hung: int
    def __init__(self, calls: _Optional[int] = ..., work_calls: _Optional[int] = ..., delayed: _Optional[int] = ..., injected_errors: _Optional[int] = ..., hung: _Optional[int] = ...) -> None: ...

class SetFaultsRequest(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: FaultConfig
    def __init__(self, faults: _Optional[_Union[FaultConfig, _Mapping]] = ...) -> None: ...

class SetFaultsResponse(_message.Message):
    __slots__ = ("faults", "counters")
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    faults: FaultConfig
    counters: FaultCounters
    def __init__(self, faults: _Optional[_Union[FaultConfig, _Mapping]] = ..., counters: _Optional[_Union[FaultCounters, _Mapping]] = ...) -> None: ...

class GetFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetFaultsResponse(_message.Message):
    __slots__ = ("faults", "counters", "node_id")
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    faults: FaultConfig
    counters: FaultCounters
    node_id: str
    def __init__(self, faults: _Optional[_Union[FaultConfig, _Mapping]] = ..., counters: _Optional[_Union[FaultCounters, _Mapping]] = ..., node_id: _Optional[str] = ...) -> None: ...
