#!/usr/bin/env bash
# Regenerates the committed plots in plots/ (byte-identical for the same
# seeds: the font is bundled and every run is deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."
# A RUSTFLAGS variable would replace .cargo/config.toml's `--cfg madsim`.
export RUSTFLAGS="--cfg madsim"
cargo build --release --quiet
pssim=target/release/pssim
# The main job: the default scenario (also what `cargo run --release` does).
$pssim run scenarios/default.toml --plots plots/default > /dev/null
# A server crash with replication 2: the throughput dip and the failover.
$pssim run scenarios/replicated-server-crash.toml --plots plots/failover > /dev/null
# Chaos: faults shaded and labelled.
$pssim run scenarios/chaos-heavy.toml --seed 3 --plots plots/chaos > /dev/null
# BSP vs SSP under a straggler: worker timelines.
$pssim run scenarios/bsp-straggler.toml --plots plots/bsp-straggler > /dev/null
$pssim run scenarios/ssp-straggler.toml --plots plots/ssp-straggler > /dev/null
# Hot keys: range placement puts the popular keys on server-0 (load plot),
# against balanced placement.
$pssim run scenarios/hot-keys-range.toml --plots plots/hot-keys > /dev/null
$pssim run scenarios/hot-keys-balanced.toml --plots plots/hot-keys-balanced > /dev/null
# The staleness trade-off: time to target and idle time against the bound.
$pssim sweep scenarios/staleness-tradeoff.toml --set training.staleness=0,1,2,4,8,16,32 \
    --seeds 0..20 --plots plots/staleness-sweep | tail -9
# The trade-off on the faithful clock: the perceptron and softmax, each
# communication-bound and compute-bound (calibrated compute, jitter and a
# straggler), and ASP's learning rate up to divergence.
for m in mlp softmax; do
    for r in network compute; do
        $pssim sweep scenarios/tradeoff-$m-$r.toml --set training.staleness=0,1,2,4,8,16,32 \
            --seeds 0..20 --plots /tmp/pssim-tradeoff-$m-$r | tail -8
        cp /tmp/pssim-tradeoff-$m-$r/tradeoff.png /tmp/pssim-tradeoff-$m-$r/tradeoff.svg plots/tradeoff-$m-$r/
    done
done
$pssim sweep scenarios/tradeoff-mlp-compute.toml --set training.consistency=asp \
    --set training.learning_rate=0.05,0.1,0.2,0.4,0.8 --seeds 0..20 --plots /tmp/pssim-asp-lr | tail -6
cp /tmp/pssim-asp-lr/tradeoff.png /tmp/pssim-asp-lr/tradeoff.svg plots/asp-learning-rate/
# Compression: test accuracy against bytes sent, per encoding and pull filter.
$pssim sweep scenarios/compression.toml --set compression.kind=none,topk,quantize \
    --set compression.pull_threshold=0,0.01 --seeds 1..11 --plots plots/compression | tail -8
# The scaling study: time per clock and time to target against servers, per
# worker count, each point marked by its bottleneck.
$pssim sweep scenarios/scaling.toml --set cluster.servers=1,2,4,8,16 \
    --set cluster.workers=4,16,32 --seeds 1..4 --plots /tmp/pssim-scaling | tail -16
cp /tmp/pssim-scaling/scaling.png /tmp/pssim-scaling/scaling.svg plots/scaling/
# The same on a slow network: the servers' interfaces, then the workers'.
$pssim sweep scenarios/scaling-network.toml --set cluster.servers=1,2,4,8,16 \
    --set cluster.workers=4,16,64 --seeds 1..4 --plots /tmp/pssim-scaling-net | tail -16
cp /tmp/pssim-scaling-net/scaling.png /tmp/pssim-scaling-net/scaling.svg plots/scaling-network/
echo "plots regenerated in plots/"
