"""Scale-out on Ray: stream workers (one per device) behind the same front door.

Nothing here imports Ray at module level except the modules that only run with ``--ray``
(``connect``, and ``pool`` through it); ``pipeline.service`` imports ``pool`` only when
``ServiceSettings.cluster`` is set, so a server without it never imports Ray.

How the service uses it: ``create_app(ServiceSettings(cluster=ClusterSettings(...)),
engine=ModelEngine(loader, ..., worker_loader=TrackerSpec(model, device=...)))``. The manager
then builds a ``StreamCluster`` (``pool``), starts its workers on the boot thread after the
front door's model loaded, and runs every stream as a ``RemotePipeline`` on a worker.

Modules, one job each:

- ``settings``: ``ClusterSettings`` (standard library only).
- ``loading``: ``TrackerSpec``, the picklable recipe a worker loads the model with.
- ``connect``: the Ray calls (join, actor shape, call/kill, what a dead worker raises).
- ``worker``: ``StreamWorker``, the actor's class: model, registry, pipelines, sinks, ``poll``.
- ``results``: the wire types and the bounded drop-oldest result buffer.
- ``id_grants``: the tracker-id grant protocol that keeps ids unique across failover.
- ``placement``: the least-loaded-with-room rule.
- ``remote_pipeline``: ``RemotePipeline``, a remote stream as the manager's ``ManagedPipeline``.
- ``pool``: ``StreamCluster``: workers, pollers, placement, failover, waiting streams.
"""
