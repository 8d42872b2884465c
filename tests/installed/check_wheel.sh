#!/usr/bin/env bash
# The product as a user gets it: build the wheel, install it (not editable) into a fresh virtualenv and, from a
# temporary folder outside the checkout, run the installed-package checks, the smoke demo and one evaluation.
#
# The fresh virtualenv reuses the pinned dependencies of .venv instead of downloading them again (torch alone is
# gigabytes): its site-packages links to every package of .venv except babyvlm's editable install, and `pip check`
# then proves that the wheel's dependency ranges accept that pinned stack. babyvlm itself is the built wheel.
#
#   tests/installed/check_wheel.sh [VENV]     (VENV: the development virtualenv, default .venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
python="$(cd "${1:-.venv}" && pwd)/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
step() { echo "[check_wheel $((SECONDS - started))s] $*"; }

step "building the wheel from the checkout's files"
mkdir "$work/src"
git ls-files --cached --others --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C "$work/src"
(cd "$work/src" && "$python" -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "$work/dist" .) \
    >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(echo "$work"/dist/babyvlm-*.whl)

step "installing $(basename "$wheel") into a fresh virtualenv"
"$python" -m venv --without-pip "$work/venv"
dev_site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for entry in "$dev_site"/*; do
    case "$(basename "$entry")" in
        *babyvlm* | *BabyVLM* | __pycache__) ;;  # the editable install of the checkout stays behind
        *) ln -s "$entry" "$site/" ;;
    esac
done
pip=("$python" -m pip --python "$work/venv/bin/python")
"${pip[@]}" install --quiet --no-deps --no-index "$wheel"
# decord's wheel (lmms-eval's qwen2_vl imports it) records the tag cp36-cp36m inside, so `pip check` calls it
# unsupported although it installs and imports on Python 3.11: only that line is tolerated, any conflict fails.
problems=$("${pip[@]}" check 2>&1 | grep -v "^decord .* is not supported on this platform$" || true)
[[ -z $problems || $problems == "No broken requirements found." ]] || { echo "$problems"; exit 1; }

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HF_HOME="$work/hf-home"
mkdir "$work/run"
cd "$work/run"
[[ $PWD != "$repo"* ]]

step "installed-package checks (console scripts, recipes, DevCV metric, lmms-eval plugin)"
"$work/venv/bin/python" "$repo/tests/installed/check_installed.py"

step "babyvlm demo --smoke"
"$work/venv/bin/babyvlm" demo --smoke --output demo >demo.log 2>&1 || { tail -50 demo.log; exit 1; }
test -s demo/results.json

step "babyvlm eval on the demo's model (and the deprecated babyvlm-eval alias, the same command)"
"$work/venv/bin/babyvlm-eval" --help >/dev/null
"$work/venv/bin/babyvlm" eval --model demo/model --data demo/devcv --output eval --tasks count --no-progress \
    >eval.log 2>&1 || { tail -50 eval.log; exit 1; }
test -s eval/results.json
step "the installed wheel works outside the checkout"
