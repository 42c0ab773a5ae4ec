#!/bin/sh
# {{ artifact }}: start llama-server with this folder's defaults (llama-server.args) and a model.
#
#   ./run.sh                     the default model ({{ model_label }}): downloaded into the model
#                                store on the first run (verified: size + sha256), then served
#   ./run.sh -m FILE [ARGS...]   a GGUF model file; any other llama-server arguments may follow
#   LOCARA_MODEL=FILE ./run.sh   the same, from the environment
#
# Launcher options (before or among the server's arguments; they are not passed to the server):
#   --no-download   never download (also LOCARA_OFFLINE=1): without the model, say what to run
#   --no-browser    do not open a browser (also LOCARA_NO_BROWSER=1); never opened without a display
#   --https         serve over TLS: certs/server.crt + certs/server.key beside this file if present,
#                   else a local CA and a server certificate made once (openssl) beside the model store
#
# Arguments given here win over llama-server.args (host {{ host }}, port {{ port }}, the UI in ui/).
# Model store: $LOCARA_MODEL_STORE, else $LOCARA_WORK_DIR/models, else
# {{ default_store_doc }} (where `locara-build models fetch` puts models).
# Exit codes: 2 usage / missing files / no disk space, 8 verification failed, 9 download failed.
# Needs only a POSIX sh and the usual tools (curl or wget; sha256sum, shasum or openssl).
set -eu

self=$0
while [ -h "$self" ]; do  # started through a symlink (e.g. ~/bin/locara-server): find the real folder
    link=$(readlink "$self")
    case "$link" in /*) self=$link ;; *) self=$(dirname -- "$self")/$link ;; esac
done
here=$(CDPATH='' cd -- "$(dirname -- "$self")" && pwd -P)
server="$here/bin/llama-server"
# The default model (checked when the package was made: strict patterns; quoted here all the same).
default_id={{ model_id|sh }}
default_sha256={{ model_sha256|sh }}
default_file={{ model_file|sh }}
default_size={{ model_size|sh }}
default_license={{ model_license|sh }}
default_url={{ model_urls[0]|sh }}
default_port={{ port|sh }}
default_host={{ host|sh }}

say() { printf 'locara-server: %s\n' "$*" >&2; }

if [ ! -x "$server" ]; then
    say "$server is missing or not executable: unpack the whole archive again."
    exit 2
fi

# Launcher options out, the server's arguments kept in order (and with their spaces).
download=yes
browser=yes
https=no
case "${LOCARA_OFFLINE:-}" in ''|0|no|false) ;; *) download=no ;; esac
case "${LOCARA_NO_BROWSER:-}" in ''|0|no|false) ;; *) browser=no ;; esac
n=$#
while [ "$n" -gt 0 ]; do
    arg=$1
    shift
    n=$((n - 1))
    case "$arg" in
        --no-download) download=no ;;
        --no-browser) browser=no ;;
        --https) https=yes ;;
        *) set -- "$@" "$arg" ;;
    esac
done

# Warn about system libraries this machine lacks (the loader's own message is terse).
if command -v ldd >/dev/null 2>&1; then
    missing=$(for f in "$server" "$here"/bin/*.so*; do [ -f "$f" ] && ldd "$f" 2>/dev/null; done \
        | awk '/=> not found/ { print $1 }' | sort -u | tr '\n' ' ')
    if [ -n "$missing" ]; then
        say "missing system libraries: $missing"
        say "(libgomp.so.1: package libgomp1 / libgomp; libssl.so.3: libssl3 / openssl-libs; libvulkan.so.1: libvulkan1 / vulkan-loader)"
    fi
fi

if [ -n "${LOCARA_MODEL_STORE:-}" ]; then
    store=$LOCARA_MODEL_STORE
elif [ -n "${LOCARA_WORK_DIR:-}" ]; then
    store=$LOCARA_WORK_DIR/models
else
    store={{ default_store_sh }}
fi

# --- where the server will listen (for the URL we print and open) ---------------------------
port=$default_port
host=$default_host
scheme=http
prev=
for arg in "$@"; do
    case "$prev" in --port) port=$arg ;; --host) host=$arg ;; esac
    case "$arg" in --port=*) port=${arg#--port=} ;; --host=*) host=${arg#--host=} ;; esac
    prev=$arg
done
case "$host" in 0.0.0.0|'::'|'[::]') url_host=127.0.0.1 ;; *:*) url_host="[$host]" ;; *) url_host=$host ;; esac

# --- HTTPS: the appliance's own certificate, else a local CA made once ------------------------
tls_args_key=
tls_args_cert=
if [ "$https" = yes ]; then
    scheme=https
    if [ -f "$here/certs/server.crt" ] && [ -f "$here/certs/server.key" ]; then
        tls_args_cert=$here/certs/server.crt
        tls_args_key=$here/certs/server.key
        say "HTTPS with the certificate in $here/certs/"
    else
        certs="$(dirname -- "$store")/certs"
        if [ ! -f "$certs/server.crt" ] || [ ! -f "$certs/server.key" ] || [ ! -f "$certs/ca.crt" ]; then
            if ! command -v openssl >/dev/null 2>&1; then
                say "--https needs openssl to make a certificate (or put server.crt and server.key in $here/certs/)."
                exit 2
            fi
            say "making a local certificate authority and a server certificate in $certs (once)"
            (umask 077 && mkdir -p "$certs")
            names="DNS:localhost,IP:127.0.0.1,IP:::1"
            hn=$(hostname 2>/dev/null || uname -n 2>/dev/null || true)
            case "$hn" in ''|*[!A-Za-z0-9.-]*) ;; *) names="$names,DNS:$hn" ;; esac
            case "$host" in
                127.0.0.1|localhost|0.0.0.0|'::'|'[::]'|::1) ;;
                *[!0-9.]*) case "$host" in *[!A-Za-z0-9.:-]*) ;; *:*) names="$names,IP:$host" ;; *) names="$names,DNS:$host" ;; esac ;;
                *) names="$names,IP:$host" ;;
            esac
            if command -v hostname >/dev/null 2>&1; then
                for ip in $(hostname -I 2>/dev/null || true); do
                    case "$ip" in *[!0-9a-fA-F.:]*|'') ;; *) names="$names,IP:$ip" ;; esac
                done
            fi
            tmpc="$certs/.new.$$"
            rm -rf "$tmpc"
            (umask 077 && mkdir -p "$tmpc")
            cnf="$tmpc/openssl.cnf"
            printf '%s\n' '[req]' 'distinguished_name=dn' '[dn]' '[ca]' 'basicConstraints=critical,CA:TRUE,pathlen:0' \
                'keyUsage=critical,keyCertSign,cRLSign' 'subjectKeyIdentifier=hash' '[srv]' 'basicConstraints=critical,CA:FALSE' \
                'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' "subjectAltName=$names" >"$cnf"
            if ! (umask 077 &&
                openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=locara-server local CA ($hn)" \
                    -keyout "$tmpc/ca.key" -out "$tmpc/ca.crt" -config "$cnf" -extensions ca &&
                openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
                    -keyout "$tmpc/server.key" -out "$tmpc/server.csr" -config "$cnf" &&
                openssl x509 -req -in "$tmpc/server.csr" -CA "$tmpc/ca.crt" -CAkey "$tmpc/ca.key" -CAcreateserial \
                    -days 825 -sha256 -extfile "$cnf" -extensions srv -out "$tmpc/server.crt") >"$tmpc/openssl.log" 2>&1; then
                cat "$tmpc/openssl.log" >&2
                rm -rf "$tmpc"
                say "openssl could not make the certificates (see above)."
                exit 2
            fi
            chmod 600 "$tmpc/ca.key" "$tmpc/server.key"
            chmod 644 "$tmpc/ca.crt" "$tmpc/server.crt"
            for f in ca.key ca.crt server.key server.crt; do mv -f "$tmpc/$f" "$certs/$f"; done
            rm -rf "$tmpc"
            say "names in the server certificate: $names"
        fi
        tls_args_cert=$certs/server.crt
        tls_args_key=$certs/server.key
        fp=$(openssl x509 -noout -fingerprint -sha256 -in "$certs/ca.crt" 2>/dev/null | sed 's/^.*=//') || fp=unknown
        say "HTTPS with the local CA $certs/ca.crt"
        say "  CA fingerprint (SHA-256): $fp"
        say "  trust it once: Firefox/Chrome settings > Certificates > Import $certs/ca.crt;"
        say "  Debian/Ubuntu: sudo cp $certs/ca.crt /usr/local/share/ca-certificates/locara.crt && sudo update-ca-certificates;"
        say "  macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain $certs/ca.crt;"
        say "  curl: curl --cacert $certs/ca.crt https://$url_host:$port/health"
    fi
fi
url="$scheme://$url_host:$port/"

# --- start the server; print the URL and open a browser once it answers /health --------------
have_display() {
    case "$(uname -s 2>/dev/null)" in Darwin) [ -z "${SSH_CONNECTION:-}" ] ;; *) [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] ;; esac
}
opener() {
    if [ "$(uname -s 2>/dev/null)" = Darwin ] && command -v open >/dev/null 2>&1; then echo open
    elif command -v xdg-open >/dev/null 2>&1; then echo xdg-open
    fi
}
healthy() {
    if [ -n "$tls_args_key" ]; then
        if command -v curl >/dev/null 2>&1; then curl -fsSk --max-time 2 -o /dev/null "${url}health" 2>/dev/null; return; fi
        wget -q --no-check-certificate -T 2 -O /dev/null "${url}health" 2>/dev/null; return
    fi
    if command -v curl >/dev/null 2>&1; then curl -fsS --max-time 2 -o /dev/null "${url}health" 2>/dev/null; return; fi
    wget -q -T 2 -O /dev/null "${url}health" 2>/dev/null
}
start_server() {  # start_server ARGS...: the server with ARGS (+ TLS), then the URL, the browser
    if [ -n "$tls_args_key" ]; then
        set -- "$@" --ssl-key-file "$tls_args_key" --ssl-cert-file "$tls_args_cert"
    fi
    open_with=
    if [ "$browser" = yes ] && have_display; then open_with=$(opener); fi
    if [ -z "$open_with" ] || ! { command -v curl || command -v wget; } >/dev/null 2>&1; then
        say "starting; the UI will be at $url {% if chat %}(chat: ${url}chat.html) {% endif %}"
        exec "$server" "$@"
    fi
    "$server" "$@" &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 130' INT
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 143' TERM HUP
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        if healthy; then
            say "ready: $url {% if chat %}(chat: ${url}chat.html) {% endif %}- opening it in the browser"
            "$open_with" "$url" >/dev/null 2>&1 || say "could not open a browser: open $url yourself"
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 600 ] || break
        sleep 1
    done
    set +e
    wait "$pid"
    rc=$?
    trap - INT TERM HUP
    exit "$rc"
}

model_given=no
for arg in "$@"; do
    case "$arg" in
        -m|--model|-m=*|--model=*|-mu|--model-url|--model-url=*|-hf|-hfr|--hf-repo|--hf-repo=*|-dr|--docker-repo|--models-dir|--models-preset)
            model_given=yes ;;
    esac
done

if [ "$model_given" = yes ]; then
    start_server "$@"
fi

if [ -n "${LOCARA_MODEL:-}" ]; then
    if [ ! -f "$LOCARA_MODEL" ]; then
        say "LOCARA_MODEL=$LOCARA_MODEL: no such file."
        exit 2
    fi
    start_server -m "$LOCARA_MODEL" "$@"
fi

blobs="$store/sha256"
model="$blobs/$default_sha256"

file_size() { wc -c <"$1" | tr -d ' \t'; }
sha256_of() {  # the sha256 of $1 (lower-case hex), empty when no tool can compute it
    if command -v sha256sum >/dev/null 2>&1; then sha256sum -- "$1" | awk '{ print $1 }'
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 -- "$1" | awk '{ print $1 }'
    elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1" | awk '{ print $1 }'
    fi | tr 'A-F' 'a-f'
}

no_model() {  # no_model REASON: what to run instead, exit 2
    cat >&2 <<MSG
locara-server: $1

The default model, $default_id ($default_file, $default_size bytes),
is not in the model store ($store). Either run this launcher again without
--no-download / LOCARA_OFFLINE=1 (it downloads and verifies it), fetch it:

    locara-build models fetch $default_id --manifest "$here/models/manifest.json"

or download it yourself, check it and pass it with -m:

    curl -L -o "$default_file" "$default_url"
    echo "$default_sha256  $default_file" | sha256sum -c -
    "$0" -m "$default_file"

Other models: models/manifest.json. Any GGUF file works: "$0" -m FILE
MSG
    exit 2
}

fetch_default() {  # download the default model into the store: resumable, verified, atomic
    part="$blobs/$default_sha256.part"
    source_file="$part.source"
    if ! mkdir -p "$blobs" 2>/dev/null || [ ! -w "$blobs" ]; then
        say "cannot write to the model store $blobs: set LOCARA_MODEL_STORE to a folder you can write to."
        exit 2
    fi
    if command -v curl >/dev/null 2>&1; then tool=curl
    elif command -v wget >/dev/null 2>&1; then tool=wget
    else
        say "neither curl nor wget is installed: install one of them, or download the model yourself:"
        no_model "no model to run."
    fi
    if [ -z "$(sha256_of "$server")" ]; then
        say "no sha256 tool (sha256sum, shasum or openssl): a download could not be verified."
        no_model "no model to run."
    fi
    # One download of a model at a time (the same lock file `locara-build models fetch` holds).
    if command -v flock >/dev/null 2>&1; then
        exec 9>>"$blobs/$default_sha256.lock"
        if ! flock -n 9; then
            say "another download of $default_id is running; waiting for it"
            flock 9
        fi
        if [ -f "$model" ] && [ "$(file_size "$model")" = "$default_size" ]; then exec 9>&-; return 0; fi
    fi
    verify_failed=no
    for src in{% for u in model_urls %} {{ u|sh }}{% endfor %}; do
        have=0
        if [ -f "$part" ]; then
            # resume only what this very URL produced; anything else starts over
            if [ -f "$source_file" ] && [ "$(cat "$source_file")" = "$src" ]; then
                have=$(file_size "$part")
            fi
            if [ "$have" -eq 0 ] || [ "$have" -gt "$default_size" ]; then
                rm -f "$part" "$part.validator"
                have=0
            fi
        fi
        # disk space: what is still to come, plus 1 MiB
        need_kb=$(( (default_size - have) / 1024 + 1024 ))
        free_kb=$(df -Pk "$blobs" 2>/dev/null | awk 'NR == 2 { print $4 }')
        case "$free_kb" in
            ''|*[!0-9]*) say "could not read the free space of $blobs (df); downloading anyway" ;;
            *) if [ "$free_kb" -lt "$need_kb" ]; then
                   say "not enough disk space in $blobs: $default_file needs $need_kb KiB more, $free_kb KiB are free."
                   say "free some space, or set LOCARA_MODEL_STORE to a folder on a bigger disk, then run this again."
                   exit 2
               fi ;;
        esac
        printf '%s\n' "$src" >"$source_file"
        if [ "$have" -gt 0 ]; then
            say "resuming $default_file at $have of $default_size bytes from $src"
        else
            say "downloading $default_file ($default_size bytes) from $src"
        fi
        ok=yes
        if [ "$have" -lt "$default_size" ]; then
            if [ "$tool" = curl ]; then
                rc=0
                curl -fL --proto '=https,http,file' --connect-timeout 20 --speed-limit 1 --speed-time 60 \
                    --retry 2 -# -C "$have" -o "$part" -- "$src" || rc=$?
                if [ "$rc" -eq 33 ]; then  # the server cannot resume: start over
                    say "$src cannot resume a download; starting over"
                    rm -f "$part"
                    rc=0
                    curl -fL --proto '=https,http,file' --connect-timeout 20 --speed-limit 1 --speed-time 60 \
                        --retry 2 -# -o "$part" -- "$src" || rc=$?
                fi
                [ "$rc" -eq 0 ] || ok=no
            else
                if [ -t 2 ]; then progress=bar:force; else progress=dot:mega; fi
                wget -c -T 60 -t 3 --progress="$progress" -O "$part" -- "$src" || ok=no
            fi
        fi
        if [ "$ok" = no ]; then
            if [ -f "$part" ] && [ "$(file_size "$part")" -gt "$default_size" ]; then rm -f "$part" "$source_file"; fi
            say "download from $src failed; what arrived is kept, so running this again resumes it."
            continue
        fi
        got_size=$(file_size "$part")
        if [ "$got_size" != "$default_size" ]; then
            if [ "$got_size" -gt "$default_size" ]; then rm -f "$part" "$source_file"; fi
            say "$src gave $got_size of $default_size bytes; running this again resumes it."
            continue
        fi
        say "verifying sha256 of $default_file"
        got_sha=$(sha256_of "$part")
        if [ "$got_sha" != "$default_sha256" ]; then
            rm -f "$part" "$source_file"
            verify_failed=yes
            say "REFUSED: $src sent a file whose sha256 is $got_sha, not $default_sha256; deleted, never used."
            continue
        fi
        chmod 644 "$part"
        mv -f "$part" "$model"
        rm -f "$source_file" "$part.validator"
        printf '{\n  "file": "%s",\n  "id": "%s",\n  "license": "%s",\n  "sha256": "%s",\n  "size": %s,\n  "url": "%s"\n}\n' \
            "$default_file" "$default_id" "$default_license" "$default_sha256" "$default_size" "$src" >"$model.json.tmp" &&
            mv -f "$model.json.tmp" "$model.json"
        say "stored verified $default_file as $model"
        if command -v flock >/dev/null 2>&1; then exec 9>&-; fi
        return 0
    done
    if [ "$verify_failed" = yes ]; then
        say "no URL gave the file with sha256 $default_sha256: nothing was stored or run."
        exit 8
    fi
    say "downloading $default_id failed from every URL: check the network and run this again (it resumes)."
    exit 9
}

if [ ! -f "$model" ] || [ "$(file_size "$model")" != "$default_size" ]; then
    if [ "$download" = no ]; then
        no_model "no model to run."
    fi
    fetch_default
fi

start_server -m "$model" --alias "$default_id"{% for a in model_args %} {{ a|sh }}{% endfor %} "$@"
