#!/usr/bin/env python
"""A local Hugging Face BART made long and fine-tuned with transformers' Seq2SeqTrainer, no fairseq:
from_bart -> Seq2SeqTrainer on text splits -> a folder that loads anywhere (README: "Hugging Face").

    python scripts/hf_finetune.py --bart bart-base/ --text data/aclsum --out runs/aclsum-hf \\
        --max-source-positions 8192 --max-steps 2000
    python scripts/hf_summarize.py --model runs/aclsum-hf data/aclsum/test-A.src > hyps.txt

--bart is a Hugging Face BART folder (config.json, model.safetensors, vocab.json + merges.txt),
read locally; --text holds the prepare scripts' splits (train.src / train.tgt, one document per
line; dev-0 for the evaluation loss when it is there). --out receives the fine-tuned model, its
tokenizer, the generation config of configs/generate/bart.args and the model's code (auto_map,
custom_pipelines), so AutoModelForSeq2SeqLM.from_pretrained(OUT, trust_remote_code=True) and
pipeline("summarization", model=OUT, trust_remote_code=True) load it with transformers alone.
The Trainer's own files go to OUT/trainer (checkpoints, logs).
"""
import argparse
import logging
import os
import sys

logger = logging.getLogger("hf_finetune")


def read_split(text_dir: str, split: str):
    pairs = []
    for side in ("src", "tgt"):
        path = os.path.join(text_dir, f"{split}.{side}")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8", newline="\n") as handle:
            pairs.append(handle.read().split("\n"))
    src, tgt = (lines[:-1] if lines and lines[-1] == "" else lines for lines in pairs)
    if len(src) != len(tgt):
        raise SystemExit(f"error: {text_dir}/{split}.src has {len(src)} lines, .tgt {len(tgt)}")
    return list(zip(src, tgt))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/hf_finetune.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bart", required=True, help="a Hugging Face BART folder")
    parser.add_argument("--text", required=True, help="text splits (train.src/.tgt, dev-0)")
    parser.add_argument("--out", required=True, help="where the fine-tuned model is written")
    parser.add_argument("--max-source-positions", type=int, default=8192)
    parser.add_argument("--schedule", help="pooling schedule (default: pyramidion-convert's)")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--max-target-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from deep_pyramidion.hf import PyramidionForConditionalGeneration
    from deep_pyramidion.hf.export import (
        AUTO_MAP, generation_config, mark_remote_code, write_code,
    )
    from deep_pyramidion.hf.from_bart import pyramidion_tokenizer_from_bart

    train = read_split(args.text, "train")
    if not train:
        print(f"error: --text {args.text}: no train.src + train.tgt", file=sys.stderr)
        return 1
    dev = read_split(args.text, "dev-0")
    os.makedirs(args.out, exist_ok=True)
    tokenizer = pyramidion_tokenizer_from_bart(args.bart, args.out)
    model = PyramidionForConditionalGeneration.from_bart(
        args.bart, max_source_positions=args.max_source_positions, schedule=args.schedule,
        seed=args.seed)

    def encode(pairs):
        out = []
        for src, tgt in pairs:
            enc = tokenizer(src, truncation=True, max_length=args.max_source_positions)
            labels = tokenizer(tgt, truncation=True, max_length=args.max_target_tokens)
            out.append({**enc, "labels": labels["input_ids"]})
        return out

    training = Seq2SeqTrainingArguments(
        output_dir=os.path.join(args.out, "trainer"), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, max_steps=args.max_steps,
        learning_rate=args.lr, warmup_steps=min(100, args.max_steps // 10), logging_steps=50,
        save_strategy="no", eval_strategy="no", report_to=[], seed=args.seed,
        use_cpu=args.cpu, dataloader_num_workers=0)
    trainer = Seq2SeqTrainer(model=model, args=training, train_dataset=encode(train),
                             eval_dataset=encode(dev) if dev else None,
                             data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                             processing_class=tokenizer)
    trainer.train()
    if dev:
        logger.info("dev-0 loss %.4f", trainer.evaluate()["eval_loss"])
    mark_remote_code(model.config)
    model.generation_config = generation_config(model.config, {})
    trainer.save_model(args.out)
    tokenizer.init_kwargs["auto_map"] = AUTO_MAP["AutoTokenizer"]
    tokenizer.save_pretrained(args.out)
    write_code(args.out)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
