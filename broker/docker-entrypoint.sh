#!/bin/sh
# Entry point of the fedmq image: `fedmq "$@"`, with the broker password taken from a file.
#
# compose.yaml names the account in FEDMQ_BROKER (mqtt://aggregator@mosquitto:1883) and
# the password file in FEDMQ_BROKER_PASSWORD_FILE (written by the broker-init service),
# so no password sits in compose.yaml, an .env file or `docker inspect`.
set -eu

if [ -n "${FEDMQ_BROKER_PASSWORD_FILE:-}" ] && [ -n "${FEDMQ_BROKER:-}" ]; then
    scheme=${FEDMQ_BROKER%%://*}
    rest=${FEDMQ_BROKER#*://}
    case $rest in
        *:*@*) ;;  # the URL already carries a password: keep it
        *@*)
            password=$(cat "$FEDMQ_BROKER_PASSWORD_FILE")
            FEDMQ_BROKER="$scheme://${rest%%@*}:$password@${rest#*@}"
            export FEDMQ_BROKER
            ;;
        *)
            echo "FEDMQ_BROKER_PASSWORD_FILE is set but FEDMQ_BROKER names no user" >&2
            exit 2
            ;;
    esac
fi

# Scaled fleet replicas (`docker compose up --scale devices=N`) need distinct device ids:
# default each replica's id prefix to its container hostname.
if [ "${1:-}" = devices ] && [ -z "${FEDMQ_ID_PREFIX:-}" ]; then
    FEDMQ_ID_PREFIX="sim-$(hostname)"
    export FEDMQ_ID_PREFIX
fi

exec fedmq "$@"
