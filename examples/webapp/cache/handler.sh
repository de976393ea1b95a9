#!/bin/sh
# One request per connection, one line: PING | GET KEY | INCR KEY | SET KEY VALUE.
# Values live in /data (a named volume), one file per key; INCR holds a lock.
read -r cmd key value
cmd=$(printf %s "$cmd" | tr -d '\r')
key=$(printf %s "$key" | tr -cd 'A-Za-z0-9_-')
case "$cmd" in
  PING) echo PONG ;;
  GET) cat "/data/$key" 2>/dev/null || echo 0 ;;
  SET) printf '%s\n' "$value" > "/data/$key" && echo OK ;;
  INCR)
    (
      flock 9
      n=$(cat "/data/$key" 2>/dev/null || echo 0)
      n=$((n + 1))
      echo "$n" > "/data/$key"
      echo "$n"
    ) 9> /data/.lock
    ;;
  *) echo "ERR unknown command: $cmd" ;;
esac
