#!/bin/sh
# {{ artifact }}: start llama-server with this folder's defaults (llama-server.args) and a model.
#
#   ./run.sh                     the default model ({{ model_label }}) from the model store
#   ./run.sh -m FILE [ARGS...]   a GGUF model file; any other llama-server arguments may follow
#   LOCARA_MODEL=FILE ./run.sh   the same, from the environment
#
# Arguments given here win over llama-server.args (host {{ host }}, port {{ port }}, the UI in ui/).
# Model store: $LOCARA_MODEL_STORE, else $LOCARA_WORK_DIR/models, else
# {{ default_store_doc }} (where `locara-build models fetch` puts models).
set -eu

self=$0
while [ -h "$self" ]; do  # started through a symlink (e.g. ~/bin/locara-server): find the real folder
    link=$(readlink "$self")
    case "$link" in /*) self=$link ;; *) self=$(dirname -- "$self")/$link ;; esac
done
here=$(CDPATH='' cd -- "$(dirname -- "$self")" && pwd -P)
server="$here/bin/llama-server"
default_id={{ model_id|sh }}
default_sha256={{ model_sha256|sh }}
default_file={{ model_file|sh }}
default_url={{ model_url|sh }}
default_size={{ model_size|sh }}

say() { printf 'locara-server: %s\n' "$*" >&2; }

if [ ! -x "$server" ]; then
    say "$server is missing or not executable: unpack the whole archive again."
    exit 2
fi

# Warn about system libraries this machine lacks (the loader's own message is terse).
if command -v ldd >/dev/null 2>&1; then
    missing=$(for f in "$server" "$here"/bin/*.so*; do [ -f "$f" ] && ldd "$f" 2>/dev/null; done \
        | awk '/=> not found/ { print $1 }' | sort -u | tr '\n' ' ')
    if [ -n "$missing" ]; then
        say "missing system libraries: $missing"
        say "(libgomp.so.1: package libgomp1 / libgomp; libssl.so.3: libssl3 / openssl-libs; libvulkan.so.1: libvulkan1 / vulkan-loader)"
    fi
fi

model_given=no
for arg in "$@"; do
    case "$arg" in
        -m|--model|-m=*|--model=*|-mu|--model-url|--model-url=*|-hf|-hfr|--hf-repo|--hf-repo=*|-dr|--docker-repo|--models-dir|--models-preset)
            model_given=yes ;;
    esac
done

if [ "$model_given" = yes ]; then
    exec "$server" "$@"
fi

if [ -n "${LOCARA_MODEL:-}" ]; then
    if [ ! -f "$LOCARA_MODEL" ]; then
        say "LOCARA_MODEL=$LOCARA_MODEL: no such file."
        exit 2
    fi
    exec "$server" -m "$LOCARA_MODEL" "$@"
fi

if [ -n "${LOCARA_MODEL_STORE:-}" ]; then
    store=$LOCARA_MODEL_STORE
elif [ -n "${LOCARA_WORK_DIR:-}" ]; then
    store=$LOCARA_WORK_DIR/models
else
    store={{ default_store_sh }}
fi
model="$store/sha256/$default_sha256"

if [ -f "$model" ]; then
    exec "$server" -m "$model" --alias "$default_id"{% for a in model_args %} {{ a|sh }}{% endfor %} "$@"
fi

cat >&2 <<MSG
locara-server: no model to run.

The default model, $default_id ($default_file, $default_size bytes),
is not in the model store ($store). Either fetch it:

    locara-build models fetch $default_id --manifest "$here/models/manifest.json"

or download it yourself, check it and pass it with -m:

    curl -L -o "$default_file" "$default_url"
    echo "$default_sha256  $default_file" | sha256sum -c -
    "$0" -m "$default_file"

Other models: models/manifest.json. Any GGUF file works: "$0" -m FILE
MSG
exit 2
