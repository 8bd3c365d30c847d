"""The server-side append: ``fleetlog_append``, one statement per batch of appends.

An append used to be four round trips with the journal's lock held across three of
them (BEGIN; lock and read the tail; insert; COMMIT), and the lock's hold time was what
every writer of the fleet queued behind. This PL/pgSQL function does the whole batch in
the one statement a client sends in autocommit mode: it takes the advisory lock, reads
the chain's tail once, then for every request checks its fence, takes its lease, finds
an earlier submission of its command, checks its expected version, and inserts its
events with their hashes, then announces the new head with ``NOTIFY``.

The lock is held for that statement only, not for its fsync: the function commits
asynchronously (``synchronous_commit`` off for its transaction), so the lock is released
as soon as the rows are visible, and the client then makes them durable with a second,
tiny statement that writes and flushes WAL past them (``writer.BARRIER``) before telling
anyone they are written. The fsyncs of many writers, and of many processes, are thus
shared by PostgreSQL's group flush instead of being queued one after the other behind
the lock. A reader may see events a moment before they are durable; anything a worker
does about them starts with an append of its own, whose flush covers them (WAL is
flushed in order), so no side effect ever rests on an event a crash could take back.

The hash is the chain's (``journal.canonical``): ``sha256(prev_hash + canonical_json(row
without hash))`` with the payload's canonical text, written by the client, spliced in.
PostgreSQL's ``to_json(text)`` escapes exactly what Python's ``encode_basestring`` does
(``"``, ``\\``, ``\\b``, ``\\f``, ``\\n``, ``\\r``, ``\\t``, other controls as
``\\u00XX`` in lower case, nothing else), so the text hashed here is the text Python would
hash, and ``verify`` (which recomputes every hash in Python) proves it on every journal.
``recorded_at`` is the database's clock, kept strictly increasing (``max(now, last +
1µs)``) as the client-side planner does: one clock for every host of the fleet.

The batch comes as one JSON parameter, a row per event (``writer.batch_json``): the first
row of each request carries the request's fields too (``f`` true), and a request with
no events has one row with no event. One ``json`` parameter costs a fraction of what two
dozen typed arrays cost to send and to parse, and the rows are read in one pass.

Each request yields rows ``(req, status, ...)``: ``ok`` with the computed columns of each
new event; ``prior`` with the full rows an earlier submission of its command recorded;
``conflict`` with the stream's version; ``fenced`` with the lease row that refuses it;
``changed`` when the lease row it meant to take moved. A refused request writes nothing;
the others are written.
"""

from __future__ import annotations

FUNCTION = "fleetlog_append"

CREATE = r"""
CREATE OR REPLACE FUNCTION fleetlog_append(p_lock bigint, p_check boolean, p_channel text,
                                           p_rows json)
RETURNS TABLE (
    req integer, status text, seq bigint, version bigint, recorded_at text,
    prev_hash text, hash text, event_id text, stream text, type text, command_id text,
    causation_id text, correlation_id text, actor text, host text, payload text,
    l_owner text, l_token bigint, l_expires float8
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_column
DECLARE
    v_seq bigint;
    v_head bigint;
    v_prev text;
    v_before text;
    v_at text;
    v_last_us bigint;
    v_at_us bigint;
    v_version bigint;
    v_stream text;
    v_skip boolean := false;
    v_found boolean;
    v_lease record;
    v_prior record;
    j record;
BEGIN
    -- Committed without waiting for the WAL flush, so the lock is free at once; the
    -- client then waits for durability outside it (``writer.BARRIER``).
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT ev.seq, ev.hash, ev.recorded_at INTO v_seq, v_prev, v_at
        FROM events ev ORDER BY ev.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        v_seq := 0;
        v_prev := repeat('0', 64);
        v_last_us := 0;
    ELSE
        v_last_us := (extract(epoch FROM v_at::timestamptz) * 1000000)::bigint;
    END IF;
    v_head := v_seq;
    FOR j IN SELECT * FROM json_to_recordset(p_rows) AS x(
            r integer, f boolean, s text, ev bigint, cid text,
            fr text, fo text, ft bigint, op text, lo text, lt bigint, le float8,
            so text, st bigint, se float8,
            id text, ty text, ec text, ca text, co text, ac text, ho text, pl text) LOOP
        IF NOT j.f THEN
            IF v_skip THEN
                CONTINUE;
            END IF;
        ELSE
            -- The first row of a request: decide it.
            req := j.r;
            v_stream := j.s;
            v_skip := true;
            l_owner := NULL; l_token := NULL; l_expires := NULL;
            seq := NULL; version := NULL; recorded_at := NULL; prev_hash := NULL; hash := NULL;
            -- The fence: the lease the append is made under must still be the holder's.
            IF j.fr IS NOT NULL THEN
                SELECT l.owner, l.token, l.expires_at INTO v_lease
                    FROM leases l WHERE l.resource = j.fr FOR SHARE;
                v_found := FOUND;
                IF NOT v_found OR v_lease.owner IS DISTINCT FROM j.fo
                        OR v_lease.token <> j.ft THEN
                    status := 'fenced';
                    IF v_found THEN
                        l_owner := v_lease.owner;
                        l_token := v_lease.token;
                        l_expires := v_lease.expires_at;
                    END IF;
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            SELECT coalesce(max(e.version), 0) INTO v_version
                FROM events e WHERE e.stream = v_stream;
            IF p_check AND j.ev IS NOT NULL AND j.ev <> v_version AND j.op = 'take' THEN
                status := 'conflict';
                version := v_version;
                RETURN NEXT;
                CONTINUE;
            END IF;
            -- Taking a lease with the append: only if its row is still the one decided on.
            IF j.op = 'take' THEN
                SELECT l.owner, l.token, l.expires_at INTO v_lease
                    FROM leases l WHERE l.resource = v_stream FOR UPDATE;
                v_found := FOUND;
                IF j.st IS NULL THEN
                    IF NOT v_found THEN
                        INSERT INTO leases (resource, owner, token, expires_at)
                            VALUES (v_stream, j.lo, j.lt, j.le)
                            ON CONFLICT (resource) DO NOTHING;
                        v_found := NOT FOUND;  -- inserted meanwhile by another: changed
                    END IF;
                ELSIF v_found AND v_lease.owner IS NOT DISTINCT FROM j.so
                        AND v_lease.token = j.st AND v_lease.expires_at = j.se THEN
                    UPDATE leases SET owner = j.lo, token = j.lt, expires_at = j.le
                        WHERE resource = v_stream;
                    v_found := false;
                ELSE
                    v_found := true;
                END IF;
                IF v_found THEN
                    status := 'changed';
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            -- An earlier submission of the same command: its events are the outcome.
            IF p_check AND j.cid IS NOT NULL THEN
                SELECT e.stream, e.version, e.recorded_at INTO v_prior FROM events e
                    WHERE e.type = 'command.accepted' AND e.command_id = j.cid;
                IF FOUND THEN
                    RETURN QUERY SELECT j.r, 'prior'::text, e.seq, e.version, e.recorded_at,
                        e.prev_hash, e.hash, e.event_id, e.stream, e.type, e.command_id,
                        e.causation_id, e.correlation_id, e.actor, e.host, e.payload::text,
                        NULL::text, NULL::bigint, NULL::float8
                        FROM events e
                        WHERE e.stream = v_prior.stream AND e.version >= v_prior.version
                            AND e.recorded_at = v_prior.recorded_at
                        ORDER BY e.version;
                    CONTINUE;
                END IF;
            END IF;
            IF p_check AND j.ev IS NOT NULL AND j.ev <> v_version THEN
                status := 'conflict';
                version := v_version;
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF j.op = 'release' THEN
                UPDATE leases SET owner = NULL, expires_at = 0
                    WHERE resource = j.fr AND owner = j.fo AND token = j.ft;
            END IF;
            status := 'ok';
            IF j.id IS NULL THEN
                RETURN NEXT;  -- lease work only: nothing appended
                CONTINUE;
            END IF;
            v_skip := false;
            v_at_us := greatest(
                (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, v_last_us + 1);
            v_last_us := v_at_us;
            v_at := to_char(to_timestamp(v_at_us / 1000000) AT TIME ZONE 'UTC',
                    'YYYY-MM-DD"T"HH24:MI:SS')
                || '.' || lpad((v_at_us % 1000000)::text, 6, '0') || 'Z';
            recorded_at := v_at;
        END IF;
        -- One event of an accepted request, chained onto the one before.
        v_seq := v_seq + 1;
        v_version := v_version + 1;
        v_before := v_prev;
        v_prev := encode(sha256(convert_to(v_prev
            || '{"actor":' || to_json(j.ac)::text
            || ',"causation_id":' || coalesce(to_json(j.ca)::text, 'null')
            || ',"command_id":' || coalesce(to_json(j.ec)::text, 'null')
            || ',"correlation_id":' || coalesce(to_json(j.co)::text, 'null')
            || ',"event_id":' || to_json(j.id)::text
            || ',"host":' || to_json(j.ho)::text
            || ',"payload":' || j.pl
            || ',"prev_hash":' || to_json(v_before)::text
            || ',"recorded_at":' || to_json(v_at)::text
            || ',"seq":' || v_seq::text
            || ',"stream":' || to_json(v_stream)::text
            || ',"type":' || to_json(j.ty)::text
            || ',"version":' || v_version::text || '}', 'UTF8')), 'hex');
        INSERT INTO events (seq, event_id, stream, version, type, command_id, causation_id,
                correlation_id, actor, host, recorded_at, payload, prev_hash, hash)
            VALUES (v_seq, j.id, v_stream, v_version, j.ty, j.ec, j.ca, j.co, j.ac, j.ho,
                v_at, j.pl::json, v_before, v_prev);
        seq := v_seq;
        version := v_version;
        prev_hash := v_before;
        hash := v_prev;
        RETURN NEXT;
    END LOOP;
    IF v_seq > v_head THEN
        PERFORM pg_notify(p_channel, v_seq::text);
    END IF;
END
$fn$
"""
