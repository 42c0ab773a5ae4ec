#!/bin/sh
# {{ artifact }}: double-click in Finder to start the server (Terminal opens and shows it).
# The same as ./run.sh (see there and README.txt); Terminal keeps this window open after it ends.
# First time only: macOS may refuse an unsigned script from the internet: right-click > Open,
# or run `xattr -dr com.apple.quarantine` on this folder.
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
"$here/run.sh" "$@"
rc=$?
if [ "$rc" -ne 0 ]; then
    printf '\nlocara-server stopped with exit code %s (see above). Press Return to close.\n' "$rc"
    read -r _ || true
fi
exit "$rc"
