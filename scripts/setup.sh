#!/usr/bin/env bash
# mmserve set-up for Debian 12: installs the Debian packages that are missing, builds (Release), then
#   setup.sh serve [mmserve flags...]   starts the server
#   setup.sh test                       runs every test (ctest)
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
  serve|test) shift ;;
  *) echo "usage: $0 serve [mmserve serve flags...] | test" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev nlohmann-json3-dev libboost-dev
  libsqlite3-dev libssl-dev   # the meter's ledger; key hashing (libcrypto)
  libicu-dev                  # Unicode categories for the BPE tokenizer's pre-tokenization
  libgtest-dev
  clang libclang-rt-14-dev   # libFuzzer + sanitizers for the fuzz targets
)
# The acceptance test drives the server with the official OpenAI SDK (npm); any Node.js >= 18 will do.
if [[ "$mode" == test ]] && ! { command -v node && command -v npm; } >/dev/null; then
  packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  echo "installing: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"

if [[ "$mode" == serve ]]; then
  exec ./build/services/mmserve serve "$@"
fi
(cd tests/acceptance && npm ci --no-audit --no-fund --loglevel=error)
ctest --test-dir build --output-on-failure -j"$(nproc)"
