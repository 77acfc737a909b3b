#!/bin/sh
# Installs strata-flex as the FlexVolume driver strata/flex:
#   <plugin dir>/strata~flex/flex               the driver (a static binary)
#   <plugin dir>/strata~flex/.strata-flex.json  its settings (kubelet's probe skips dot-files)
# Each file is written to a dot-file in that directory, checked, and renamed into place, so
# kubelet never runs a half-written driver. The new driver answers `init` before it goes live;
# files that are already up to date are left alone (every write there makes kubelet re-probe).
# The settings file keeps every setting this run does not give (a hand edit survives): the new
# driver merges the ones given into it (`strata-flex settings`).
# A dynamically linked binary is refused: kube-controller-manager runs `init` too, often in a
# container without the binary's C library (`make static` builds the static one).
set -eu

plugin_dir=${FLEX_PLUGIN_DIR:-/usr/libexec/kubernetes/kubelet-plugins/volume/exec}
source=${FLEX_SOURCE:-/usr/local/bin/strata-flex}
# Settings: empty means "not given", which keeps the settings file's value (or the default).
data_root=${FLEX_DATA_ROOT:-}
kubelet_dir=${FLEX_KUBELET_DIR:-}
log_file=${FLEX_LOG_FILE:-}
log_level=${FLEX_LOG_LEVEL:-}
lock_wait=${FLEX_LOCK_WAIT_SECONDS:-}
overcommit=${FLEX_OVERCOMMIT:-}
action=install
wait_after=false
allow_dynamic=false

say() { printf 'strata-flex-install: %s\n' "$*"; }
die() { printf 'strata-flex-install: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'EOF'
Usage: install.sh [options]
Installs strata-flex as the FlexVolume driver strata/flex (<plugin dir>/strata~flex/flex).

  --plugin-dir DIR     kubelet's FlexVolume plugin dir
                       [$FLEX_PLUGIN_DIR or /usr/libexec/kubernetes/kubelet-plugins/volume/exec]
  --source FILE        the strata-flex binary to install [$FLEX_SOURCE or /usr/local/bin/strata-flex]
  --data-root DIR      strata's data root on the host [$FLEX_DATA_ROOT]
  --kubelet-dir DIR    kubelet's root dir on the host [$FLEX_KUBELET_DIR]
  --log-file FILE|off  the driver's log file on the host [$FLEX_LOG_FILE]
  --log-level LEVEL    error, warn, info, debug or trace [$FLEX_LOG_LEVEL]
  --lock-wait SECONDS  how long a call waits for another one [$FLEX_LOCK_WAIT_SECONDS]
  --overcommit PAIRS   how far a backend may promise beyond what the node has: <backend>=<ratio>
                       pairs, comma-separated (tmpfs=1.5,loop=2), or none [$FLEX_OVERCOMMIT]
  --allow-dynamic      install a dynamically linked binary anyway (it fails wherever its C
                       library is missing, e.g. in kube-controller-manager's container)
  --uninstall          remove the driver instead (kubelet then unregisters it)
  --wait               after installing, sleep until SIGTERM (the DaemonSet's main process)
  -h, --help           print this help

Paths are as the host (kubelet) sees them, except --plugin-dir and --source, which are where
this script finds them (in the installer pod, the host's plugin dir is mounted somewhere).
A setting not given keeps its value in the installed settings file (.strata-flex.json), or
strata-flex's default (data root /var/lib/strata, kubelet dir /var/lib/kubelet, log file
/var/log/strata-flex.log at info, lock wait 120 s, no overcommit).
EOF
}


while [ $# -gt 0 ]; do
  case $1 in
    --plugin-dir|--source|--data-root|--kubelet-dir|--log-file|--log-level|--lock-wait|--overcommit)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --plugin-dir) plugin_dir=$2 ;;
        --source) source=$2 ;;
        --data-root) data_root=$2 ;;
        --kubelet-dir) kubelet_dir=$2 ;;
        --log-file) log_file=$2 ;;
        --log-level) log_level=$2 ;;
        --lock-wait) lock_wait=$2 ;;
        --overcommit) overcommit=$2 ;;
      esac
      shift 2 ;;
    --uninstall) action=uninstall; shift ;;
    --allow-dynamic) allow_dynamic=true; shift ;;
    --wait) wait_after=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

# A path that goes into the JSON settings: absolute, and nothing that would need escaping.
check_path() {
  case $2 in
    /*) ;;
    *) die "$1 $2 is not an absolute path" ;;
  esac
  case $2 in
    *[\"\\]*|*[![:print:]]*) die "$1 $2 contains a quote, a backslash or a control character" ;;
  esac
}

check_path --plugin-dir "$plugin_dir"
driver_dir=$plugin_dir/strata~flex

if [ "$action" = uninstall ]; then
  if [ ! -e "$driver_dir" ]; then
    say "strata/flex is not installed in $plugin_dir (no $driver_dir): nothing removed"
    exit 0
  fi
  rm -f "$driver_dir/flex"
  rm -f "$driver_dir/.strata-flex.json" "$driver_dir"/.flex.tmp.* "$driver_dir"/.strata-flex.json.tmp.*
  rmdir "$driver_dir" 2>/dev/null ||
    die "removed the driver, but $driver_dir still holds other files: $(ls -A "$driver_dir" | tr '\n' ' ')"
  say "removed strata/flex ($driver_dir) from $plugin_dir"
  exit 0
fi

# The settings given, checked here for a clear message (the new driver checks them again).
[ -z "$data_root" ] || check_path --data-root "$data_root"
[ -z "$kubelet_dir" ] || check_path --kubelet-dir "$kubelet_dir"
[ -z "$log_file" ] || [ "$log_file" = off ] || check_path --log-file "$log_file"
case $log_level in
  ''|error|warn|info|debug|trace) ;;
  *) die "--log-level $log_level is not error, warn, info, debug or trace" ;;
esac
case $lock_wait in
  *[!0-9]*) die "--lock-wait $lock_wait is not a number of seconds" ;;
esac
[ -f "$source" ] && [ -x "$source" ] || die "$source is not an executable file"

# Reads an unsigned little-endian integer of $3 bytes at offset $2 of file $1.
read_uint() {
  od -An -v -t "u$3" -j "$2" -N "$3" "$1" | tr -d ' \n'
}

# Whether $1, a 64-bit little-endian ELF, names a program interpreter (a PT_INTERP program
# header, type 3), as every dynamically linked executable does: prints dynamic, static or unknown.
elf_linking() {
  magic=$(od -An -v -t x1 -N 6 "$1" | tr -d ' \n')
  [ "$magic" = 7f454c460201 ] || { echo unknown; return; }
  phoff=$(read_uint "$1" 32 8)
  phentsize=$(read_uint "$1" 54 2)
  phnum=$(read_uint "$1" 56 2)
  i=0
  while [ "$i" -lt "$phnum" ]; do
    if [ "$(read_uint "$1" $((phoff + i * phentsize)) 4)" = 3 ]; then
      echo dynamic
      return
    fi
    i=$((i + 1))
  done
  echo static
}

if [ "$allow_dynamic" = false ]; then
  case $(elf_linking "$source") in
    static) ;;
    dynamic) die "$source is dynamically linked; kube-controller-manager runs init too, often where its C library is missing: install a static build (make static) or pass --allow-dynamic" ;;
    *) die "$source is not a 64-bit little-endian ELF executable, so whether it is static cannot be told: pass --allow-dynamic to install it anyway" ;;
  esac
fi

mkdir -p "$driver_dir"
bin_tmp=$driver_dir/.flex.tmp.$$
cfg_tmp=$driver_dir/.strata-flex.json.tmp.$$
trap 'rm -rf "$bin_tmp" "$cfg_tmp"' EXIT
trap 'exit 1' HUP INT TERM

cp "$source" "$bin_tmp"
chmod 0755 "$bin_tmp"
# Only strata-flex is asked to merge settings and answer init.
version=$("$bin_tmp" --version 2>&1) || true
case $version in
  "strata-flex "*) ;;
  *) die "$source is not strata-flex (its --version says: $(printf '%s' "$version" | head -c 200)), so it does not answer init" ;;
esac

# The settings: the installed file with the settings given here changed, the rest kept.
set -- settings --file "$driver_dir/.strata-flex.json"
[ -z "$data_root" ] || set -- "$@" --root "$data_root"
[ -z "$kubelet_dir" ] || set -- "$@" --kubelet-dir "$kubelet_dir"
[ -z "$log_file" ] || set -- "$@" --log-file "$log_file"
[ -z "$log_level" ] || set -- "$@" --log-level "$log_level"
[ -z "$lock_wait" ] || set -- "$@" --lock-wait "$lock_wait"
[ -z "$overcommit" ] || set -- "$@" --overcommit "$overcommit"
"$bin_tmp" "$@" >"$cfg_tmp" || die "the settings were not changed (see above)"
chmod 0644 "$cfg_tmp"

# The new driver with the new settings must answer init as kubelet expects, before it goes live.
reply=$(
  unset STRATA_FLEX_ROOT STRATA_FLEX_KUBELET_DIR STRATA_FLEX_LOG STRATA_FLEX_LOG_LEVEL STRATA_FLEX_LOCK_WAIT \
    STRATA_FLEX_OVERCOMMIT
  STRATA_FLEX_CONFIG=$cfg_tmp "$bin_tmp" init 2>&1
) || true
case $reply in
  *'"status":"Success"'*) ;;
  *) die "the new driver does not answer init with Success: $reply" ;;
esac

# Binary first: a new binary reads old settings, while an old binary may refuse new keys.
changed=false
if cmp -s "$bin_tmp" "$driver_dir/flex" 2>/dev/null; then
  rm -f "$bin_tmp"
else
  mv -f "$bin_tmp" "$driver_dir/flex"
  changed=true
fi
if cmp -s "$cfg_tmp" "$driver_dir/.strata-flex.json" 2>/dev/null; then
  rm -f "$cfg_tmp"
else
  mv -f "$cfg_tmp" "$driver_dir/.strata-flex.json"
  changed=true
fi
if [ "$changed" = true ]; then
  say "installed $driver_dir/flex (driver strata/flex) and its settings"
else
  say "$driver_dir/flex and its settings are up to date"
fi

if [ "$wait_after" = true ]; then
  trap 'exit 0' TERM INT
  while :; do
    sleep 3600 &
    wait $! || true
  done
fi
