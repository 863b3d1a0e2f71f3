"""Scale-out on Ray: stream workers (one per device) behind the same front door.

Nothing here imports Ray at module level except the modules that only run with ``--ray``.
"""
