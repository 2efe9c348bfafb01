#!/usr/bin/env bash
# Run on a machine with PyPI and Debian access, in the repository root, before a GPU run: puts the
# Python 3.12 wheels the GPU image lacks into .whl/ and the EGL libraries into .gl/ (both git-ignored through
# .git/info/exclude), about 55 MiB together. dm_control's wheel is repacked without its locomotion assets
# (82 MB unpacked; the Control Suite does not use them) to fit the 64 MiB a call may carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .git/info && touch .git/info/exclude
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
grep -qx '/.gl/' .git/info/exclude || echo '/.gl/' >> .git/info/exclude
grep -qx '/.whl_min/' .git/info/exclude || echo '/.whl_min/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  stable-baselines3==2.9.2 gymnasium==1.4.0 farama-notifications==0.0.6 ale-py==0.12.1 \
  mujoco==3.17.0 dm-control==1.0.50 dm-env==1.6 dm-tree==0.1.10 glfw==2.11.0 pyopengl==3.1.10 shimmy==2.0.1
zip -q -d .whl/dm_control-1.0.50-py3-none-any.whl 'dm_control/locomotion/*'
rm -rf .whl_min && mkdir -p .whl_min  # what a call without MuJoCo needs (~4 MB)
cp .whl/stable_baselines3-*.whl .whl/gymnasium-*.whl .whl/farama_notifications-*.whl .whl/ale_py-*.whl .whl_min/
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -qq
(cd .gl && apt-get $o download -qq libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh .whl .whl_min .gl
