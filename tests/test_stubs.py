"""The committed gRPC stubs must be what the .proto files generate today."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_stubs_are_fresh(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "tools" / "gen_protos.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.generate(tmp_path)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert fresh, "protoc generated nothing"
    committed_dir = ROOT / "clients"
    stale = [str(rel) for rel, data in fresh.items() if (committed_dir / rel).read_bytes() != data]
    assert not stale, f"stale stubs (run `python tools/gen_protos.py`): {stale}"
    generated_names = {p.name for p in fresh}
    committed = {
        p.name for p in (committed_dir / "safetypairs" / "v1").iterdir() if "_pb2" in p.name
    }
    assert committed == generated_names, "stub files without a .proto source"
