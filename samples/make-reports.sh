#!/usr/bin/env bash
# The main job on the bundled samples (npm start): for every recorded scenario, the report of its inside
# capture under the router's own conntrack settings, into reports/<scenario>/, plus the stats of all
# captures in reports/stats.txt and reports/stats.json. Build first (npm run build).
set -euo pipefail
# Relative paths, so that the reports name the same inputs wherever the repository is checked out.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cli=(node dist/cli/main.js)
mkdir -p reports
for scenario in samples/*/; do
  name=$(basename "$scenario")
  [ -f "$scenario/inside.pcap" ] || continue
  nat=()
  # The MASQUERADE recordings: the router's rule, on its outside interface's address (scenario.json).
  if grep -q '"nat": "masquerade"' "${scenario}scenario.json"; then
    nat=(--masquerade out0=198.51.100.32)
  fi
  "${cli[@]}" report "${scenario}inside.pcap" --sysctl "${scenario}sysctl.txt" --drain "${nat[@]}" \
    --title "$name (router inside interface)" -o "reports/$name" --force
  echo "reports/$name/"
done
"${cli[@]}" stats samples -o reports/stats.txt --force
"${cli[@]}" stats samples --format json -o reports/stats.json --force
echo "reports/stats.txt, reports/stats.json"
