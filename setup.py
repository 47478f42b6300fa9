"""The C extensions of the replay's hot path; everything else is in pyproject.toml.

`leadbus.audit._picker` (the field picker, `leadbus.audit.native_picker`), `leadbus.audit._seal_link` (the usual
stage seal's check and link, `leadbus.audit.native_seal`, with `_sha256.h`), `leadbus.audit._records` (a consumed
batch made into replay records, `leadbus.audit.native_records`), `leadbus.audit._rdkafka` (the same records made
straight from librdkafka's messages, from the library confluent-kafka loaded, found at run time: no link here) and
`leadbus.audit._intake` (the usual agency seal's headers and link, `leadbus.audit.seals`, a lead's head,
`leadbus.audit.verification`, and in `_intake_run.c` the pass over a plain intake stretch,
`leadbus.audit.intake_runs`; it links OpenSSL's libcrypto, the library hashlib uses). `make install` builds them
(`pip install -e`; deploy/install-build-deps.sh installs the compiler and headers where missing); without them the
Python paths run, the reference they are tested against.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    *(Extension(f"leadbus.audit.{name}", [f"leadbus/audit/{name}.c"], extra_compile_args=["-O2"], depends=depends)
      for name, depends in (("_picker", []), ("_seal_link", ["leadbus/audit/_sha256.h"]), ("_records", ["leadbus/audit/_slots.h", "leadbus/audit/_publishers.h"]),
                            ("_rdkafka", ["leadbus/audit/_slots.h", "leadbus/audit/_rdheaders.h"]))),
    Extension("leadbus.audit._intake", ["leadbus/audit/_intake.c", "leadbus/audit/_intake_run.c"],
              extra_compile_args=["-O2"], libraries=["crypto"], depends=["leadbus/audit/_intake.h", "leadbus/audit/_slots.h"]),
])
