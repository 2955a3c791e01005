"""The import path the README documented before the package was reshaped,
``deep_pyramidion.models.pyramidion.PyramidionModel``, still gives the model, with a
DeprecationWarning naming the new path; ``import deep_pyramidion`` (and importing the old module
alone) still imports no fairseq. A fresh interpreter, so that nothing imported here counts."""
import subprocess
import sys

CODE = r"""
import sys, warnings
import deep_pyramidion
import deep_pyramidion.models.pyramidion as old
print("fairseq after import:", "fairseq" in sys.modules)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from deep_pyramidion.models.pyramidion import PyramidionModel
from deep_pyramidion.fairseq_plugin.model import PyramidionModel as New
from fairseq.models import ARCH_MODEL_REGISTRY
print("same class:", PyramidionModel is New)
print("registered:", ARCH_MODEL_REGISTRY["pyramidion_base"] is New)
for w in caught:
    print("warning:", w.category.__name__, w.message)
try:
    old.no_such_name
except AttributeError as err:
    print("attribute error:", err)
"""


def test_old_import_path_works_with_a_deprecation_warning():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert "fairseq after import: False" in out
    assert "same class: True" in out and "registered: True" in out
    # (importing fairseq raises DeprecationWarnings of torch's too)
    warnings = [line for line in out if line.startswith("warning: DeprecationWarning "
                                                        "deep_pyramidion.models.pyramidion.")]
    assert len(warnings) == 1, out
    assert "from deep_pyramidion.fairseq_plugin.model import PyramidionModel" in warnings[0]
    assert any(line.startswith("attribute error:") and "no_such_name" in line for line in out)
