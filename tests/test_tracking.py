"""--wandb: scripts.train logs its configuration and every TensorBoard scalar to Weights & Biases, scripts.visualize
its GIF; checked offline (WANDB_MODE=offline), by reading back the run that W&B wrote to disk. No network."""

import json
import struct
import sys

import pytest

from tests.test_scripts import TINY_PPO, assert_one_line_error, run_script

DOORKEY = "MiniGrid-DoorKey-5x5-v0"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline, everything it writes under tmp_path/wandb-home; returns the folder its runs go to."""
    home = tmp_path / "wandb-home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable, folder in [("WANDB_DIR", ""), ("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache")]:
        (home / folder).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(variable, str(home / folder))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "data"))
    return home / "wandb"


def wandb_records(path):
    """The records of a run's .wandb file: W&B's header (':W&B', magic, version: 7 bytes), then LevelDB's log format
    (32 KiB blocks of chunks: crc32c, length, type 1 full / 2 first / 3 middle / 4 last), each record a protobuf."""
    from wandb.proto import wandb_internal_pb2

    block = 32768
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zeros: preallocated padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def read_run(runs):
    """(the run record, its config, its history rows) of the only run under ``runs``."""
    (folder,) = runs.glob("offline-run-*")
    (path,) = folder.glob("run-*.wandb")
    run, history = None, []
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.append({key: value for key, value in row.items() if not key.startswith("_")})
    config = {item.key: json.loads(item.value_json) for item in run.config.update if item.key != "_wandb"}
    return run, config, history, folder


def tensorboard_scalars(model_dir):
    """{tag: {frames: value}} of the TensorBoard event files in ``model_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(model_dir))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_train_logs_the_configuration_and_every_tensorboard_scalar(offline, tmp_path):
    storage = tmp_path / "storage"
    flags = ["--env", DOORKEY, "--model", "dk", "--frames", 384, *TINY_PPO, "--workers", 0, "--tb"]
    run_script("train", *flags, "--wandb", "tests", "--eval-interval", 2, "--eval-episodes", 2, storage=storage)
    run, config, history, _ = read_run(offline)
    assert (run.project, run.display_name, run.run_group) == ("tests", "dk", "dk")
    assert config == json.loads((storage / "dk" / "config.json").read_text())
    scalars = tensorboard_scalars(storage / "dk")
    assert "eval_return_mean" in scalars and "entropy" in scalars  # evaluation rows too
    assert [row["frames"] for row in history] == [128, 256, 384]
    assert [row["update"] for row in history] == [1, 2, 3]
    logged = {key for row in history for key in row} - {"frames", "update"}
    assert logged == set(scalars)
    for row in history:
        for key, value in row.items():
            if key in scalars:  # TensorBoard keeps float32
                expected = scalars[key][row["frames"]]
                assert value == pytest.approx(expected, rel=1e-6, nan_ok=True), (key, row["frames"])


def test_visualize_logs_the_gif(offline, tmp_path):
    storage = tmp_path / "storage"
    run_script("train", "--env", DOORKEY, "--model", "dk", "--frames", 128, *TINY_PPO, storage=storage)
    gif = tmp_path / "dk.gif"
    proc = run_script("visualize", "--env", DOORKEY, "--model", "dk", "--gif", gif, "--wandb", storage=storage)
    assert "GIF logged to Weights & Biases, project torch_rl" in proc.stdout
    run, config, history, folder = read_run(offline)
    assert (run.project, run.display_name, run.job_type) == ("torch_rl", "dk", "visualize")
    assert config["env"] == DOORKEY and config["visualize"]["gif"] == str(gif)
    (row,) = history
    assert row["episodes/_type"] == "video-file" and "return_mean" in row
    assert (folder / "files" / row["episodes/path"]).read_bytes() == gif.read_bytes()


def test_without_the_wandb_extra_the_flag_is_one_line_and_nothing_is_made(tmp_path, monkeypatch, capsys):
    from scripts.train import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb then raises ImportError
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path / "storage"))
    with pytest.raises(SystemExit) as exit_info:
        main(["--algo", "ppo", "--env", DOORKEY, "--model", "dk", "--wandb"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, 'pip install -e ".[wandb]"')
    assert not (tmp_path / "storage").exists()


def test_visualize_wandb_needs_a_gif(tmp_path, monkeypatch, capsys):
    from scripts.visualize import main

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path / "storage"))
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", DOORKEY, "--model", "dk", "--wandb", "p"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--wandb logs the GIF", "--gif")
