# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# shellcheck disable=SC2034 # WHY and the CS_ timings are read by the tests
#
# A private CrowdSec local API (LAPI) for selftests: Debian's crowdsec 1.4.6
# run as the LAPI alone (-no-cs: no acquisition, so no journald), offline (no
# Central API), on 127.0.0.1 (or $CS_LISTEN) and a free port, with its own config, database
# and logs under the test's temporary directory.  It is stopped and its files
# removed when the test exits, also when it fails.
#
# Source selftests/lib.sh first and call st_init (this uses on_exit and
# $ST_TMP), then:
#
#   cs_require || { skip NAME "$WHY"; st_finish; }   crowdsec installed?
#   cs_start_lapi || setup_fail "$WHY"    start; sets CS_URL, CS_START_MS
#   KEY=$(cs_add_bouncer NAME)            a bouncer's API key (no newline)
#   cscli_t decisions add -i 198.18.7.7 -d 1m     cscli on this LAPI
#   cs_stop_lapi / cs_start_lapi          stop it; start it again (same data)
#   cs_use_netns NAME                     before the first start: the LAPI (and
#                                         cscli, curl) in namespace NAME (lib.sh's)
#   CS_LISTEN=198.18.0.1                  before the first start: listen on this
#                                         IPv4 address instead of 127.0.0.1, so
#                                         other namespaces reach it (a fleet)
#
# Addresses in tests: 198.18.0.0/15 and 2001:db8::/32 only.

CS_DIR=
CS_CONFIG=
CS_PORT=
CS_URL=
CS_PID=
CS_START_MS=
CS_STOP_MS=
# The IPv4 address the LAPI listens on (a test may set it before the first start).
CS_LISTEN=${CS_LISTEN:-127.0.0.1}
# The command prefix that enters the LAPI's network namespace (none: this one).
CS_RUN=()

# cs_use_netns NAME: run the LAPI, cscli and the health checks in namespace NAME.
cs_use_netns() {
	CS_RUN=(nsenter "--net=/run/netns/$(ns "$1")")
}

# Bounds: seconds to wait for the LAPI to answer /health, and to stop.
CS_START_TIMEOUT=${CS_START_TIMEOUT:-20}
CS_STOP_TIMEOUT=${CS_STOP_TIMEOUT:-15}

# cs_require: crowdsec, cscli and curl are installed; else false with $WHY.
cs_require() {
	local tool
	for tool in crowdsec cscli curl ss; do
		if ! command -v "$tool" >/dev/null; then
			WHY="$tool is not installed (make deps installs Debian's crowdsec; offline it needs /etc/crowdsec/online_api_credentials.yaml holding only a comment first, which scripts/deps.sh writes)"
			return 1
		fi
	done
	return 0
}

# cs_now_ms: milliseconds on a monotonic-enough clock, for the timings.
cs_now_ms() {
	local t
	t=$(date +%s%N)
	echo $((t / 1000000))
}

# cscli_t ARGS...: cscli on the test's LAPI and database, errors only.
cscli_t() {
	"${CS_RUN[@]}" cscli -c "$CS_CONFIG" --error "$@"
}

# A free TCP port on $CS_LISTEN (bounded tries; the LAPI's start re-checks).
cs_free_port() {
	local i p
	for ((i = 0; i < 50; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if [[ -z $("${CS_RUN[@]}" ss -Hltn "sport = :$p" 2>/dev/null) ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Write the LAPI's configuration: everything under $CS_DIR, nothing shared
# with an installed crowdsec but its read-only hub and plugins.
cs_write_config() {
	mkdir -p "$CS_DIR/etc" "$CS_DIR/data" "$CS_DIR/log" "$CS_DIR/hub" || return 1
	cat >"$CS_CONFIG" <<EOF
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: $CS_DIR/log/
  working_dir: $CS_DIR
config_paths:
  config_dir: $CS_DIR/etc/
  data_dir: $CS_DIR/data/
  simulation_path: $CS_DIR/etc/simulation.yaml
  hub_dir: $CS_DIR/hub/
  index_path: $CS_DIR/hub/.index.json
  notification_dir: $CS_DIR/etc/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: $CS_DIR/etc/acquis.yaml
db_config:
  log_level: info
  type: sqlite
  db_path: $CS_DIR/data/crowdsec.db
  use_wal: true
plugin_config:
  user: nobody
  group: nogroup
api:
  client:
    insecure_skip_verify: false
    credentials_path: $CS_DIR/etc/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: $CS_LISTEN:$CS_PORT
    profiles_path: $CS_DIR/etc/profiles.yaml
    trusted_ips:
      - 127.0.0.1
prometheus:
  enabled: false
EOF
	# No online_client section: no Central API, no console.  No acquisition:
	# the agent does not run (-no-cs), but the path must name a file.
	: >"$CS_DIR/etc/acquis.yaml"
	echo "simulation: false" >"$CS_DIR/etc/simulation.yaml"
	cat >"$CS_DIR/etc/profiles.yaml" <<EOF
name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
on_success: break
EOF
}

# cs_cleanup: stop the LAPI (bounded) and remove its directory.
cs_cleanup() {
	cs_stop_lapi
	[[ -n $CS_DIR ]] && rm -rf "$CS_DIR"
	CS_DIR=
}

# cs_wait_health: true once /health answers 200 (bounded), false if the
# process died or the time ran out.
cs_wait_health() {
	local deadline=$(($(cs_now_ms) + CS_START_TIMEOUT * 1000)) code
	while (($(cs_now_ms) < deadline)); do
		if ! kill -0 "$CS_PID" 2>/dev/null; then
			WHY="crowdsec exited while starting: $(tail -n 5 "$CS_DIR/log/crowdsec.log" "$CS_DIR/log/stdout" 2>/dev/null | grep -v '^$' | tail -n 5)"
			return 1
		fi
		code=$("${CS_RUN[@]}" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
			"$CS_URL/health" 2>/dev/null)
		[[ $code == 200 ]] && return 0
		sleep 0.02
	done
	WHY="crowdsec's LAPI did not answer $CS_URL/health within ${CS_START_TIMEOUT}s"
	return 1
}

# cs_start_lapi: the first call sets up a fresh LAPI (config, database, a
# machine for cscli); later calls start the same one again after
# cs_stop_lapi.  Sets CS_URL, CS_PID and CS_START_MS (launch to /health 200).
cs_start_lapi() {
	local t0 try
	if [[ -n $CS_PID ]] && kill -0 "$CS_PID" 2>/dev/null; then
		return 0
	fi
	if [[ -z $CS_DIR ]]; then
		if [[ -z ${ST_TMP:-} ]]; then
			WHY="cs_start_lapi needs lib.sh's st_init first (its temporary directory and clean-up)"
			return 1
		fi
		CS_DIR=$(mktemp -d "$ST_TMP/crowdsec.XXXXXX") || {
			WHY="cannot create a directory under $ST_TMP"
			return 1
		}
		on_exit cs_cleanup
		CS_CONFIG=$CS_DIR/etc/config.yaml
		CS_PORT=$(cs_free_port) || {
			WHY="no free port on $CS_LISTEN"
			return 1
		}
		cs_write_config || {
			WHY="cannot write the LAPI's configuration in $CS_DIR"
			return 1
		}
		# The machine cscli uses to add and delete decisions through the LAPI.
		if ! cscli_t machines add ipblock-selftest --auto \
			-f "$CS_DIR/etc/local_api_credentials.yaml" >/dev/null 2>"$CS_DIR/log/cscli"; then
			WHY="cscli machines add failed: $(cat "$CS_DIR/log/cscli")"
			return 1
		fi
	fi
	CS_URL=http://$CS_LISTEN:$CS_PORT
	# A port taken in between makes crowdsec exit: try others (bounded).
	for ((try = 0; try < 3; try++)); do
		t0=$(cs_now_ms)
		(cd "$CS_DIR" && exec "${CS_RUN[@]}" crowdsec -c "$CS_CONFIG" -no-cs) \
			>>"$CS_DIR/log/stdout" 2>&1 &
		CS_PID=$!
		if cs_wait_health; then
			CS_START_MS=$(($(cs_now_ms) - t0))
			return 0
		fi
		cs_stop_lapi
		grep -q 'address already in use' "$CS_DIR/log/crowdsec.log" "$CS_DIR/log/stdout" \
			2>/dev/null || return 1
		CS_PORT=$(cs_free_port) || return 1
		sed -i "s/listen_uri: .*/listen_uri: $CS_LISTEN:$CS_PORT/" "$CS_CONFIG"
		sed -i "s|^url: .*|url: http://$CS_LISTEN:$CS_PORT|" \
			"$CS_DIR/etc/local_api_credentials.yaml"
		CS_URL=http://$CS_LISTEN:$CS_PORT
		: >"$CS_DIR/log/crowdsec.log"
	done
	return 1
}

# cs_stop_lapi: SIGTERM, SIGKILL after CS_STOP_TIMEOUT seconds; sets CS_STOP_MS.
cs_stop_lapi() {
	local t0 deadline
	[[ -n $CS_PID ]] || return 0
	t0=$(cs_now_ms)
	deadline=$((t0 + CS_STOP_TIMEOUT * 1000))
	kill -TERM "$CS_PID" 2>/dev/null
	while kill -0 "$CS_PID" 2>/dev/null && (($(cs_now_ms) < deadline)); do
		sleep 0.05
	done
	kill -KILL "$CS_PID" 2>/dev/null
	wait "$CS_PID" 2>/dev/null
	CS_STOP_MS=$(($(cs_now_ms) - t0))
	CS_PID=
	return 0
}

# cs_add_bouncer NAME: register a bouncer; prints its API key (no newline).
cs_add_bouncer() {
	cscli_t bouncers add "$1" -o raw
}
