from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GradientMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRADIENT_METHOD_AUTO: _ClassVar[GradientMethod]
    GRADIENT_METHOD_PARAMETER_SHIFT: _ClassVar[GradientMethod]
    GRADIENT_METHOD_ADJOINT: _ClassVar[GradientMethod]
GRADIENT_METHOD_AUTO: GradientMethod
GRADIENT_METHOD_PARAMETER_SHIFT: GradientMethod
GRADIENT_METHOD_ADJOINT: GradientMethod

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Circuit(_message.Message):
    __slots__ = ("hash", "cirq_json")
    HASH_FIELD_NUMBER: _ClassVar[int]
    CIRQ_JSON_FIELD_NUMBER: _ClassVar[int]
    hash: str
    cirq_json: str
    def __init__(self, hash: _Optional[str] = ..., cirq_json: _Optional[str] = ...) -> None: ...

class PauliTerm(_message.Message):
    __slots__ = ("coefficient", "paulis")
    COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    PAULIS_FIELD_NUMBER: _ClassVar[int]
    coefficient: float
    paulis: str
    def __init__(self, coefficient: _Optional[float] = ..., paulis: _Optional[str] = ...) -> None: ...

class Observable(_message.Message):
    __slots__ = ("terms",)
    TERMS_FIELD_NUMBER: _ClassVar[int]
    terms: _containers.RepeatedCompositeFieldContainer[PauliTerm]
    def __init__(self, terms: _Optional[_Iterable[_Union[PauliTerm, _Mapping]]] = ...) -> None: ...

class ParameterBatch(_message.Message):
    __slots__ = ("symbols", "values")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    values: Tensor
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., values: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_seconds", "execute_seconds")
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queue_seconds: float
    execute_seconds: float
    def __init__(self, queue_seconds: _Optional[float] = ..., execute_seconds: _Optional[float] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("circuit", "observables", "params", "shots", "seed")
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    OBSERVABLES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    circuit: Circuit
    observables: _containers.RepeatedCompositeFieldContainer[Observable]
    params: ParameterBatch
    shots: int
    seed: int
    def __init__(self, circuit: _Optional[_Union[Circuit, _Mapping]] = ..., observables: _Optional[_Iterable[_Union[Observable, _Mapping]]] = ..., params: _Optional[_Union[ParameterBatch, _Mapping]] = ..., shots: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("expectations", "standard_errors", "timings", "backend", "hardware_seconds", "executions", "shots")
    EXPECTATIONS_FIELD_NUMBER: _ClassVar[int]
    STANDARD_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    expectations: Tensor
    standard_errors: Tensor
    timings: Timings
    backend: str
    hardware_seconds: float
    executions: int
    shots: int
    def __init__(self, expectations: _Optional[_Union[Tensor, _Mapping]] = ..., standard_errors: _Optional[_Union[Tensor, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., backend: _Optional[str] = ..., hardware_seconds: _Optional[float] = ..., executions: _Optional[int] = ..., shots: _Optional[int] = ...) -> None: ...

class ShiftGradientRequest(_message.Message):
    __slots__ = ("circuit", "observables", "params", "wrt", "cotangents", "include_values", "shots", "seed", "method")
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    OBSERVABLES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WRT_FIELD_NUMBER: _ClassVar[int]
    COTANGENTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VALUES_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    circuit: Circuit
    observables: _containers.RepeatedCompositeFieldContainer[Observable]
    params: ParameterBatch
    wrt: _containers.RepeatedScalarFieldContainer[str]
    cotangents: Tensor
    include_values: bool
    shots: int
    seed: int
    method: GradientMethod
    def __init__(self, circuit: _Optional[_Union[Circuit, _Mapping]] = ..., observables: _Optional[_Iterable[_Union[Observable, _Mapping]]] = ..., params: _Optional[_Union[ParameterBatch, _Mapping]] = ..., wrt: _Optional[_Iterable[str]] = ..., cotangents: _Optional[_Union[Tensor, _Mapping]] = ..., include_values: _Optional[bool] = ..., shots: _Optional[int] = ..., seed: _Optional[int] = ..., method: _Optional[_Union[GradientMethod, str]] = ...) -> None: ...

class ShiftGradientResponse(_message.Message):
    __slots__ = ("jacobian", "expectations", "timings", "backend", "wrt", "method", "shift_rule_executions", "shift_rule_shots", "hardware_seconds")
    JACOBIAN_FIELD_NUMBER: _ClassVar[int]
    EXPECTATIONS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    WRT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SHIFT_RULE_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SHIFT_RULE_SHOTS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    jacobian: Tensor
    expectations: Tensor
    timings: Timings
    backend: str
    wrt: _containers.RepeatedScalarFieldContainer[str]
    method: GradientMethod
    shift_rule_executions: int
    shift_rule_shots: int
    hardware_seconds: float
    def __init__(self, jacobian: _Optional[_Union[Tensor, _Mapping]] = ..., expectations: _Optional[_Union[Tensor, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., backend: _Optional[str] = ..., wrt: _Optional[_Iterable[str]] = ..., method: _Optional[_Union[GradientMethod, str]] = ..., shift_rule_executions: _Optional[int] = ..., shift_rule_shots: _Optional[int] = ..., hardware_seconds: _Optional[float] = ...) -> None: ...

class NoiseProfile(_message.Message):
    __slots__ = ("depolarizing_1q", "depolarizing_2q", "readout_error", "method", "mitigation")
    DEPOLARIZING_1Q_FIELD_NUMBER: _ClassVar[int]
    DEPOLARIZING_2Q_FIELD_NUMBER: _ClassVar[int]
    READOUT_ERROR_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MITIGATION_FIELD_NUMBER: _ClassVar[int]
    depolarizing_1q: float
    depolarizing_2q: float
    readout_error: float
    method: str
    mitigation: str
    def __init__(self, depolarizing_1q: _Optional[float] = ..., depolarizing_2q: _Optional[float] = ..., readout_error: _Optional[float] = ..., method: _Optional[str] = ..., mitigation: _Optional[str] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("node_id", "backend", "max_qubits", "supported_gates", "noise", "default_shots", "version", "max_batch_rows", "max_message_bytes", "hardware")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MAX_QUBITS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_GATES_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SHOTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    backend: str
    max_qubits: int
    supported_gates: _containers.RepeatedScalarFieldContainer[str]
    noise: NoiseProfile
    default_shots: int
    version: str
    max_batch_rows: int
    max_message_bytes: int
    hardware: str
    def __init__(self, node_id: _Optional[str] = ..., backend: _Optional[str] = ..., max_qubits: _Optional[int] = ..., supported_gates: _Optional[_Iterable[str]] = ..., noise: _Optional[_Union[NoiseProfile, _Mapping]] = ..., default_shots: _Optional[int] = ..., version: _Optional[str] = ..., max_batch_rows: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., hardware: _Optional[str] = ...) -> None: ...
