"""The committed generated protobuf code must match the .proto files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protobuf_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_service_imports_the_one_generated_package() -> None:
    import qpumesh.v1.qpu_node_pb2 as node_pb2
    from qpumesh.v1 import coordinator_pb2

    generated = ROOT / "protos" / "python" / "qpumesh" / "v1"
    assert Path(node_pb2.__file__).parent == generated
    assert Path(coordinator_pb2.__file__).parent == generated
    stray = [p for p in ROOT.glob("services/**/*_pb2*.py")] + [p for p in ROOT.glob("client/**/*_pb2*.py")]
    assert stray == [], f"generated code copied outside protos/python: {stray}"
