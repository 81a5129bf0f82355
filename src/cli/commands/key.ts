import { Command } from 'commander';
import { ConfigError, LifeboatError } from '../../errors.js';
import { createKeyFile, listKeys } from '../../repo/keys.js';
import { resolveSecret } from '../../config/password.js';
import { type CliContext, WITHOUT_INDEX } from '../context.js';
import { table } from '../output.js';

function newPassword(o: { newPasswordFile?: string }): string {
  if (o.newPasswordFile) return resolveSecret({ file: o.newPasswordFile }, 'new password (--new-password-file)');
  if (process.env.LIFEBOAT_NEW_PASSWORD) return process.env.LIFEBOAT_NEW_PASSWORD;
  throw new ConfigError('no new password: pass --new-password-file FILE or set LIFEBOAT_NEW_PASSWORD');
}

/** Registers the `key` commands: `key list|add|remove|passwd`. */
export function registerKey(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const key = program.command('key').description('manage repository passwords (key files)');
  key
    .command('list')
    .description('list key files')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const keys = await listKeys(repo.storage, repo.keyName);
        if (ctx.out.json) ctx.out.emit(keys);
        else ctx.out.info(table([' ', 'ID', 'User', 'Host', 'Created'], keys.map((k) => [k.current ? '*' : ' ', k.name.slice(0, 8), k.username, k.hostname, k.created.slice(0, 19)])));
      }, WITHOUT_INDEX);
    });
  key
    .command('add')
    .description('add a new password (key file)')
    .option('--new-password-file <file>', 'file containing the new password (or env LIFEBOAT_NEW_PASSWORD)')
    .action(async (o: { newPasswordFile?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const name = await createKeyFile(repo.storage, newPassword(o), repo.key);
        ctx.out.info(`saved new key ${name.slice(0, 8)}`);
        ctx.out.emit({ id: name });
      }, WITHOUT_INDEX);
    });
  key
    .command('remove')
    .description('remove a key file (its password stops working)')
    .argument('<id>', 'key id or unique prefix')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const keys = await listKeys(repo.storage, repo.keyName);
        const hits = keys.filter((k) => k.name.startsWith(id));
        if (hits.length !== 1) throw new LifeboatError(hits.length ? `key prefix ${id} is ambiguous` : `no key ${id}`, 2);
        if (hits[0]!.current) throw new LifeboatError('refusing to remove the key currently in use; open the repository with another password first', 2);
        await repo.storage.remove('key', hits[0]!.name);
        ctx.out.info(`removed key ${hits[0]!.name.slice(0, 8)}`);
      }, WITHOUT_INDEX);
    });
  key
    .command('passwd')
    .description('change the password of the current key (adds a new key file, then removes the old one)')
    .option('--new-password-file <file>', 'file containing the new password (or env LIFEBOAT_NEW_PASSWORD)')
    .action(async (o: { newPasswordFile?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const name = await createKeyFile(repo.storage, newPassword(o), repo.key);
        await repo.storage.remove('key', repo.keyName);
        ctx.out.info(`password changed (key ${repo.keyName.slice(0, 8)} replaced by ${name.slice(0, 8)})`);
      }, WITHOUT_INDEX);
    });
}
