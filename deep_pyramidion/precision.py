"""``--bf16`` without a TPU.

fairseq 0.12 reads ``--bf16`` as "train on a TPU": ``options.parse_args_and_arch`` sets
``args.tpu = True`` whenever bf16 is on, and the trainer then asks torch_xla for a device, so
``fairseq-train --bf16`` stops with ``'NoneType' object has no attribute 'xla_device'`` on a CPU or
a CUDA GPU. The user module is imported inside that very parse, too late to change it, but every
fairseq-train run goes through ``distributed_utils.call_main`` afterwards; there, when torch_xla is
not installed (so a TPU run could not work anyway), the plugin turns the implied TPU off and fairseq's
own bf16 path runs (model in bfloat16, float32 master weights).
"""
import functools
import importlib.util
import logging

logger = logging.getLogger(__name__)


def _without_implied_tpu(call_main):
    @functools.wraps(call_main)
    def wrapper(cfg, main, **kwargs):
        common = cfg.common
        if getattr(common, "bf16", False) and getattr(common, "tpu", False) \
                and importlib.util.find_spec("torch_xla") is None:
            logger.info("--bf16 without torch_xla: bfloat16 on %s, not on a TPU "
                        "(fairseq 0.12 reads --bf16 as --tpu)", "the CPU" if common.cpu else "CUDA")
            common.tpu = False
        return call_main(cfg, main, **kwargs)

    wrapper._deep_pyramidion = True
    return wrapper


def install() -> None:
    from fairseq.distributed import utils as distributed_utils

    if not getattr(distributed_utils.call_main, "_deep_pyramidion", False):
        distributed_utils.call_main = _without_implied_tpu(distributed_utils.call_main)
