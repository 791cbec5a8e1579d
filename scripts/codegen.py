"""Generate pycri/api/ from proto/runtime/v1/api.proto.

    python scripts/codegen.py          # regenerate
    python scripts/codegen.py --check  # exit 1 if the committed code is stale

The proto is compiled under the virtual path ``pycri/api/api.proto`` so the
generated gRPC module imports ``pycri.api.api_pb2`` rather than a top-level
``runtime.v1`` package.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto" / "runtime" / "v1" / "api.proto"
OUT = ROOT / "pycri" / "api"
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def generate(into: Path) -> None:
    with tempfile.TemporaryDirectory() as staging:
        virtual = Path(staging) / "src" / "pycri" / "api"
        virtual.mkdir(parents=True)
        shutil.copyfile(PROTO, virtual / "api.proto")
        out = Path(staging) / "out"
        out.mkdir()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{Path(staging) / 'src'}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                "pycri/api/api.proto",
            ],
            check=True,
        )
        for name in GENERATED:
            shutil.copyfile(out / "pycri" / "api" / name, into / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if pycri/api is stale")
    args = parser.parse_args(argv)
    if not args.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as fresh:
        generate(Path(fresh))
        stale = []
        for name in GENERATED:
            want = (Path(fresh) / name).read_text()
            have = (OUT / name).read_text() if (OUT / name).exists() else ""
            if want != have:
                stale.append(name)
                diff = difflib.unified_diff(
                    have.splitlines(),
                    want.splitlines(),
                    f"committed/{name}",
                    f"fresh/{name}",
                    lineterm="",
                    n=1,
                )
                print("\n".join(list(diff)[:40]), file=sys.stderr)
    if stale:
        print(
            f"stale generated code: {', '.join(stale)}; run python scripts/codegen.py",
            file=sys.stderr,
        )
        return 1
    print("pycri/api is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
