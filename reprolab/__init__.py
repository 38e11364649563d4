"""reprolab core: config schemas, registries, run folders, models and data shared by every runner.

Core never imports a method or a runner; methods and runners import core.
"""
