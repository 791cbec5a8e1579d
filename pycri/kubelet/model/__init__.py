"""The kubelet's model: what a Pod or Deployment is, and how a manifest is read into one.

``spec`` holds the frozen dataclasses; ``manifest`` parses and validates
YAML/JSON documents into them (``podspec`` and ``containerspec`` read the
spec fields, ``fields`` collects the problems, ``quantity`` reads cpu and
memory amounts); ``labels`` names the keys a pod carries on runtime objects.
Pure data and parsing: nothing here talks to a runtime or imports
:mod:`pycri.kubelet.sync` or :mod:`pycri.kubelet.cli`.
"""
