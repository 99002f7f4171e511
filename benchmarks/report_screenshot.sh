#!/usr/bin/env bash
# Render a `bench report` page in headless Chromium (Debian's `chromium` package) and save a PNG of its
# top part, shrunk to a palette image small enough to commit.
#
#   benchmarks/report_screenshot.sh report.html docs/report.png [WIDTH] [HEIGHT]
#
# Run it with the project's environment active (the shrinking uses Pillow). Chromium never goes online here:
# the report is one self-contained file.
set -euo pipefail
report=${1:?usage: $0 REPORT.html OUT.png [WIDTH] [HEIGHT]}
out=${2:?usage: $0 REPORT.html OUT.png [WIDTH] [HEIGHT]}
width=${3:-1400}
height=${4:-2200}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "chromium not found: apt-get install -y chromium" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions \
    --user-data-dir="$work/profile" --window-size="$width,$height" \
    --screenshot="$work/full.png" "file://$(realpath "$report")" >/dev/null 2>&1
python - "$work/full.png" "$out" <<'PY'
import sys
from PIL import Image

shot = Image.open(sys.argv[1]).convert("RGB")
shot.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(sys.argv[2], optimize=True)
PY
echo "wrote $out ($(du -k "$out" | cut -f1) KiB)"
