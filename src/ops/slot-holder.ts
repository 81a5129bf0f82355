import { PROCESS_INSTANCE } from './catalog/instance.js';

/**
 * The holder id of this daemon's slot claims (runOn: any): the fleet agent id
 * (config/agent-id.ts) and this process's instance. A restarted agent is a new
 * holder: the claims its dead predecessor held are another holder's, taken
 * over after their lease, never renewed by mistake.
 */
export function slotHolderId(agentId: string): string {
  return `${agentId}/${PROCESS_INSTANCE.slice(0, 8)}`;
}
