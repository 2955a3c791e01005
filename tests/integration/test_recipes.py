"""configs/ recipes: every flag parses with fairseq's own parsers (through the shell scripts that read
them), and the paper recipes carry the seed's command lines flag for flag."""
import os
import shlex
import subprocess

import pytest
from fairseq import options

import deep_pyramidion.fairseq_plugin  # noqa: F401  (the model's flags, whatever was imported first)
from deep_pyramidion.config import PyramidionConfig
from tests.support.fairseq_runs import SEED_COMMANDS
from tests.support.paths import REPO as ROOT
TRAIN_CONFIGS = sorted((ROOT / "configs" / "train").glob("*.args"))
GEN_CONFIGS = sorted((ROOT / "configs" / "generate").glob("*.args"))


def dry_run(script, *args):
    env = dict(os.environ, DRY_RUN="1")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=60)
    return proc


def script_argv(script, *args):
    proc = dry_run(script, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.rstrip("\n").split("\n")


def train_args(config, data, extra=()):
    argv = script_argv("train.sh", config, data, "save-dir", *extra)
    assert argv[0].endswith("fairseq-train")
    return argv, options.parse_args_and_arch(options.get_training_parser(), argv[1:])


def gen_args(config, data, extra=()):
    argv = script_argv("generate.sh", config, data, "ckpt.pt", "results", *extra)
    assert argv[0].endswith("fairseq-generate")
    return argv, options.parse_args_and_arch(options.get_generation_parser(), argv[1:])


def seed_flags(section):
    """{flag: value or None} of the seed's command line, without the paths the scripts supply."""
    text = SEED_COMMANDS.read_text()
    body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
    argv = shlex.split(body.replace("\\\n", " "))[2:]  # drop the program and ${DATA}
    flags, i = {}, 0
    while i < len(argv):
        flag = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
        flags[flag] = value
        i += 1 if value is None else 2
    for supplied in ("--user-dir", "--save-dir", "--path", "--results-path", "--sentencepiece-model"):
        flags.pop(supplied, None)
    return flags


def as_flags(argv):
    flags, i = {}, 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
        flags[argv[i]] = value
        i += 1 if value is None else 2
    return flags


def test_there_are_recipes():
    names = {p.name for p in TRAIN_CONFIGS}
    assert {"pyramidion_base.args", "deep_pyramidion.args", "blockwise_base.args",
            "blockwise_deep.args", "aclsum_cpu.args"} <= names
    assert {"paper.args", "aclsum_cpu.args"} <= {p.name for p in GEN_CONFIGS}


@pytest.mark.parametrize("config", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_recipe_parses(config, tmp_path):
    argv, args = train_args(config, tmp_path)
    assert argv[1] == str(tmp_path)
    assert args.arch.startswith("pyramidion_")
    assert args.save_dir == "save-dir"
    assert os.path.samefile(args.user_dir, ROOT / "deep_pyramidion")
    PyramidionConfig.from_namespace(args).validate()  # schedule, pooling and attention values are valid


@pytest.mark.parametrize("config", GEN_CONFIGS, ids=lambda p: p.name)
def test_generate_recipe_parses(config, tmp_path):
    # generate.sh passes the data folder's tokenizer: DATA_BIN/spm.model, or a converted BART's
    # byte-level BPE files (preprocess.py --pretrained writes those instead)
    pretrained = config.name.startswith("bart")
    tokenizer = ("encoder.json", "vocab.bpe") if pretrained else ("spm.model",)
    for name in tokenizer:
        (tmp_path / name).write_bytes(b"")
    argv, args = gen_args(config, tmp_path)
    assert args.path == "ckpt.pt" and args.results_path == "results"
    assert args.gen_subset == "test-A"
    if pretrained:
        assert args.bpe == "gpt2"
        assert args.gpt2_encoder_json == str(tmp_path / "encoder.json")
        assert args.gpt2_vocab_bpe == str(tmp_path / "vocab.bpe")
    else:
        assert args.bpe == "sentencepiece"
        assert args.sentencepiece_model == str(tmp_path / "spm.model")
    assert args.truncate_source


def test_paper_recipes_are_the_seed_command_lines(tmp_path):
    seed = seed_flags("train")
    for name in ("pyramidion_base", "deep_pyramidion"):
        argv, _ = train_args(ROOT / "configs" / "train" / f"{name}.args", tmp_path)
        recipe = as_flags(argv[2:])
        for flag, value in seed.items():
            if name == "deep_pyramidion" and flag in ("--arch", "--encoder-layers", "--decoder-layers"):
                continue
            assert recipe.get(flag, "missing") == value, (name, flag)
    gen = as_flags(gen_args(ROOT / "configs" / "generate" / "paper.args", tmp_path)[0][2:])
    for flag, value in seed_flags("generate").items():
        assert gen.get(flag, "missing") == value, flag


def test_model_recipes_differ_as_described(tmp_path):
    configs = ROOT / "configs" / "train"
    _, base = train_args(configs / "pyramidion_base.args", tmp_path)
    _, deep = train_args(configs / "deep_pyramidion.args", tmp_path)
    _, block = train_args(configs / "blockwise_base.args", tmp_path)
    _, block_deep = train_args(configs / "blockwise_deep.args", tmp_path)
    _, cpu = train_args(configs / "aclsum_cpu.args", tmp_path)
    for args in (base, deep, block, block_deep, cpu):
        PyramidionConfig.from_namespace(args).validate().write_to(args)
    assert (base.encoder_layers, base.decoder_layers, base.encoder_pooling) == (2, 2, "topk")
    assert base.enc_layers_and_token_width == "{0: 2048, 1: 512}"
    assert (deep.arch, deep.encoder_layers, deep.decoder_layers) == ("pyramidion_deep", 6, 6)
    assert (block.encoder_pooling, block.encoder_attention, block.encoder_layers) == ("none", "blockwise", 2)
    assert (block_deep.encoder_pooling, block_deep.encoder_layers) == ("none", 6)
    assert block.chunk_size == base.chunk_size == 512
    assert (cpu.encoder_embed_dim, cpu.max_source_positions) == (128, 2048)
    assert cpu.enc_layers_and_token_width == "{0: 512, 1: 128}"
    assert cpu.stop_time_hours > 0


def test_extra_flags_come_last_and_win(tmp_path):
    config = ROOT / "configs" / "train" / "pyramidion_base.args"
    _, args = train_args(config, tmp_path, ["--max-update", "7", "--enc-layers-and-token-width",
                                            "{0: 1024, 1: 256}"])
    assert args.max_update == 7
    assert args.enc_layers_and_token_width == "{0: 1024, 1: 256}"
    _, gen = gen_args(ROOT / "configs" / "generate" / "paper.args", tmp_path, ["--beam", "3"])
    assert gen.beam == 3


def test_bad_recipe_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.args"
    bad.write_text("# comment\n--task translation\narch pyramidion_base\n")
    proc = dry_run("train.sh", bad, tmp_path, "save")
    assert proc.returncode == 2
    assert f"{bad}:3" in proc.stderr


def test_recipe_may_not_set_script_arguments(tmp_path):
    bad = tmp_path / "bad.args"
    bad.write_text("--task translation\n--save-dir elsewhere\n")
    proc = dry_run("train.sh", bad, tmp_path, "save")
    assert proc.returncode == 2 and "--save-dir" in proc.stderr


def test_missing_inputs_are_named(tmp_path):
    config = ROOT / "configs" / "train" / "pyramidion_base.args"
    proc = dry_run("train.sh", config, tmp_path / "nope", "save")
    assert proc.returncode == 2 and "DATA_BIN" in proc.stderr and "nope" in proc.stderr
    proc = dry_run("train.sh", tmp_path / "none.args", tmp_path, "save")
    assert proc.returncode == 2 and "CONFIG" in proc.stderr
    env = dict(os.environ)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "generate.sh"),
                           str(ROOT / "configs" / "generate" / "paper.args"), str(tmp_path),
                           str(tmp_path / "missing.pt"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "CHECKPOINT" in proc.stderr and "missing.pt" in proc.stderr
