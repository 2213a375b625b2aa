#!/bin/bash
# nest-config for NESTML, written by hhc: the pip-installed NEST's own nest-config reports the
# temporary paths and compiler of the machine that built the wheel. This one reports the installed
# package's include dir, the local g++, and the C++ ABI that nestkernel_api.so was built with.
PY="__PY__"
REAL="$(dirname "$PY")/nest-config"
NESTPKG="$("$PY" -c 'import importlib.util,os;print(os.path.dirname(importlib.util.find_spec("nest").origin))' 2>/dev/null)"
BOGUS="$("$REAL" --prefix)"
keep_existing() { for w in $1; do p="${w#-I}"; p="${p#-L}"; case "$w" in -I*|-L*|/*) [ -e "$p" ] && printf '%s ' "$w";; *) printf '%s ' "$w";; esac; done; echo; }
case "$1" in
  --prefix|--exec-prefix) echo "$NESTPKG" ;;
  --includes) keep_existing "$("$REAL" --includes | sed "s|$BOGUS|$NESTPKG|g") -I$NESTPKG/include/nest" ;;
  --libs) keep_existing "$("$REAL" --libs | sed "s|$BOGUS|$NESTPKG|g")" ;;
  --cflags)
     f="$("$REAL" --cflags)"
     if nm -D --defined-only "$NESTPKG/nestkernel_api.so" 2>/dev/null | grep -q 'StructuralPlasticityNode24connect_synaptic_elementESsi'; then f="$f -D_GLIBCXX_USE_CXX11_ABI=0"; fi
     echo "$f" ;;
  --compiler) c="$("$REAL" --compiler)"; [ -x "$c" ] && echo "$c" || command -v g++ ;;
  --static-libraries) echo "OFF" ;;
  --libdir) echo "lib" ;;
  *) exec "$REAL" "$@" ;;
esac
