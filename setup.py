"""The C extensions of the replay's hot path; everything else is in pyproject.toml.

`leadbus.audit._picker` (the field picker, `leadbus.audit.native_picker`), `leadbus.audit._seal_link` (the usual
stage seal's check and link, `leadbus.audit.native_seal`) and `leadbus.audit._intake` (the usual agency seal's
headers and link, `leadbus.audit.seals`, and a lead's head, `leadbus.audit.verification`; it links OpenSSL's libcrypto, the library hashlib uses, and is left out
where its headers are not installed). `make install` builds them (`pip install -e`); without them the Python paths
run, the reference they are tested against.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    *(Extension(f"leadbus.audit.{name}", [f"leadbus/audit/{name}.c"], extra_compile_args=["-O2"])
      for name in ("_picker", "_seal_link")),
    Extension("leadbus.audit._intake", ["leadbus/audit/_intake.c"], extra_compile_args=["-O2"],
              libraries=["crypto"], optional=True),
])
