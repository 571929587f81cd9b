#!/usr/bin/env bash
# Install dockyard and everything its tests need on a fresh Debian 12 machine (run as root).
#   scripts/install.sh          system packages + a virtualenv at /opt/dockyard + /usr/local/bin/dockyard
# DOCKYARD_VENV changes the virtualenv's place.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DOCKYARD_VENV:-/opt/dockyard}

APT_PACKAGES=(
  busybox-static   # the busybox template
  debootstrap      # the debian template
  skopeo umoci     # interop peers in the tests
  runc             # reference runtime in the tests
  docker-registry  # reference registry in the tests
  apache2-utils    # htpasswd, for registry auth tests
  iptables iproute2 # networking
  libseccomp2      # seccomp filters
  hyperfine        # benchmarks
  tini             # --init
  nftables         # nft and libnftables: NAT and published ports
  curl zstd tar gzip ca-certificates
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && python3 -m venv "$VENV"; }
fi
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
# An editable install, so the command always runs this checkout's code; 'compat' mode keeps start-up fast.
"$VENV/bin/pip" install -q -e '.[test]' --config-settings editable_mode=compat
"$VENV/bin/python" -m compileall -q dockyard >/dev/null
# A leaner launcher than pip's console script, which imports `re` (~5 ms) and processes site-packages' .pth
# files (~2 ms) on every command: start without `site` (-S) and put the two directories on the path directly.
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$VENV/bin/dockyard" <<LAUNCHER
#!$VENV/bin/python3 -S
import sys
sys.path[1:1] = ["$PWD", "$SITE"]
from dockyard.cli.main import main
sys.exit(main())
LAUNCHER
ln -sf "$VENV/bin/dockyard" /usr/local/bin/dockyard
echo "dockyard installed: $(dockyard --version)"
