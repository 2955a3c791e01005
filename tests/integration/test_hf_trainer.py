"""Seq2SeqTrainer fine-tunes a pyramidion made by from_bart (no fairseq): the loss goes down with
gradient checkpointing on, and the saved model loads back computing exactly the same.

A tiny Hugging Face BART (tests/support/bart.py) made long (6x its positions), summaries = the first
words of each document, documents longer than BART's positions so that the poolers select.
"""
import pytest
import torch

pytest.importorskip("accelerate")   # transformers' Trainer needs it (the [hf] / [test] extras)

from tests.support.bart import SIZES, corpus, make_hf_bart  # noqa: E402

LONG = 6 * SIZES["positions"]


def examples(tokenizer, n=16, seed=4):
    docs = corpus(n, seed=seed, min_words=60, max_words=120)
    out = []
    for doc in docs:
        enc = tokenizer(doc, truncation=True, max_length=LONG)
        target = tokenizer(" ".join(doc.split()[:8]))["input_ids"]
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                    "labels": target})
    assert max(len(e["input_ids"]) for e in out) > SIZES["positions"]
    return out


def test_seq2seq_trainer_fine_tunes_and_round_trips(tmp_path):
    from transformers import (DataCollatorForSeq2Seq, Seq2SeqTrainer,
                              Seq2SeqTrainingArguments)

    from deep_pyramidion.hf import PyramidionForConditionalGeneration
    from deep_pyramidion.hf.from_bart import pyramidion_tokenizer_from_bart

    source = make_hf_bart(tmp_path)
    tokenizer = pyramidion_tokenizer_from_bart(source, str(tmp_path / "tok"))
    model = PyramidionForConditionalGeneration.from_bart(source, max_source_positions=LONG,
                                                         dropout=0.0)
    data = examples(tokenizer)
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    # transformers 5.25 renamed gradient_checkpointing (the old name warns)
    fields = Seq2SeqTrainingArguments.__dataclass_fields__
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields \
        else "gradient_checkpointing"
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=100,
        learning_rate=3e-3, warmup_steps=0, logging_steps=10, save_strategy="no",
        report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True,
        **{checkpointing: True})
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=data, eval_dataset=data,
                             data_collator=collator, processing_class=tokenizer)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    assert model.model.encoder.gradient_checkpointing       # the encoder layers were recomputed
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.7 * before, (before, after)

    trainer.save_model(str(tmp_path / "tuned"))
    again = PyramidionForConditionalGeneration.from_pretrained(str(tmp_path / "tuned")).eval()
    model.eval()
    batch = collator(data[:3])
    with torch.no_grad():
        a = model(**batch).logits
        b = again(**batch).logits
    assert torch.equal(a, b)


def test_seq2seq_trainer_steps_with_the_selection_loss(tmp_path):
    """selection_loss=1 (topk's scorers taught which input tokens the summary uses): the Trainer's
    step computes the loss with the selection term and updates the scorers."""
    from transformers import (DataCollatorForSeq2Seq, Seq2SeqTrainer,
                              Seq2SeqTrainingArguments)

    from deep_pyramidion.hf import PyramidionForConditionalGeneration
    from deep_pyramidion.hf.from_bart import pyramidion_tokenizer_from_bart

    source = make_hf_bart(tmp_path)
    tokenizer = pyramidion_tokenizer_from_bart(source, str(tmp_path / "tok"))
    model = PyramidionForConditionalGeneration.from_bart(
        source, max_source_positions=LONG, dropout=0.0, encoder_pooling="topk", selection_loss=1,
        selection_weight=2.0)
    assert (model.config.selection_loss, model.config.selection_weight) == (1, 2.0)
    scorers = {n: p.detach().clone() for n, p in model.named_parameters() if "poolers" in n}
    assert scorers
    data = examples(tokenizer, n=4)
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    model.train()
    with torch.no_grad():                                 # the training loss holds the term
        with_term = model(**collator(data)).loss
        model.config.selection_loss = 0
        without = model(**collator(data)).loss
        model.config.selection_loss = 1
    assert with_term > without
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=1,
        learning_rate=1e-3, warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=data, data_collator=collator,
                             processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
    assert any(not torch.equal(p, scorers[n]) for n, p in model.named_parameters() if n in scorers)
