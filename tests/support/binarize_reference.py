"""The preprocessing runs whose outputs are recorded in tests/data/binarize_reference/, and the
digests they are compared by.

Each run is ``pyramidion-preprocess`` (in-process, :func:`preprocess_main`) on the committed ACLSum
subset (``aclsum/``), into its own folder under ``root``:

    scratch               sentencepiece trained here (400 pieces, seed 1, 1 worker: one training
                          thread, so the model does not depend on thread scheduling)
    spm-reused-2-workers  the scratch run's spm.model reused, encoding in 2 worker processes
    pretrained-2-workers  --pretrained bart/ (byte-level BPE + dict.txt), 2 worker processes
    pretrained-1-worker   the same in this process, without --keep-pieces

:func:`digests` gives ``{run: {relative path: sha256}}`` for every file a run wrote (``.pieces/``
included: the first three keep it). ``preprocess.json`` records absolute paths, so it is hashed with
them replaced by ``<name>`` placeholders; fairseq's ``preprocess.log`` records its own command
line, hashed the same way; the staging folder a run is built in (``.NAME.partial-PID-RANDOM``)
is taken for its final name there. ``spm.model`` records the path sentencepiece was asked to write
(in the staging folder): it is hashed with that one field normalised the same way.
"""
import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "binarize_reference"
EXPECTED = REFERENCE / "expected.json"
_NORMALISED = ("preprocess.json", "preprocess.log")
_STAGING = re.compile(r"/\.([^/]+)\.partial-[^/]+")


def runs(root: Path) -> List[Tuple[str, List[str]]]:
    """(run name, preprocess arguments) in the order they must run."""
    data, bart = str(REFERENCE / "aclsum"), str(REFERENCE / "bart")
    out = {name: str(root / name) for name in ("scratch", "spm-reused-2-workers", "pretrained-2-workers",
                                               "pretrained-1-worker")}
    return [
        ("scratch", ["--data", data, "--out", out["scratch"], "--vocab-size", "400", "--seed", "1",
                     "--workers", "1", "--keep-pieces"]),
        ("spm-reused-2-workers", ["--data", data, "--out", out["spm-reused-2-workers"], "--spm-model",
                                  os.path.join(out["scratch"], "spm.model"), "--workers", "2",
                                  "--keep-pieces"]),
        ("pretrained-2-workers", ["--data", data, "--out", out["pretrained-2-workers"], "--pretrained", bart,
                                  "--workers", "2", "--keep-pieces"]),
        ("pretrained-1-worker", ["--data", data, "--out", out["pretrained-1-worker"], "--pretrained", bart,
                                 "--workers", "1"]),
    ]


def run_all(root: Path) -> Dict[str, Dict[str, str]]:
    """Every run into ``root``; returns :func:`digests`."""
    from deep_pyramidion.data.cli import preprocess_main

    for name, argv in runs(root):
        rc = preprocess_main(argv)
        if rc != 0:
            raise AssertionError(f"preprocess run {name!r} exited {rc}: {argv}")
    return digests(root)


def digests(root: Path) -> Dict[str, Dict[str, str]]:
    places = {str(REFERENCE / "aclsum"): "<aclsum>", str(REFERENCE / "bart"): "<bart>"}
    places.update({str(root / name): f"<{name}>" for name, _ in runs(root)})

    def normalise(text: str) -> str:
        text = _STAGING.sub(r"/\1", text)   # the staging folder a run was built in, as its final name
        for place, placeholder in sorted(places.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(place, placeholder)
        return text

    out: Dict[str, Dict[str, str]] = {}
    for name, _ in runs(root):
        folder = root / name
        files = {}
        for parent, dirs, names in os.walk(folder):
            dirs.sort()
            for file_name in sorted(names):
                path = Path(parent) / file_name
                data = path.read_bytes()
                if file_name in _NORMALISED:
                    data = normalise(data.decode("utf-8")).encode("utf-8")
                elif file_name == "spm.model":
                    data = _spm_model_prefix_normalised(data, normalise)
                files[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
        out[name] = files
    return out


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _proto_fields(buf: bytes) -> Iterator[Tuple[int, int, bytes, bytes]]:
    """(field number, wire type, payload of a length-delimited field or b"", the field's raw bytes)."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _read_varint(buf, i)
        wire = key & 7
        payload = b""
        if wire == 0:
            _, i = _read_varint(buf, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        elif wire == 2:
            n, i = _read_varint(buf, i)
            payload, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"protobuf wire type {wire} not expected in a sentencepiece model")
        yield key >> 3, wire, payload, buf[start:i]


def _read_varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _spm_model_prefix_normalised(model: bytes, normalise: Callable[[str], str]) -> bytes:
    """The model with ``normalise`` applied to ``ModelProto.trainer_spec.model_prefix`` (fields 2
    and 2 of sentencepiece_model.proto): sentencepiece records the path it was trained to write,
    here inside the staging folder. Parsed by hand: the protobuf package is not a dependency."""
    out = bytearray()
    for number, wire, payload, raw in _proto_fields(model):
        if number == 2 and wire == 2:
            spec = bytearray()
            for inner_number, inner_wire, inner_payload, inner_raw in _proto_fields(payload):
                if inner_number == 2 and inner_wire == 2:
                    prefix = normalise(inner_payload.decode("utf-8")).encode("utf-8")
                    inner_raw = _varint(2 << 3 | 2) + _varint(len(prefix)) + prefix
                spec += inner_raw
            raw = _varint(2 << 3 | 2) + _varint(len(spec)) + bytes(spec)
        out += raw
    return bytes(out)


def inputs_digest() -> Dict[str, str]:
    """sha256 of every committed input, to tell a changed input from a changed pipeline."""
    return {str(p.relative_to(REFERENCE)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("aclsum", "bart") for p in sorted((REFERENCE / sub).iterdir())}
