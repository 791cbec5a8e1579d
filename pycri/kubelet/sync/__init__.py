"""The kubelet's engine: make the runtime match the manifests, and report what it did.

``kubelet`` is the :class:`~pycri.kubelet.sync.kubelet.Kubelet` loop;
``observed`` lists what the runtime holds, ``actions`` decides what to
change, ``podsync`` carries that out through CRI calls (with ``criconfig``,
``images``, ``volumes``, ``probes`` and ``backoff``), ``status`` computes
pod status. ``manifestdir``, ``podstate``, ``paths`` and ``lock`` are the
files on the node. It builds on :mod:`pycri.kubelet.model` and never
imports :mod:`pycri.kubelet.cli`.
"""
