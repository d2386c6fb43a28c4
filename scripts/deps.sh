#!/usr/bin/env bash
# Install the Debian packages ipblock needs to build, test, demo and bench,
# only when some are missing.  Idempotent; run by `make deps`.
set -euo pipefail

pkgs=(
	make gcc clang llvm pkg-config
	libbpf-dev libxdp-dev xdp-tools bpftool libelf-dev zlib1g-dev
	libdw-dev binutils-dev libcmocka-dev valgrind
	iproute2 iputils-ping tcpdump python3 python3-scapy
	nftables ipset iptables gnuplot-nox time
	libcurl4-openssl-dev libjson-c-dev libmicrohttpd-dev libsystemd-dev
	crowdsec crowdsec-firewall-bouncer fail2ban
	qemu-system-x86 busybox-static
	prometheus tmux
)

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $st == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

if ((EUID != 0)); then
	echo "deps: missing Debian packages (${missing[*]}); run 'make deps' as root to install them." >&2
	exit 1
fi

# crowdsec's postinst registers with the Central API and fails without a
# network, unless the credentials file already exists holding only a comment
# (README.Debian); then CAPI stays disabled.  Only for a crowdsec that is not
# configured yet, and never over credentials someone wrote.
capi=/etc/crowdsec/online_api_credentials.yaml
if [[ " ${missing[*]} " == *" crowdsec "* && ! -s $capi ]]; then
	mkdir -p /etc/crowdsec
	echo "# ipblock deps: no Central API registration (offline; see README.Debian)" >"$capi"
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
