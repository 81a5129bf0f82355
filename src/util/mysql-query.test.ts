import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryOrKill } from './mysql-query.js';

const connect = async () => (await import('mysql2/promise')).default.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', connectTimeout: 5000 });

test('queryOrKill: a query past its timeout is ended on the server too; one within it returns its rows', async () => {
  const c = await connect();
  const other = await connect();
  const running = async () => ((await other.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%lb-query-or-kill-' 'probe%'"))[0] as unknown[]).length;
  try {
    assert.deepEqual(await queryOrKill(c, { sql: 'SELECT 41 + 1 AS n', timeout: 5000, rowsAsArray: true }, connect), [[42]]);
    const t0 = Date.now();
    await assert.rejects(queryOrKill(c, { sql: "SELECT SLEEP(30), 'lb-query-or-kill-probe'", timeout: 500 }, connect), (e: Error & { code?: string }) => e.code === 'PROTOCOL_SEQUENCE_TIMEOUT');
    assert.ok(Date.now() - t0 < 5000);
    let left = await running();
    for (let i = 0; i < 20 && left > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await running();
    }
    assert.equal(left, 0, 'the timed-out query no longer runs on the server');
  } finally {
    c.destroy();
    await other.end();
  }
});
