#!/usr/bin/env bash
# Installs the Debian packages whose programs the power-driver tests run as real peers on
# loopback: ipmi_sim (openipmi) and ipmitool for IPMI, sshd and ssh-keygen for SSH, and
# wakeonlan as an independent magic-packet sender, dbus-daemon as the system bus homelab-agent's
# logind shutdown talks to, chromium as the headless browser the dashboard's page is tested
# in, and bash (with bash-completion), zsh and fish, the shells homelabctl's completion scripts
# are run in. Idempotent: when every program (or file) is already there it returns at once,
# without touching apt.
set -euo pipefail

# program (or, for a package without one, a file it installs) -> Debian package that ships it
declare -A wanted=(
  [ipmi_sim]=openipmi
  [ipmitool]=ipmitool
  [/usr/sbin/sshd]=openssh-server
  [ssh-keygen]=openssh-client
  [wakeonlan]=wakeonlan
  [dbus-daemon]=dbus-daemon
  [chromium]=chromium
  [/usr/share/bash-completion/bash_completion]=bash-completion
  [zsh]=zsh
  [fish]=fish
)

missing=()
for prog in "${!wanted[@]}"; do
  if [[ $prog == /usr/share/* ]]; then
    [ -e "$prog" ] || missing+=("${wanted[$prog]}")
  elif ! command -v "$prog" >/dev/null 2>&1; then
    missing+=("${wanted[$prog]}")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing ${missing[*]} and no apt-get to install them" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
