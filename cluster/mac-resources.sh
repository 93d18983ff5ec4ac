# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Sourced (never run) by start-head.sh and join-mac-worker.sh on an Apple Silicon Mac: detects the chip
# and sets MAC_CHIP ("m2-max"), MAC_RESOURCES (JSON for `ray start --resources`) and
# MAC_LABELS (for `ray start --labels`). The names match evodiff_ray/hardware/targets.py:
#   resources  apple_silicon: 1, apple_<chip>: 1      (e.g. apple_m2_max)
#   labels     evodiff.io/accelerator=apple-silicon, evodiff.io/chip=<chip>
# Override the detection with EVODIFF_CHIP=m2-max (e.g. a chip sysctl names oddly).

brand="$(sysctl -n machdep.cpu.brand_string 2>/dev/null || true)"   # "Apple M2 Max"
if [ -n "${EVODIFF_CHIP:-}" ]; then
  MAC_CHIP="$EVODIFF_CHIP"
else
  # "Apple M2 Max" -> "m2-max"; "Apple M3" -> "m3"
  MAC_CHIP="$(printf '%s' "$brand" | sed -e 's/^Apple //' | tr '[:upper:]' '[:lower:]' | tr ' ' '-')"
fi
case "$MAC_CHIP" in
  m[0-9]|m[0-9]-pro|m[0-9]-max|m[0-9]-ultra) ;;
  *)
    echo "mac-resources.sh: cannot tell the chip from '$brand'; set EVODIFF_CHIP (e.g. m2-max)" >&2
    return 2 ;;
esac
chip_resource="apple_$(printf '%s' "$MAC_CHIP" | tr '-' '_')"
printf -v MAC_RESOURCES '{"apple_silicon": 1, "%s": 1}' "$chip_resource"
MAC_LABELS="evodiff.io/accelerator=apple-silicon,evodiff.io/chip=$MAC_CHIP"
