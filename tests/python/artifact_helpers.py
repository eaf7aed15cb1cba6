"""Helpers the artifact tests share."""
import hashlib
import json


def resign(path, edit=lambda manifest: None):
    """Apply ``edit(manifest)`` to ``path``'s manifest.json and re-list every listed file that exists
    with its size and SHA-256: a consistent ("verifying") artifact whose damage is elsewhere."""
    man = json.loads((path / "manifest.json").read_text())
    edit(man)
    for name in man["files"]:
        if (path / name).is_file():
            data = (path / name).read_bytes()
            man["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_text(json.dumps(man))
