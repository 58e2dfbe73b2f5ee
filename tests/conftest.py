import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _compiled_loops():
    """Build (or load) the C++ time loops once, before any test: a first build prints a line and takes ~30 s, which
    must not land inside a test that reads stderr or times itself."""
    from seqlab.cells import compiled

    compiled.ops()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def check_resume(tmp_path):
    """check(common, steps): a CLI ``train`` (``common`` without --out) stopped early by the clock and continued with
    --resume ends at ``steps`` with the weights, bit for bit, of the same run left uninterrupted."""
    from seqlab import checkpoint
    from seqlab.cli import main

    def check(common: list[str], steps: int) -> None:
        assert main([*common, "--out", str(tmp_path / "whole")]) == 0
        assert main([*common, "--out", str(tmp_path / "cut"), "--minutes", "0.002"]) == 0  # stops early by the clock
        _, meta = checkpoint.load(tmp_path / "cut" / "checkpoints" / "last.safetensors")
        assert meta["step"] < steps
        assert main([common[0], "train", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
        a, _ = checkpoint.load(tmp_path / "whole" / "checkpoints" / "last.safetensors")
        b, meta = checkpoint.load(tmp_path / "cut" / "checkpoints" / "last.safetensors")
        assert meta["step"] == steps
        for k in a:
            if k.startswith("model."):
                assert torch.equal(a[k], b[k]), k

    return check
