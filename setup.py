"""Build hook: ship ``sb3_dreamer_zoo.pth`` next to the packages (metadata lives in pyproject.toml).

The ``.pth`` file makes ``rl_zoo3 train --algo dreamerv2`` work after install; see ``_sb3_dreamer_zoo_hook.py``.
Wheels get it from ``build_py`` (the wheel root is site-packages); editable installs from ``editable_wheel``,
which writes extra top-level files in ``_install_namespaces`` (if a future setuptools stops calling it, an
editable install only loses the hook: ``python -m sb3_dreamer.zoo`` still works).
"""

import shutil
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = Path(__file__).parent / "sb3_dreamer_zoo.pth"


class BuildWithPth(build_py):
    """``build_py`` that also copies the ``.pth`` file to the top of the build."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_file(str(PTH), str(Path(self.build_lib) / PTH.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [] if self.editable_mode else [str(Path(self.build_lib) / PTH.name)]
        return [*super().get_outputs(include_bytecode), *extra]


class EditableWithPth(editable_wheel):
    """``editable_wheel`` that also puts the ``.pth`` file at the wheel's root."""

    def _install_namespaces(self, installation_dir: Any, *args: Any) -> None:
        super()._install_namespaces(installation_dir, *args)
        shutil.copy(PTH, Path(installation_dir) / PTH.name)


setup(cmdclass={"build_py": BuildWithPth, "editable_wheel": EditableWithPth})
