"""The fake shell's interpreter: :class:`Shell` expands words and runs the syntax tree.

One :class:`Shell` is one shell level (a process, a subshell, ``sh -c``): its
variables, positional parameters, working directory, ``set -e`` and traps.
It runs what :func:`~pycri_shims.fake.sh.parser.parse` builds, expands words
(parameters, command substitution, arithmetic, field splitting), applies
redirections, and runs commands by looking their names up in the table it
was given (:data:`pycri_shims.fake.sh.commands.COMMANDS`); a name not in the
table is ``sh: NAME: not found``, status 127.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping, Sequence

from pycri_shims.fake.sh.arithmetic import evaluate
from pycri_shims.fake.sh.context import IO, ProcessContext, Writer
from pycri_shims.fake.sh.control import (
    BreakLoop,
    ContinueLoop,
    Control,
    ExitShell,
    ExpansionError,
    Terminated,
)
from pycri_shims.fake.sh.filesystem import ReadOnlyFileSystem
from pycri_shims.fake.sh.lexer import (
    Arith,
    CmdSub,
    Lexer,
    Lit,
    Param,
    Redir,
    ShellSyntaxError,
    Word,
)
from pycri_shims.fake.sh.parser import (
    AndOr,
    ForLoop,
    Group,
    IfNode,
    Loop,
    Node,
    Pipeline,
    Seq,
    Simple,
    parse,
)

__all__ = ["Command", "Shell", "program_name"]

#: a command of the table: ``(shell, arguments, streams) -> exit status``
Command = Callable[["Shell", list[str], IO], int]


def program_name(program: str) -> str | None:
    """The command an argv[0] names (``/bin/echo`` -> ``echo``); None for a relative path."""
    if "/" in program and not program.startswith("/"):
        return None
    return program.rsplit("/", 1)[-1]


class Shell:
    """One shell (or command) level; runs scripts and argv in a ProcessContext."""

    def __init__(
        self,
        ctx: ProcessContext,
        control: Control,
        *,
        commands: Mapping[str, Command],
        name: str = "sh",
        args: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.control = control
        #: the commands this shell can run, by name (children share them)
        self.commands = commands
        self.name = name
        self.positional = list(args)
        self.vars: dict[str, str] = dict(ctx.env if variables is None else variables)
        self.exported: set[str] = set(self.vars)
        self.cwd = cwd or ctx.working_dir or "/"
        self.status = 0
        self.errexit = False
        self.traps: dict[str, str] = {}
        self._conditions = 0

    # -- entry points --------------------------------------------------------

    def run_argv(self, argv: Sequence[str], io: IO) -> int:
        """Run a process's argv (no shell parsing), as an exec would."""
        try:
            return self.run_command(list(argv), io)
        except ExitShell as done:
            return done.status & 0xFF
        except (BreakLoop, ContinueLoop):
            return 0

    def run_script(self, script: str, io: IO) -> int:
        """Run ``script`` as ``sh -c`` would: the status of the last command."""
        try:
            try:
                tree = parse(script)
            except ShellSyntaxError as err:
                io.err(f"{self.name}: {err}\n".encode())
                return 2
            try:
                self.status = self.exec_node(tree, io)
            except ExpansionError as err:
                io.err(f"{self.name}: {err.message}\n".encode())
                self.status = err.status
            except (BreakLoop, ContinueLoop):
                pass
        except ExitShell as done:
            self.status = done.status & 0xFF
        except Terminated:
            handler = self.traps.get("TERM")
            if not (handler and self.control.graceful):
                raise
            self.control.acknowledge()
            self.traps.pop("TERM")
            # Like a real shell, the trap runs and the script then ends (we do not resume it).
            self.status = 143
            self.run_trap(handler, io)
        exit_trap = self.traps.pop("EXIT", "")
        if exit_trap:
            self.run_trap(exit_trap, io)
        return self.status & 0xFF

    def run_trap(self, handler: str, io: IO) -> None:
        try:
            result = self.exec_node(parse(handler), io)
            if result != 0:
                self.status = result
        except ExitShell as done:
            self.status = done.status & 0xFF
        except (ShellSyntaxError, ExpansionError, BreakLoop, ContinueLoop):
            pass

    # -- execution -------------------------------------------------------------

    def exec_node(self, node: Node, io: IO) -> int:
        if isinstance(node, Simple):
            status = self._exec_simple(node, io)
        elif isinstance(node, Seq):
            status = 0
            for item in node.items:
                status = self.exec_node(item, io)
                # set -e ends the script at a failing simple command outside conditions
                if (
                    status
                    and self.errexit
                    and not self._conditions
                    and isinstance(item, Simple | Pipeline | Loop | ForLoop | IfNode | Group)
                    and not (isinstance(item, Pipeline) and item.negate)
                ):
                    raise ExitShell(status)
        elif isinstance(node, AndOr):
            self._conditions += 1
            try:
                status = self.exec_node(node.first, io)
                for index, (op, item) in enumerate(node.rest):
                    if (op == "&&") == (status == 0):
                        if index == len(node.rest) - 1:
                            self._conditions -= 1
                            try:
                                status = self.exec_node(item, io)
                            finally:
                                self._conditions += 1
                        else:
                            status = self.exec_node(item, io)
            finally:
                self._conditions -= 1
        elif isinstance(node, Pipeline):
            status = self._exec_pipeline(node, io)
        elif isinstance(node, Loop):
            status = self._exec_loop(node, io)
        elif isinstance(node, ForLoop):
            status = 0
            values = (
                self.positional
                if node.items is None
                else [v for w in node.items for v in self.expand_word(w)]
            )
            for value in values:
                self.control.check()
                self.vars[node.var] = value
                try:
                    status = self.exec_node(node.body, io)
                except BreakLoop:
                    break
                except ContinueLoop:
                    continue
        elif isinstance(node, Group):
            status = self._exec_group(node, io)
        else:
            status = self._exec_if(node, io)
        self.status = status
        return status

    def _condition(self, seq: Seq, io: IO) -> int:
        self._conditions += 1
        try:
            return self.exec_node(seq, io)
        finally:
            self._conditions -= 1

    def _exec_loop(self, node: Loop, io: IO) -> int:
        status = 0
        while True:
            self.control.check()
            if (self._condition(node.cond, io) == 0) == node.until:
                return status
            try:
                status = self.exec_node(node.body, io)
            except BreakLoop:
                return status
            except ContinueLoop:
                continue
            # an empty busy loop must not starve the other threads of the runtime
            time.sleep(0)

    def _exec_group(self, node: Group, io: IO) -> int:
        if not node.forked:
            return self.exec_node(node.body, io)
        child = self.child(self.name, self.positional)
        child.vars, child.exported = dict(self.vars), set(self.exported)
        child.status, child.errexit = self.status, self.errexit
        try:
            return child.exec_node(node.body, io)
        except ExitShell as done:
            return done.status & 0xFF
        except (BreakLoop, ContinueLoop):
            return 0

    def _exec_if(self, node: IfNode, io: IO) -> int:
        for cond, body in node.branches:
            if self._condition(cond, io) == 0:
                return self.exec_node(body, io)
        if node.otherwise is not None:
            return self.exec_node(node.otherwise, io)
        return 0

    def _exec_pipeline(self, node: Pipeline, io: IO) -> int:
        data = io.stdin
        status = 0
        for index, command in enumerate(node.commands):
            last = index == len(node.commands) - 1
            captured = bytearray()
            out: Writer = io.out if last else captured.extend
            try:
                status = self.exec_node(command, IO(out, io.err, data))
            except ExitShell as done:
                if len(node.commands) == 1:
                    raise
                status = done.status  # each stage of a real pipeline is a subshell
            data = bytes(captured)
        if node.negate:
            return int(status == 0)
        return status

    def _exec_simple(self, node: Simple, io: IO) -> int:
        try:
            return self._exec_simple_checked(node, io)
        except ReadOnlyFileSystem as err:  # a redirection into a read-only mount
            io.err(f"{self.name}: can't create {err.path}: Read-only file system\n".encode())
            return 1

    def _exec_simple_checked(self, node: Simple, io: IO) -> int:
        self.control.check()
        try:
            argv = [v for w in node.words for v in self.expand_word(w)]
            values = [(name, self.expand_string_word(w)) for name, w in node.assigns]
            cmd_io = self._redirect(node.redirs, io)
        except ExpansionError as err:
            io.err(f"{self.name}: {err.message}\n".encode())
            return err.status
        if not argv:
            for name, value in values:
                self.vars[name] = value
            # "X=$(false)" has the status of its command substitution, "X=1" has 0
            substituted = any(
                isinstance(part, CmdSub)
                for word in (*node.words, *(w for _, w in node.assigns))
                for part in word.parts
            )
            return self.status if substituted else 0
        saved = {name: self.vars.get(name) for name, _ in values}
        exported = set(self.exported)
        for name, value in values:
            self.vars[name] = value
            self.exported.add(name)
        try:
            return self.run_command(argv, cmd_io)
        finally:
            for name, old in saved.items():
                if old is None:
                    self.vars.pop(name, None)
                else:
                    self.vars[name] = old
            self.exported = exported

    def resolve(self, path: str) -> str:
        """``path`` made absolute against the shell's working directory."""
        return posixpath.normpath(posixpath.join(self.cwd, path))

    def _redirect(self, redirs: list[Redir], io: IO) -> IO:
        out, err, stdin = io.out, io.err, io.stdin
        for redir in redirs:
            if redir.op == "dup":
                streams = {1: out, 2: err}
                if redir.dup not in streams:
                    raise ExpansionError(f"{redir.dup}: bad file descriptor")
                if redir.fd == 1:
                    out = streams[redir.dup]
                elif redir.fd == 2:
                    err = streams[redir.dup]
                continue
            assert redir.target is not None
            target = self.expand_string_word(redir.target)
            if redir.op == "<":
                data = self.ctx.fs.read(self.resolve(target))
                if data is None:
                    raise ExpansionError(f"can't open '{target}': No such file or directory")
                stdin = data
                continue
            writer = self._file_writer(target, redir.op == ">>", out, err)
            if redir.op == "&>":
                out = err = writer
            elif redir.fd == 1:
                out = writer
            elif redir.fd == 2:
                err = writer
        return IO(out, err, stdin)

    def _file_writer(self, target: str, append: bool, out: Writer, err: Writer) -> Writer:
        special = {"/dev/stdout": out, "/dev/stderr": err, "/dev/null": lambda data: None}
        if target in special:
            return special[target]
        path = self.resolve(target)
        if not append:
            self.ctx.fs.write(path, b"")
        return lambda data: self.ctx.fs.write(path, data, append=True)

    # -- expansion -------------------------------------------------------------------

    def expand_word(self, word: Word) -> list[str]:
        """A word's fields after parameter expansion and field splitting."""
        if len(word.parts) == 1 and word.parts[0] == Param("@", True):
            return list(self.positional)
        fields: list[str] = []
        current = ""
        have = False
        for part in word.parts:
            if isinstance(part, Lit):
                current += part.text
                have = have or part.quoted or bool(part.text)
                continue
            value = self._expand_part(part)
            if part.quoted:
                current += value
                have = True
                continue
            pieces = value.split()
            if value[:1].isspace() and have:
                fields.append(current)
                current, have = "", False
            for index, piece in enumerate(pieces):
                if index:
                    fields.append(current)
                    current = ""
                current += piece
                have = True
            if pieces and value[-1:].isspace():
                fields.append(current)
                current, have = "", False
        if have:
            fields.append(current)
        return fields

    def expand_string_word(self, word: Word) -> str:
        """A word expanded without field splitting (assignments, redirections)."""
        return "".join(p.text if isinstance(p, Lit) else self._expand_part(p) for p in word.parts)

    def expand_string(self, text: str) -> str:
        """Text expanded as if in double quotes."""
        lexer = Lexer(text)
        return self.expand_string_word(Word(tuple(lexer.double_quoted(None))))

    def _param(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(self.ctx.pid)
        if name == "#":
            return str(len(self.positional))
        if name in ("@", "*"):
            return " ".join(self.positional)
        if name == "!":
            return ""
        if name.isdigit():
            index = int(name)
            if index == 0:
                return self.name
            return self.positional[index - 1] if index <= len(self.positional) else None
        if name == "PWD":
            return self.cwd
        return self.vars.get(name)

    def _expand_part(self, part: Param | CmdSub | Arith) -> str:
        if isinstance(part, CmdSub):
            return self._command_substitution(part.script)
        if isinstance(part, Arith):
            return self._arith(part.expr)
        value = self._param(part.name)
        op = part.op
        if op == "#":
            return str(len(value or ""))
        unset = value is None or (op.startswith(":") and value == "")
        if op in (":-", "-"):
            return self.expand_string(part.arg) if unset else value or ""
        if op in (":=", "="):
            if unset:
                value = self.expand_string(part.arg)
                self.vars[part.name] = value
            return value or ""
        if op in (":+", "+"):
            return "" if unset else self.expand_string(part.arg)
        if op in (":?", "?") and unset:
            raise ExpansionError(f"{part.name}: {part.arg or 'parameter not set'}")
        return value or ""

    def _command_substitution(self, script: str) -> str:
        captured = bytearray()
        child = self.child(self.name, self.positional)
        child.vars = dict(self.vars)
        child.exported = set(self.exported)
        self.status = child.run_script(script, IO(captured.extend, lambda _: None, b""))
        return captured.decode(errors="replace").rstrip("\n")

    def _arith(self, expr: str) -> str:
        return str(evaluate(self.expand_string(expr), self.vars, expr))

    # -- commands -----------------------------------------------------------------

    def child(self, name: str, args: Sequence[str]) -> Shell:
        """A new shell level (``sh -c``, a command substitution) with the exported variables."""
        exported = {k: v for k, v in self.vars.items() if k in self.exported}
        return Shell(
            self.ctx,
            self.control,
            commands=self.commands,
            name=name,
            args=args,
            variables=exported,
            cwd=self.cwd,
        )

    def can_run(self, program: str) -> bool:
        """Whether ``program`` names a command of this shell's table (``test -x``)."""
        name = program_name(program)
        return name is not None and name in self.commands

    def run_command(self, argv: list[str], io: IO) -> int:
        """Run one command by its name in the table; 127 when there is none."""
        self.control.check()
        program = argv[0]
        name = program_name(program)
        command = None if name is None else self.commands.get(name)
        if command is None:
            io.err(f"{self.name}: {program}: not found\n".encode())
            return 127
        try:
            return command(self, argv[1:], io)
        except ReadOnlyFileSystem as err:
            io.err(f"{name}: {err.path}: Read-only file system\n".encode())
            return 1
