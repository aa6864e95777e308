"""jobs/pipelines:kfp: the pipeline compiled for Kubeflow Pipelines, read back with the KFP SDK.

Runs the compiler in this process (`kfp_pipeline.main`); the images are this build's
layouts (data of the test), so the digests it pins are checked against them.
The pipeline really runs through `kfp.local` in //tests/tools/image:test_kfp_local.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import components
from slipway import cli
from slipway.pipelines import STEP_NAMES

from jobs.pipelines import kfp_pipeline
from tools.image.load_image import layout_digests, runfile


def compile_to(tmp_path: Path, *args: str) -> tuple[Path, Any]:
    out = tmp_path / "digits.yaml"
    assert kfp_pipeline.main(["--output", str(out), *args]) == 0
    spec = next(yaml.safe_load_all(out.read_text()))
    return out, spec


def built_digest(step: str) -> str:
    manifest_hex, _ = layout_digests(runfile(f"jobs/{step}/oci_image"))
    return f"sha256:{manifest_hex}"


def test_compiled_file_loads_back_with_every_image_pinned_and_inference_fanned_out(
    tmp_path: Path,
) -> None:
    out, spec = compile_to(tmp_path, "--registry", "registry.example:5000", "--num-shards", "3")
    component = components.load_component_from_file(str(out))
    assert component.name == "slipway-digits"
    assert set(component.component_spec.inputs or {}) == {
        "data_dir",
        "tracking_uri",
        "seed",
        "min_improvement",
        "source",
        "model_name",
        "inference_batch_size",
    }
    executors = spec["deploymentSpec"]["executors"]
    assert sorted(executors) == sorted(f"exec-{s}" for s in STEP_NAMES)
    for step in STEP_NAMES:
        container = executors[f"exec-{step}"]["container"]
        digest = built_digest(step)
        assert container["image"] == f"registry.example:5000/slipway/{step}@{digest}"
        assert "command" not in container  # the image's ENTRYPOINT runs the job
        assert {"name": "SLIPWAY_IMAGE_DIGEST", "value": digest} in container["env"]
    loop = spec["root"]["dag"]["tasks"]["for-loop-2"]
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == [0, 1, 2]
    assert loop["dependentTasks"] == ["evaluation"]
    inference = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]["inference"]
    assert inference["inputs"]["parameters"]["num_shards"]["runtimeValue"]["constant"] == 3
    args = executors["exec-inference"]["container"]["args"]
    assert args[-6:] == [
        "--batch-size",
        "{{$.inputs.parameters['batch_size']}}",
        "--shard-index",
        "{{$.inputs.parameters['shard_index']}}",
        "--num-shards",
        "{{$.inputs.parameters['num_shards']}}",
    ]
    # The local runner's arguments: the same definition (slipway.pipelines.digits_pipeline).
    assert executors["exec-evaluation"]["container"]["args"][-4:] == [
        "--output-dir",
        "{{$.inputs.parameters['data_dir']}}/reports/evaluation",
        "--min-improvement",
        "{{$.inputs.parameters['min_improvement']}}",
    ]
    platform = list(yaml.safe_load_all(out.read_text()))[1]
    assert platform["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]["size"] == "2Gi"


def test_release_manifest_pins_its_digests_and_commit(tmp_path: Path) -> None:
    images = [
        {"name": s, "repository": f"ghcr.io/acme/slipway/{s}", "digest": "sha256:" + f"{i:x}" * 64}
        for i, s in enumerate((*STEP_NAMES, "service"), start=1)
    ]
    manifest = tmp_path / "release-1.4.0.json"
    manifest.write_text(json.dumps({"version": "1.4.0", "git_commit": "abc123", "images": images}))
    _, spec = compile_to(tmp_path, "--release-manifest", str(manifest))
    executors = spec["deploymentSpec"]["executors"]
    for image in images[:4]:
        container = executors[f"exec-{image['name']}"]["container"]
        assert container["image"] == f"{image['repository']}@{image['digest']}"
        assert {"name": "SLIPWAY_GIT_COMMIT", "value": "abc123"} in container["env"]


def test_relative_output_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILD_WORKING_DIRECTORY", str(tmp_path))
    assert kfp_pipeline.main(["--output", "out/digits.yml"]) == 0
    assert (tmp_path / "out" / "digits.yml").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "{out}/digits.json"], "name it *.yaml or *.yml"),
        (["--output", "{out}/d.yaml", "--release-manifest", "{out}/none.json"], "cannot read"),
        (["--output", "{out}/d.yaml", "--release-manifest", "{out}/partial.json"], "inference"),
        (["--output", "{out}/d.yaml", "--workspace-size", "lots"], "--workspace-size"),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    images = [{"name": s, "repository": f"r/{s}", "digest": "sha256:00"} for s in STEP_NAMES[:3]]
    (tmp_path / "partial.json").write_text(json.dumps({"images": images}))
    (tmp_path / "digits.json").write_text("keep")
    code, stderr = call_kfp(capsys, [a.format(out=tmp_path) for a in args])
    assert code == 1, stderr
    assert message in stderr and stderr.count("\n") == 1
    assert (tmp_path / "digits.json").read_text() == "keep"
    assert not (tmp_path / "d.yaml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def call_kfp(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of the compiler run as its binary runs it (`cli.run`)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.run(kfp_pipeline.main, args)
    code = exit_info.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


def test_missing_output_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = call_kfp(capsys, [])
    assert code == 2 and "--output is required" in stderr
