#!/usr/bin/env bash
# Installs what the replay's C extensions compile against when it is missing (setup.py): a C compiler, Python's
# headers and OpenSSL's (leadbus/audit/_intake.c hashes with libcrypto, the library hashlib itself uses).
set -euo pipefail
python="${1:-python3}"
include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ -f "$include/Python.h" ] || missing+=(python3-dev)
[ -f /usr/include/openssl/evp.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "the replay's C extensions need ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
