#!/usr/bin/env bash
# `npm run bench:embed`: the cost of embeddings in-process (`npm run embed`) against over HTTP (`npm run probe --
# --url`, PNG uploads in multipart batches of 32, 4 in flight, to a running server), in CPU time of every process
# involved (client and server), over the 10,000 Fashion-MNIST test images, for the bundled model and a random
# B_6-Wi_512 at 64×64×3. CPU time per image is images/s per core; the load average is printed beside each case.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/models"
cp -r models/fashion-mlp "$work/models/"
node --import tsx scripts/export-random.ts --arch B_6-Wi_512 --out "$work/models/b6-wi512" --name b6-wi512 --labels fashion-mnist >/dev/null
ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }
port=$((20000 + RANDOM % 20000))
printf '| model | path | wall images/s | CPU ms per image (client + server) | images/s per core | load |\n| --- | --- | ---: | ---: | ---: | --- |\n'
for m in fashion-mlp b6-wi512; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %U %S' -o "$work/t" node --import tsx scripts/embed.ts --model "$m" --models-dir "$work/models" \
    --data fashion-mnist --split test --out "$work/out-$m" >/dev/null 2>&1
  read -r wall user sys < "$work/t"
  awk -v m="$m" -v w="$wall" -v u="$user" -v s="$sys" -v l="$load" 'BEGIN { c = 1000 * (u + s) / 10000;
    printf "| %s | in-process | %.0f | %.2f | %.0f | %s |\n", m, 10000 / w, c, 1000 / c, l }'
  load=$(cut -d' ' -f1 /proc/loadavg)
  MODELS_DIR="$work/models" PORT=$port GRPC_PORT=off node --import tsx src/serve/server.ts >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 180); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 1; done
  s0=$(ticks "$server")
  /usr/bin/time -f '%e %U %S' -o "$work/t" node --import tsx scripts/probe.ts --url "http://127.0.0.1:$port" --model "$m" \
    --data fashion-mnist --train-n 20 --test-n 10000 >/dev/null 2>&1
  s1=$(ticks "$server")
  kill "$server"; wait "$server" 2>/dev/null || true
  read -r wall user sys < "$work/t"
  awk -v m="$m" -v w="$wall" -v u="$user" -v s="$sys" -v st="$((s1 - s0))" -v l="$load" 'BEGIN { c = (1000 * (u + s) + 10 * st) / 10000;
    printf "| %s | HTTP /embed | %.0f | %.2f | %.0f | %s |\n", m, 10000 / w, c, 1000 / c, l }'
done
