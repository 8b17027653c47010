"""A short live fine-tune of the embedded SmolLM2 on a handful of real SNIPS examples: the held-out loss falls, the
GGUF is quantised like the base model's, and the tuned model answers on llama.cpp."""

import pytest

pytestmark = pytest.mark.slow


def test_a_short_live_fine_tune_lowers_the_held_out_loss(tmp_path, data_dir):
    from openfirst.finetune.examples import read_snips
    from openfirst.finetune.gguf_export import gguf_file_type
    from openfirst.finetune.run import finetune
    from openfirst.finetune.train import TrainConfig

    data = read_snips("snips:GetWeather", 24, data_dir)
    tuned = finetune(data, tmp_path / "weather", config=TrainConfig(epochs=2, batch_size=4), held_out_share=0.25,
                     max_eval=4, progress=False, log=lambda m: None)
    h = tuned.card["held_out_metrics"]
    assert h["examples"] == 4 and h["held_out_loss_after"] < 0.8 * h["held_out_loss_before"]
    assert h["valid_share"] == 1.0
    assert gguf_file_type(tuned.gguf) == "Q8_0" == tuned.card["gguf"]["type"]

    pytest.importorskip("vllm")
    from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend
    from openfirst.compiler.program import Program, ProgramOptions, Result
    from openfirst.finetune.serving import tuned_task

    task, options = tuned_task(tuned.path, data.tasks["GetWeather"], ProgramOptions(max_tokens=60))
    backend = IsolatedBackend(EngineSpec("vllm", str(tuned.path), {"max_model_len": 1024}))
    try:
        out = Program(task, backend, options).run_many(["will it rain in Paris tomorrow"])[0]
    finally:
        backend.close()
    assert isinstance(out, Result) and backend.model_name.startswith(str(tuned.path))  # its merged weights
