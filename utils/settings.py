"""A run's settings, resolved in one place and frozen: ``resolve_settings`` takes the command line's flags, then
the env's recipe for the flags not given, then what a resumed model keeps, then checks the result; the run reads
the returned Settings and nothing changes them afterwards."""

import argparse

from utils.device import default_device
from utils.resume import with_settings
from utils.train_args import parse_args, validate

FROZEN = "a run's settings are resolved once (utils.settings.resolve_settings), then read-only"


class Settings(argparse.Namespace):
    """The resolved flags of a run (``vars(settings)`` gives them as a dict, as saved with the model); read-only."""

    def __init__(self, **values):
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{FROZEN}: cannot set {name}")

    def __delattr__(self, name):
        raise AttributeError(f"{FROZEN}: cannot unset {name}")


def resolve_settings(argv, description, open_model):
    """(the run's Settings, what a resumed model kept ({flag: value}), what ``open_model`` opened).

    In this order: the flags of ``argv`` (``description`` heads --help), the env's recipe as the defaults of the
    flags not given, validation (before anything is opened), the device's default; then ``open_model(args)``
    (which reads ``args``, never changes it) returns (what it opened, the flags it resolves ({flag: value}:
    the image encoding, --obs and --batched, utils.resume.RESOLVED_FLAGS), the settings the resumed model keeps),
    and those are merged and validated again where a resumed model changed any."""
    args = parse_args(argv, description)
    validate(args)
    args.device = args.device or default_device(args.batched)
    opened, resolved, kept = open_model(args)
    settings = Settings(**with_settings(args, kept | resolved))
    if kept:
        validate(settings)
    return settings, kept, opened
