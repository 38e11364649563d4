"""Run every benchmark (each ``benchmarks/<name>.py`` with a ``main(argv)``), or the ones named:

    python -m benchmarks [name ...]        # make bench
"""
import importlib
import pkgutil
import sys
from pathlib import Path


def modules(names: list[str] | None = None) -> list:
    """The benchmark modules: every module of this package that defines ``main``."""
    here = Path(__file__).parent
    names = names or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.ispkg and m.name != "__main__")
    found = [importlib.import_module(f"benchmarks.{name}") for name in names]
    return [m for m in found if callable(getattr(m, "main", None))]


def main(argv: list[str]) -> None:
    from benchmarks import common

    for module in modules(argv):
        print(f"== {module.__name__}", flush=True)
        common.RUNNING = module.__name__.removeprefix("benchmarks.")
        module.main([])


if __name__ == "__main__":
    main(sys.argv[1:])
