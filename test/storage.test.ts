import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { S3Client, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { tmpDir } from './helpers/tmp.js';
import { startS3Server, s3Location, type S3TestServer } from './helpers/s3server.js';
import { LocalStorage } from '../src/storage/local.js';
import { S3Storage } from '../src/storage/s3.js';
import { openStorage, parseLocation } from '../src/storage/open.js';
import { describeLocation } from '../src/storage/describe.js';
import { type FileType, type Storage, FILE_TYPES } from '../src/storage/types.js';
import { ConfigError, ExitCode, LifeboatError, NotFoundError } from '../src/errors.js';

const MiB = 1024 * 1024;

const hex = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const md5b64 = (data: Uint8Array) => createHash('md5').update(data).digest('base64');
const randomName = () => randomBytes(32).toString('hex');

/** Run `fn` over `items` with at most `n` in flight. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

interface Backend {
  name: string;
  open(prefix: string): Promise<Storage>;
  setup(): Promise<void>;
  teardown(): Promise<void>;
}

let srv: S3TestServer | undefined;
const localTmp = tmpDir('lb-storage-');

const backends: Backend[] = [
  {
    name: 'local',
    async setup() {},
    async teardown() {
      localTmp.cleanup();
    },
    async open(prefix) {
      return new LocalStorage(path.join(localTmp.dir, prefix));
    },
  },
  {
    name: 's3',
    async setup() {
      srv = await startS3Server();
    },
    async teardown() {
      await srv?.stop();
      srv = undefined;
    },
    async open(prefix) {
      const loc = s3Location(srv!, prefix);
      return openStorage(loc.location, loc.opts);
    },
  },
];

for (const backend of backends) {
  describe(`storage contract: ${backend.name}`, () => {
    let st: Storage;
    before(async () => {
      await backend.setup();
      st = await backend.open('repo/one');
      await st.create();
      await st.create(); // idempotent
    });
    after(async () => {
      await st?.close();
      await backend.teardown();
    });

    it('has the expected kind and a location without secrets', () => {
      assert.equal(st.kind, backend.name);
      if (backend.name === 's3') {
        assert.equal(st.location, `s3:${srv!.endpoint}/${srv!.bucket}/repo/one`);
        assert.ok(!st.location.includes(srv!.secretAccessKey));
      }
    });

    it('save/load roundtrip for every type, stat, exists', async () => {
      for (const type of FILE_TYPES) {
        const name = type === 'config' ? '' : randomName();
        const data = randomBytes(1000 + FILE_TYPES.indexOf(type));
        assert.equal(await st.exists(type, name), false);
        await st.save(type, name, data);
        assert.equal(await st.exists(type, name), true);
        const back = await st.load(type, name);
        assert.ok(Buffer.isBuffer(back));
        assert.ok(back.equals(data), `${type} roundtrip`);
        assert.deepEqual(await st.stat(type, name), { name, size: data.length });
        await st.remove(type, name);
        assert.equal(await st.exists(type, name), false);
      }
    });

    it('stores empty objects', async () => {
      const name = randomName();
      await st.save('snapshot', name, new Uint8Array(0));
      assert.equal((await st.load('snapshot', name)).length, 0);
      assert.equal((await st.stat('snapshot', name)).size, 0);
      await st.remove('snapshot', name);
    });

    it('ranged loads return exactly the requested bytes', async () => {
      const data = randomBytes(100_000);
      const name = hex(data);
      await st.save('data', name, data);
      const cases: Array<[number, number]> = [
        [0, 1],
        [0, 4096],
        [12_345, 777],
        [50_000, 1],
        [data.length - 4, 4],
        [data.length - 1, 1],
        [0, data.length],
      ];
      for (const [offset, length] of cases) {
        const got = await st.load('data', name, { offset, length });
        assert.equal(got.length, length, `length at ${offset}+${length}`);
        assert.ok(got.equals(data.subarray(offset, offset + length)), `content at ${offset}+${length}`);
      }
      // range past the end: never a silent short read
      for (const [offset, length] of [
        [data.length - 10, 11],
        [data.length, 1],
        [data.length + 1000, 10],
      ] as Array<[number, number]>) {
        await assert.rejects(
          st.load('data', name, { offset, length }),
          (err: unknown) => err instanceof LifeboatError && !(err instanceof NotFoundError) && /short read/.test((err as Error).message),
          `range ${offset}+${length} must fail`,
        );
      }
      await assert.rejects(st.load('data', randomName(), { offset: 0, length: 10 }), NotFoundError);
      await st.remove('data', name);
    });

    it('missing objects raise NotFoundError for load, stat and remove', async () => {
      for (const type of ['key', 'snapshot', 'index', 'data', 'lock'] as FileType[]) {
        const name = randomName();
        await assert.rejects(st.load(type, name), NotFoundError);
        await assert.rejects(st.stat(type, name), NotFoundError);
        await assert.rejects(st.remove(type, name), NotFoundError);
        assert.equal(await st.exists(type, name), false);
      }
      const fresh = await backend.open('repo/never-written');
      try {
        await assert.rejects(fresh.load('config', ''), NotFoundError);
        assert.equal(await fresh.exists('config', ''), false);
        assert.deepEqual(await fresh.list('config'), []);
      } finally {
        await fresh.close();
      }
    });

    it('lists each type separately, data across data/xx/ subdirectories', async () => {
      const s = await backend.open('repo/list');
      await s.create();
      try {
        const expected = new Map<FileType, Map<string, number>>();
        for (const type of ['key', 'snapshot', 'index', 'lock', 'data'] as FileType[]) {
          const m = new Map<string, number>();
          const n = type === 'data' ? 40 : 3;
          for (let i = 0; i < n; i++) {
            const data = randomBytes(10 + i);
            const name = hex(data);
            await s.save(type, name, data);
            m.set(name, data.length);
          }
          expected.set(type, m);
        }
        // data names spread over several two-hex-digit subdirectories
        assert.ok(new Set([...expected.get('data')!.keys()].map((n) => n.slice(0, 2))).size > 10);
        for (const [type, m] of expected) {
          const listed = await s.list(type);
          assert.deepEqual(
            new Map(listed.map((o) => [o.name, o.size])),
            m,
            `list(${type})`,
          );
          assert.equal(listed.length, m.size, `no duplicates in list(${type})`);
        }
        assert.deepEqual(await s.list('config'), []);
        await s.save('config', '', Buffer.from('cfg'));
        assert.deepEqual(await s.list('config'), [{ name: '', size: 3 }]);
        // a sibling prefix is invisible
        const other = await backend.open('repo/list-other');
        try {
          assert.deepEqual(await other.list('data'), []);
          assert.equal(await other.exists('config', ''), false);
        } finally {
          await other.close();
        }
      } finally {
        await s.close();
      }
    });

    it('lists more than 1000 objects (pagination)', async () => {
      const s = await backend.open('repo/many');
      await s.create();
      try {
        const names = new Set<string>();
        const payload = Buffer.from('x');
        const all = Array.from({ length: 1030 }, () => randomName());
        await pool(all, 16, async (name) => {
          await s.save('data', name, payload);
          names.add(name);
        });
        const listed = await s.list('data');
        assert.equal(listed.length, 1030);
        assert.deepEqual(new Set(listed.map((o) => o.name)), names);
        assert.ok(listed.every((o) => o.size === 1));
        // flat types paginate too
        const idx = Array.from({ length: 1001 }, () => randomName());
        await pool(idx, 16, (name) => s.save('index', name, payload));
        assert.equal((await s.list('index')).length, 1001);
        assert.equal((await s.list('data')).length, 1030);
      } finally {
        await s.close();
      }
    });

    it('remove deletes exactly one object', async () => {
      const a = randomBytes(50);
      const b = randomBytes(60);
      await st.save('index', hex(a), a);
      await st.save('index', hex(b), b);
      await st.remove('index', hex(a));
      assert.equal(await st.exists('index', hex(a)), false);
      assert.ok((await st.load('index', hex(b))).equals(b));
      await assert.rejects(st.remove('index', hex(a)), NotFoundError);
      await st.remove('index', hex(b));
    });

    it('lock objects can be overwritten; content-addressed re-saves are idempotent', async () => {
      const name = randomName();
      await st.save('lock', name, Buffer.from('first version of the lock'));
      await st.save('lock', name, Buffer.from('second'));
      assert.equal((await st.load('lock', name)).toString(), 'second');
      const locks = (await st.list('lock')).filter((o) => o.name === name);
      assert.deepEqual(
        locks.map(({ name: n, size }) => ({ name: n, size })),
        [{ name, size: 6 }],
      );
      // listings carry the modification time (freshness checks, e.g. of archived WAL)
      assert.ok(locks[0]!.mtime instanceof Date && Math.abs(locks[0]!.mtime.getTime() - Date.now()) < 10 * 60_000, String(locks[0]!.mtime));
      await st.remove('lock', name);

      const data = randomBytes(2000);
      await st.save('data', hex(data), data);
      await st.save('data', hex(data), data);
      assert.ok((await st.load('data', hex(data))).equals(data));
      await st.remove('data', hex(data));
    });

    it('a 20 MiB object roundtrips byte-identical (multipart on S3)', async () => {
      const data = randomBytes(20 * MiB);
      const name = hex(data);
      const before = srv ? (await srv.requests()).length : 0;
      await st.save('data', name, data);
      assert.equal((await st.stat('data', name)).size, data.length);
      const back = await st.load('data', name);
      assert.equal(hex(back), name);
      // a range straddling the 8 MiB part boundary
      const r = await st.load('data', name, { offset: 8 * MiB - 100, length: 200 });
      assert.ok(r.equals(data.subarray(8 * MiB - 100, 8 * MiB + 100)));
      const tail = await st.load('data', name, { offset: data.length - 16, length: 16 });
      assert.ok(tail.equals(data.subarray(data.length - 16)));

      if (backend.name === 's3') {
        const reqs = (await srv!.requests()).slice(before);
        assert.equal(reqs.filter((q) => q.method === 'POST' && /[?&]uploads\b/.test(q.url)).length, 1, 'one CreateMultipartUpload');
        const parts = reqs.filter((q) => q.method === 'PUT' && /[?&]partNumber=\d+/.test(q.url));
        assert.equal(parts.length, 3, '20 MiB in 8 MiB parts');
        // each part carries the Content-MD5 of exactly its bytes
        for (const p of parts) {
          const n = Number(/partNumber=(\d+)/.exec(p.url)![1]);
          const slice = data.subarray((n - 1) * 8 * MiB, Math.min(data.length, n * 8 * MiB));
          assert.equal(p.headers['content-md5'], md5b64(slice), `Content-MD5 of part ${n}`);
        }
        assert.equal(reqs.filter((q) => q.method === 'POST' && /[?&]uploadId=/.test(q.url)).length, 1, 'one Complete');
        assert.equal(reqs.filter((q) => q.method === 'PUT' && !/partNumber/.test(q.url)).length, 0, 'no single PUT');
      }
      await st.remove('data', name);
    });
  });
}

describe('S3 backend specifics', () => {
  before(async () => {
    srv ??= await startS3Server();
  });
  after(async () => {
    await srv?.stop();
    srv = undefined;
  });

  const client = () =>
    new S3Client({
      endpoint: srv!.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: srv!.accessKeyId, secretAccessKey: srv!.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });

  it('stores objects at prefix + the shared layout, single PUT with Content-MD5 below the threshold', async () => {
    const loc = s3Location(srv!, 'lay/out');
    const st = openStorage(loc.location, loc.opts);
    const c = client();
    try {
      const data = randomBytes(3 * MiB);
      const name = hex(data);
      const before = (await srv!.requests()).length;
      await st.save('data', name, data);
      await st.save('config', '', Buffer.from('c'));
      await st.save('key', name, Buffer.from('k'));
      const puts = (await srv!.requests()).slice(before).filter((q) => q.method === 'PUT');
      assert.equal(puts.length, 3);
      assert.ok(puts[0]!.url.startsWith(`/${srv!.bucket}/lay/out/data/${name.slice(0, 2)}/${name}`), puts[0]!.url);
      assert.equal(puts[0]!.headers['content-md5'], md5b64(data));
      assert.equal(puts[0]!.headers['content-encoding'], undefined, 'no aws-chunked encoding');
      for (const key of [`lay/out/data/${name.slice(0, 2)}/${name}`, 'lay/out/config', `lay/out/keys/${name}`]) {
        const h = await c.send(new HeadObjectCommand({ Bucket: srv!.bucket, Key: key }));
        assert.ok(h.ContentLength! > 0, key);
      }
      const all = await c.send(new ListObjectsV2Command({ Bucket: srv!.bucket, Prefix: 'lay/' }));
      assert.equal(all.KeyCount, 3);
    } finally {
      c.destroy();
      await st.close();
    }
  });

  it('lists only objects of the type, skipping directory markers and nested junk for flat types', async () => {
    const loc = s3Location(srv!, 'junk');
    const st = openStorage(loc.location, loc.opts) as S3Storage;
    try {
      const name = randomName();
      await st.save('snapshot', name, Buffer.from('s'));
      // objects other tools might leave behind
      const c = client();
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      await c.send(new PutObjectCommand({ Bucket: srv!.bucket, Key: 'junk/snapshots/', Body: new Uint8Array(0), ContentLength: 0 }));
      await c.send(new PutObjectCommand({ Bucket: srv!.bucket, Key: 'junk/snapshots/nested/x', Body: Buffer.from('x'), ContentLength: 1 }));
      await c.send(new PutObjectCommand({ Bucket: srv!.bucket, Key: 'junk/snapshotsX', Body: Buffer.from('x'), ContentLength: 1 }));
      c.destroy();
      assert.deepEqual((await st.list('snapshot')).map(({ name: n, size }) => ({ name: n, size })), [{ name, size: 1 }]);
    } finally {
      await st.close();
    }
  });

  it('create() makes a missing bucket; a missing bucket is reported clearly', async () => {
    const loc = s3Location(srv!, 'x');
    const st = openStorage(loc.location.replace(`/${srv!.bucket}/`, '/fresh-bucket-1/'), loc.opts);
    try {
      assert.equal(await st.exists('config', ''), false);
      await assert.rejects(st.list('data'), (err: unknown) => {
        assert.ok(err instanceof LifeboatError);
        assert.equal(err.exitCode, ExitCode.NO_REPO);
        assert.match(err.message, /bucket "fresh-bucket-1" does not exist/);
        return true;
      });
      await st.create();
      await st.create();
      assert.deepEqual(await st.list('data'), []);
      await st.save('config', '', Buffer.from('hello'));
      assert.equal((await st.load('config', '')).toString(), 'hello');
    } finally {
      await st.close();
    }
  });

  it('wrong credentials give a clear access-denied error without leaking the secret', async () => {
    const loc = s3Location(srv!, 'x');
    // s3rver checks only the access key id (it does not verify SigV4 signatures)
    const secret = 'wrong-secret-' + randomBytes(8).toString('hex');
    const st = openStorage(loc.location, { s3: { ...loc.opts.s3, accessKeyId: 'AKIAUNKNOWNKEY', secretAccessKey: secret } });
    try {
      for (const op of [() => st.load('config', ''), () => st.list('data'), () => st.save('lock', randomName(), Buffer.from('x'))]) {
        await assert.rejects(op(), (err: unknown) => {
          assert.ok(err instanceof LifeboatError);
          assert.ok(!(err instanceof NotFoundError));
          assert.match(err.message, /access denied by S3/);
          assert.ok(!err.message.includes(secret));
          return true;
        });
      }
      // HEAD has no error body: a 403 must still not look like "missing"
      await assert.rejects(st.exists('config', ''), /access denied by S3/);
    } finally {
      await st.close();
    }
  });

  it('an unreachable endpoint fails fast with "cannot reach S3 endpoint"', async () => {
    const port = await closedPort();
    const st = openStorage(`s3:http://127.0.0.1:${port}/some-bucket/p`, {
      s3: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'never-shown-secret', maxAttempts: 2 },
    });
    try {
      const ops: Array<() => Promise<unknown>> = [
        () => st.exists('config', ''),
        () => st.load('data', randomName(), { offset: 0, length: 10 }),
        () => st.list('snapshot'),
        () => st.save('snapshot', randomName(), Buffer.from('x')),
        () => st.create(),
      ];
      for (const op of ops) {
        await assert.rejects(op(), (err: unknown) => {
          assert.ok(err instanceof LifeboatError, String(err));
          assert.ok(!(err instanceof NotFoundError));
          assert.match(err.message, new RegExp(`cannot reach S3 endpoint http://127\\.0\\.0\\.1:${port}\\b`));
          assert.match(err.message, /ECONNREFUSED/);
          assert.ok(!err.message.includes('never-shown-secret'));
          return true;
        });
      }
    } finally {
      await st.close();
    }
  });

  it('sends Object Lock retention on everything except lock files', async () => {
    const loc = s3Location(srv!, 'worm');
    const st = openStorage(loc.location, { s3: { ...loc.opts.s3, objectLock: { mode: 'GOVERNANCE', days: 30 } } });
    try {
      const t0 = Date.now();
      const before = (await srv!.requests()).length;
      await st.save('snapshot', randomName(), Buffer.from('snap'));
      await st.save('lock', randomName(), Buffer.from('lock'));
      const big = randomBytes(9 * MiB);
      await st.save('data', hex(big), big);
      const reqs = (await srv!.requests()).slice(before);
      const snap = reqs.find((q) => q.method === 'PUT' && q.url.includes('/snapshots/'))!;
      const lock = reqs.find((q) => q.method === 'PUT' && q.url.includes('/locks/'))!;
      const mpu = reqs.find((q) => q.method === 'POST' && /[?&]uploads\b/.test(q.url))!;
      for (const q of [snap, mpu]) {
        assert.equal(q.headers['x-amz-object-lock-mode'], 'GOVERNANCE');
        const until = Date.parse(String(q.headers['x-amz-object-lock-retain-until-date']));
        assert.ok(until >= t0 + 30 * 86_400_000 - 1000 && until <= Date.now() + 30 * 86_400_000 + 1000);
      }
      assert.ok(snap.headers['content-md5'], 'Object Lock PUTs need Content-MD5');
      assert.equal(lock.headers['x-amz-object-lock-mode'], undefined);
      assert.equal(lock.headers['x-amz-object-lock-retain-until-date'], undefined);
    } finally {
      await st.close();
    }
    assert.throws(
      () => openStorage(loc.location, { s3: { objectLock: { mode: 'BOGUS' as 'GOVERNANCE', days: 1 } } }),
      /GOVERNANCE or COMPLIANCE/,
    );
    assert.throws(() => openStorage(loc.location, { s3: { objectLock: { mode: 'COMPLIANCE', days: 0 } } }), /positive number of days/);
  });
});

describe('location parsing', () => {
  it('plain paths and local: are local directories', () => {
    const { dir, cleanup } = tmpDir('lb-loc-');
    try {
      for (const loc of [dir, `local:${dir}`]) {
        const st = openStorage(loc);
        assert.ok((st as unknown as { inner: unknown }).inner instanceof LocalStorage);
        assert.equal(st.kind, 'local');
        assert.equal(st.location, dir);
      }
      const rel = openStorage('relative/repo');
      assert.equal(rel.location, path.resolve('relative/repo'));
      assert.deepEqual(parseLocation('./a:b'), { kind: 'local', path: './a:b' });
      assert.deepEqual(parseLocation('backup:2024'), { kind: 'local', path: 'backup:2024' });
      assert.deepEqual(parseLocation('local:rel/dir'), { kind: 'local', path: 'rel/dir' });
    } finally {
      cleanup();
    }
  });

  it('parses S3 locations', () => {
    const env = {};
    assert.deepEqual(parseLocation('s3:https://minio.example.com:9000/bucket/some/prefix', env), {
      kind: 's3',
      bucket: 'bucket',
      prefix: 'some/prefix/',
      endpoint: 'https://minio.example.com:9000',
      region: 'us-east-1',
      forcePathStyle: true,
    });
    assert.deepEqual(parseLocation('s3:http://127.0.0.1:9000/bkt', env), {
      kind: 's3',
      bucket: 'bkt',
      prefix: '',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
    });
    assert.deepEqual(parseLocation('s3:http://127.0.0.1:9000/bkt/', env), parseLocation('s3:http://127.0.0.1:9000/bkt', env));
    assert.equal((parseLocation('s3:http://h.local/bkt/my%20dir/x/', env) as { prefix: string }).prefix, 'my dir/x/');
    // restic style: host without scheme means https
    assert.deepEqual(parseLocation('s3:minio.lan:9000/bkt/p', env), {
      kind: 's3',
      bucket: 'bkt',
      prefix: 'p/',
      endpoint: 'https://minio.lan:9000',
      region: 'us-east-1',
      forcePathStyle: true,
    });
    // AWS hosts: virtual-hosted style, region taken from the host name
    assert.deepEqual(parseLocation('s3:s3.eu-west-1.amazonaws.com/my-bucket/x', env), {
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'x/',
      endpoint: 'https://s3.eu-west-1.amazonaws.com',
      region: 'eu-west-1',
      forcePathStyle: false,
    });
    assert.deepEqual(parseLocation('s3://my-bucket/a/b', env), {
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'a/b/',
      region: 'us-east-1',
      forcePathStyle: false,
    });
    assert.deepEqual(parseLocation('s3://my-bucket', { AWS_DEFAULT_REGION: 'ap-south-1' }), {
      kind: 's3',
      bucket: 'my-bucket',
      prefix: '',
      region: 'ap-south-1',
      forcePathStyle: false,
    });
    assert.deepEqual(
      parseLocation('s3://my-bucket/p', { AWS_ENDPOINT_URL: 'http://other:1', AWS_ENDPOINT_URL_S3: 'http://minio:9000/', AWS_REGION: 'eu-central-1', AWS_DEFAULT_REGION: 'x' }),
      { kind: 's3', bucket: 'my-bucket', prefix: 'p/', endpoint: 'http://minio:9000', region: 'eu-central-1', forcePathStyle: true },
    );
    assert.equal((parseLocation('s3://my-bucket', { AWS_ENDPOINT_URL: 'http://ceph:7480' }) as { endpoint?: string }).endpoint, 'http://ceph:7480');
  });

  it('openStorage builds S3 storages with safe locations', async () => {
    const a = (openStorage('s3:http://127.0.0.1:9/bkt/p/q/', { s3: { accessKeyId: 'id', secretAccessKey: 'sec' } }) as unknown as { inner: S3Storage }).inner;
    assert.ok(a instanceof S3Storage);
    assert.equal(a.kind, 's3');
    assert.equal(a.location, 's3:http://127.0.0.1:9/bkt/p/q');
    assert.equal((a as S3Storage).prefix, 'p/q/');
    await a.close();
    const b = (openStorage('s3://my-bucket/pre', { s3: { region: 'eu-west-3' } }) as unknown as { inner: S3Storage }).inner;
    assert.equal(b.location, 's3://my-bucket/pre');
    assert.equal(b.region, 'eu-west-3');
    await b.close();
  });

  it('rejects invalid locations with ConfigError naming the problem', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty repository location/],
      ['   ', /empty repository location/],
      ['local:', /no directory after "local:"/],
      ['s3:', /expected s3:\/\/bucket/],
      ['s3://', /no bucket name/],
      ['s3:///prefix', /no bucket name/],
      ['s3://ab', /3 to 63 characters/],
      ['s3://Bad_Bucket', /lowercase letters/],
      ['s3://-bucket', /lowercase letters/],
      ['s3://my..bucket', /must not contain "\.\."/],
      ['s3://192.168.1.1', /IP address/],
      ['s3://bucket/a//b', /empty path segment/],
      ['s3://bucket/../x', /"\.\." is not allowed/],
      ['s3://bucket/x?versionId=1', /query strings/],
      ['s3:https://host.example', /no bucket name after the endpoint/],
      ['s3:https://host.example/', /no bucket name after the endpoint/],
      ['s3:https://host.example/bucket/../other', /"\.\." is not allowed/],
      ['s3:https://host.example/bucket/%2e%2e/other', /"\.\." is not allowed/],
      ['s3:https://host.example/bucket/a//b', /empty path segment/],
      ['s3:https://host.example/bucket?region=x', /query strings/],
      ['s3:https://host.example/b%ZZ', /malformed percent-encoding/],
      ['s3:https://host.example/bad$bucket', /not allowed/],
      ['s3:ftp://host.example/bucket', /must be an http:\/\/ or https:\/\/ URL/],
      ['s3:bucket/prefix', /expected s3:\/\/bucket/],
      ['sftp:user@host', /expected sftp:user@host:\/path/],
      ['rclone:nocolon', /expected rclone:REMOTE:PATH/],
      ['https://host.example/bucket', /for an S3-compatible server write "s3:https:\/\/host.example\/bucket"/],
      ['gs://bucket/x', /unknown scheme "gs:"/],
    ];
    for (const [loc, re] of cases) {
      assert.throws(
        () => parseLocation(loc, {}),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, `${JSON.stringify(loc)}: ${String(err)}`);
          assert.equal(err.exitCode, ExitCode.USAGE);
          assert.match(err.message, re, JSON.stringify(loc));
          return true;
        },
      );
    }
    assert.throws(() => parseLocation('s3://bucket', { AWS_ENDPOINT_URL: 'not a url' }), /invalid AWS_ENDPOINT_URL: not a URL/);
    assert.throws(() => parseLocation('s3://bucket', { AWS_ENDPOINT_URL_S3: 'ftp://x' }), /invalid AWS_ENDPOINT_URL_S3: must start with http/);
    assert.throws(() => parseLocation('s3://bucket', { AWS_ENDPOINT_URL: 'http://u:p@x' }), /credentials are not allowed/);
  });

  it('never puts credentials in errors or descriptions', () => {
    for (const loc of ['s3:https://AKID:topsecret@host.example/bucket/p', 's3://AKID:topsecret@bucket/p']) {
      assert.throws(
        () => parseLocation(loc, {}),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /credentials are not allowed/);
          assert.ok(!err.message.includes('topsecret'), err.message);
          return true;
        },
      );
    }
    assert.equal(describeLocation('s3:https://AKID:topsecret@host.example/bucket/p'), 's3:https://host.example/bucket/p');
    assert.equal(describeLocation('s3://AKID:topsecret@bucket/p'), 's3://bucket/p');
    assert.equal(describeLocation('https://u:pw@h/x'), 'https://h/x');
    assert.equal(describeLocation('s3:https://host/bucket/p'), 's3:https://host/bucket/p');
    assert.equal(describeLocation('/srv/backup'), '/srv/backup');
    assert.equal(describeLocation('local:/srv/a@b'), 'local:/srv/a@b');
  });
});
