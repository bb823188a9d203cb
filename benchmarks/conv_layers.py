"""The default model's conv net with ``torch_rl.PatchConv2d`` against the same net with ``nn.Conv2d``.

    python -m benchmarks.conv_layers [--quick] [--rounds 5] [--threads 1]

The starter files' net on MiniGrid's 7x7 view (three 2x2 convs of 16, 32 and 64 filters, ReLUs, one 2x2 max-pool),
the same parameters in both, one torch thread (as scripts.train): a forward of 16 rows under inference mode (one
acting step of 16 envs) and a forward and backward of 256 rows (one PPO mini-batch). The two layers alternate in
interleaved rounds, each keeping its best (the speed of a shared machine drifts). Prints microseconds per call and
the ratios.
"""

import argparse
import time

import torch
from torch import nn

from torch_rl import PatchConv2d


def starter_nets():
    """{layer name: net}: model.py's net for the 7x7 view, and a twin with ``nn.Conv2d`` layers and the same
    parameters (so the benchmark follows the model's net wherever it changes)."""
    from model import image_net

    patch, _ = image_net(7, 7, 3)
    plain = nn.Sequential(
        *(
            nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride) if type(m) is PatchConv2d else m
            for m in patch
        )
    )
    plain.load_state_dict(patch.state_dict())
    return {"nn.Conv2d": plain, "PatchConv2d": patch}


def microseconds(fn, calls):
    """Best of three timings of ``calls`` calls, after a warm-up."""
    for _ in range(max(calls // 10, 1)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def measure(rounds: int, calls: int) -> dict:
    """{(layer, case): best microseconds per call} for layer in (nn.Conv2d, PatchConv2d)."""
    torch.manual_seed(0)
    nets = starter_nets()
    views = torch.randint(0, 11, (256, 7, 7, 3)).float()  # NHWC cell codes, as the model's input

    def acting(net):
        with torch.inference_mode():
            net(views[:16].permute(0, 3, 1, 2))

    def mini_batch(net):
        net(views.permute(0, 3, 1, 2)).square().sum().backward()

    best = {}
    for _ in range(rounds):
        for name, net in nets.items():
            for case, fn, n in (
                ("forward, 16 rows", acting, calls),
                ("forward+backward, 256 rows", mini_batch, calls // 8),
            ):
                us = microseconds(lambda fn=fn, net=net: fn(net), max(n, 1))
                best[name, case] = min(best.get((name, case), float("inf")), us)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.conv_layers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="fewer calls (noisier)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each layer keeps its best")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (scripts.train's default: 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    best = measure(1 if args.quick else args.rounds, 40 if args.quick else 400)
    print(f"# the starter net on 7x7 views, CPU, {torch.get_num_threads()} torch thread(s); best us per call")
    print(f"{'case':>28} {'nn.Conv2d':>10} {'PatchConv2d':>12} {'ratio':>7}")
    for case in ("forward, 16 rows", "forward+backward, 256 rows"):
        plain, patch = best["nn.Conv2d", case], best["PatchConv2d", case]
        print(f"{case:>28} {plain:>10.1f} {patch:>12.1f} {plain / patch:>6.2f}x")


if __name__ == "__main__":
    main()
