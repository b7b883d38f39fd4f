"""benchmarks/: quick runs into a temporary results folder (never the committed results), the
machine record and ratio columns of every JSON, CPU and GPU sections of the report, and
``coursekit bench`` inside and outside a checkout.

The fast tests run one small benchmark through ``run_all.py``; every other benchmark's quick run
is ``slow`` (each starts Python, imports torch and often transformers).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
README = ROOT / "README.md"
MACHINE_KEYS = {"cpu_model", "cpu_count", "torch", "torch_threads", "cuda", "device"}

#: the result files each benchmark's quick run writes (CPU names; CUDA adds ``_cuda``)
OUTPUTS = {
    "attention": ["attention", "attention_memory", "attention_module"],
    "rnn_vs_attention": ["rnn_vs_attention"],
    "core": ["core_encoder_decoder_after", "core_causal_attention_after"],
    "bert": ["bert"],
    "generation": ["generation", "generation_hf"],
    "t5": ["t5"],
    "efficiency": ["efficiency_quantized", "efficiency_lora"],
    "tokenizers": ["tokenizers"],
    "ddp": ["ddp"],
}


def _load(name: str) -> ModuleType:
    """A module of benchmarks/ (they import each other as top-level modules)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _env(results: Path) -> dict[str, str]:
    env = {**os.environ, "COURSEKIT_BENCH_RESULTS": str(results)}
    mirror = ROOT.parent / "shared" / "data"
    if "COURSEKIT_DATA_MIRROR" not in env and mirror.is_dir():
        env["COURSEKIT_DATA_MIRROR"] = str(mirror)
    return env


def _run_all(results: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--results-dir", str(results), *args],
        env=_env(results),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _check_result(path: Path, *, device: str = "cpu", ratios: bool = True) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"name", "title", "notes", "machine", "rows"} <= set(data), path
    assert MACHINE_KEYS <= set(data["machine"]), (path, data["machine"])
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["torch"] == torch.__version__
    assert data["device"] == device and data["machine"]["device"] == device
    assert data["rows"], f"{path.name} has no rows"
    if ratios:
        for row in data["rows"]:
            ratio_columns = [k for k in row if k.startswith("ratio")]
            assert ratio_columns, f"{path.name}: no ratio column in {list(row)}"
            for k in ratio_columns:
                assert isinstance(row[k], float) and row[k] > 0, (path.name, k, row[k])
    return data


# --------------------------------------------------------------------------------------------
# fast: the report, the results folder, the runner's choices, the CLI
# --------------------------------------------------------------------------------------------
def _write(folder: Path, stem: str, payload: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(payload), encoding="utf-8")


def _payload(title: str, device: str | None, gpu: str | None) -> dict:
    machine = {
        "processor": "x86_64",
        "cpu_model": "Test CPU 9000",
        "cpu_count": 2,
        "torch": "2.x",
        "torch_threads": 2,
        "cuda": gpu,
        "cuda_version": "12.8" if gpu else None,
    }
    payload = {"name": title, "title": title, "notes": "", "machine": machine, "rows": []}
    payload["rows"] = [{"T": 128, "coursekit ms": 1.5, "ratio": 0.9}]
    if device is not None:
        payload["device"] = device
    return payload


def test_report_renders_cpu_and_gpu_sections_apart(tmp_path: Path) -> None:
    report = _load("report")
    folder = tmp_path / "results"
    _write(folder, "attention", _payload("CPU attention", "cpu", None))
    _write(folder, "attention_cuda", _payload("GPU attention", "cuda", "NVIDIA Test GPU"))
    _write(folder, "legacy", _payload("Old CPU table", None, None))  # before devices were recorded
    _write(folder, "legacy_cuda", _payload("Old GPU table", None, "NVIDIA Test GPU"))
    (folder / "not_a_result.json").write_text("[1, 2]", encoding="utf-8")

    text = report.render_tables("##", folder)
    cpu_at = text.index("## CPU: Test CPU 9000")
    gpu_at = text.index("## GPU (CUDA): NVIDIA Test GPU, CUDA 12.8")
    assert cpu_at < gpu_at
    cpu_part, gpu_part = text[cpu_at:gpu_at], text[gpu_at:]
    for title in ("CPU attention", "Old CPU table"):
        assert f"### {title}" in cpu_part and title not in gpu_part
    for title in ("GPU attention", "Old GPU table"):
        assert f"### {title}" in gpu_part and title not in cpu_part
    assert "| T | coursekit ms | ratio |" in text and "| 128 | 1.5 | 0.9 |" in text

    # one device only: no empty section for the other
    only_cpu = tmp_path / "cpu_only"
    _write(only_cpu, "attention", _payload("CPU attention", "cpu", None))
    assert "## GPU" not in report.render_tables("##", only_cpu)


def test_report_main_leaves_the_readme_alone_for_another_folder(tmp_path: Path) -> None:
    report = _load("report")
    folder = tmp_path / "results"
    _write(folder, "attention", _payload("CPU attention", "cpu", None))
    before = README.read_text(encoding="utf-8")
    assert report.main(["--results-dir", str(folder)]) == 0
    assert README.read_text(encoding="utf-8") == before
    assert "CPU attention" in (folder / "RESULTS.md").read_text(encoding="utf-8")

    # an explicit README is updated between the markers only
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\noutro\n", encoding="utf-8")
    report.main(["--results-dir", str(folder), "--readme", str(readme)])
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "#### CPU attention" in text and "### CPU: Test CPU 9000" in text


def test_save_results_writes_to_the_chosen_folder_with_the_device_suffix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = _load("common")
    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path))
    rows = [{"T": 1, "ratio": 1.0}]
    cpu = common.save_results("demo", "Demo", rows, notes="n", device="cpu", quick=True)
    gpu = common.save_results("demo", "Demo", rows, device="cuda")
    assert (cpu, gpu) == (tmp_path / "demo.json", tmp_path / "demo_cuda.json")
    data = _check_result(cpu)
    assert data["quick"] is True and data["machine"]["cpu_model"]
    assert json.loads(gpu.read_text())["device"] == "cuda"
    monkeypatch.delenv(common.RESULTS_ENV)
    assert common.results_dir() == BENCH / "results"


def test_alternate_and_peak_memory() -> None:
    common = _load("common")
    calls: list[str] = []
    times = common.alternate(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1
    )
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())
    assert calls == ["a", "b"] * 4  # alternated, warm-up included
    n = 1 << 20
    peak = common.peak_memory_bytes(lambda: torch.ones(n, dtype=torch.uint8) + 1)
    assert 2 * n <= peak < 4 * n  # the ones and the sum, both alive at once


def test_run_all_chooses_flags_and_skips_with_reasons() -> None:
    run_all = _load("run_all")
    by_name = {b.name: b for b in run_all.BENCHMARKS}
    for name in ("attention", "t5", "efficiency"):
        cmd = run_all.command_for(by_name[name], quick=True, device="cuda")
        assert isinstance(cmd, list) and cmd[-3:] == ["--device", "cuda", "--quick"], name
    assert "cpu" in run_all.command_for(by_name["tokenizers"], quick=False, device="cuda")
    assert "cpu" in run_all.command_for(by_name["ddp"], quick=True, device="cuda")
    missing = run_all.Benchmark("later", "bench_not_written_yet.py", "x", optional=True)
    assert "does not exist" in run_all.command_for(missing, quick=True, device="cpu")
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.main(["--only", "attention,nonsense", "--list"])


def test_cli_bench_says_plainly_when_there_is_no_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from coursekit import cli, files

    monkeypatch.setattr(files, "checkout_root", lambda: None)
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "checkout" in err and "benchmarks" in err


def test_cli_bench_lists_the_benchmarks(capfd: pytest.CaptureFixture[str]) -> None:
    from coursekit import cli

    assert cli.main(["bench", "--list"]) == 0
    out = capfd.readouterr().out
    for name in OUTPUTS:
        assert name in out


def test_run_all_quick_writes_into_the_given_folder(tmp_path: Path) -> None:
    committed = {p.name: p.stat().st_mtime_ns for p in (BENCH / "results").glob("*.json")}
    readme = README.read_text(encoding="utf-8")
    done = _run_all(tmp_path, "--quick", "--only", "rnn_vs_attention", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_result(tmp_path / "rnn_vs_attention.json")
    assert "RNN time loop" in (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert README.read_text(encoding="utf-8") == readme
    assert {p.name: p.stat().st_mtime_ns for p in (BENCH / "results").glob("*.json")} == committed


def _quick_main(
    name: str, results: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> list[Path]:
    """Run ``benchmarks/<name>.py``'s ``main`` in this process with ``--quick`` into
    ``results``; the environment variable and torch's threads are restored afterwards."""
    module = _load(name)
    monkeypatch.setenv("COURSEKIT_BENCH_RESULTS", str(results))  # main() sets it; undone after
    threads = torch.get_num_threads()
    try:
        module.main(["--quick", "--rounds", "1", "--results-dir", str(results), *args])
    finally:
        torch.set_num_threads(threads)
    return sorted(results.glob("*.json"))


def test_t5_quick_run_matches_transformers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    written = _quick_main("bench_t5", tmp_path, monkeypatch)
    assert [p.stem for p in written] == OUTPUTS["t5"]
    data = _check_result(tmp_path / "t5.json")
    assert data["quick"] is True and "T5ForConditionalGeneration" in data["title"]
    (row,) = data["rows"]
    assert row["eval loss gap"] < 1e-4  # same weights, same tokens: the same loss
    assert row["coursekit ms"] > 0 and row["transformers ms"] > 0
    assert row["parameters"] > 0 and row["GFLOP/step"] > 0
    assert 0 < row["MFU coursekit"] < 10 and 0 < row["MFU transformers"] < 10
    bench = _load("bench_t5")
    c = bench.QUICK
    # the FLOP count is about 6 x (weights used per token) x tokens: weights the encoder and
    # the decoder use, the output layer once per target token (attention and norms aside)
    d, ff, v = c["d"], c["d_ff"], c["vocab"]
    weights = c["src"] * c["enc"] * (4 * d * d + 2 * d * ff) + c["tgt"] * (
        c["dec"] * (8 * d * d + 2 * d * ff) + d * v
    )
    flops = _load("training_step").encoder_decoder_step_flops(c)
    assert 6 * weights * c["batch"] < flops < 12 * weights * c["batch"]


def test_efficiency_quick_run_memory_and_lora(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _quick_main("bench_efficiency", tmp_path, monkeypatch)
    assert [p.stem for p in written] == sorted(OUTPUTS["efficiency"])
    quant = _check_result(tmp_path / "efficiency_quantized.json")
    by_size: dict[str, dict[str, dict]] = {}
    for row in quant["rows"]:
        kind = row["layer"].split()[0]  # float32, int8, 4-bit
        by_size.setdefault(row["weight (out x in)"], {})[kind] = row
    assert len(by_size) >= 2
    for rows in by_size.values():
        f32, int8, int4 = rows["float32"], rows["int8"], rows["4-bit"]
        assert int4["weight bytes"] < int8["weight bytes"] < f32["weight bytes"]
        assert f32["bits per weight"] == 32.0 and f32["ratio bytes"] == 1.0
        assert 0.25 <= int8["ratio bytes"] < 0.27 and 0.125 <= int4["ratio bytes"] < 0.15
        assert f32["output rel. error"] == 0.0
        assert 0 < int8["output rel. error"] < int4["output rel. error"] < 0.2
    lora = _check_result(tmp_path / "efficiency_lora.json")
    full, adapted = lora["rows"]
    assert full["method"] == "full fine-tuning" and adapted["method"].startswith("LoRA")
    assert 0 < adapted["trainable params"] < full["trainable params"]
    assert 0 < adapted["optimizer state bytes"] < full["optimizer state bytes"]
    assert adapted["ratio trainable"] < 0.2 and adapted["ratio optimizer state"] < 0.2
    assert full["initial loss gap"] == 0.0  # B = 0 at the start: LoRA changes nothing yet


# --------------------------------------------------------------------------------------------
# slow: every other benchmark's quick run
# --------------------------------------------------------------------------------------------
def _needs(name: str) -> None:
    if name in ("bert", "generation", "t5"):
        pytest.importorskip("transformers")
    if name == "tokenizers":
        pytest.importorskip("tokenizers")
        env = _env(Path("."))
        code = (
            "from coursekit.data import load_tiny_shakespeare as f\n"
            "try:\n    f()\nexcept Exception as e:\n    raise SystemExit(str(e))\n"
        )
        probe = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        if probe.returncode:
            pytest.skip(f"Tiny Shakespeare not available: {probe.stderr.strip()[-300:]}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["attention", "core", "bert", "generation", "t5", "efficiency", "tokenizers", "ddp"]
)
def test_quick_run_of_each_benchmark(name: str, tmp_path: Path) -> None:
    _needs(name)
    done = _run_all(tmp_path, "--quick", "--only", name, "--no-report")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stem in OUTPUTS[name]:
        _check_result(tmp_path / f"{stem}.json")


@pytest.mark.slow
def test_quick_run_of_the_gpt_benchmark(tmp_path: Path) -> None:
    if not (BENCH / "bench_gpt.py").is_file():
        pytest.skip("benchmarks/bench_gpt.py is not there yet")
    pytest.importorskip("transformers")
    done = _run_all(tmp_path, "--quick", "--only", "gpt", "--no-report")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = sorted(tmp_path.glob("*.json"))
    assert written
    for path in written:
        _check_result(path, ratios=False)


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quick_cuda_runs_write_beside_the_cpu_results(tmp_path: Path) -> None:
    done = _run_all(tmp_path, "--quick", "--device", "cuda")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("attention", "rnn_vs_attention", "bert", "generation", "t5", "efficiency"):
        for stem in OUTPUTS[name]:
            _check_result(tmp_path / f"{stem}_cuda.json", device="cuda")
    assert not (tmp_path / "tokenizers_cuda.json").exists()  # CPU-only benchmarks are skipped
    report = _load("report")
    assert "GPU (CUDA): " + torch.cuda.get_device_name() in report.render_tables("##", tmp_path)
