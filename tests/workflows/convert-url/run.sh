#!/usr/bin/env bash
# Serve the generated test images on loopback, run convert-url through eopack, stop the server.
# usage: run.sh RUNNER FN URL SIZE   (URL may contain @BASE@, replaced by the server's base URL)
# Leaves the run in ./out; exits with eopack's exit code.
set -u
runner=$1 fn=$2 url=$3 size=$4
python tests/support/imageserver.py images > server.url 2>server.log &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s server.url ] && break; sleep 0.1; done
base=$(cat server.url)
printf 'fn: %s\nurl: "%s"\nsize: "%s"\n' "$fn" "${url//@BASE@/$base}" "$size" > job.yml
eopack run convert-url job.yml --runner "$runner" --outdir out -q
