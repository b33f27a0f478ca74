"""One module per method; each registers itself with ``methods.registry.register`` on import.

Keep heavy imports (torch, rpy2, ...) inside the functions so listing methods stays fast.
"""
