#!/usr/bin/env bash
# The demo behind `make demo`: register the reference model in the embedded registry, build it
# into an image and run it where podman or docker exists (else serve it in-process), show the
# classic calls and verify every layer.
# DEMO_EXIT=1 stops after the checks instead of serving until Ctrl-C.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-5000}
MODEL=${MODEL:-models/sentiment}
URL="http://127.0.0.1:${PORT}"
export CONVEYOR_HOME=${CONVEYOR_HOME:-$PWD/.conveyor}
CONVEYOR="${BIN}/conveyor"

if curl -s -o /dev/null "${URL}/v2/health/live"; then
    echo "error: something already listens on port ${PORT}; run 'make demo PORT=5001'" >&2
    exit 2
fi

echo "== registry: register the reference model (CONVEYOR_HOME=${CONVEYOR_HOME}) =="
"${CONVEYOR}" models register "${MODEL}" --name sentiment --alias production --skip-unchanged \
    --description "MiniLM + logistic regression on VADER ground truth" \
    --model-description "Sentiment of English text (negative/positive)" \
    --metric "accuracy=$(python3 -c "import json;print(json.load(open('${MODEL}/metrics.json'))['accuracy'])")"
"${CONVEYOR}" models list
VERSION=$("${CONVEYOR}" models show sentiment@production --json | python3 -c "import json,sys;print(json.load(sys.stdin)['version'])")
echo

pick_base_image() {
    local engine=$1
    if [[ -n "${CONVEYOR_BASE_IMAGE:-}" ]]; then echo "${CONVEYOR_BASE_IMAGE}"; return; fi
    for image in python:3.11-slim localhost/conveyor-base:bookworm; do
        if "${engine}" image inspect "${image}" >/dev/null 2>&1; then echo "${image}"; return; fi
    done
    if timeout 30 "${engine}" pull -q docker.io/library/python:3.11-slim >/dev/null 2>&1; then
        echo python:3.11-slim; return
    fi
    if [[ "$(id -u)" == "0" ]] && command -v debootstrap >/dev/null; then
        bash scripts/make-base-image.sh localhost/conveyor-base:bookworm >&2 && echo localhost/conveyor-base:bookworm
    fi
}

ENGINE=$(command -v podman || command -v docker || true)
MODE=in-process
if [[ -n "${ENGINE}" ]]; then
    ENGINE=$(basename "${ENGINE}")
    echo "== packaging: build sentiment@production into an image with ${ENGINE} =="
    BASE=$(pick_base_image "${ENGINE}" || true)
    if [[ -n "${BASE}" ]]; then
        IMAGE="localhost/sentiment:${VERSION}"
        echo "\$ conveyor build sentiment@production -t ${IMAGE} --base-image ${BASE}"
        if "${CONVEYOR}" build sentiment@production -t "${IMAGE}" --base-image "${BASE}" --builder "${ENGINE}"; then
            MODE=image
        else
            echo "the image build failed (see above): serving in-process instead"
        fi
    else
        echo "no base image: python:3.11-slim cannot be pulled and debootstrap is unavailable;"
        echo "set CONVEYOR_BASE_IMAGE or run scripts/make-base-image.sh as root. Serving in-process instead."
    fi
else
    echo "== packaging: neither podman nor docker is installed, so no image is built; serving in-process =="
fi
echo

if [[ "${MODE}" == "image" ]]; then
    NAME="conveyor-demo-${PORT}"
    "${ENGINE}" rm -f "${NAME}" >/dev/null 2>&1 || true
    echo "\$ ${ENGINE} run -d --name ${NAME} -p 127.0.0.1:${PORT}:5000 ${IMAGE}"
    # (podman without systemd logs that it cannot schedule healthcheck timers: harmless, hidden)
    "${ENGINE}" run -d --name "${NAME}" -p "127.0.0.1:${PORT}:5000" "${IMAGE}" >/dev/null 2>&1
    trap '"${ENGINE}" rm -f "${NAME}" >/dev/null 2>&1 || true' EXIT
    alive() { [[ "$("${ENGINE}" inspect -f '{{.State.Running}}' "${NAME}" 2>/dev/null)" == "true" ]]; }
else
    echo "\$ conveyor serve sentiment@production --port ${PORT}"
    "${CONVEYOR}" serve sentiment@production --port "${PORT}" &
    server=$!
    trap 'kill -TERM ${server} 2>/dev/null || true; wait ${server} 2>/dev/null || true' EXIT
    alive() { kill -0 "${server}" 2>/dev/null; }
fi

for _ in $(seq 1 1200); do
    if curl -s -o /dev/null -w '%{http_code}' "${URL}/v2/health/ready" | grep -q 200; then break; fi
    if ! alive; then echo "error: the server exited" >&2; exit 1; fi
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
"${CONVEYOR}" verify "${URL}" --contract examples/sentiment/contract.yaml --project . \
    --model-ref sentiment@production --model-path "${MODEL}" \
    --junit "${CONVEYOR_HOME}/verify.xml" || echo "(verification failed: see the table above)"
echo
echo "Serving sentiment:${VERSION} (${MODE}) on ${URL}. Metrics: ${URL}/metrics   OpenAPI: ${URL}/openapi.json"
echo "Registry: CONVEYOR_HOME=${CONVEYOR_HOME} ${CONVEYOR} models show sentiment"
if [[ "${DEMO_EXIT:-0}" == "1" ]]; then
    exit 0
fi
echo "Serving until Ctrl-C."
if [[ "${MODE}" == "image" ]]; then
    "${ENGINE}" logs -f "${NAME}" || true
else
    wait "${server}"
fi
