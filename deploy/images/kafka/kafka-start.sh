#!/bin/bash
# Writes server.properties from KAFKA_* variables (apache/kafka's convention: KAFKA_LOG_DIRS ->
# log.dirs; "___" -> "-", "__" -> "_"), formats the log dir once with CLUSTER_ID, runs the broker.
set -euo pipefail
conf=/opt/kafka/config/server.properties
: >"$conf"
for var in $(compgen -e); do
    case "$var" in
        KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_* | KAFKA_LOG4J_*) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    key=$(sed -e 's/___/-/g; s/__/@/g; s/_/./g; s/@/_/g' <<<"${var#KAFKA_}" | tr '[:upper:]' '[:lower:]')
    printf '%s=%s\n' "$key" "${!var}" >>"$conf"
done
cp="/opt/kafka/libs/*"
log4j="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
logdir=$(sed -n 's/^log\.dirs=//p' "$conf")
if [ ! -f "${logdir:-/var/lib/kafka/data}/meta.properties" ]; then
    java -Xmx128m -XX:TieredStopAtLevel=1 "$log4j" -cp "$cp" kafka.tools.StorageTool \
        format --ignore-formatted -t "${CLUSTER_ID:?set CLUSTER_ID}" -c "$conf"
fi
# shellcheck disable=SC2086  # the options are a word list, as in kafka-run-class.sh
exec java $KAFKA_HEAP_OPTS ${KAFKA_OPTS:-} -Djava.awt.headless=true "$log4j" -cp "$cp" kafka.Kafka "$conf"
