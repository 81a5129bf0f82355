import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../src/errors.js';
import { dumpMongodb, mongoConfigYaml, mongodumpArgs, mongorestoreArgs, redactUri, restoreMongodb, uriDatabase, writeMongoConfig } from '../src/sources/mongodb/dump.js';
import { mongodbSourceSchema, uriHasPassword } from '../src/config/sources.js';
import { tmpdir } from './helpers/db.js';

// No MongoDB server or Database Tools exist on the test machine: these tests
// cover argument building, secret handling and the missing-tool errors.
describe('MongoDB source (no server here: arguments, secrets, errors)', () => {
  let t: ReturnType<typeof tmpdir>;
  before(() => {
    t = tmpdir();
    process.env.LB_TEST_MONGO_PW = 'p@ss:wörd"\n';
  });
  after(() => {
    t.cleanup();
    delete process.env.LB_TEST_MONGO_PW;
  });

  test('the connection string may not carry a password', () => {
    assert.equal(uriHasPassword('mongodb://backup:secret@db1:27017/app'), true);
    assert.equal(uriHasPassword('mongodb+srv://backup@cluster0.example.net/?authSource=admin'), false);
    assert.equal(uriHasPassword('mongodb://db1:27017,db2:27017/?replicaSet=rs0'), false);
    const r = mongodbSourceSchema.safeParse({ kind: 'mongodb', uri: 'mongodb://u:pw@h/db' });
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error!.issues), /must not contain a password: use passwordEnv or passwordFile/);
    assert.equal(mongodbSourceSchema.safeParse({ kind: 'mongodb', uri: 'http://h' }).success, false);
    assert.equal(redactUri('mongodb://backup@db1:27017,db2/app?tls=true&tlsCertificateKeyFilePassword=x'), 'mongodb://db1:27017,db2/app');
    assert.equal(uriDatabase('mongodb://h:1/my%20db?x=1'), 'my db');
  });

  test('mongodump and mongorestore arguments keep secrets off the command line', () => {
    const o = mongodbSourceSchema.parse({ kind: 'mongodb', uri: 'mongodb://backup@h:27017/?authSource=admin', passwordEnv: 'LB_TEST_MONGO_PW', database: 'shop', excludeCollections: ['sessions', 'cache'], readPreference: 'secondaryPreferred' });
    const args = mongodumpArgs(o, '/tmp/x/config.yaml');
    assert.deepEqual(args, ['--config=/tmp/x/config.yaml', '--archive', '--db=shop', '--excludeCollection=sessions', '--excludeCollection=cache', '--readPreference=secondaryPreferred']);
    assert.ok(!args.join(' ').includes('mongodb://'), 'the URI is in the config file, not argv');
    assert.deepEqual(mongorestoreArgs(o, { database: 'shop_copy', clean: true }, '/c.yaml'), ['--config=/c.yaml', '--archive', '--stopOnError', '--drop', '--nsInclude=shop.*', '--nsFrom=shop.*', '--nsTo=shop_copy.*']);
    assert.deepEqual(mongorestoreArgs(o, {}, '/c.yaml'), ['--config=/c.yaml', '--archive', '--stopOnError', '--nsInclude=shop.*']);
    const all = mongodbSourceSchema.parse({ kind: 'mongodb', uri: 'mongodb://h', oplog: true });
    assert.deepEqual(mongodumpArgs(all, '/c.yaml'), ['--config=/c.yaml', '--archive', '--oplog']);
    assert.throws(() => mongorestoreArgs(all, { database: 'x' }, '/c.yaml'), ConfigError);
    assert.deepEqual(mongorestoreArgs(all, { oplogReplay: true, force: true }, '/c.yaml'), ['--config=/c.yaml', '--archive', '--stopOnError', '--oplogReplay']);
    assert.equal(mongodbSourceSchema.safeParse({ kind: 'mongodb', uri: 'mongodb://h', oplog: true, database: 'x' }).success, false);
    assert.equal(mongodbSourceSchema.safeParse({ kind: 'mongodb', uri: 'mongodb://h', collection: 'c' }).success, false);
  });

  test('the --config file holds uri and password, is 0600 in a 0700 directory, and is removed', async () => {
    const pw = process.env.LB_TEST_MONGO_PW!;
    const cfg = await writeMongoConfig('mongodb://backup@h:27017/?authSource=admin', pw, t.dir);
    const st = await fsp.stat(cfg.path);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal((await fsp.stat(path.dirname(cfg.path))).mode & 0o777, 0o700);
    assert.deepEqual(parseYaml(await fsp.readFile(cfg.path, 'utf8')), { uri: 'mongodb://backup@h:27017/?authSource=admin', password: pw });
    await cfg.remove();
    await assert.rejects(fsp.stat(path.dirname(cfg.path)), { code: 'ENOENT' });
    assert.deepEqual(parseYaml(mongoConfigYaml('mongodb://h')), { uri: 'mongodb://h' });
  });

  test('missing tools give a clear error', async () => {
    const empty = path.join(t.dir, 'bin');
    await fsp.mkdir(empty);
    const opts = { kind: 'mongodb' as const, uri: 'mongodb://backup@127.0.0.1:27017/', passwordEnv: 'LB_TEST_MONGO_PW', binDir: empty };
    await assert.rejects(dumpMongodb(opts), /mongodump not found in .*bin; install MongoDB Database Tools/);
    await assert.rejects(restoreMongodb(opts, Readable.from([])), /mongorestore not found in .*bin; install MongoDB Database Tools/);
    const origPath = process.env.PATH;
    process.env.PATH = empty;
    try {
      await assert.rejects(dumpMongodb({ kind: 'mongodb', uri: 'mongodb://127.0.0.1/' }), /mongodump not found in PATH; install MongoDB Database Tools/);
    } finally {
      process.env.PATH = origPath;
    }
    await assert.rejects(dumpMongodb({ kind: 'mongodb', uri: 'mongodb://127.0.0.1/', passwordEnv: 'LB_TEST_MONGO_PW' }), /a password is configured but the connection string names no user/);
  });

  test('a stand-in mongodump: archive on stdout, config file gone after exit, failure quoted', async () => {
    // A shell script in place of mongodump shows the plumbing (not MongoDB itself):
    // it prints its --config file path and the file's permissions, then fails if asked.
    const bin = path.join(t.dir, 'fakebin');
    await fsp.mkdir(bin);
    await fsp.writeFile(
      path.join(bin, 'mongodump'),
      `#!/bin/sh
if [ "$1" = "--version" ]; then echo "mongodump version: 100.9.4"; exit 0; fi
cfg="\${1#--config=}"
printf 'ARCHIVE %s %s\\n' "$cfg" "$(stat -c %a "$cfg")"
case "$*" in *--db=broken*) echo "Failed: (Unauthorized) not authorized on broken" >&2; exit 1;; esac
`,
      { mode: 0o755 },
    );
    const h = await dumpMongodb({ kind: 'mongodb', uri: 'mongodb://backup@h/', passwordEnv: 'LB_TEST_MONGO_PW', binDir: bin, database: 'shop' }, { name: 'm' });
    assert.equal(h.filename, 'shop.archive');
    assert.equal(h.meta.toolVersion, '100.9.4');
    assert.equal(h.meta.uri, 'mongodb://h/');
    let out = '';
    for await (const c of h.stream) out += String(c);
    await h.done;
    const [, cfgPath, mode] = /^ARCHIVE (\S+) (\d+)/.exec(out)!;
    assert.equal(mode, '600');
    await assert.rejects(fsp.stat(cfgPath!), { code: 'ENOENT' });
    const bad = await dumpMongodb({ kind: 'mongodb', uri: 'mongodb://h/', binDir: bin, database: 'broken' });
    bad.stream.resume();
    bad.stream.on('error', () => {});
    await assert.rejects(bad.done, /mongodump failed with exit code 1:\n\s+Failed: \(Unauthorized\) not authorized on broken/);
  });
});
