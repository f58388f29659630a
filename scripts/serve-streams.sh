#!/usr/bin/env bash
# serve-streams.sh BINARY MODEL STREAMS [SERVE FLAGS...]: time STREAMS concurrent streaming chat
# completions of 128 tokens through `smolchat serve`, as API clients see them.
#
# A Linux tool (bash, curl, awk, GNU date); smolchat itself is not Linux-only. It starts the server on MODEL
# with --parallel 4 and the given flags (e.g. --gpu --gpu-tune-file FILE, or --cpu --threads 2) in a
# temporary data directory, waits until it is ready, sends one request to warm it, then STREAMS requests
# at once (stream: true, temperature 0, max_tokens 128, the end-of-generation tokens banned by logit_bias
# so that each runs its 128 tokens on a random-weight file), and prints the wall time from their start
# to the last one's end and the content chunks each received. Every request has its own prompt, so the
# conversation cache serves none of them.
#
# Settings (environment):
#   SMOLCHAT_STREAMS_PORT  the server's port (default 18090)
#   SMOLCHAT_STREAMS_BAN   comma-separated token ids to ban (default 128001,128009,128012: SmolLM3's
#                          end-of-text, end-of-turn and im_end)
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 BINARY MODEL STREAMS [SERVE FLAGS...]" >&2; exit 2; }
bin=$1 model=$2 streams=$3
shift 3
port=${SMOLCHAT_STREAMS_PORT:-18090}
ban=${SMOLCHAT_STREAMS_BAN:-128001,128009,128012}
bias=$(echo "$ban" | sed 's/\([0-9][0-9]*\)/"\1":-100/g')

dir=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

"$bin" serve --model "$model" --parallel 4 --port "$port" --data-dir "$dir/data" "$@" >"$dir/log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  grep -q 'msg=ready' "$dir/log" && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/log" >&2; echo "$0: the server exited" >&2; exit 1; }
  sleep 0.5
done
grep -q 'msg=ready' "$dir/log" || { echo "$0: the server was not ready in 5 minutes" >&2; exit 1; }

# request NAME: one streaming completion; prints the number of content chunks received.
request() {
  curl -sS -N "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"messages\":[{\"role\":\"user\",\"content\":\"a story, number $1\"}],\"max_tokens\":128,\"temperature\":0,\"stream\":true,\"logit_bias\":{$bias}}" |
    grep -c '"content"'
}

request warm >/dev/null
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$streams"); do
  request "$i-$RANDOM" >"$dir/out$i" &
  pids+=($!)
done
wait "${pids[@]}"
end=$(date +%s.%N)
printf 'streams %d: %.2f s, content chunks %s\n' "$streams" "$(awk "BEGIN { print $end - $start }")" "$(cat "$dir"/out* | tr '\n' ' ')"
