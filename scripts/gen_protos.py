"""Generate the Python protobuf/gRPC code for every service from ``protos/``.

The generated modules live in exactly one place, ``protos/python/qpumesh/v1``,
and are committed so that an install needs no code generator. ``--check``
regenerates into a temporary directory and fails on any difference, which is
how CI (and ``tests/unit/test_protos_fresh.py``) catches a stale checkout.

Usage::

    python scripts/gen_protos.py           # regenerate in place
    python scripts/gen_protos.py --check   # exit 1 if the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_ROOT = ROOT / "protos" / "python"
PACKAGE_DIR = Path("qpumesh") / "v1"


def _protoc_args(out: Path) -> list[str]:
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    return [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]


def generate(out: Path) -> None:
    """Run protoc for every ``.proto`` under ``protos/qpumesh/v1`` into ``out``."""
    from grpc_tools import protoc

    (out / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    if protoc.main(_protoc_args(out)) != 0:
        raise SystemExit("protoc failed")
    init = out / PACKAGE_DIR / "__init__.py"
    init.write_text('"""Generated protobuf and gRPC code for the qpumesh.v1 contract (do not edit)."""\n')


def _generated_files(root: Path) -> set[str]:
    return {p.name for p in (root / PACKAGE_DIR).iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}}


def check() -> int:
    """Return 0 when the committed generated code matches a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want, have = _generated_files(fresh), _generated_files(OUT_ROOT)
        stale = sorted(want ^ have)
        stale += sorted(
            name
            for name in want & have
            if not filecmp.cmp(fresh / PACKAGE_DIR / name, OUT_ROOT / PACKAGE_DIR / name, shallow=False)
        )
    if stale:
        print("generated protobuf code is stale: " + ", ".join(stale), file=sys.stderr)
        print("run: python scripts/gen_protos.py", file=sys.stderr)
        return 1
    print("generated protobuf code is up to date")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if args.check:
        return check()
    target = OUT_ROOT / PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want = _generated_files(fresh)
        for name in _generated_files(OUT_ROOT) - want:
            (target / name).unlink()
        for name in want:
            shutil.copyfile(fresh / PACKAGE_DIR / name, target / name)
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
