"""Export a trained policy: python -m scripts.export --model DoorKey --format onnx [--out DoorKey.onnx]

Writes the model's policy as an ONNX graph that takes the env's observation as the env gives it (MiniGrid's
uint8 image, or a flat observation: the preprocessing, one-hot encoding or standardisation included, is in the
graph) and gives the action logits (log-probabilities; for continuous actions the Gaussian's mean and log-std, in
the env's units) and the value; a recurrent model (--recurrence > 1) also takes and gives its memory, and a --text
model takes the mission as token ids, with its vocabulary written beside the graph (NAME.vocab.json: words to
ids). The names, shapes and types of the inputs and outputs are in docs/export.md.

--out defaults to NAME.onnx in the current folder; it is never written into a model folder. The graph is checked
against the torch model with onnxruntime on a few observations of the model's env before it is written.
Needs the export extra: pip install -e ".[export]". Play the graph with python -m scripts.evaluate --onnx FILE.
"""

import json
import os
import sys

import torch

from utils import checkpoint as checkpoints
from utils.agent import Agent
from utils.env import check_env_id, make_env
from utils.errors import EXIT_FAILED, ArgumentParser, HelpFormatter, cli
from utils.export import (
    OPSET,
    TOLERANCE,
    ExportedPolicy,
    max_difference,
    model_inputs,
    require_onnx,
    session,
    to_onnx,
    vocabulary_path,
)
from utils.outputs import check_output_file, write_output_file
from utils.storage import get_model_dir

FORMATS = ("onnx",)
CHECK_OBSERVATIONS = 8  # the batch the graph is checked on: resets of the env with seeds 0..7


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m scripts.export", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="model folder name, in storage/ or $TORCH_RL_STORAGE")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="what to export to")
    p.add_argument("--out", metavar="FILE", default=None, help="the file to write (default: NAME.onnx, here)")
    p.add_argument(
        "--best",
        action="store_true",
        help="export the model's best checkpoint (status_best.pt, kept when training evaluates with "
        "--eval-interval) instead of the last one",
    )
    return p.parse_args(argv)


def validate(args):
    """What parse_args cannot check; before the model is loaded. Creates nothing."""
    model_dir = get_model_dir(args.model)
    if args.out is None:
        args.out = os.path.basename(os.path.normpath(args.model)) + ".onnx"
    check_output_file(args.out, "--out", [model_dir])
    return model_dir


@cli
def main(argv=None):
    args = parse_args(argv)
    model_dir = validate(args)
    require_onnx()  # before any work: the extra may not be installed
    torch.set_num_threads(1)
    checkpoint = checkpoints.load(model_dir, best=args.best)
    env_id = checkpoint.architecture()["env"]
    check_env_id(env_id)  # the model's own env gives the spaces, and the observations the graph is checked on
    obs = checkpoint.architecture()["obs"]  # the model's own --obs: the graph takes what the model was trained on
    env = make_env(env_id, obs=obs)
    try:
        agent = Agent(env.observation_space, env.action_space, model_dir, checkpoint=checkpoint)
        observations = [env.reset(seed=seed)[0] for seed in range(CHECK_OBSERVATIONS)]
    finally:
        env.close()
    exported = ExportedPolicy(agent.model, agent.preprocess_obss).eval()
    # A random memory: the graph must carry any memory as the model does, not only the zeros of an episode's start.
    generator = torch.Generator().manual_seed(0)
    memory = None
    if agent.model.recurrent:
        memory = torch.randn(CHECK_OBSERVATIONS, agent.model.memory_size, generator=generator).numpy()
    # The model's own vocabulary, before the check's missions add the words it never saw (as evaluation would).
    vocab = dict(agent.preprocess_obss.vocab.vocab) if exported.text else None
    inputs = model_inputs(exported, observations, memory)
    metadata = {
        "torch_rl.model": args.model,
        "torch_rl.env": env_id,
        "torch_rl.frames": checkpoint.num_frames,
        "torch_rl.checkpoint": "best" if args.best else "last",
        "torch_rl.obs": obs,  # read back by scripts.evaluate --onnx
    }
    if vocab is not None:
        check_output_file(vocabulary_path(args.out), "--out's vocabulary", [model_dir])
        metadata["torch_rl.vocabulary"] = os.path.basename(vocabulary_path(args.out))
    data = to_onnx(exported, {name: value[:2] for name, value in inputs.items()}, metadata)

    difference = max_difference(exported, session(data), inputs)
    if not difference <= TOLERANCE:
        print(
            f"error: the exported graph differs from the model by {difference:.2e} (more than {TOLERANCE:g}) on "
            f"{CHECK_OBSERVATIONS} observations of {env_id}; nothing was written",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_FAILED)
    if vocab is not None:  # first: a graph that reads missions is never there without its vocabulary
        write_output_file(
            vocabulary_path(args.out), "--out's vocabulary", (json.dumps(vocab, indent=2) + "\n").encode()
        )
    write_output_file(args.out, "--out", data)
    names = ", ".join(exported.input_names) + " -> " + ", ".join(exported.output_names)
    print(f"{args.model} ({env_id}, {checkpoint.num_frames} frames) exported to {args.out}: {names}")
    print(
        f"ONNX opset {OPSET}, {len(data) / 1024:.0f} KiB; onnxruntime matches the torch model to {difference:.1e} "
        f"on {CHECK_OBSERVATIONS} observations"
    )
    if vocab is not None:
        print(f"vocabulary ({len(vocab)} words) written to {vocabulary_path(args.out)}")
    return args.out


if __name__ == "__main__":
    main()
