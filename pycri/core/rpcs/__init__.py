"""The CRI's RPCs, one module per resource, each a mixin of :class:`pycri.core.runtime.CRIRuntime`.

- :mod:`~pycri.core.rpcs.runtime_status`: Version, Status, RuntimeConfig, UpdateRuntimeConfig
- :mod:`~pycri.core.rpcs.sandboxes`: the pod sandbox RPCs (Run/Stop/Remove..., lists)
- :mod:`~pycri.core.rpcs.containers`: the container RPCs (Create/Start/Stop..., lists)
- :mod:`~pycri.core.rpcs.execsync`: ExecSync
- :mod:`~pycri.core.rpcs.interactive`: Exec, Attach, PortForward (the streaming server's URLs)
- :mod:`~pycri.core.rpcs.stats`: container and pod sandbox stats
- :mod:`~pycri.core.rpcs.metrics`: the cAdvisor metrics RPCs
- :mod:`~pycri.core.rpcs.images`: the ImageService
- :mod:`~pycri.core.rpcs.events`: GetContainerEvents
- :mod:`~pycri.core.rpcs.base`: the ``rpc`` decorator and what the groups share
"""
