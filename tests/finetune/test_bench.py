"""The fine-tuning benchmark's pieces without a model: the modelled gold frontier (a stand-in), the share at 95% of
the frontier's quality, the epochs rule, and the report's keys from a recorded run."""

import json

from openfirst.finetune.bench import GoldFrontier, at_quality, epochs_for, markdown


def test_the_gold_frontier_answers_with_the_annotation_and_drops_slots_when_imperfect():
    gold = {"play jazz": {"genre": "jazz"}, f"text {0}": {"a": "1", "b": "2"}}
    perfect = GoldFrontier(gold)
    conv = [{"role": "system", "content": "x"}, {"role": "user", "content": "play jazz"}]
    (g,) = perfect.generate([conv], None, 50)
    assert json.loads(g.text) == {"genre": "jazz"} and g.model == "gold-annotation"
    noisy = GoldFrontier({f"t{i}": {"a": "1", "b": "2"} for i in range(200)}, accuracy=0.7)
    outs = noisy.generate([[{"role": "user", "content": f"t{i}"}] for i in range(200)], None, 50)
    dropped = sum(len(json.loads(o.text)) == 1 for o in outs)
    assert 30 <= dropped <= 90  # about 30% lose one slot, seeded
    assert [o.text for o in outs] == [o.text for o in noisy.generate(
        [[{"role": "user", "content": f"t{i}"}] for i in range(200)], None, 50)]


def test_share_at_quality_and_epochs():
    policy = {"curve": {"share": [0.0, 0.5, 1.0], "accuracy": [0.5, 0.96, 1.0]}}
    assert at_quality(policy, 1.0) == 0.5 and at_quality(policy, 1.0, 0.99) == 1.0
    assert at_quality({"curve": {"share": [0.0, 1.0], "accuracy": [0.1, 0.5]}}, 1.0) is None
    assert epochs_for(70, None) == 3 and epochs_for(300, None) == 1 and epochs_for(None, None) == 1
    assert epochs_for(300, 2) == 2


def test_the_markdown_report_names_every_part():
    per = {"AddToPlaylist": {"macro_f1": 0.5}}
    res = {"slot_f1": {"macro": 0.5, "per_intent": per}, "all_right": 0.3, "local_seconds_per_utterance": 0.4,
           "cascade": {"apgr": 0.6, "cpt_50": 0.3, "cpt_80": 0.5}, "cascade_curve": {"share": [0, 1],
                                                                                    "accuracy": [0.3, 1]},
           "at_95pct_frontier_quality": {"frontier_share": 0.9, "cost_per_utterance_usd": 0.002}}
    tuned = dict(res, epochs=3, examples=488, train_seconds=700.0, train_tokens_per_s=200.0, dtype="float32",
                 threads=2, peak_memory_gib=4.0, loss_first=2.0, loss_last=0.1, export_seconds=20.0)
    out = {"local_model": "m", "cpu": "c", "frontier": "gold", "base": res, "tuned": {"70": tuned},
           "seconds": 1.0, "gguf_types": {"utterances_per_intent": 20, "by_type": {"Q8_0": {
               "slot_f1": 0.6, "all_right": 0.4, "bytes": 2**20}}},
           "distillation": {"served_per_intent": 70, "cascade_threshold": 0.6, "frontier": "gold",
                            "learnt_examples": 300, "train_seconds": 500.0, "validate_per_intent": 30,
                            "before": {"all_right": 0.9, "frontier_share": 0.8},
                            "after": {"all_right": 0.9, "frontier_share": 0.4}}}
    md = markdown(out)
    for part in ("LoRA-tuned", "Snips NLU", "CPT(80%)", "GGUF type", "Distillation replay", "| 70 | 488 | 3 |"):
        assert part in md
