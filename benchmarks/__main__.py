"""Run every benchmark module (one with a ``main()``), or the ones named: python -m benchmarks [name ...]."""
import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if hasattr(module, "main"):
            print(f"== benchmarks.{name}", flush=True)
            module.main([])


if __name__ == "__main__":
    main(sys.argv[1:])
