#!/bin/sh
# Does a "job" every JOB_INTERVAL seconds and counts it in the cache, by service name.
while true; do
  n=$(echo "INCR jobs" | nc cache 6379)
  echo "job $n done"
  sleep "${JOB_INTERVAL:-0.5}"
done
