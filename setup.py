"""The one C extension (`leadbus.audit._picker`, the replay's field picker); everything else is in pyproject.toml.

`make install` builds it (`pip install -e`); without it the pure-Python picker runs (`leadbus.audit.native_picker`).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("leadbus.audit._picker", ["leadbus/audit/_picker.c"], extra_compile_args=["-O2"])])
