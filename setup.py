"""The C extensions of the replay's hot path; everything else is in pyproject.toml.

`leadbus.audit._picker` (the field picker, `leadbus.audit.native_picker`), `leadbus.audit._seal_link` (the usual
stage seal's check and link, `leadbus.audit.native_seal`, with `_sha256.h`) and `leadbus.audit._records` (a consumed
batch made into replay records, `leadbus.audit.native_records`). `make install` builds them (`pip install -e`); without
them the Python paths run, the reference they are tested against.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(f"leadbus.audit.{name}", [f"leadbus/audit/{name}.c"], extra_compile_args=["-O2"],
                             depends=depends)
                   for name, depends in (("_picker", []), ("_seal_link", ["leadbus/audit/_sha256.h"]),
                                         ("_records", []))])
