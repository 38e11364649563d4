"""GEAR KV-cache compression (arXiv:2403.05527): the compression math, the cache, the plugin.

    from methods.gear import GearConfig
    cache = GearConfig(bits=2, outlier_frac=0.02).make_cache(model.config)
    model.generate(input_ids, cache=cache, max_new_tokens=64)

Names are imported on first use, so that registering the schemas (which imports
``methods.gear.config``) does not import transformers.
"""
from importlib import import_module

_EXPORTS = {
    "GearConfig": "methods.gear.config", "GearLConfig": "methods.gear.config", "GearKCVTConfig": "methods.gear.config",
    "GearLKCVTConfig": "methods.gear.config", "QuantKVConfig": "methods.gear.config",
    "GEARCache": "methods.gear.cache", "CompressedLayer": "methods.gear.cache",
    "CodecSpec": "methods.gear.compress", "QuantSpec": "methods.gear.compress", "Compressed": "methods.gear.compress",
    "compress": "methods.gear.compress", "power_iteration": "methods.gear.compress",
    "split_outliers": "methods.gear.compress",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'methods.gear' has no attribute {name!r}")
