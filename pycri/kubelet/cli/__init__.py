"""``pycri-kubelet``: a kubelet for one node on any CRI endpoint, with kubectl-style commands.

    pycri-kubelet serve --manifests DIR --endpoint unix:///run/containerd/containerd.sock
    pycri-kubelet run web --image busybox --image-pull-policy IfNotPresent -- sleep 3600
    pycri-kubelet apply -f pod.yaml
    pycri-kubelet get pods -o wide
    pycri-kubelet logs web -f
    pycri-kubelet exec web -- ls /
    pycri-kubelet scale deployment/api --replicas 3
    pycri-kubelet delete pod web

This package is the kubelet's command-line layer: the commands
(``*_commands``), what they print (``tables``, ``describe``, ``apiobject``,
``timefmt``), the manifests ``run`` writes (``generate``) and what every
command shares (``session``, ``settings``). It builds on the engine
(:mod:`pycri.kubelet.sync`) and the model (:mod:`pycri.kubelet.model`);
neither imports it. docs/kubelet.md says where everything lives.
"""

from __future__ import annotations

import click

from pycri import __version__
from pycri.kubelet.cli import (
    container_commands,
    daemon_commands,
    inspect_commands,
    workload_commands,
)

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pycri-kubelet")
def cli() -> None:
    """A kubelet for one node: run Pod manifests through any CRI endpoint and keep them alive.

    `serve` is the daemon; the other commands are kubectl's, for this node.
    Every command takes --endpoint, --root-dir, --manifests, --log-root and
    --node-name; while a daemon runs, commands find its settings in ROOT/kubelet.json.
    """


for _module in (daemon_commands, workload_commands, inspect_commands, container_commands):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="pycri-kubelet")
