"""cffi builder for the C core (out-of-line API mode) -> the extension module ``lb._csched``.

The cdef is read from the real headers ``include/lb_api*.h`` (as cryptography's build_padding.py
does), so the declarations Python sees cannot drift from the ones C compiles against. Preprocessor
lines are dropped except plain integer ``#define NAME VALUE`` constants, which cffi understands.
"""

from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
SRC = HERE / "src"

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing"]

_DEFINE = re.compile(r"^#define\s+([A-Z_][A-Z0-9_]*)\s+(0x[0-9a-fA-F]+|-?\d+)\s*(/\*.*)?$")


def api_headers() -> list[Path]:
    """The cdef-clean headers, lb_api.h first (the others may use its types)."""
    rest = sorted(p for p in INCLUDE.glob("lb_api_*.h"))
    return [INCLUDE / "lb_api.h", *rest]


def cdef_text() -> str:
    out: list[str] = []
    for header in api_headers():
        for line in header.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                m = _DEFINE.match(stripped)
                if m and not m.group(1).endswith("_H"):
                    out.append(f"#define {m.group(1)} {m.group(2)}")
                continue
            out.append(line)
    return "\n".join(out)


def sources() -> list[str]:
    return sorted(str(p.relative_to(HERE.parent)) for p in SRC.glob("*.c"))


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "lb._csched",
    "\n".join(f'#include "{h.name}"' for h in api_headers()),
    sources=sources(),
    include_dirs=[str(INCLUDE.relative_to(HERE.parent))],
    extra_compile_args=CFLAGS,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
