"""The CRI streaming server: Exec, Attach and PortForward over WebSocket and SPDY/3.1.

``Exec``/``Attach``/``PortForward`` return a one-time URL on
:class:`~pycri.streaming.server.StreamingServer`; clients (crictl, kubectl
through the kubelet, ``pycrictl``) upgrade it and the session runs against
the shim's ``exec_stream``/``attach``/``port_forward``.

Modules: :mod:`.streams` (what shims are handed); :mod:`.server`,
:mod:`.http`, :mod:`.negotiation` and :mod:`.tokens` (the endpoint);
:mod:`.channels`, :mod:`.spdy`, :mod:`.spdysession` and :mod:`.transport`
(wire formats); :mod:`.remotecommand` and :mod:`.portforward` (sessions);
:mod:`.pump`, :mod:`.process` and :mod:`.netns` (helpers for shims);
:mod:`.client` (what pycrictl uses).
Only the light stream types are imported here, so that ``pycri.shim`` can
use them without pulling in the server.
"""

from pycri.streaming.streams import (
    Output,
    Pipe,
    PortConnection,
    ResizeQueue,
    StreamIO,
    TerminalSize,
)

__all__ = ["Output", "Pipe", "PortConnection", "ResizeQueue", "StreamIO", "TerminalSize"]
