#!/bin/sh
# Writes wsjobd@.service from wsjobd.service (standard input to standard
# output): one unit per instance, `systemctl start wsjobd@NAME` reading
# /etc/wsjobd/NAME.conf, with the same hardening and no socket unit (each
# instance listens on the ports its own file names).
exec sed -e 's|/etc/wsjobd/wsjobd\.conf|/etc/wsjobd/%i.conf|' \
         -e 's|^Description=.*|Description=wsjobd WebSocket job server, instance %i|' \
         -e '/^Wants=wsjobd\.socket$/d'
