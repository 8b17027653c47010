"""Local engines in a supervised child process: a native crash costs the requests in flight, not the caller.

llama.cpp, transformers and vLLM run native code that can kill the interpreter (a SIGSEGV in a CPU kernel, an
engine core that exits). `IsolatedBackend` loads the real backend in a spawned child process and forwards each
`generate` call over a pipe; the grammar is compiled in this process (for a tokenizer loaded here without the
weights) and recompiled by the child from its schema, cached by key. When the child dies mid-request, the request
gets a typed, retryable `EngineCrashed` naming the signal, the engine is restarted in the background, `health()`
says `restarting` until it is back, and the next request waits for it. vLLM's own engine core dying (seen by a
watchdog, or reported by the backend as `EngineCrashed`) ends the child the same way, so every local engine behaves
alike.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from openfirst.compiler.backends.base import Backend, Generation
from openfirst.compiler.errors import BackendError, CompilerError, EngineCrashed

log = logging.getLogger("openfirst.engine")
ENGINES = ("llama.cpp", "transformers", "vllm")
_DEAD_ENGINE_EXIT = 70  # the child's exit status when its engine (vLLM's engine core) died under it


@dataclass
class EngineSpec:
    """How the child process loads a local engine: `kind`, `model` (`smollm2`: the embedded one) and the
    backend's load options (llama.cpp: n_ctx, n_threads; transformers: device; vLLM: VLLMOptions fields)."""

    kind: str
    model: str = "smollm2"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise BackendError(f"unknown local engine {self.kind!r}", hint=f"one of {', '.join(ENGINES)}")

    @property
    def constraint(self) -> str:
        return "request" if self.kind == "vllm" else "grammar"

    @property
    def gguf(self) -> str | None:
        """llama.cpp's GGUF path, None for the embedded one (a tuned model's folder: its GGUF)."""
        return None if self.model == "smollm2" else self.weights

    @property
    def weights(self) -> str:
        """What the engine loads: `model`, or for a tuned model's folder (openfirst finetune) its part for this
        engine, checksums verified: the GGUF for llama.cpp, the merged weights for transformers and vLLM."""
        from openfirst.finetune.artifact import is_tuned_model, load_card

        if not is_tuned_model(self.model):
            return self.model
        tuned = load_card(self.model)
        return str(tuned.gguf if self.kind == "llama.cpp" else tuned.merged)

    def load(self) -> Backend:
        """The real backend, in this process (the child calls it)."""
        if self.kind == "llama.cpp":
            from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend

            return LlamaCppBackend.load(self.gguf, **self.options)
        if self.kind == "transformers":
            from openfirst.compiler.backends.transformers_local import TransformersBackend

            return TransformersBackend.load(self.weights, **self.options)
        from openfirst.compiler.backends.vllm_offline import VLLMOfflineBackend, VLLMOptions

        return VLLMOfflineBackend.load(VLLMOptions.for_this_machine(model=self.weights, **self.options))

    def tokenizer(self) -> tuple[Any, Any]:
        """(TokenizerInfo for the grammar compiler, a tokenizer with `decode`) loaded without the weights."""
        if self.kind == "llama.cpp":
            from openfirst.compiler.backends.llamacpp_local import Detokenizer, gguf_tokenizer_info, load_vocab

            vocab, name = load_vocab(self.gguf)
            return gguf_tokenizer_info(vocab, name), Detokenizer(vocab)
        from transformers import AutoTokenizer

        from openfirst.compiler.backends.transformers_local import model_source
        from openfirst.compiler.tokenizer import tokenizer_info

        path, name = model_source(self.weights)
        try:
            tok = AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise BackendError(f"cannot load the tokenizer of {self.model!r}: {exc}") from exc
        return tokenizer_info(tok, name), tok


@dataclass
class GrammarRef:
    """A compiled grammar as it crosses to the child: enough to compile it again there (cached by `key`)."""

    engine: str
    key: str
    schema: dict
    report: Any


class IsolatedBackend(Backend):
    """A local engine in a supervised child process (see the module's docstring). One request at a time, as the
    in-process engines run them; `close()` stops the child."""

    remote = False

    def __init__(self, spec: EngineSpec, *, start_timeout_s: float = 900.0):
        self.spec = spec
        self.name = spec.kind
        self.constraint = spec.constraint  # type: ignore[misc]  # an instance's answer to the class question
        self.streams_tokens = spec.kind != "vllm"  # type: ignore[misc]
        self.model_name = spec.model
        self.start_timeout_s = start_timeout_s
        self.state = "starting"  # starting | ok | restarting | down | closed
        self.crashes = 0
        self.restarts = 0
        self.last_crash: str | None = None
        self.last_error: str | None = None
        self.engine_info: dict[str, Any] = {}
        self.busy = False  # a request is in the child now
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()  # one request at a time
        self._back = threading.Event()  # set when no restart is under way
        self._back.set()
        self._info: Any = None
        self._tokenizer: Any = None
        self._start()
        self.state = "ok"
        # the child is not a daemon (vLLM starts processes of its own): stop it before multiprocessing's exit
        # handler would wait for it (atexit runs handlers last-registered first)
        atexit.register(self.close)

    # -- what Program and ThreadedBackend use -----------------------------------------------------------
    def tokenizer_info(self) -> Any:
        if self._info is None:
            self._info, self._tokenizer = self.spec.tokenizer()
        return self._info

    @property
    def tokenizer(self) -> Any:
        self.tokenizer_info()
        return self._tokenizer

    def constraint_for(self, task: Any) -> Any:
        from openfirst.compiler.backends.vllm_offline import vllm_constraint

        return vllm_constraint(task)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def health(self) -> dict[str, Any]:
        """The engine's state for /healthz and `openfirst doctor`."""
        return {"engine": self.name, "model": self.model_name, "state": self.state, "pid": self.pid,
                "busy": self.busy, "crashes": self.crashes, "restarts": self.restarts, "last_crash": self.last_crash,
                "last_error": self.last_error, **self.engine_info}

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0,
                 on_token: Callable[[int, int], None] | None = None) -> list[Generation]:
        if not conversations:
            return []
        if hasattr(constraint, "matcher"):  # a CompiledGrammar: the child compiles it again from its schema
            constraint = GrammarRef(constraint.engine, constraint.key, constraint.schema, constraint.report)
        request = ("generate", [list(c) for c in conversations], constraint, max_tokens, temperature,
                   repetition_penalty, on_token is not None)
        with self._lock:
            problem = self._ensure_running()
            if problem is not None:
                return [Generation.failed(problem, self.model_name) for _ in conversations]
            try:
                self.busy = True
                self._conn.send(request)
                return self._receive(len(conversations), on_token)
            except (BrokenPipeError, EOFError, ConnectionResetError, OSError):
                return self._crashed(len(conversations))
            finally:
                self.busy = False

    def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        atexit.unregister(self.close)
        self._back.wait(self.start_timeout_s)
        self._stop()

    # -- the child process ---------------------------------------------------------------------------
    def _start(self) -> None:
        """Spawn the child and wait until its engine is loaded; BackendError when it cannot load or dies."""
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        # not a daemon: vLLM's engine starts processes of its own; the child exits when this process is gone
        proc = ctx.Process(target=engine_main, args=(theirs, self.spec, os.getpid()), daemon=False,
                           name=f"openfirst-{self.name}-engine")
        proc.start()
        theirs.close()
        deadline = time.monotonic() + self.start_timeout_s
        while not ours.poll(0.2):
            if not proc.is_alive():
                ours.close()
                why = exit_reason(proc.exitcode)
                raise BackendError(f"the {self.name} engine process died while loading {self.spec.model}: {why}",
                                   hint="run `openfirst doctor` to see which local engines run on this machine")
            if time.monotonic() > deadline:
                proc.kill()
                raise BackendError(f"the {self.name} engine did not load in {self.start_timeout_s:g} s")
        try:
            kind, *rest = ours.recv()
        except EOFError:
            proc.join(5)
            raise BackendError(f"the {self.name} engine process died while loading: {exit_reason(proc.exitcode)}"
                               ) from None
        if kind == "failed":
            proc.join(10)
            raise _rebuild_error(rest[0])
        self.model_name, self.engine_info = rest[0], rest[1]
        self._proc, self._conn = proc, ours

    def _stop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        if self._proc is not None:
            self._proc.join(30)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def _ensure_running(self) -> CompilerError | None:
        """Wait for a restart under way; try once more to start an engine that is down. None: it runs."""
        if not self._back.wait(self.start_timeout_s):
            return EngineCrashed(f"the {self.name} engine is still restarting", hint="retry shortly")
        if self.state == "closed":
            return BackendError(f"the {self.name} engine was closed")
        if self.state == "down":
            self._restart_now()
        if self.state != "ok":
            return BackendError(f"the {self.name} engine is down: {self.last_error}", retryable=True,
                                hint="run `openfirst doctor`; the next request tries to start it again")
        return None

    def _receive(self, rows: int, on_token: Callable[[int, int], None] | None) -> list[Generation]:
        while True:
            if not self._conn.poll(0.1):
                if not self._proc.is_alive():
                    return self._crashed(rows)
                continue
            kind, *rest = self._conn.recv()
            if kind == "token":
                if on_token is not None:
                    on_token(*rest)
            elif kind == "done":
                return [_rebuild_generation(g) for g in rest[0]]
            elif kind == "engine-dead":
                self._proc.join(30)
                return self._crashed(rows, rest[0])

    def _crashed(self, rows: int, detail: str | None = None) -> list[Generation]:
        """The child died under a request: typed errors for its rows, a restart in the background."""
        proc = self._proc
        proc.join(5)
        sig = signal_name(proc.exitcode)
        why = detail or exit_reason(proc.exitcode)
        self.crashes += 1
        self.last_crash = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {why}"
        log.error("the %s engine process (pid %s) died mid-request: %s; restarting it", self.name, proc.pid, why)
        self._conn.close()
        self._proc = self._conn = None
        self.state = "restarting"
        self._back.clear()
        threading.Thread(target=self._restart_now, name=f"openfirst-{self.name}-restart", daemon=True).start()
        err = EngineCrashed(f"the local {self.name} engine crashed ({why}) while running this request; it is being "
                            "restarted", signal=sig, hint="send the request again")
        return [Generation.failed(err, self.model_name) for _ in range(rows)]

    def _restart_now(self) -> None:
        try:
            if self.state == "closed":
                return
            self.state = "restarting"
            self._back.clear()
            self._start()
            if self.state == "closed":  # closed while it was starting
                self._stop()
                return
            self.restarts += 1
            self.state = "ok"
            self.last_error = None
            log.warning("the %s engine is back (pid %s)", self.name, self.pid)
        except CompilerError as exc:
            self.state, self.last_error = "down", str(exc)
            log.error("the %s engine could not be restarted: %s", self.name, exc)
        finally:
            self._back.set()


def signal_name(exitcode: int | None) -> str | None:
    """SIGSEGV for a process killed by signal 11; None for a normal exit."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def exit_reason(exitcode: int | None) -> str:
    sig = signal_name(exitcode)
    if sig is not None:
        return f"killed by {sig}"
    if exitcode == _DEAD_ENGINE_EXIT:
        return "its engine core died"
    return f"exit status {exitcode}"


# -- the child's side -------------------------------------------------------------------------------------
def engine_main(conn: Any, spec: EngineSpec, parent_pid: int) -> None:
    """The child process: load the engine, then serve `generate` requests until told to close or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    try:
        backend = spec.load()
    except BaseException as exc:  # noqa: BLE001 - every load failure goes back to the parent, typed
        conn.send(("failed", _error_fields(exc)))
        return
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    conn.send(("ready", backend.model_name, engine_facts(backend)))
    watch_engine_processes(lambda why: send(("engine-dead", why)))
    grammars: dict[str, Any] = {}
    while True:
        if not conn.poll(1.0):
            if os.getppid() != parent_pid:  # the parent is gone: nobody to answer
                break
            continue
        try:
            kind, *rest = conn.recv()
        except EOFError:
            break
        if kind == "close":
            break
        convs, constraint, max_tokens, temperature, penalty, stream = rest
        if isinstance(constraint, GrammarRef):
            constraint = _grammar(backend, constraint, grammars)
        kw = {"on_token": lambda row, tok: send(("token", row, tok))} if stream else {}
        try:
            gens = backend.generate(convs, constraint, max_tokens, temperature=temperature,
                                    repetition_penalty=penalty, **kw)
        except CompilerError as exc:
            gens = [Generation.failed(exc, backend.model_name) for _ in convs]
        except Exception as exc:  # noqa: BLE001 - an engine error is this request's, typed
            err = BackendError(f"{backend.name} {backend.model_name} failed: {type(exc).__name__}: {exc}")
            gens = [Generation.failed(err, backend.model_name) for _ in convs]
        dead = next((g.error for g in gens if isinstance(g.error, EngineCrashed)), None)
        if dead is not None:  # the backend says its engine is gone (vLLM's EngineDeadError): a restart brings it back
            send(("engine-dead", dead.message))
            os._exit(_DEAD_ENGINE_EXIT)
        send(("done", [_plain_generation(g) for g in gens]))
    backend.close()


def watch_engine_processes(report: Callable[[str], None], period_s: float = 0.5) -> None:
    """Watch the processes the engine started (vLLM's engine core and workers): when one dies, `report` why and
    end this process, since requests in flight would otherwise wait forever (measured: vLLM's `LLM.chat` hung
    after its engine core was killed, and later calls raised EngineDeadError)."""
    watched = {pid: _cmdline(pid) for pid in _children(os.getpid())}
    watched = {pid: cmd for pid, cmd in watched.items() if "resource_tracker" not in cmd}
    if not watched:
        return

    def watch() -> None:
        while True:
            time.sleep(period_s)
            for pid, cmd in watched.items():
                state, status = _process_state(pid)
                if state in (None, "Z", "X"):
                    how = f"killed by {signal_name(-(status & 0x7F))}" if status is not None and status & 0x7F \
                        else "exited"
                    report(f"its engine process {cmd.split()[0] if cmd else pid} (pid {pid}) {how}")
                    os._exit(_DEAD_ENGINE_EXIT)

    threading.Thread(target=watch, name="openfirst-engine-watch", daemon=True).start()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            state = _stat(int(entry.name))
            if state is not None and int(state[1]) == pid:
                out.append(int(entry.name))
    return out


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name: state, ppid, ... (None: no such process)."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _process_state(pid: int) -> tuple[str | None, int | None]:
    """(state letter, wait status once it has exited: field 52 of /proc/PID/stat) or (None, None) when gone."""
    fields = _stat(pid)
    if fields is None:
        return None, None
    status = int(fields[49]) if len(fields) > 49 and fields[0] in "ZX" else None
    return fields[0], status


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
    except OSError:
        return ""


def _grammar(backend: Any, ref: GrammarRef, cache: dict[str, Any]) -> Any:
    if ref.key not in cache:
        from openfirst.compiler.grammar import make_compiler

        cache[ref.key] = make_compiler(ref.engine, backend.tokenizer_info()).compile(ref.schema, ref.report)
    return cache[ref.key]


def engine_facts(backend: Any) -> dict[str, Any]:
    """What a loaded engine computes with, for /healthz and `openfirst doctor`: `dtype` (a GGUF's quantisation,
    the transformers model's dtype, vLLM's dtype) and `threads` (llama.cpp's own, else torch's where torch is
    loaded); a key is left out where the engine does not say."""
    out: dict[str, Any] = {}
    if backend.name == "llama.cpp":
        quant = re.search(r"(?i)(I?Q\d\w*|BF16|F16|F32)\.gguf$", str(getattr(backend.llm, "model_path", "")))
        out["dtype"] = f"GGUF {quant.group(1).upper()}" if quant else "GGUF"
    elif backend.name == "transformers":
        out["dtype"] = str(backend.model.dtype).removeprefix("torch.")
    elif getattr(backend, "dtype", None):
        out["dtype"] = backend.dtype
    if getattr(backend, "threads", None):
        out["threads"] = backend.threads
    elif "torch" in sys.modules:
        out["threads"] = sys.modules["torch"].get_num_threads()
    return out


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": getattr(exc, "message", None) or str(exc),
            "hint": getattr(exc, "hint", None), "retryable": getattr(exc, "retryable", None)}


def _rebuild_error(fields: dict[str, Any]) -> CompilerError:
    """A child's error as the same typed error here (BackendError where the type takes other arguments)."""
    from openfirst.compiler import errors

    cls = getattr(errors, fields["type"], None)
    message = fields["message"] if cls is not None else f"{fields['type']}: {fields['message']}"
    try:
        if isinstance(cls, type) and issubclass(cls, CompilerError):
            return cls(message, hint=fields["hint"], retryable=fields["retryable"])
    except TypeError:
        pass
    return BackendError(message, hint=fields["hint"], retryable=fields["retryable"])


def _plain_generation(g: Generation) -> dict[str, Any]:
    out = dict(vars(g))
    if g.error is not None:
        out["error"] = _error_fields(g.error)
    return out


def _rebuild_generation(fields: dict[str, Any]) -> Generation:
    fields = dict(fields)
    if fields.get("error") is not None:
        fields["error"] = _rebuild_error(fields["error"])
    return Generation(**fields)
