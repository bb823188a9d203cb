"""The training loop of scripts.train: updates until --frames (or --stop-at-return), logs, saves, and ends with
one of the exit codes of utils.errors.

Every rank of a torchrun job runs this same loop, so that the collective calls (the episode statistics'
all-gather, the stop decision) happen at the same updates on all ranks; rank 0 alone logs and saves (the others
get a NullLog and save nothing). Later features go in hooks, without touching the loop: ``before_update`` (e.g. a
learning-rate schedule) and ``after_update`` (e.g. an evaluation every N updates) run on every rank.
"""

import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import torch
from torch.distributions import Distribution

import torch_rl
from torch_rl.vec_env import report_to_stderr
from utils import checkpoint as checkpoints
from utils.distributed_setup import broadcast_object, gather_lists, parameters_agree, shutdown_distributed
from utils.errors import EXIT_FAILED, EXIT_INTERRUPTED, UsageError, one_line
from utils.interrupts import ignore_interrupts, interrupts_deferred, interrupts_stop_training
from utils.logs import NullLog, TrainingLog, log_row
from utils.resume import restore_algo
from utils.storage import (
    ModelLock,
    WriteError,
    command_line,
    ensure_writable_dir,
    remove_temp_files,
    save_config,
    trim_csv_log,
)
from utils.tracking import TrainingTracker

STOP_WINDOW = 5  # logged updates whose mean returns --stop-at-return averages
EPISODE_LOG_KEYS = (
    "return_per_episode",
    "reshaped_return_per_episode",
    "num_frames_per_episode",
    "intrinsic_return_per_episode",
)


class NonFiniteOutputs(FloatingPointError):
    """The model gave a distribution NaN or infinite parameters."""


def open_model_folder(model_dir, checkpoint, model_name, cleanup):
    """Rank 0 takes the model folder for this run, in this order: the lock (a second training of the model stops
    here), then the temp files of saves that a crash interrupted, then the rows logged after the last save
    (which this run logs again). ``cleanup`` (a contextlib.ExitStack) releases the lock."""
    ensure_writable_dir(model_dir)
    cleanup.callback(ModelLock(model_dir).release)
    if checkpoints.changed_since_loaded(checkpoint, model_dir):
        raise UsageError(
            f"the model {model_name} was saved by another run while this one started; run the command again "
            "to resume from its new checkpoint"
        )
    remove_temp_files(model_dir)
    trim_csv_log(model_dir, checkpoint.update)


def open_log(model_dir, checkpoint, args, config, cleanup):
    """Rank 0's start: takes the model folder, opens the logs (closed by ``cleanup``), writes config.json for a new
    model and the command line; returns the TrainingLog."""
    open_model_folder(model_dir, checkpoint, args.model, cleanup)
    tracker = None
    if getattr(args, "wandb", None) is not None:
        tracker = cleanup.enter_context(
            contextlib.closing(TrainingTracker(args.wandb, args.model, config, quiet=args.quiet))
        )
    log = TrainingLog(model_dir, cleanup, quiet=args.quiet, tensorboard=args.tb, tracker=tracker)
    if checkpoint.update == 0:
        save_config(config, model_dir)
    log.line(f"# {command_line()}")
    return log


class Trainer:
    """Trains ``algo`` from ``checkpoint`` (whose counters it advances) until ``args.frames``; see run()."""

    def __init__(self, algo, preprocess_obss, checkpoint, args, model_dir, rank=0, world_size=1):
        self.algo, self.acmodel, self.preprocess_obss = algo, algo.acmodel, preprocess_obss
        self.checkpoint, self.args, self.model_dir = checkpoint, args, model_dir
        self.config, self.rank, self.world_size = dict(vars(args)), rank, world_size
        self.cleanup = contextlib.ExitStack()  # what the run opened, closed however it ends
        self.cleanup.callback(algo.close)
        self.log = NullLog()  # rank 0's is opened by start()
        self.saved_update = checkpoint.update if checkpoint.model_state is not None else None
        self.before_update: list[Callable[[Trainer], None]] = []
        self.after_update: list[Callable[[Trainer, dict], None]] = []  # inside the update's deferred bookkeeping
        self.recent_returns = deque(maxlen=STOP_WINDOW)
        self.evaluation = None  # an EvaluationDuringTraining, with --eval-interval
        self.first_update = checkpoint.update  # this run's first update (with --compile, it compiles)

    def start(self, runs_on):
        """Restores the algorithm's saved state, gives all ranks rank 0's parameters; rank 0 takes the model folder
        and opens the logs (``runs_on`` says where the run runs, in its first lines)."""
        try:
            restore_algo(self.algo, self.checkpoint, self.args)
            if self.world_size > 1:
                torch_rl.distributed.broadcast_parameters(self.acmodel)
            if self.rank == 0:  # only rank 0 logs and saves
                self.log = open_log(self.model_dir, self.checkpoint, self.args, self.config, self.cleanup)
                parameters = sum(p.numel() for p in self.acmodel.parameters())
                resuming = f"resuming at update {self.checkpoint.update}" if self.checkpoint.update else "new model"
                self.log.line(f"# {runs_on}, {parameters} parameters, {resuming} in {self.model_dir}")
        except WriteError as error:
            self.cleanup.close()
            self.write_failed(error)
        except BaseException:
            self.cleanup.close()
            raise

    # ------------------------------------------------------------------------------------------------- the loop
    def run(self):
        """Trains, then saves; returns the exit code (0, or 130 after Ctrl-C or SIGTERM, the model saved first);
        exits with code 1 on a failure (diverged, a write, an env)."""
        interrupted = False
        with interrupts_stop_training():
            try:
                self.start, self.duration_before = time.time(), self.checkpoint.duration
                self.interval_start, self.interval_frames = time.time(), 0
                while self.checkpoint.num_frames < self.args.frames:
                    if self.update():
                        break
                self.save()
                if self.world_size > 1:
                    agree = parameters_agree(self.acmodel, self.world_size)
                    self.log.line(
                        f"# {self.world_size} ranks, parameters identical on all ranks: {'yes' if agree else 'NO'}"
                    )
                self.log.line(
                    f"# done: {self.checkpoint.num_frames} frames, {self.checkpoint.update} updates, "
                    f"model saved in {self.model_dir}"
                )
            except KeyboardInterrupt:
                ignore_interrupts()  # a second Ctrl-C or SIGTERM must not cut this save short
                interrupted = True
                self.save_after_interrupt()
            except FloatingPointError as error:
                self.diverged(error)
            except WriteError as error:
                self.write_failed(error)
            except torch_rl.EnvWorkerError as error:
                print(f"error: an environment failed: {one_line(error)}; {self.checkpoint_note()}", file=sys.stderr)
                sys.exit(EXIT_FAILED)
            finally:
                self.cleanup.close()
                if self.world_size > 1:
                    shutdown_distributed()
        return EXIT_INTERRUPTED if interrupted else 0

    def update(self):
        """One update and its bookkeeping; True once --stop-at-return is reached."""
        for hook in self.before_update:
            hook(self)
        logs = update_parameters(self.algo)
        if self.algo.compile and self.checkpoint.update == self.first_update:
            self.log.line(f"# compiled in {self.algo.compile_seconds:.1f} s (the first calls of the compiled graphs)")
        # The update's bookkeeping happens whole: an interrupt here waits, so status and logs stay in step.
        with interrupts_deferred():
            check_finite(self.acmodel)
            frames = logs["num_frames"] * self.world_size
            self.checkpoint.num_frames += frames
            self.checkpoint.update += 1
            self.interval_frames += frames
            self.checkpoint.duration = self.duration_before + time.time() - self.start
            stop = False
            evaluated = self.evaluation is not None and self.evaluation.due(self.checkpoint.update)
            if evaluated:  # the update's row shows the evaluation: it is logged whatever --log-interval says
                results, stop = self.evaluation(self)
                logs |= results
            if evaluated or self.checkpoint.update % self.args.log_interval == 0:
                stop = self.log_update(logs) or stop
            for hook in self.after_update:
                hook(self, logs)
            if not stop and self.args.save_interval > 0 and self.checkpoint.update % self.args.save_interval == 0:
                self.save()
        return stop

    def log_update(self, logs):
        """Logs the update (all ranks' episodes); True once --stop-at-return is reached."""
        gather_episode_logs(logs, self.world_size)
        fps = self.interval_frames / max(time.time() - self.interval_start, 1e-9)
        checkpoint = self.checkpoint
        self.log.row(log_row(logs, checkpoint.update, checkpoint.num_frames, fps, checkpoint.duration))
        self.interval_start, self.interval_frames = time.time(), 0
        if self.evaluation is not None:  # --stop-at-return then acts on the evaluations' return
            return False
        if not reached_target(logs, self.args, self.recent_returns):
            return False
        self.log.line(
            f"# mean return over the last {STOP_WINDOW} logs {np.mean(self.recent_returns):.3f} "
            f"reached --stop-at-return {self.args.stop_at_return}"
        )
        return True

    # ---------------------------------------------------------------------------------------------- saving
    def save(self, best=False):
        """Rank 0 writes the checkpoint (``best``: the best evaluation's, status_best.pt); a diverged model never
        replaces the last good one."""
        if self.rank != 0:
            return
        check_finite(self.acmodel)
        self.checkpoint.model_state = self.acmodel.state_dict()
        self.checkpoint.algo_state = self.algo.state_dict()
        self.checkpoint.preprocessor_state = self.preprocess_obss.state_dict()
        self.checkpoint.config = checkpoints.make_config(self.config)
        checkpoints.save(self.checkpoint, self.model_dir, best=best)
        if not best:
            self.saved_update = self.checkpoint.update

    def save_after_interrupt(self):
        try:
            self.save()
            self.log.line(
                f"# interrupted: model saved at update {self.checkpoint.update}, {self.checkpoint.num_frames} "
                "frames; run the same command to resume"
            )
        except FloatingPointError as error:
            self.diverged(error)
        except WriteError as error:
            self.write_failed(error)

    # ------------------------------------------------------------------------------------------- failures
    def checkpoint_note(self):
        return checkpoint_note(self.model_dir)

    def diverged(self, error):
        print(
            f"error: training diverged at update {self.checkpoint.update + 1}: {one_line(error)}; "
            f"{self.checkpoint_note()} (lower --lr, or check the rewards and observations)",
            file=sys.stderr,
        )
        sys.exit(EXIT_FAILED)

    def write_failed(self, error):
        write_failed(error, self.model_dir, self.saved_update)


class EvaluationDuringTraining:
    """--eval-interval: every ``interval`` updates, rank 0 runs ``evaluator`` (a utils.evaluation.Evaluator) on
    the current policy; the results go into the update's logs (``eval_return_mean``, ``eval_success_rate``,
    ``eval_num_frames_mean``), a better mean return than any before saves status_best.pt, and --stop-at-return
    acts on it. Other ranks (evaluator None) get rank 0's decision to stop."""

    def __init__(self, evaluator, interval, stop_at_return=None):
        self.evaluator, self.interval, self.stop_at_return = evaluator, interval, stop_at_return

    def due(self, update):
        return update % self.interval == 0

    def __call__(self, trainer):
        """(logs of the evaluation, whether to stop)."""
        results, stop = {}, False
        if trainer.rank == 0:
            result = self.evaluator(trainer.acmodel, trainer.preprocess_obss, trainer.algo.device)
            results = {f"eval_{key}": result[key] for key in ("return_mean", "success_rate", "num_frames_mean")}
            checkpoint = trainer.checkpoint
            best = checkpoint.best_eval_return
            if best is None or result["return_mean"] > best:
                checkpoint.best_eval_return = result["return_mean"]
                trainer.save(best=True)
                trainer.log.line(
                    f"# evaluation at update {checkpoint.update}: mean return {result['return_mean']:.3f}, the best "
                    f"so far: saved as {checkpoints.BEST_STATUS_FILE}"
                )
            stop = self.stop_at_return is not None and result["return_mean"] >= self.stop_at_return
            if stop:
                trainer.log.line(
                    f"# evaluation mean return {result['return_mean']:.3f} reached --stop-at-return "
                    f"{self.stop_at_return}"
                )
        if trainer.world_size > 1:
            stop = broadcast_object(stop, trainer.rank)
        return results, stop

    def close(self):
        if self.evaluator is not None:
            self.evaluator.close()


def update_parameters(algo):
    """``algo.update_parameters()``, with the ValueError by which torch.distributions refuses NaN or infinite
    parameters (a diverged model, when its distributions check their arguments) turned into NonFiniteOutputs."""
    try:
        return algo.update_parameters()
    except ValueError as error:
        if not _raised_in(error, Distribution.__init__):
            raise
        raise NonFiniteOutputs("the model's outputs are not finite (NaN or inf)") from error


def _raised_in(error, function):
    """Whether ``error`` was raised by ``function`` itself (its traceback's last frame runs its code)."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback is not None and traceback.tb_frame.f_code is function.__code__


def check_finite(module):
    """Raises FloatingPointError if a parameter is NaN or infinite (such a model is never saved)."""
    named = list(module.named_parameters())
    finite = torch.stack([torch.isfinite(p).all() for _, p in named]).tolist()  # one device sync
    bad = [name for (name, _), ok in zip(named, finite, strict=True) if not ok]
    if bad:
        raise FloatingPointError(f"the parameters {', '.join(bad)} are not finite")


def reached_target(logs, args, recent):
    """--stop-at-return is reached: the last STOP_WINDOW logged mean returns average at least R (decided on all
    ranks' episodes, so every rank stops at the same update)."""
    returns = logs["return_per_episode"]
    if args.stop_at_return is None or len(returns) == 0:
        return False
    recent.append(float(np.mean(returns)))
    return len(recent) == STOP_WINDOW and float(np.mean(recent)) >= args.stop_at_return


def gather_episode_logs(logs, world_size):
    """Episode statistics of all ranks (called by every rank at the same updates), without the zeros that pad
    them before num_procs episodes have ended (so the log shows nan until an episode ends)."""
    padding = logs.get("num_padding_entries", 0)
    for key in EPISODE_LOG_KEYS:
        if key in logs:  # the intrinsic returns only with an exploration bonus (on every rank alike)
            logs[key] = gather_lists(logs[key][padding:], world_size)


def checkpoint_note(model_dir):
    """What a failed run leaves: the last checkpoint, or none (never claim a checkpoint that does not exist)."""
    if checkpoints.exists(model_dir):
        return f"the last checkpoint in {model_dir} is kept"
    return f"no checkpoint was saved in {model_dir} yet"


def write_failed(error, model_dir, saved_update):
    """A write to the model folder failed (disk full, read-only file): one line, exit 1; saves are atomic, so the
    last checkpoint is whole."""
    kept = (
        f"the checkpoint of update {saved_update} in {model_dir} is kept"
        if saved_update is not None
        else "no checkpoint was saved"
    )
    print(f"error: {one_line(error)}; {kept} (free some disk space or make the file writable)", file=sys.stderr)
    sys.exit(EXIT_FAILED)


def env_hung(message, model_dir, env_timeout):
    """--env-timeout fired with in-process envs (called from the watchdog thread, which then exits with code 1)."""
    report_to_stderr(
        f"an environment hung: {message}; {checkpoint_note(model_dir)} (raise --env-timeout, now "
        f"{env_timeout:g} s, if its steps are this slow)"
    )


def exit_now(code=0):
    """Ends a torchrun rank once its work is saved and the group is left. Why not a normal exit: now and then a C++
    destructor at interpreter teardown aborts with "terminate called without an active exception", which torchrun
    reports as a failed job although everything was done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
