"""The policy as an ONNX graph (scripts.export), and that graph acting in envs (scripts.evaluate --onnx).

The graph takes the env's observation as the env gives it and does the preprocessing itself, so that a program
without torch_rl needs nothing but the graph (and, for a --text model, the vocabulary beside it):

inputs
    ``image`` (N, 7, 7, 3) uint8, MiniGrid's observation["image"] (cast, or one-hot encoded for a model trained
    with --image-encoding onehot, inside the graph); or ``obs`` (N, D) float32, a flat observation (standardised
    inside the graph by the statistics saved with the model, if it was trained with them);
    ``mission`` (N, L) int64, with --text: the mission's words as token ids of the vocabulary file, 0 as padding
    (the missions of a batch padded to the longest one);
    ``memory`` (N, M) float32, for a recurrent model: zeros at an episode's start, then the last ``memory_out``.
outputs
    ``logits`` (N, A) float32, discrete actions: the log-probabilities of the actions (argmax: the likeliest);
    or ``mean`` and ``log_std`` (N, A) float32, continuous actions: the Gaussian in the env's action units (the
    mean is the action with --argmax; clip a sample to the action space);
    ``value`` (N,) float32; ``memory_out`` (N, M) float32 for a recurrent model.
"""

import io
import json
import os
import re

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

import torch_rl
from utils.errors import UsageError, one_line
from utils.format import OBS_VARIANTS, MiniGridPreprocessor, Vocabulary, onehot_image

# ONNX opset 17: onnxruntime has run it since 1.14, and it has every operator these models need (LSTM, GRU, OneHot).
OPSET = 17
EXPORT_EXTRA = 'pip install -e ".[export]" (or pip install onnx onnxruntime)'
# The exported graph against the torch model on the observations export checks it with: well above float32
# rounding (~1e-7 here), well below a difference that would change an action.
TOLERANCE = 1e-5


def require_onnx():
    """(onnx, onnxruntime), or a UsageError saying what to install: they are an optional extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise UsageError(f"ONNX export needs the {error.name} package: {EXPORT_EXTRA}") from None
    return onnx, onnxruntime


def vocabulary_path(onnx_path):
    """The vocabulary file written beside a --text model's graph: DoorKey.onnx -> DoorKey.vocab.json."""
    root, ext = os.path.splitext(onnx_path)
    return (root if ext.lower() == ".onnx" else onnx_path) + ".vocab.json"


class ExportedPolicy(nn.Module):
    """``model`` (with ``preprocess_obss``, both in eval mode) as a module of plain tensors in and out: what
    torch.onnx.export traces. Its inputs are ``input_names``, its outputs ``output_names``."""

    def __init__(self, model, preprocess_obss):
        super().__init__()
        self.model = model
        self.preprocess_obss = preprocess_obss
        self.image_input = isinstance(preprocess_obss, MiniGridPreprocessor)
        self.text = self.image_input and preprocess_obss.tokenise
        self.input_names = ["image" if self.image_input else "obs"]
        self.input_names += ["mission"] if self.text else []
        self.input_names += ["memory"] if model.recurrent else []
        self.continuous = bool(getattr(model, "continuous", False))
        self.output_names = ["mean", "log_std"] if self.continuous else ["logits"]
        self.output_names += ["value"] + (["memory_out"] if model.recurrent else [])

    def forward(self, *inputs):
        named = dict(zip(self.input_names, inputs, strict=True))
        if self.image_input:
            image = named["image"]
            obs = torch_rl.DictList(image=onehot_image(image) if self.preprocess_obss.onehot else image.float())
            if self.text:
                obs.text = named["mission"]
        else:
            # The preprocessor's own code, so that the graph standardises exactly as evaluation does.
            normalizer = self.preprocess_obss.normalizer
            flat = named["obs"].float()
            obs = torch_rl.DictList(flat=normalizer(flat) if normalizer is not None else flat)
        if self.model.recurrent:
            dist, value, memory = self.model(obs, named["memory"])
            return (*distribution_outputs(dist), value, memory)
        dist, value = self.model(obs)
        return (*distribution_outputs(dist), value)


def distribution_outputs(dist):
    """(log-probabilities,) of a Categorical, (mean, log-std) of a Normal or Independent(Normal)."""
    if isinstance(dist, Independent):
        dist = dist.base_dist
    if isinstance(dist, Categorical):
        return (dist.logits,)
    if isinstance(dist, Normal):
        return dist.loc, dist.scale.log()
    raise UsageError(
        f"the model's policy is a {type(dist).__name__}; export handles Categorical and (Independent) Normal ones"
    )


def model_inputs(exported, observations, memory=None):
    """The graph's inputs (numpy arrays by name) for ``observations`` (a list of the env's observations, or the
    stacked batch), with the vocabulary of ``exported.preprocess_obss`` for missions (unknown words get new ids,
    as the torch model's preprocessing gives them)."""
    if isinstance(observations, (list, tuple)):
        observations = torch_rl.batching.stack_obs(list(observations))
    inputs = {}
    if exported.image_input:
        inputs["image"] = np.asarray(observations["image"], dtype=np.uint8)
        if exported.text:
            inputs["mission"] = tokenize(exported.preprocess_obss.vocab, observations["mission"])
    else:
        inputs["obs"] = np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)
    if memory is not None:
        inputs["memory"] = np.asarray(memory, dtype=np.float32)
    return inputs


def tokenize(vocab, missions):
    """Missions to (N, L) int64 token ids, padded with 0 to the longest: as MiniGridPreprocessor tokenises."""
    tokens = [vocab.tokens(m).numpy() for m in missions]
    batch = np.zeros((len(tokens), max(len(t) for t in tokens)), dtype=np.int64)
    for i, t in enumerate(tokens):
        batch[i, : len(t)] = t
    return batch


def to_onnx(exported, example_inputs, metadata):
    """The ONNX model (bytes) of ``exported`` traced on ``example_inputs`` (numpy arrays by input name), with
    ``metadata`` ({key: text}) in its metadata_props; checked by onnx's checker."""
    onnx, _ = require_onnx()
    args = tuple(torch.as_tensor(example_inputs[name]) for name in exported.input_names)
    dynamic_axes = {name: {0: "batch"} for name in exported.input_names + exported.output_names}
    if "mission" in dynamic_axes:
        dynamic_axes["mission"][1] = "words"
    buffer = io.BytesIO()
    # dynamo=False: the TorchScript exporter needs nothing beyond torch, where torch 2.13's default (dynamo) exporter
    # needs onnxscript as well; and it exports the LSTM cell and the GRU as ONNX's own LSTM and GRU operators.
    try:
        with torch.no_grad(), _quiet_exporter():
            torch.onnx.export(
                exported,
                args,
                buffer,
                input_names=exported.input_names,
                output_names=exported.output_names,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as error:  # a model of the user's own with an operator ONNX lacks, say
        raise UsageError(f"torch could not export the model to ONNX: {one_line(error)[:300]}") from None
    graph = onnx.load_from_string(buffer.getvalue())
    # Shape inference leaves some fixed sizes symbolic (the mean's action count, after the log-std's expand): they are
    # written in, so that a reader of the graph (and evaluate --onnx's check against the env) sees every size but N.
    with torch.no_grad():
        traced = exported(*args)
    for output, tensor in zip(graph.graph.output, traced, strict=True):
        for dim, size in zip(list(output.type.tensor_type.shape.dim)[1:], tensor.shape[1:], strict=True):
            dim.dim_value = size
    graph.doc_string = __doc__.split("\n\n", 1)[1].strip()
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


class _quiet_exporter:
    """The TorchScript exporter warns that it is deprecated, and about traced code it cannot see through (the
    model's Python branches, fixed by its configuration); the export is checked against the model instead."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def session(onnx_bytes_or_path):
    """An onnxruntime session on the CPU, one thread (the graph is small: threads cost more than they give)."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are about graph optimisations
    return ort.InferenceSession(onnx_bytes_or_path, options, providers=["CPUExecutionProvider"])


def graph_obs(path):
    """The --obs variant (scripts.train) of the model a graph was exported from: its metadata's "torch_rl.obs";
    partial for a graph exported before --obs. A file that cannot be read says partial: OnnxPolicy then says what
    is wrong with it."""
    try:
        metadata = session(path).get_modelmeta().custom_metadata_map
    except UsageError:
        raise
    except Exception:
        return "partial"
    obs = metadata.get("torch_rl.obs", "partial")
    return obs if obs in OBS_VARIANTS else "partial"


def torch_outputs(exported, inputs):
    """What ``exported`` (the torch model) gives for ``inputs`` (numpy arrays by name), as numpy arrays by name."""
    with torch.no_grad():
        outputs = exported(*(torch.as_tensor(inputs[name]) for name in exported.input_names))
    return {name: out.numpy() for name, out in zip(exported.output_names, outputs, strict=True)}


def max_difference(exported, sess, inputs):
    """The largest absolute difference between the torch model's outputs and the graph's on ``inputs``."""
    expected = torch_outputs(exported, inputs)
    got = dict(zip(exported.output_names, sess.run(exported.output_names, inputs), strict=True))
    return max(float(np.max(np.abs(expected[name] - got[name]), initial=0.0)) for name in exported.output_names)


class OnnxPolicy:
    """Picks actions with an exported graph, as utils.agent.Policy does with the torch model: what
    scripts.evaluate --onnx hands to utils.evaluation.run_episodes. Actions are drawn from the graph's outputs with
    torch's distributions (so --seed gives the same draws as with the torch model), or the likeliest with
    ``argmax``; a recurrent graph's memory is kept per env and zeroed where an episode ends."""

    def __init__(self, path, obs_space, action_space, argmax=False, num_envs=1):
        try:
            self.sess = session(path)
        except UsageError:
            raise
        except Exception as error:  # onnxruntime's own errors: a truncated file, not a graph at all...
            raise UsageError(f"cannot load the ONNX graph {path}: {one_line(error)[:300]}") from None
        inputs = {i.name: i for i in self.sess.get_inputs()}
        outputs = [o.name for o in self.sess.get_outputs()]
        self.path, self.argmax = path, argmax
        self.output_names = outputs
        self.continuous = "mean" in outputs
        if not ({"image", "obs"} & set(inputs)) or ("logits" not in outputs and not self.continuous):
            raise UsageError(f"{path} is not a policy exported by scripts.export (inputs {sorted(inputs)})")
        self.image_input = "image" in inputs
        self.text = "mission" in inputs
        self.vocab = None
        if self.text:
            self.vocab = load_vocabulary(vocabulary_path(path))
        self.memory = None
        if "memory" in inputs:
            size = inputs["memory"].shape[1]
            self.memory = np.zeros((num_envs, size), dtype=np.float32)
        check_spaces(path, inputs, self.sess.get_outputs(), obs_space, action_space)

    @property
    def preprocess_obss(self):  # model_inputs reads the vocabulary from here, as from a MiniGridPreprocessor
        return self

    def get_actions(self, obss):
        inputs = model_inputs(self, obss, self.memory)
        outputs = dict(zip(self.output_names, self.sess.run(self.output_names, inputs), strict=True))
        if self.memory is not None:
            self.memory = outputs["memory_out"]
        if self.continuous:
            mean, std = torch.as_tensor(outputs["mean"]), torch.as_tensor(outputs["log_std"]).exp()
            return mean if self.argmax else Independent(Normal(mean, std, validate_args=False), 1).sample()
        logits = torch.as_tensor(outputs["logits"])
        return logits.argmax(dim=1) if self.argmax else Categorical(logits=logits, validate_args=False).sample()

    def analyze_feedbacks(self, dones):
        if self.memory is not None:
            self.memory *= 1 - np.asarray(dones, dtype=np.float32).reshape(-1, 1)

    def analyze_feedback(self, done):
        self.analyze_feedbacks([done])


def load_vocabulary(path):
    """The Vocabulary of a --text graph's vocabulary file (a JSON object of words to token ids)."""
    try:
        with open(path, encoding="utf-8") as f:
            words = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"the graph reads missions, and its vocabulary {path} is missing; export it again") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the vocabulary {path}: {error}") from None
    vocab = Vocabulary()
    bad = not isinstance(words, dict) or any(
        not isinstance(k, str) or not re.fullmatch("[a-z]+", k) or type(v) is not int for k, v in words.items()
    )
    try:
        if bad:
            raise ValueError("it must be a JSON object of lower-case words to whole numbers")
        vocab.load_vocab(words)
    except ValueError as error:
        raise UsageError(f"the vocabulary {path} is malformed: {error}") from None
    return vocab


def check_spaces(path, inputs, outputs, obs_space, action_space):
    """A UsageError if the graph's observation or action shapes are not the env's."""
    import gymnasium as gym

    name = "image" if "image" in inputs else "obs"
    graph_obs = list(inputs[name].shape[1:])
    if name == "image":
        env_obs = list(obs_space["image"].shape) if isinstance(obs_space, gym.spaces.Dict) else None
    else:
        env_obs = [int(np.prod(obs_space.shape))] if isinstance(obs_space, gym.spaces.Box) else None
    first = outputs[0]
    graph_actions = first.shape[1]
    if isinstance(action_space, gym.spaces.Discrete):
        env_actions, kind = int(action_space.n), "logits"
    elif isinstance(action_space, gym.spaces.Box):
        env_actions, kind = int(np.prod(action_space.shape)), "mean"
    else:
        env_actions, kind = None, None
    if env_obs != graph_obs or kind != first.name or env_actions != graph_actions:
        raise UsageError(
            f"{path} was exported for other observations or actions than this env's ({name} {graph_obs}, "
            f"{first.name} of {graph_actions}); evaluate it on the env it was trained on"
        )
