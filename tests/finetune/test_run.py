"""End to end on the tiny random model: `openfirst finetune` writes adapter, merged weights, GGUF and a
card that records base, tasks, prompt, data, hyper-parameters, training and held-out metrics."""

import pytest

pytestmark = pytest.mark.slow


def test_the_artifact_holds_every_part_and_a_card(tuned_dir, tiny_model_dir):
    from openfirst.finetune.artifact import load_card

    tuned = load_card(tuned_dir)
    card = tuned.card
    assert (tuned_dir / "adapter" / "adapter_config.json").is_file() and (tuned_dir / "merged" / "config.json").is_file()
    assert tuned.gguf.stat().st_size > 0 and not (tuned_dir / "checkpoint").exists()
    assert card["base"]["name"] == tiny_model_dir.name and len(card["base"]["sha256"]) == 64
    assert list(card["tasks"]) == ["SupportTicket"] and card["prompt"] == {"schema_in_prompt": "none",
                                                                           "examples": False}
    assert card["data"]["examples"] == 24 and card["data"]["train"] + card["data"]["held_out"] == 24
    assert card["hyperparameters"]["lora_rank"] == 16 and card["training"]["steps"] > 0
    h = card["held_out_metrics"]
    assert h["examples"] == card["data"]["held_out"] and h["held_out_loss_after"] < h["held_out_loss_before"]
    assert card["versions"]["peft"] != "not installed" and "model.gguf" in card["files"]
