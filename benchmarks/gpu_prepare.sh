#!/usr/bin/env bash
# Run on the CPU machine before the device call: puts what benchmarks/gpu_check.sh needs and
# the GPU machine lacks into the git-ignored .data/ (carry it: run(..., carry=[".data"])).
#   - the CIFAR-10 archive (ARCHIVE, default ../shared/data/cifar10-jpeg.tar.gz)
#   - wheels of the packages its image lacks, for its Python 3.12 on x86-64 (the versions of
#     this checkout's environment; pydantic-core must match pydantic exactly)
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${ARCHIVE:-../shared/data/cifar10-jpeg.tar.gz}
PY=${PYTHON:-python}
mkdir -p .data/wheels
cp -f "$ARCHIVE" .data/cifar10-jpeg.tar.gz
pins=$($PY - <<'PYEOF'
from importlib.metadata import version
names = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "tomli-w",
         "platformdirs"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PYEOF
)
rm -f .data/wheels/*.whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .data/wheels $pins
ls .data/wheels
du -sh .data
