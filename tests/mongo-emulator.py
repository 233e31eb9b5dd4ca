#!/usr/bin/python3
"""A small wire-level MongoDB for the history tests (Debian has no mongod).

MockupDB speaks the wire protocol (OP_QUERY handshake, OP_MSG commands) and
mongomock stores and queries. Answers: hello/isMaster, ping, buildInfo,
insert, update (upsert, $set, $setOnInsert), find (filter, sort, skip,
limit, projection; one batch, cursor id 0), getMore, count, aggregate,
delete, createIndexes (unique honoured), drop, dropDatabase, killCursors,
endSessions. Anything else is printed on stderr and refused.

  mongo-emulator.py --port N [--data FILE] [--verbose]

Prints the port (N, or a free one when N is 0) on the first stdout line,
then serves until killed. --verbose prints every command's name on stderr.
With --data, the documents and indexes are kept
in FILE after every write and loaded at start, so an emulator restarted on
the same file acts as a server that came back.
"""
import argparse
import os
import pickle
import sys
import time

import mockupdb
import mongomock
from mongomock import DuplicateKeyError

MAX_WIRE = 13  # MongoDB 5.0: at least what mongo-c-driver 1.23 needs

store = mongomock.MongoClient()
indexes = []  # (db, collection, key, options) replayed after a restart
data_file = None
verbose = False


def save():
    if data_file is None:
        return
    dump = {}
    for db in store.list_database_names():
        for coll in store[db].list_collection_names():
            dump[(db, coll)] = list(store[db][coll].find())
    tmp = data_file + '.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump((dump, indexes), f)
    os.replace(tmp, data_file)


def load():
    if data_file is None or not os.path.exists(data_file):
        return
    with open(data_file, 'rb') as f:
        dump, saved = pickle.load(f)
    for (db, coll, key, opts) in saved:
        create_index(db, coll, key, opts)
    for (db, coll), docs in dump.items():
        if docs:
            store[db][coll].insert_many(docs)


def create_index(db, coll, key, opts):
    store[db][coll].create_index(list(key.items()), **opts)
    if (db, coll, key, opts) not in indexes:
        indexes.append((db, coll, key, opts))


def write_error(i, e):
    return {'index': i, 'code': getattr(e, 'code', None) or 11000, 'errmsg': str(e)}


def cmd_insert(db, doc):
    coll, n, errors = store[db][doc['insert']], 0, []
    for i, d in enumerate(doc.get('documents', [])):
        try:
            coll.insert_one(d)
            n += 1
        except DuplicateKeyError as e:
            errors.append(write_error(i, e))
            if doc.get('ordered', True):
                break
    reply = {'n': n}
    if errors:
        reply['writeErrors'] = errors
    return reply


def cmd_update(db, doc):
    coll, n, modified, upserted, errors = store[db][doc['update']], 0, 0, [], []
    for i, u in enumerate(doc.get('updates', [])):
        try:
            fn = coll.update_many if u.get('multi') else coll.update_one
            r = fn(u['q'], u['u'], upsert=u.get('upsert', False))
        except DuplicateKeyError as e:
            errors.append(write_error(i, e))
            if doc.get('ordered', True):
                break
            continue
        n += r.matched_count
        modified += r.modified_count
        if r.upserted_id is not None:
            n += 1
            upserted.append({'index': i, '_id': r.upserted_id})
    reply = {'n': n, 'nModified': modified}
    if upserted:
        reply['upserted'] = upserted
    if errors:
        reply['writeErrors'] = errors
    return reply


def cmd_delete(db, doc):
    coll, n = store[db][doc['delete']], 0
    for d in doc.get('deletes', []):
        fn = coll.delete_one if d.get('limit', 0) == 1 else coll.delete_many
        n += fn(d['q']).deleted_count
    return {'n': n}


def batch(db, coll, docs):
    return {'cursor': {'id': 0, 'ns': '%s.%s' % (db, coll), 'firstBatch': docs}}


def cmd_find(db, doc):
    coll = doc['find']
    cur = store[db][coll].find(doc.get('filter', {}), projection=doc.get('projection'))
    if doc.get('sort'):
        cur = cur.sort(list(doc['sort'].items()))
    if doc.get('skip'):
        cur = cur.skip(int(doc['skip']))
    if doc.get('limit'):
        cur = cur.limit(abs(int(doc['limit'])))
    return batch(db, coll, list(cur))


def cmd_aggregate(db, doc):
    coll = doc['aggregate']
    return batch(db, coll, list(store[db][coll].aggregate(doc.get('pipeline', []))))


def cmd_count(db, doc):
    return {'n': store[db][doc['count']].count_documents(doc.get('query') or {})}


def cmd_create_indexes(db, doc):
    coll = doc['createIndexes']
    for ix in doc.get('indexes', []):
        opts = {k: ix[k] for k in ('name', 'unique') if k in ix}
        create_index(db, coll, dict(ix['key']), opts)
    return {'createdCollectionAutomatically': False, 'numIndexesBefore': 1, 'numIndexesAfter': 1}


def cmd_drop(db, doc):
    store[db].drop_collection(doc['drop'])
    indexes[:] = [i for i in indexes if (i[0], i[1]) != (db, doc['drop'])]
    return {}


def cmd_drop_database(db, doc):
    store.drop_database(db)
    indexes[:] = [i for i in indexes if i[0] != db]
    return {}


def cmd_hello(db, doc):
    return {'ismaster': True, 'isWritablePrimary': True, 'helloOk': True, 'minWireVersion': 0,
            'maxWireVersion': MAX_WIRE, 'maxBsonObjectSize': 16 * 1024 * 1024,
            'maxMessageSizeBytes': 48000000, 'maxWriteBatchSize': 100000,
            'localTime': time.time(), 'connectionId': 1}


COMMANDS = {
    'hello': cmd_hello, 'ismaster': cmd_hello, 'isMaster': cmd_hello,
    'ping': lambda db, doc: {}, 'buildinfo': lambda db, doc: {'version': '5.0.0', 'versionArray': [5, 0, 0, 0]},
    'buildInfo': lambda db, doc: {'version': '5.0.0', 'versionArray': [5, 0, 0, 0]},
    'endSessions': lambda db, doc: {}, 'killCursors': lambda db, doc: {'cursorsKilled': doc.get('cursors', [])},
    'getMore': lambda db, doc: {'cursor': {'id': 0, 'ns': '%s.%s' % (db, doc.get('collection')), 'nextBatch': []}},
    'insert': cmd_insert, 'update': cmd_update, 'delete': cmd_delete, 'find': cmd_find,
    'aggregate': cmd_aggregate, 'count': cmd_count, 'createIndexes': cmd_create_indexes,
    'drop': cmd_drop, 'dropDatabase': cmd_drop_database,
}
WRITES = {'insert', 'update', 'delete', 'createIndexes', 'drop', 'dropDatabase'}


def handle(request):
    name = request.command_name
    db = request.namespace.split('.')[0] if request.namespace else 'admin'
    fn = COMMANDS.get(name)
    if verbose:
        print('mongo-emulator: %s %s' % (db, name), file=sys.stderr, flush=True)
    if fn is None:
        print('mongo-emulator: unknown command %s %r' % (name, request.doc), file=sys.stderr, flush=True)
        return request.command_err(code=59, errmsg='no such command: %s' % name)
    try:
        reply = fn(db, request.doc)
    except Exception as e:  # the client gets the error, the emulator lives on
        print('mongo-emulator: %s failed: %r' % (name, e), file=sys.stderr, flush=True)
        return request.command_err(code=8000, errmsg='%s: %s' % (name, e))
    if name in WRITES:
        save()
    return request.replies(reply)


def main():
    global data_file, verbose
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--data')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args()
    data_file, verbose = args.data, args.verbose
    load()
    server = mockupdb.MockupDB(port=args.port or None, request_timeout=int(1e6))
    server.autoresponds(handle)
    port = server.run()
    print(port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == '__main__':
    main()
