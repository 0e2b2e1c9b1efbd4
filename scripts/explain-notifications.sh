#!/usr/bin/env bash
# Query plans of the inbox queries for a user with 100,000 notifications (half of them read),
# beside 100,000 notifications of 100 other users, on PostgreSQL.
# Usage: scripts/explain-notifications.sh [postgres://postgres@127.0.0.1:5432/postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
admin="${1:-postgres://postgres@127.0.0.1:5432/postgres}"
db=caregraph_explain
server="${admin%/*}"
psql "$admin" -qc "drop database if exists $db" -c "create database $db"
DATABASE_URL="$server/$db" cargo run -q --release -- migrate
psql "$server/$db" -q <<'SQL'
insert into users (id, email, display_name, role, timezone, created_at, updated_at)
select gen_random_uuid(), 'user' || n || '@example.com', 'User ' || n, 'care_recipient', 'UTC', now(), now()
from generate_series(0, 100) n;
insert into notifications (id, user_id, seq, type, title, body, data, is_read, read_at, dedupe_key, created_at)
select gen_random_uuid(), u.id, n, 'profile_updated', 'Profile updated', 'Your display name changed.', '{}',
       n % 2 = 0, null, null, now()
from (select id from users where email = 'user0@example.com') u, generate_series(1, 100000) n;
insert into notifications (id, user_id, seq, type, title, body, data, is_read, read_at, dedupe_key, created_at)
select gen_random_uuid(), u.id, n, 'profile_updated', 'Profile updated', 'Your display name changed.', '{}',
       false, null, null, now()
from (select id from users where email <> 'user0@example.com') u, generate_series(1, 1000) n;
insert into notification_feeds (user_id, last_seq, unread_count)
select user_id, max(seq), count(*) filter (where not is_read) from notifications group by user_id;
analyze;
SQL
user_id=$(psql "$server/$db" -Atc "select id from users where email = 'user0@example.com'")
for query in \
  "select * from notifications where user_id = '$user_id' order by seq desc limit 21" \
  "select * from notifications where user_id = '$user_id' and seq < 50000 order by seq desc limit 21" \
  "select * from notifications where user_id = '$user_id' and is_read = false order by seq desc limit 21" \
  "select unread_count from notification_feeds where user_id = '$user_id'" \
  "select * from notifications where user_id = '$user_id' and seq > 99900 order by seq asc limit 200"
do
  echo "== $query"
  psql "$server/$db" -Atc "explain (analyze, buffers) $query"
done
psql "$admin" -qc "drop database $db"
