#!/bin/sh
# Does a "job" every half second and counts it in the cache, by service name.
while true; do
  n=$(echo "INCR jobs" | nc cache 6379)
  echo "job $n done"
  sleep 0.5
done
