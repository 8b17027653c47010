"""LoRA training on the tiny random model: an interrupted run resumes from its checkpoint and ends where an
uninterrupted run ends."""


import pytest

from tests.helpers import TASK, ticket_examples

pytestmark = pytest.mark.slow


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_model_dir):
    """Fault injection: a KeyboardInterrupt after step 3; the rerun resumes there and ends where an uninterrupted
    run ends."""
    import torch
    from peft import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openfirst.compiler.task import load_task
    from openfirst.finetune.examples import read_labelled
    from openfirst.finetune.prompt import TunedPrompt
    from openfirst.finetune.train import LoraTrainer, TrainConfig, encode

    task = load_task(TASK)
    ts = read_labelled(ticket_examples(tmp_path / "d.jsonl", 32), task)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc, _ = encode(ts.examples, ts.tasks, tok, TunedPrompt(), 1024)
    cfg = TrainConfig(epochs=1, batch_size=4, checkpoint_every_s=0.0)

    def trainer():
        return LoraTrainer(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, cfg)

    def stop(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer().fit(enc, [], checkpoint_dir=tmp_path / "ck", progress=False, on_step=stop)
    assert (tmp_path / "ck" / "checkpoint.pt").is_file()
    resumed = trainer()
    report = resumed.fit(enc, [], checkpoint_dir=tmp_path / "ck", progress=False)
    assert report.resumed_from_step == 3 and report.steps == 8 and len(report.losses) == 8
    clean = trainer()
    clean.fit(enc, [], progress=False)
    a, b = get_peft_model_state_dict(resumed.model), get_peft_model_state_dict(clean.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not (tmp_path / "ck" / "checkpoint.pt").exists()
