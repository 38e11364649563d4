"""Run every benchmark: each ``benchmarks/<name>.py`` that defines ``main()`` (``make bench``)."""
import importlib
import pkgutil
from pathlib import Path

import benchmarks


def modules() -> list:
    """The benchmark modules: every module of this package with a ``main(argv)``."""
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(benchmarks.__file__).parent)]) if not m.ispkg)
    found = [importlib.import_module(f"benchmarks.{name}") for name in names if name != "__main__"]
    return [m for m in found if callable(getattr(m, "main", None))]


def main() -> None:
    for module in modules():
        print(f"== {module.__name__}", flush=True)
        module.main([])


if __name__ == "__main__":
    main()
