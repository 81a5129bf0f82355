import { hostname } from 'node:os';
import type { DaemonConfig } from './schema.js';
import { ConfigError } from '../errors.js';

/** The alphabet of an agent id (also the schema's rule for daemon.agentId). */
export const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const AGENT_ID_RULE = 'letters, digits, ".", "_", "-" (at most 63, not starting with a punctuation mark)';

/**
 * This host's id in the fleet (LIFEBOAT_AGENT_ID, else daemon.agentId, default the host name cut to
 * the id's alphabet). Every run this config records carries it
 * (runs.agent_id), so the fleet view can tell which host ran what.
 */
export function agentIdOf(daemon: Pick<DaemonConfig, 'agentId'>): string {
  // one config file shared by the hosts of a fleet: the environment names each host's agent
  const env = process.env.LIFEBOAT_AGENT_ID?.trim();
  if (env) {
    if (!AGENT_ID.test(env)) throw new ConfigError(`LIFEBOAT_AGENT_ID "${env}": ${AGENT_ID_RULE}`);
    return env;
  }
  if (daemon.agentId) return daemon.agentId;
  const h = hostname().replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return h || 'localhost';
}
