#!/usr/bin/env bash
# The README's batch walkthrough on 12 unlabeled CCP photos: worklist -> corrections -> QA -> effort ->
# agreement -> delivery package -> report, in a fresh store under DIR (default /tmp/tailor-walkthrough).
# Run from the repository root with the venv active: bash bench/walkthrough.sh [DIR]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-/tmp/tailor-walkthrough}
PHOTOS="$REPO/../shared/data/ccp/unlabeled"
export TAILOR_DATA_DIR="$DIR/data" NO_ALBUMENTATIONS_UPDATE=1 COLUMNS=${COLUMNS:-120}
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR"

tailor worklist create shop-0001 "$PHOTOS"/10{05..16}.jpg --annotators ann,bob,cy
tailor worklist csv shop-0001 -o worklist.csv
python "$REPO/bench/simulate_annotators.py" shop-0001
tailor worklist qa shop-0001
# A reviewer looks at photo 1011's first flag, finds the drawing right, and ticks it off.
KEY=$(tailor worklist qa shop-0001 1011 --json | python -c "import json,sys; print(json.load(sys.stdin)['images'][0]['flags'][0]['key'])")
tailor worklist set shop-0001 1011 --resolve "$KEY" --qa-status passed --notes "checked: drawn right"
tailor worklist set shop-0001 1012 --qa-status flagged --notes "pants split in three: recheck the legs"
tailor worklist effort shop-0001
tailor worklist agreement shop-0001
tailor worklist deliver shop-0001 deliveries/shop-0001 || echo "(refused, as it should be: a photo is unapproved)"
tailor worklist deliver shop-0001 deliveries/shop-0001 --include-unapproved
tailor worklist report shop-0001 report
echo "package: $DIR/deliveries/shop-0001(.zip)  report: $DIR/report/report.html"
