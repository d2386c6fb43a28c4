#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make install into a DESTDIR: the tools, ipblock.service, the three man
# pages and the example configuration, which a second install keeps; the
# installed unit passes systemd-analyze verify (when systemd-analyze is
# there: systemd need not run), and the man pages format without warnings.
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init make

DEST=$ST_TMP/root
# BUILD as the other tests use it: make must find what they run.
run_cli make -s -C "$ST_REPO" BUILD="$BUILD" DESTDIR="$DEST" PREFIX=/usr install
check install_ok cli_ok
for f in /usr/sbin/ipblock-loader /usr/sbin/ipblock-rule /usr/lib/systemd/system/ipblock.service \
	/usr/share/man/man8/ipblock-loader.8 /usr/share/man/man8/ipblock-rule.8 \
	/usr/share/man/man5/ipblock.conf.5 /etc/ipblock/ipblock.conf; do
	check "installed_${f##*/}" test -s "$DEST$f"
done
check unit_names_the_installed_loader grep -q '^ExecStart=/usr/sbin/ipblock-loader --service --config /etc/ipblock/ipblock.conf$' \
	"$DEST/usr/lib/systemd/system/ipblock.service"
run_cli "$DEST/usr/sbin/ipblock-loader" --check-config "$DEST/etc/ipblock/ipblock.conf"
check example_config_checks cli_ok

echo "# mine" >>"$DEST/etc/ipblock/ipblock.conf"
run_cli make -s -C "$ST_REPO" BUILD="$BUILD" DESTDIR="$DEST" PREFIX=/usr install
check reinstall_ok cli_ok
check reinstall_keeps_the_config eval 'tail -n 1 "$DEST/etc/ipblock/ipblock.conf" | grep -qx "# mine"'

if command -v systemd-analyze >/dev/null; then
	# verify checks that the commands exist where the unit names them: point
	# it at this build rather than at /usr/sbin.
	sed "s|/usr/sbin/|$BUILD/|g" "$DEST/usr/lib/systemd/system/ipblock.service" \
		>"$ST_TMP/ipblock.service"
	run_cli systemd-analyze verify --man=no "$ST_TMP/ipblock.service"
	check unit_verifies eval '((RC == 0)) && [[ -z $OUT$ERR ]] ||
		{ WHY="exit $RC: $OUT $ERR"; false; }'
	check unit_is_notify grep -qx 'Type=notify' "$ST_TMP/ipblock.service"
	check unit_reloads_by_sighup grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$ST_TMP/ipblock.service"
	check unit_wants_network_pre grep -qx 'Wants=network-pre.target' "$ST_TMP/ipblock.service"
	check unit_before_network_pre grep -qx 'Before=network-pre.target fail2ban.service crowdsec.service shutdown.target' \
		"$ST_TMP/ipblock.service"
else
	skip unit_verifies "systemd-analyze is not installed"
fi

if command -v man >/dev/null; then
	for m in ipblock-loader.8 ipblock-rule.8; do
		run_cli env MANWIDTH=80 man --warnings -l "$ST_REPO/man/$m"
		check "man_${m}_formats" eval '((RC == 0)) && [[ -z $ERR ]] || { WHY=$ERR; false; }'
	done
	run_cli env MANWIDTH=80 man --warnings -l "$ST_REPO/man/ipblock.conf.5"
	check "man_ipblock.conf.5_formats" eval '((RC == 0)) && [[ -z $ERR ]] || { WHY=$ERR; false; }'
fi

st_finish
