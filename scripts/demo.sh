#!/usr/bin/env bash
# The demo behind `make demo`: register the reference model in the embedded registry,
# serve sentiment@production from it and show the classic calls.
# DEMO_EXIT=1 stops the server after the calls instead of serving until Ctrl-C.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-5000}
MODEL=${MODEL:-models/sentiment}
URL="http://127.0.0.1:${PORT}"
export CONVEYOR_HOME=${CONVEYOR_HOME:-$PWD/.conveyor}

if curl -s -o /dev/null "${URL}/v2/health/live"; then
    echo "error: something already listens on port ${PORT}; run 'make demo PORT=5001'" >&2
    exit 2
fi

echo "== registry: register the reference model (CONVEYOR_HOME=${CONVEYOR_HOME}) =="
"${BIN}/conveyor" models register "${MODEL}" --name sentiment --alias production --skip-unchanged \
    --description "MiniLM + logistic regression on VADER ground truth" \
    --model-description "Sentiment of English text (negative/positive)" \
    --metric "accuracy=$(python3 -c "import json;print(json.load(open('${MODEL}/metrics.json'))['accuracy'])")"
"${BIN}/conveyor" models list
echo

"${BIN}/conveyor" serve sentiment@production --port "${PORT}" &
server=$!
trap 'kill -TERM ${server} 2>/dev/null || true; wait ${server} 2>/dev/null || true' EXIT

for _ in $(seq 1 600); do
    if curl -s -o /dev/null -w '%{http_code}' "${URL}/v2/health/ready" | grep -q 200; then break; fi
    if ! kill -0 "${server}" 2>/dev/null; then echo "error: the server exited" >&2; exit 1; fi
    sleep 0.1
done

echo
echo "== the classic contract: POST /predict with a JSON array of one string =="
for text in "MLOps is critical for robustness" "espresso is too strong" "Containers are more or less interesting"; do
    echo "\$ curl -X POST -H \"Content-Type: application/json\" --data '[\"${text}\"]' ${URL}/predict"
    curl -s -X POST -H "Content-Type: application/json" --data "[\"${text}\"]" "${URL}/predict"
    echo
done
echo
echo "== Open Inference Protocol v2 =="
echo "\$ curl -X POST ${URL}/v2/models/sentiment/infer --data '{\"inputs\":[{\"name\":\"text\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[...]}]}'"
curl -s -X POST -H "Content-Type: application/json" "${URL}/v2/models/sentiment/infer" \
    --data '{"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["What a wonderful day","The food was cold and bland"]}]}'
echo
echo
echo "== a client mistake gets a 4xx with a JSON message =="
echo "\$ curl -X POST -H \"Content-Type: application/json\" --data '[42]' ${URL}/predict"
curl -s -w "  (HTTP %{http_code})" -X POST -H "Content-Type: application/json" --data '[42]' "${URL}/predict"
echo
echo
echo "== verification: every layer a request crosses, plus static checks of this project =="
echo "\$ conveyor verify ${URL} --contract examples/sentiment/contract.yaml --project . \\"
echo "      --model-ref sentiment@production --model-path ${MODEL} --junit ${CONVEYOR_HOME}/verify.xml"
"${BIN}/conveyor" verify "${URL}" --contract examples/sentiment/contract.yaml --project . \
    --model-ref sentiment@production --model-path "${MODEL}" \
    --junit "${CONVEYOR_HOME}/verify.xml" || echo "(verification failed: see the table above)"
echo
echo "Metrics: ${URL}/metrics   OpenAPI: ${URL}/openapi.json"
echo "Registry: CONVEYOR_HOME=${CONVEYOR_HOME} ${BIN}/conveyor models show sentiment"
if [[ "${DEMO_EXIT:-0}" == "1" ]]; then
    exit 0
fi
echo "Serving on ${URL} until Ctrl-C."
wait "${server}"
