"""Method plugins, one folder each: ``methods/<name>/config.py`` holds the typed schema (the
plugin, `reprolab.roles`), the rest of the folder its implementation, ``conf/method/<name>.yaml``
its defaults. Importable on their own: ``from methods.cosmos import COSMOS``.
"""
