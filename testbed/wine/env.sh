# Source me:  source testbed/wine/env.sh
# Exports what `cargo test --target x86_64-pc-windows-gnu` needs to run the
# test executables under Wine, in the prefix made by testbed/wine/setup.sh.
# Sourcing does not run setup.sh; run that first (it is fast when done).
if [ -n "${BASH_SOURCE:-}" ]; then
    _wine_testbed_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
else
    _wine_testbed_repo="$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
fi
export WINEPREFIX="$_wine_testbed_repo/target/wine-prefix"
export WINEDEBUG=-all
# Never prompt for / try to download Mono or Gecko.
export WINEDLLOVERRIDES="mscoree,mshtml="
unset _wine_testbed_repo
