#!/usr/bin/env bash
# Install the Debian packages wattwatch's tests and services need, only those missing.
# Idempotent; a no-op when everything is there. Runs as root (CI, the dev machines) or via sudo.
set -euo pipefail

# chromium: the HTML report's browser tests (tests/report)
# openjdk-17-jre-headless: Spark (fleet --engine spark, detect --engine spark)
# mosquitto: the MQTT broker the grid agents, edge reports and live monitoring talk through
# influxdb (1.x, InfluxQL on 8086): live monitoring's time-series sink; tests start their own influxd
# snmpd, snmp: the SNMPv3 agent and client tools live monitoring's PDU/UPS tests run against
PACKAGES=(chromium openjdk-17-jre-headless mosquitto influxdb snmpd snmp)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# A Java 17 runtime already on the PATH (another vendor's JDK) serves Spark as well.
if [[ " ${missing[*]} " == *" openjdk-17-jre-headless "* ]] && java -version 2>&1 | grep -q 'version "17'; then
  missing=("${missing[@]/openjdk-17-jre-headless}")
  missing=(${missing[@]})
fi
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
