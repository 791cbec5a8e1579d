"""sh: the small POSIX shell that the fake runtime's containers run.

Why it exists: a container of the fake runtime runs a real argv, so that
``echo hi`` logs ``hi``, ``sleep 5`` takes five seconds, ``sh -c 'exit 3'``
exits 3, ``nginx`` answers HTTP on port 80 of the pod and ``exec -it sh``
gives a prompt. Everything runs in Python threads over an in-memory
filesystem; nothing of the host is executed.

Scope, the POSIX sh subset: ``;`` ``&&`` ``||`` ``|`` ``!`` and newlines;
``while``/``until``, ``for``, ``if``/``elif``/``else``, ``( ... )``,
``{ ...; }``, ``break``, ``continue``; quoting (single, double, backslash);
``$VAR`` ``${VAR}`` ``${VAR:-x}`` (and ``-`` ``=`` ``+`` ``?`` with or without
``:``) ``${#VAR}`` ``$?`` ``$$`` ``$0..$9`` ``$#`` ``$@`` ``$*``; ``$(...)``,
backticks and ``$((...))`` (integers, C's operators); field splitting on
whitespace; redirections ``>`` ``>>`` ``<`` ``2>&1`` ``>&2`` ``&>`` to ``/dev/null``,
``/dev/stdout``, ``/dev/stderr`` or files of the in-memory filesystem;
``set -e``; ``trap ACTION TERM|EXIT``; an interactive mode on a live
stdin, with a prompt and ``^C`` on a terminal.

Commands: exactly the names of :data:`.commands.COMMANDS`, one table:
shell builtins (``exit cd export set trap``...), busybox-like tools
(``echo printf cat grep head tail wc seq sleep env id date test``...),
``read tty stty``, servers that listen on the pod's network (``nginx
httpd redis-server postgres``..., ``nc -l``) and clients (``nc wget``),
shells (``sh ash bash dash``), ``pause`` and entrypoint wrappers (``tini``...).
Any other name is ``sh: NAME: not found``, status 127.

Deliberately not done: ``case``, functions, here-documents, globbing,
aliases, ``PATH`` lookup (``/any/dir/NAME`` runs NAME), background jobs
(a trailing ``&`` runs in the foreground), file descriptors beyond 0-2,
networking between pods. ``case``, functions and here-documents are
syntax errors and unknown tools ``not found``; globbing is the one silent
difference (``*`` stays literal), and a trailing ``&`` waits.

Held to busybox: tests/integration/test_differential_state.py and
tests/integration/test_pycrictl_differential.py run the same commands on the
fake and on busybox in real containers (dockerd, containerd);
tests/integration/test_streaming_crictl.py runs the same interactive
sessions on every shim. tests/unit/test_fake_processes.py pins the rest.

Modules: :mod:`.lexer` and :mod:`.parser` (script -> tree),
:mod:`.interpreter` (the :class:`~.interpreter.Shell` that expands and runs
it), :mod:`.arithmetic`, :mod:`.control` (signals and unwinding),
:mod:`.context` and :mod:`.filesystem` (where a process runs), the command
modules (:mod:`.shell_commands`, :mod:`.text_commands`,
:mod:`.system_commands`, :mod:`.terminal_commands`, :mod:`.network_commands`
with :mod:`.servers`, :mod:`.programs`) and :mod:`.commands`, the table.
Importing this package runs nothing and registers nothing.
"""
