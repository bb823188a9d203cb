#!/usr/bin/env bash
# One prepared pass over everything that needs an NVIDIA GPU, for a machine lent for a few minutes:
#   bash benchmarks/gpu_check.sh [OUTDIR] [STEPS...]
# STEPS (default: all, in this order): info cuda_tests train_cuda batched batched_ids babyai sweep throughput profile
# suite
# (the suite step runs pytest -n 12: pytest-xdist, which the GPU image has)
# Each step has its own time limit (seconds in T_<step>, defaults below), writes OUTDIR/<step>.log and a failing
# or slow step does not stop the next one.
set -u
out=${1:-gpu_check_out}
shift || true
steps=${*:-info cuda_tests train_cuda batched batched_ids babyai sweep throughput profile suite}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export DEVICE=${DEVICE:-cuda}  # DEVICE=cpu rehearses the script on a machine without a GPU
export storage=$(mktemp -d)

step() {  # step NAME DEFAULT_LIMIT COMMAND...
    local name=$1 limit=$2; shift 2
    case " $steps " in *" $name "*) ;; *) return 0 ;; esac
    local var="T_$name"; limit=${!var:-$limit}
    echo "=== $name (limit ${limit}s, $(date +%T)): $*"
    local t0=$SECONDS
    timeout "$limit" bash -c "$*" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$out/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
}

info() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
    python3 -c "import torch, gymnasium, minigrid; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0), '| gymnasium', gymnasium.__version__, '| minigrid', minigrid.__version__)"
}

train_cuda() {  # the starter files on cuda: plain Minigrid envs, then the batched env; evaluate both on Minigrid
    export TORCH_RL_STORAGE=$storage
    python3 -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model plain --device $DEVICE --frames 40000 \
        --log-interval 5 --save-interval 10 &&
    python3 -m scripts.evaluate --env MiniGrid-DoorKey-5x5-v0 --model plain --episodes 20 &&
    python3 -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model batched --batched --device $DEVICE \
        --procs 4096 --frames-per-proc 32 --batch-size 16384 --frames 3000000 --stop-at-return 0.9 \
        --log-interval 2 --save-interval 10 &&
    python3 -m scripts.evaluate --env MiniGrid-DoorKey-5x5-v0 --model batched --episodes 100
}

throughput() {  # CPU and CUDA side by side on the same machine, 16 and 64 envs
    for procs in ${PROCS:-16 64}; do
        for device in cpu $DEVICE; do
            python3 -m benchmarks.throughput --device $device --procs $procs --rounds ${ROUNDS:-1} \
                $([ $procs = 64 ] && echo --quick)
        done
    done
}

profile() {  # where the time goes, CPU and CUDA, 16 envs
    for device in cpu $DEVICE; do python3 -m benchmarks.profile_training --device $device --top 25; done
}

export -f info train_cuda throughput profile
step info 60 info
step cuda_tests 150 python3 -m pytest -q -p no:cacheprovider tests/test_batched_minigrid.py tests/test_batched_families.py \
    tests/test_batched_babyai.py tests/test_exploration.py tests/test_compile.py -k cuda -rs
step train_cuda 150 train_cuda
step batched 200 python3 -m benchmarks.batched_env --device $DEVICE --seconds 1 \
    --ppo-env MiniGrid-DoorKey-8x8-v0 MiniGrid-FourRooms-v0 MiniGrid-MultiRoom-N4-S5-v0
step batched_ids 480 python3 -m benchmarks.batched_env --device $DEVICE --table --batch 65536 --seconds 0.5
# BabyAI at B = 65,536: a one-room level and the largest (the small and large level)
step babyai 120 python3 -m benchmarks.babyai --device $DEVICE --batch 65536 --no-minigrid \
    --env BabyAI-GoToRedBall-v0 BabyAI-GoToLocal-v0 BabyAI-PutNextLocal-v0 BabyAI-BossLevel-v0
# PPO training FPS, eager and compiled (CUDA graphs), MLP and conv, up to B = 65,536 (the peer only where installed)
step sweep 300 python3 -m benchmarks.training_sweep --device $DEVICE --seconds 3 \
    --settings 16x128 1024x32 4096x32 16384x32 65536x32
step throughput 240 throughput
step profile 120 profile
step suite 150 python3 -m pytest -q -p no:cacheprovider -n 12 -rf
rm -rf "$storage"
