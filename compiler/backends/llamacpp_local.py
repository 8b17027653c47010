"""In-process llama.cpp (llama-cpp-python) through outlines, on the embedded GGUF: the fastest engine per request.

llama.cpp runs its own generation loop; openfirst's grammar (compiled by llguidance for the GGUF's own vocabulary,
bounded whitespace) is an outlines logits processor (`GrammarLogitsProcessor`) it applies at every step, so the Q4_1
weights serve directly: no conversion to transformers weights. llama.cpp applies its repetition penalty after the
grammar mask. One conversation at a time (llama-cpp-python has no batch API; outlines' `generate_batch` for
llama.cpp raises NotImplementedError); calls are serialised by a lock.

By default the processor is handed to llama.cpp's own `create_chat_completion`, not to outlines' `LlamaCpp`
wrapper (`via_outlines=True` uses the wrapper): outlines calls `Llama.reset()` after every generation, which
throws away llama.cpp's reuse of the previous prompt's KV cache. Measured here on a 379-token support-ticket
prompt: 1.6 s per call through outlines, 0.27 s through the engine's API once the prompt prefix was cached
(few-shot prompts share long prefixes). The wrapper also returns text only (no finish reason, no usage).
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from openfirst.compiler.backends.base import Generation, GrammarBackend
from openfirst.compiler.backends.grammar_logits_processor import GrammarLogitsProcessor, generated_tokens_penalty
from openfirst.compiler.confidence import pieces_from_ids
from openfirst.compiler.errors import BackendError
from openfirst.compiler.tokenizer import TokenizerInfo


def gguf_path(model_path: str | Path | None) -> tuple[Path, str]:
    """(the GGUF file, the model's name): `None` is the embedded SmolLM2-135M-Instruct (Q4_1). Checks that
    llama-cpp-python is installed and the file exists."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise BackendError("llama-cpp-python is not installed",
                           hint="bash .ci/build_llamacpp (a portable build), or pip install 'openfirst[llamacpp]'"
                           ) from exc
    if model_path is None:
        from openfirst.compiler.tokenizer import SMOLLM2_GGUF, smollm2_gguf_dir

        return smollm2_gguf_dir() / SMOLLM2_GGUF, "SmolLM2-135M-Instruct"
    if not Path(model_path).is_file():
        raise BackendError(f"no GGUF file at {model_path}", hint="pass the path of a .gguf model file")
    return Path(model_path), Path(model_path).stem


def default_threads(n_threads: int | None = None) -> int:
    """llama.cpp's threads: every core this process may use (its affinity, not the host's count)."""
    from openfirst.core.machine import usable_cores

    return n_threads or usable_cores()


def gguf_tokenizer_info(llm: Any, name: str) -> TokenizerInfo:
    """A loaded GGUF's vocabulary for the grammar compiler (a `vocab_only` load is enough: no weights run)."""
    import llama_cpp
    import llguidance.llamacpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    with warnings.catch_warnings():  # llguidance calls a llama.cpp function deprecated per token
        warnings.simplefilter("ignore", DeprecationWarning)
        ll = llguidance.llamacpp.lltokenizer_from_vocab(vocab)
    pieces = b"\x00".join(llm.detokenize([i], special=True) for i in range(llm.n_vocab()))
    return TokenizerInfo(None, ll, hashlib.sha256(pieces).hexdigest(), name)


def load_vocab(model_path: str | Path | None = None) -> tuple[Any, str]:
    """(the GGUF's vocabulary alone (`vocab_only`: tokenizes and detokenizes, never decodes), the model's name)."""
    from llama_cpp import Llama

    path, name = gguf_path(model_path)
    return Llama(str(path), vocab_only=True, verbose=False), name


class Detokenizer:
    """Token ids to text for a llama.cpp model, shaped like a transformers tokenizer's `decode`."""

    def __init__(self, llm: Any):
        self.llm = llm

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.llm.detokenize(list(ids), special=not skip_special_tokens).decode("utf-8", errors="replace")


class LlamaCppBackend(GrammarBackend):
    """A GGUF model in this process; `load()` with no path serves the embedded SmolLM2-135M-Instruct (Q4_1)."""

    name = "llama.cpp"
    streams_tokens = True

    def __init__(self, llm: Any, model_name: str, *, via_outlines: bool = False, penalise_prompt: bool = False):
        import outlines

        self.llm = llm
        self.model_name = model_name
        self.via_outlines = via_outlines
        self.penalise_prompt = penalise_prompt  # True: llama.cpp's own repeat_penalty, over the prompt's tokens too
        self.model = outlines.from_llamacpp(llm)
        self._info: TokenizerInfo | None = None
        self._lock = threading.Lock()
        self.tokenizer = Detokenizer(llm)  # what token streaming decodes with
        self.threads: int | None = None  # set by `load`

    @classmethod
    def load(cls, model_path: str | Path | None = None, *, n_ctx: int = 4096, n_threads: int | None = None,
             seed: int = 0, via_outlines: bool = False) -> "LlamaCppBackend":
        """Load a GGUF file (default: the embedded SmolLM2) with all usable cores."""
        from llama_cpp import Llama

        path, name = gguf_path(model_path)
        threads = default_threads(n_threads)
        try:
            llm = Llama(str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp cannot load {path}: {exc}") from exc
        backend = cls(llm, name, via_outlines=via_outlines)
        backend.threads = threads
        return backend

    def tokenizer_info(self) -> TokenizerInfo:
        """The GGUF's own vocabulary, as llguidance reads it from llama.cpp (hashed for the grammar cache)."""
        if self._info is None:
            self._info = gguf_tokenizer_info(self.llm, self.model_name)
        return self._info

    def generate(self, conversations: Sequence[list[dict[str, str]]], grammar: Any, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0, seed: int = 0,
                 on_token: Callable[[int, int], None] | None = None) -> list[Generation]:
        """One conversation after the other; `on_token(row, token_id)` sees each output token (streaming)."""
        return [self._one(row, conv, grammar, max_tokens, temperature, repetition_penalty, seed, on_token)
                for row, conv in enumerate(conversations)]

    def _one(self, row: int, conversation: list[dict[str, str]], grammar: Any, max_tokens: int, temperature: float,
             repetition_penalty: float, seed: int, on_token: Callable[[int, int], None] | None) -> Generation:
        import outlines
        from llama_cpp import LogitsProcessorList
        from outlines.inputs import Chat

        hook = (lambda _, tok: on_token(row, tok)) if on_token is not None else None
        # the penalty over generated tokens only (llama.cpp's own would punish the input's words too), unless asked
        own = self.penalise_prompt
        proc = GrammarLogitsProcessor(grammar, "numpy", eos_ids={self.llm.token_eos()}, max_tokens=max_tokens,
                                      vocab_size=self.tokenizer_info().ll.vocab_size, on_token=hook,
                                      penalty=None if own else generated_tokens_penalty(repetition_penalty))
        kw = dict(max_tokens=max_tokens, temperature=temperature, repeat_penalty=repetition_penalty if own else 1.0)
        with self._lock:
            self.llm.set_seed(seed)
            try:
                if self.via_outlines:
                    text = outlines.Generator(self.model, processor=proc)(Chat(list(conversation)), **kw)
                else:
                    out = self.llm.create_chat_completion(list(conversation),
                                                          logits_processor=LogitsProcessorList([proc]), **kw)
                    text = out["choices"][0]["message"]["content"] or ""
            except ValueError as exc:  # llama.cpp refuses e.g. a prompt longer than its context: this input fails
                self.llm.reset()
                hint = "shorten the input or load the model with a larger n_ctx" if "context" in str(exc) else None
                return Generation.failed(BackendError(f"llama.cpp refused the request: {exc}", hint=hint),
                                         self.model_name)
        if not proc.rows:  # max_tokens 0 or an empty generation: the processor never ran
            return Generation(text, 0, 0, False, model=self.model_name, token_ids=[], token_logprobs=[])
        ids = proc.tokens[0]
        pieces = pieces_from_ids(ids, lambda t: self.llm.detokenize(t).decode("utf-8", errors="ignore"))
        return Generation(text, proc.prompt_tokens[0], proc.completion_tokens(0), proc.finished(0),
                          model=self.model_name, token_ids=ids, token_texts=pieces, token_logprobs=proc.logprobs[0])
