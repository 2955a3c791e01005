"""Fingerprints of files and folders, to assert that a failed run left its inputs and earlier
outputs exactly as they were."""
import hashlib
import os
from pathlib import Path
from typing import Dict


def tree_digest(*paths) -> Dict[str, str]:
    """``{relative path: sha256}`` of every file under each path (a file counts as itself);
    folders also record their entry list, so an added or removed file changes the result."""
    out: Dict[str, str] = {}
    for root in paths:
        root = Path(root)
        if not root.exists():
            out[str(root)] = "<missing>"
            continue
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            out[folder + "/"] = ",".join(sorted(dirs + files))
            for name in sorted(files):
                path = Path(folder) / name
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def siblings(path) -> list:
    """Entries of the folder holding ``path`` (to see that nothing half-built was left beside)."""
    return sorted(os.listdir(Path(path).parent))
